//! How the throttle names what it counts (an account by a digest of its email, a client by its
//! address or IPv6 /64) and how long a count makes the next try wait.

use super::queries::{ThrottleCount, ThrottleKey};
use super::{Counted, Scope};
use crate::domain::Email;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;

/// How long a key with `count` must still wait, if at all: free tries pass; after them each
/// try waits `base · 2^(tries over free)`, at most `max`, counted from the last one.
pub(super) fn wait(
    count: ThrottleCount,
    free: u32,
    base: Duration,
    max: Duration,
    now_ms: i64,
) -> Option<Duration> {
    if count.failures < free {
        return None;
    }
    let over = (count.failures - free).min(40);
    let delay = base.saturating_mul(2u32.saturating_pow(over)).min(max);
    let ready_at = count.last_at_ms.saturating_add(millis(delay));
    (now_ms < ready_at)
        .then(|| Duration::from_millis(u64::try_from(ready_at - now_ms).unwrap_or(0)))
}

pub(super) fn counted(scope: Scope, account: &str, client: &str, free: u32) -> Counted {
    Counted {
        key: key(scope, account, client),
        scope,
        free,
    }
}

pub(super) fn key(scope: Scope, account: &str, client: &str) -> ThrottleKey {
    ThrottleKey {
        key: format!("{}|{account}|{client}", scope.name()),
        scope: scope.name(),
        account: account.to_owned(),
    }
}

/// An account as the throttle knows it: a digest of the email, so made-up addresses are not
/// stored as given and every key has the same size.
pub(super) fn account_id(email: &Email) -> String {
    account_id_of(email.as_str())
}

pub(super) fn account_id_of(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A client address as the throttle counts it: IPv4 as it is, IPv6 by its /64 (one subscriber
/// usually holds a whole /64, so single addresses in it are free to rotate through).
pub(super) fn client_id(client: &str) -> String {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => "unknown".to_owned(),
    }
}

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
