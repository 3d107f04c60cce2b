use super::FieldViolation;
use std::fmt;

/// An email address, trimmed and lower-cased: the stored and displayed form, and the one that
/// uniqueness is checked on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

impl Email {
    /// Accepts `local@domain` where the local part is RFC 5322 dot-atom text and the domain is a
    /// DNS name with at least two labels. Quoted local parts and IP-literal domains are refused.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        let invalid = |why: &str| FieldViolation::new(field, why);
        // ASCII case only: a full Unicode lower-casing folds some non-ASCII letters into ASCII
        // ones (U+212A KELVIN SIGN becomes `k`), so `\u{212a}ate@…` would become someone else's
        // `kate@…`. Non-ASCII is refused below, whatever its case.
        let email = raw.trim().to_ascii_lowercase();
        if email.is_empty() {
            return Err(invalid("is required"));
        }
        if email.len() > MAX_LEN {
            return Err(invalid("is longer than 254 characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(invalid("is not an email address: it has no @"));
        };
        if local.is_empty() || local.len() > MAX_LOCAL_LEN || !is_dot_atom(local) {
            return Err(invalid(
                "is not an email address: the part before @ is malformed",
            ));
        }
        if !is_domain(domain) {
            return Err(invalid("is not an email address: the domain is malformed"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_dot_atom(s: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
    s.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
    })
}

fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let email = Email::parse("email", "  Alice.Smith+tag@Example.COM ").map(|e| e.0);
        assert_eq!(email, Ok("alice.smith+tag@example.com".to_owned()));
    }

    #[test]
    fn letters_that_lower_case_into_ascii_are_refused_not_folded() {
        // U+212A KELVIN SIGN and U+212B ANGSTROM SIGN; U+0130 LATIN CAPITAL I WITH DOT ABOVE.
        for tricky in [
            "\u{212a}ate@example.com",
            "\u{212b}sa@example.com",
            "\u{130}da@example.com",
            "kate@exa\u{212a}ple.com",
        ] {
            assert!(
                Email::parse("email", tricky).is_err(),
                "accepted {tricky:?}"
            );
        }
        assert_eq!(
            Email::parse("email", "KATE@EXAMPLE.COM").map(|e| e.0),
            Ok("kate@example.com".to_owned())
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "a..b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a b@example.com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@exa_mple.com",
            "alice@example.123",
            "alice@@example.com",
            "\"quoted\"@example.com",
            "alice@[127.0.0.1]",
            "ali\u{0}ce@example.com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn refuses_overlong_addresses() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse("email", &long_local).is_err());
        let long_total = format!("a@{}.com", "b.".repeat(130));
        assert!(Email::parse("email", &long_total).is_err());
        assert!(Email::parse("email", &"x".repeat(1 << 20)).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_output_is_normalised(raw in "\\PC{0,80}") {
            if let Ok(email) = Email::parse("email", &raw) {
                prop_assert_eq!(email.as_str(), email.as_str().trim().to_lowercase());
                prop_assert!(email.as_str().len() <= MAX_LEN);
                prop_assert_eq!(email.as_str().matches('@').count(), 1);
            }
        }

        #[test]
        fn accepts_plain_addresses(local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", domain in "[a-z][a-z0-9-]{0,10}[a-z0-9]\\.[a-z]{2,6}") {
            prop_assume!(!local.contains(".."));
            let raw = format!("{local}@{domain}");
            prop_assert!(Email::parse("email", &raw).is_ok(), "refused {}", raw);
        }
    }
}
