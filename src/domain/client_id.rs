//! The OAuth client id a caller declares at login (RFC 9068 `client_id` claim).

use super::FieldViolation;
use std::fmt;

/// Longest client id accepted, in bytes (all of them ASCII).
pub const CLIENT_ID_MAX_LEN: usize = 64;

/// A client id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`. Self-declared by the caller: authd
/// has no client registry, so it names the client a token was asked for, never proves it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Reads a client id sent as request field `field`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        if raw.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        if raw.len() > CLIENT_ID_MAX_LEN {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {CLIENT_ID_MAX_LEN} characters"),
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(FieldViolation::new(
                field,
                "may hold only letters A-Z and a-z, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// For the setting `AUTHD_DEFAULT_CLIENT_ID` (clap's value parser).
    pub fn from_setting(raw: &str) -> Result<Self, String> {
        Self::parse("client_id", raw).map_err(|v| format!("a client id {}", v.description))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_allowed_alphabet_and_refuses_the_rest() {
        for ok in ["authd", "web-app", "svc.billing_v2", "A", &"x".repeat(64)] {
            assert_eq!(
                ClientId::parse("client_id", ok).map(|c| c.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "",
            " authd",
            "authd ",
            "a b",
            "a/b",
            "a:b",
            "é",
            "a\u{0}",
            "a\n",
            "ａ",
            &"x".repeat(65),
        ] {
            let err = ClientId::parse("client_id", bad).err();
            assert_eq!(err.map(|v| v.field), Some("client_id"), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn whatever_it_accepts_is_short_and_plain(raw in "\\PC{0,80}") {
            if let Ok(id) = ClientId::parse("client_id", &raw) {
                prop_assert!(id.as_str().len() <= CLIENT_ID_MAX_LEN && !id.as_str().is_empty());
                prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
                prop_assert_eq!(id.as_str(), raw.as_str());
            }
        }
    }
}
