//! The throttle settings: how many guesses, mails and signups before each further one waits.

use super::values::parse_duration;
use clap::Args;
use std::time::Duration;

/// Throttling of guesses, mail requests and signups. Counters live in the database, so every
/// replica sees the same counts; a throttled key waits a delay that doubles with each further
/// failure (up to `max_delay`) instead of being locked out. See README, "Security".
#[derive(Debug, Clone, Args)]
pub struct ThrottleSettings {
    /// Failed logins from one client for one account before each further try waits a growing delay.
    #[arg(
        long = "throttle-client-account-failures",
        env = "AUTHD_THROTTLE_CLIENT_ACCOUNT_FAILURES",
        default_value_t = 5
    )]
    pub client_account_failures: u32,
    /// Failed logins for one account, from clients that have failed before, before they wait.
    /// Clients that have not been failing are not held back by this, so the owner still gets in.
    #[arg(
        long = "throttle-account-failures",
        env = "AUTHD_THROTTLE_ACCOUNT_FAILURES",
        default_value_t = 10
    )]
    pub account_failures: u32,
    /// Consecutive failed logins for one account after which only clients that have logged in
    /// to it before may try, until a password reset (NIST SP 800-63B: at most 100).
    #[arg(long = "throttle-account-max-failures", env = "AUTHD_THROTTLE_ACCOUNT_MAX_FAILURES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub account_max_failures: u32,
    /// Wrong second-factor codes for one account before each further try waits a growing
    /// delay. A right password does not clear them; only a right code does.
    #[arg(
        long = "throttle-account-mfa-failures",
        env = "AUTHD_THROTTLE_ACCOUNT_MFA_FAILURES",
        default_value_t = 5
    )]
    pub account_mfa_failures: u32,
    /// Failures (logins, refresh, verification and reset tokens) from one client address, across
    /// all accounts, before it waits.
    #[arg(
        long = "throttle-client-failures",
        env = "AUTHD_THROTTLE_CLIENT_FAILURES",
        default_value_t = 100
    )]
    pub client_failures: u32,
    /// Mails (verification, reset) asked for one account before each further one waits.
    #[arg(
        long = "throttle-account-mails",
        env = "AUTHD_THROTTLE_ACCOUNT_MAILS",
        default_value_t = 3
    )]
    pub account_mails: u32,
    /// Mail requests from one client address before it waits.
    #[arg(
        long = "throttle-client-mails",
        env = "AUTHD_THROTTLE_CLIENT_MAILS",
        default_value_t = 50
    )]
    pub client_mails: u32,
    /// Signups from one client address before it waits.
    #[arg(
        long = "throttle-client-signups",
        env = "AUTHD_THROTTLE_CLIENT_SIGNUPS",
        default_value_t = 20
    )]
    pub client_signups: u32,
    /// The longest delay a throttled key waits between tries.
    #[arg(long = "throttle-max-delay", env = "AUTHD_THROTTLE_MAX_DELAY", default_value = "15m", value_parser = parse_duration)]
    pub max_delay: Duration,
    /// A counter is forgotten this long after its last count.
    #[arg(long = "throttle-forget-after", env = "AUTHD_THROTTLE_FORGET_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub forget_after: Duration,
    /// A client that logged in to an account is known to it for this long: it is exempt from the
    /// account-wide limits (never from its own).
    #[arg(long = "throttle-known-client-for", env = "AUTHD_THROTTLE_KNOWN_CLIENT_FOR", default_value = "30d", value_parser = parse_duration)]
    pub known_client_for: Duration,
    /// Proxies (IP addresses or CIDR ranges, comma-separated) whose `x-forwarded-for` names the
    /// client. From any other peer the header is ignored.
    #[arg(
        long = "trusted-proxies",
        env = "AUTHD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
}
