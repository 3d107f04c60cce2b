//! Parsers for the values of settings that clap does not know: durations, booleans and listen
//! addresses.

use std::net::SocketAddr;
use std::time::Duration;

/// Parses `90s`, `15m`, `24h`, `7d` (or a bare `0`), up to a century. Whole numbers only.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{raw}` needs a unit: s, m, h or d (for example 15m)"))?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration such as 90s, 15m, 24h or 7d"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{raw}`: unknown unit `{unit}`; use s, m, h or d")),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("`{raw}` is too long (at most 36500d)"))
}

/// `true`/`false`/`1`/`0` (any case), for boolean settings.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("`{raw}` is not a boolean: use true, false, 1 or 0")),
    }
}

/// A listen or connect address: an IP address and a port (`127.0.0.1:50051`, `[::1]:50051`,
/// `0.0.0.0:50051`). A host name is not resolved here, and the refusal says so.
pub fn parse_socket_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.trim().parse().map_err(|_| {
        let host_and_port = raw
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if host_and_port {
            format!(
                "`{raw}` names a host: give an IP address and a port, such as 127.0.0.1:50051, \
                 [::1]:50051 or 0.0.0.0:50051 (all interfaces)"
            )
        } else {
            format!("`{raw}` is not an IP address and port such as 127.0.0.1:50051")
        }
    })
}

/// The longest duration a setting takes: a century, far beyond any sane lifetime, and well
/// inside what date arithmetic handles.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_ip_and_port_and_a_host_name_is_told_apart() {
        assert_eq!(
            parse_socket_addr(" 127.0.0.1:50051 ").map(|a| a.port()),
            Ok(50051)
        );
        assert!(parse_socket_addr("[::1]:8080").is_ok());
        let host = parse_socket_addr("localhost:50051").unwrap_err();
        assert!(host.contains("names a host"), "{host}");
        for bad in ["", "127.0.0.1", ":80", "127.0.0.1:99999", "x"] {
            let why = parse_socket_addr(bad).unwrap_err();
            assert!(
                why.contains("is not an IP address and port"),
                "{bad:?}: {why}"
            );
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
