//! Who is calling: the client address and user agent of a gRPC request.
//!
//! The address is the TCP peer's, unless the peer is one of the configured trusted proxies:
//! then it is the right-most address in `x-forwarded-for` that is not itself a trusted proxy.
//! From anyone else the header is ignored, since any caller can set it.

use crate::domain::ClientInfo;
use std::net::IpAddr;
use tonic::Request;

/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 512;

/// Proxies whose `x-forwarded-for` is believed: addresses or CIDR ranges.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`…; an error names the bad entry.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let bad = || {
                anyhow::anyhow!(
                    "AUTHD_TRUSTED_PROXIES: `{entry}` is not an IP address or CIDR range such as 10.0.0.0/8"
                )
            };
            let (addr, bits) = match entry.split_once('/') {
                Some((addr, bits)) => (addr, Some(bits)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(bad)?,
                None => max,
            };
            ranges.push((addr, bits));
        }
        Ok(Self(ranges))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| in_range(ip, canonical(*net), *bits))
    }

    /// The caller's user agent and address.
    pub fn client_info<T>(&self, request: &Request<T>) -> ClientInfo {
        let user_agent = request
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let user_agent = match user_agent.char_indices().nth(MAX_USER_AGENT) {
            Some((cut, _)) => &user_agent[..cut],
            None => user_agent,
        };
        let peer = request.remote_addr().map(|a| canonical(a.ip()));
        let ip = match peer {
            Some(peer) if self.contains(peer) => {
                let forwarded = request
                    .metadata()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .collect::<Vec<_>>();
                self.forwarded_client(&forwarded).unwrap_or(peer)
            }
            Some(peer) => peer,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        ClientInfo {
            user_agent: user_agent.to_owned(),
            ip: ip.to_string(),
        }
    }

    /// The right-most hop that is not a trusted proxy; `None` if there is no usable hop.
    fn forwarded_client(&self, hops: &[&str]) -> Option<IpAddr> {
        for hop in hops.iter().rev() {
            let ip = canonical(hop.parse::<IpAddr>().ok()?);
            if !self.contains(ip) {
                return Some(ip);
            }
        }
        None
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&list).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn ranges_parse_and_match() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.1", "fd00::/8"]);
        assert!(p.contains("10.1.2.3".parse().unwrap_or(IpAddr::from([0; 4]))));
        assert!(p.contains("::ffff:10.9.9.9".parse().unwrap_or(IpAddr::from([0; 4]))));
        assert!(!p.contains("11.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]))));
        assert!(p.contains("192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]))));
        assert!(!p.contains("192.0.2.2".parse().unwrap_or(IpAddr::from([0; 4]))));
        assert!(p.contains("fd12::1".parse().unwrap_or(IpAddr::from([0; 4]))));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(TrustedProxies::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
        assert!(proxies(&["0.0.0.0/0"]).contains(IpAddr::from([8, 8, 8, 8])));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        let hop = |hops: &[&str]| p.forwarded_client(hops).map(|ip| ip.to_string());
        assert_eq!(hop(&["203.0.113.9"]).as_deref(), Some("203.0.113.9"));
        // A client that sends its own x-forwarded-for cannot choose its address.
        assert_eq!(
            hop(&["1.2.3.4", "203.0.113.9", "10.0.0.2"]).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(hop(&["10.0.0.3", "10.0.0.2"]), None);
        assert_eq!(hop(&["garbage"]), None);
    }
}
