use super::FieldViolation;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// The shortest password authd ever accepts, in characters, whatever the configured minimum.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters. Bounds hashing cost for hostile input.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// What a new password must look like. Lengths count characters, not bytes.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    /// The most bytes the hash algorithm reads (bcrypt: 72). A longer new password would be
    /// cut silently, so it is refused instead.
    pub max_bytes: Option<usize>,
}

/// A password in clear text, as the caller sent it: never logged, never in an error.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// A new password (signup, reset, change): must meet the policy.
    pub fn parse_new(
        field: &'static str,
        raw: &str,
        policy: PasswordPolicy,
    ) -> Result<Self, FieldViolation> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err(FieldViolation::new(field, "is required"));
        }
        if chars < policy.min_chars || chars > MAX_PASSWORD_CHARS {
            return Err(FieldViolation::new(
                field,
                format!(
                    "must be {} to {MAX_PASSWORD_CHARS} characters long",
                    policy.min_chars
                ),
            ));
        }
        if let Some(max_bytes) = policy.max_bytes.filter(|max| raw.len() > *max) {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {max_bytes} bytes long (UTF-8) with the configured hash"),
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// A password offered at login: refused only outside the absolute bounds (8 to 128
    /// characters), which no password can be within. The configured minimum is not applied,
    /// so raising it never locks out accounts whose passwords met the earlier one.
    pub fn parse_attempt(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err(FieldViolation::new(field, "is required"));
        }
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            return Err(FieldViolation::new(
                field,
                format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"),
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: PasswordPolicy = PasswordPolicy {
        min_chars: 8,
        max_bytes: None,
    };

    #[test]
    fn length_bounds_count_characters() {
        assert!(Password::parse_new("password", "1234567", POLICY).is_err());
        assert!(Password::parse_new("password", "12345678", POLICY).is_ok());
        assert!(Password::parse_new("password", &"x".repeat(128), POLICY).is_ok());
        assert!(Password::parse_new("password", &"x".repeat(129), POLICY).is_err());
        // 128 characters of 4 bytes each is 512 bytes, and still allowed.
        assert!(Password::parse_new("password", &"🔑".repeat(128), POLICY).is_ok());
        assert!(Password::parse_new("password", "ééééééé", POLICY).is_err());
        assert!(Password::parse_new("password", "", POLICY).is_err());
    }

    #[test]
    fn login_attempts_are_held_to_the_absolute_bounds_only() {
        assert!(Password::parse_attempt("password", "1234567").is_err());
        assert!(Password::parse_attempt("password", "12345678").is_ok());
        assert!(Password::parse_attempt("password", &"x".repeat(129)).is_err());
        // A stricter configured minimum does not apply at login.
        let strict = PasswordPolicy {
            min_chars: 12,
            max_bytes: None,
        };
        assert!(Password::parse_new("password", "123456789", strict).is_err());
        assert!(Password::parse_attempt("password", "123456789").is_ok());
    }

    #[test]
    fn a_byte_limit_refuses_what_the_hash_would_cut() {
        let bcrypt = PasswordPolicy {
            min_chars: 8,
            max_bytes: Some(72),
        };
        assert!(Password::parse_new("password", &"x".repeat(72), bcrypt).is_ok());
        assert!(Password::parse_new("password", &"x".repeat(73), bcrypt).is_err());
        // 19 four-byte characters: few characters, too many bytes.
        assert!(Password::parse_new("password", &"🔑".repeat(19), bcrypt).is_err());
    }

    #[test]
    fn debug_does_not_reveal_the_password() {
        let password = Password::parse_attempt("password", "hunter2hunter2");
        let shown = format!("{password:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    proptest! {
        #[test]
        fn accepted_iff_within_bounds(raw in "\\PC{0,140}") {
            let chars = raw.chars().count();
            let accepted = Password::parse_new("password", &raw, POLICY).is_ok();
            prop_assert_eq!(accepted, (8..=128).contains(&chars));
        }
    }
}
