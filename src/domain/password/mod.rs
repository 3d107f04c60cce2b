//! Passwords as callers send them, and what a new one must look like (NIST SP 800-63B rev 4,
//! §3.1.1.2): a length, no composition rules, and refusal of passwords an attacker tries first:
//! common ones from breach corpora, context words, and trivially repetitive ones.
//!
//! Every password is put in Unicode NFKC form before anything else, so the same password typed
//! on two keyboards (NFC `é` or NFD `e` + U+0301) is one password; lengths count characters of
//! that form.

mod blocklist;
mod rules;

use super::{Email, FieldViolation};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// The shortest password authd ever accepts, in characters, whatever the configured minimum.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters. Bounds hashing cost for hostile input.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Input longer than this many bytes is refused before it is normalized: no password of 128
/// characters is that long, and normalizing megabytes of hostile input costs time for nothing.
const MAX_RAW_BYTES: usize = 4096;

/// What a new password must look like. Lengths count characters, not bytes.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    /// The most bytes the hash algorithm reads (bcrypt: 72). A longer new password would be
    /// cut silently, so it is refused instead.
    pub max_bytes: Option<usize>,
    /// The name users know the service by; refused as a password, like "authd".
    pub service_name: String,
}

/// A password in clear text, NFKC-normalized: never logged, never in an error.
#[derive(Clone)]
pub struct Password {
    normalized: SecretString,
    /// The password as typed, kept only for a login attempt and only when normalizing changed
    /// it: hashes stored before authd normalized passwords were made from this form.
    as_typed: Option<SecretString>,
}

impl Password {
    /// A new password (signup, reset, change): must meet the policy. With the account's email
    /// known, a password that is the email or a part of it is refused too; where it is known
    /// only later, call [`Password::check_not_email`] then.
    pub fn parse_new(
        field: &'static str,
        raw: &str,
        policy: &PasswordPolicy,
        email: Option<&Email>,
    ) -> Result<Self, FieldViolation> {
        let min_chars = policy.min_chars.max(MIN_PASSWORD_CHARS);
        let length = || {
            FieldViolation::new(
                field,
                format!("must be {min_chars} to {MAX_PASSWORD_CHARS} characters long"),
            )
        };
        if raw.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if raw.len() > MAX_RAW_BYTES {
            return Err(length());
        }
        let normalized: String = raw.nfkc().collect();
        let chars = normalized.chars().count();
        if chars < min_chars || chars > MAX_PASSWORD_CHARS {
            return Err(length());
        }
        if let Some(max_bytes) = policy.max_bytes.filter(|max| normalized.len() > *max) {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {max_bytes} bytes long (UTF-8) with the configured hash"),
            ));
        }
        let folded = rules::fold(&normalized);
        rules::check(&normalized, &folded, &policy.service_name)
            .map_err(|why| FieldViolation::new(field, why))?;
        if let Some(email) = email {
            rules::check_email(&folded, email.as_str())
                .map_err(|why| FieldViolation::new(field, why))?;
        }
        Ok(Self {
            normalized: SecretString::from(normalized),
            as_typed: None,
        })
    }

    /// Refuses a new password that is the account's email address (as stored) or a part of it,
    /// for use cases that learn the email only after parsing (a reset finds it by its token).
    pub fn check_not_email(&self, field: &'static str, email: &str) -> Result<(), FieldViolation> {
        rules::check_email(&rules::fold(self.expose()), email)
            .map_err(|why| FieldViolation::new(field, why))
    }

    /// A password offered at login: refused only outside the absolute bounds (8 to 128
    /// characters), which no password can be within. The configured minimum is not applied,
    /// so raising it never locks out accounts whose passwords met the earlier one; nor are the
    /// rules for new passwords. The bounds hold for the normalized form or the form as typed,
    /// since passwords set before authd normalized were counted as typed.
    pub fn parse_attempt(field: &'static str, raw: &str) -> Result<Self, FieldViolation> {
        if raw.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        let length = || {
            FieldViolation::new(
                field,
                format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"),
            )
        };
        if raw.len() > MAX_RAW_BYTES {
            return Err(length());
        }
        let within =
            |s: &str| (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&s.chars().count());
        let normalized: String = raw.nfkc().collect();
        if !within(&normalized) && !within(raw) {
            return Err(length());
        }
        let as_typed = (normalized != raw).then(|| SecretString::from(raw));
        Ok(Self {
            normalized: SecretString::from(normalized),
            as_typed,
        })
    }

    /// The NFKC form: what new hashes are made from and verified against first.
    pub fn expose(&self) -> &str {
        self.normalized.expose_secret()
    }

    /// The password as typed, when it differs from the normalized form (login attempts only).
    pub fn expose_as_typed(&self) -> Option<&str> {
        self.as_typed.as_ref().map(ExposeSecret::expose_secret)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests;
