//! One source row checked and turned into a user for authd, or the reason it is skipped.

use super::queries::{BulkUser, SourceRow};
use crate::crypto::hash_bounds::CostBounds;
use crate::crypto::password::is_importable_hash;
use crate::domain::{DisplayName, Email, UserId};
use chrono::{DateTime, Utc};
use std::fmt;

/// The longest `ext_id` (the column's width).
const MAX_EXT_ID_CHARS: usize = 255;

/// Why a row was not imported, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    AlreadyImported,
    DuplicateEmailInSource,
    DuplicateIdInSource,
    EmailTaken,
    InvalidId,
    InvalidEmail,
    NoHash,
    HashNotBcrypt,
    HashTooCostly,
    InvalidName,
    MalformedLine,
    RefusedByDatabase,
    Conflicted,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Self::AlreadyImported => "already imported (a user with this id is in authd)",
            Self::DuplicateEmailInSource => {
                "duplicate email in the source (an earlier row has it, in any case)"
            }
            Self::DuplicateIdInSource => "duplicate id in the source",
            Self::EmailTaken => "email taken by another authd user (not overwritten)",
            Self::InvalidId => "missing or invalid id",
            Self::InvalidEmail => "invalid email",
            Self::NoHash => "no password hash (empty or NULL)",
            Self::HashNotBcrypt => "password hash is not bcrypt (or argon2id)",
            // The numbers are `hash_bounds`' (a test holds them to it).
            Self::HashTooCostly => {
                "password hash costs more to check than a login may (over bcrypt cost 13, \
                 argon2 m of 256 MiB, m × t of 256 MiB or p of 16, or the configured cost)"
            }
            Self::InvalidName => "invalid name (over 200 characters, or control characters)",
            Self::MalformedLine => "malformed line",
            Self::RefusedByDatabase => "refused by authd's database (see the log)",
            Self::Conflicted => "conflicted with a row written meanwhile (run again)",
        }
    }
}

/// Where a row is in the source, for the report: its id, and its line in a JSON Lines file.
/// Never any other value of the row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub line: Option<u64>,
    pub id: Option<String>,
    /// What was wrong with a malformed line.
    pub detail: Option<&'static str>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids are shown shortened and escaped: they come from the source.
        let id = self.id.as_deref().map(|id| {
            let short: String = id.chars().take(40).collect();
            short.escape_debug().to_string()
        });
        match (self.line, id) {
            (Some(line), Some(id)) => write!(f, "line {line} (id {id})")?,
            (Some(line), None) => write!(f, "line {line}")?,
            (None, Some(id)) => f.write_str(&id)?,
            (None, None) => f.write_str("?")?,
        }
        match self.detail {
            Some(detail) => write!(f, ": {detail}"),
            None => Ok(()),
        }
    }
}

/// A row that can be imported.
pub struct Checked {
    pub user: BulkUser,
    /// The source had no name: the email's local part stands in.
    pub named_from_email: bool,
    /// The source said nothing of verification: --assume-verified decided.
    pub verified_assumed: bool,
}

/// Checks `row`: an id, an email `domain::Email` accepts, a bcrypt or argon2id hash within
/// `bounds`, a name `DisplayName` accepts (or none).
pub fn check(
    row: SourceRow,
    bounds: &CostBounds,
    assume_verified: bool,
    now: DateTime<Utc>,
) -> Result<Checked, Skip> {
    let ext_id = match row.id {
        Some(id)
            if !id.trim().is_empty()
                && id.chars().count() <= MAX_EXT_ID_CHARS
                && !id.chars().any(char::is_control) =>
        {
            id
        }
        _ => return Err(Skip::InvalidId),
    };
    let email = row
        .email
        .as_deref()
        .and_then(|raw| Email::parse("email", raw).ok())
        .ok_or(Skip::InvalidEmail)?;
    let password_hash = match row.password_hash {
        Some(hash) if hash.is_empty() => return Err(Skip::NoHash),
        Some(hash) if is_importable_hash(&hash) => hash,
        Some(_) => return Err(Skip::HashNotBcrypt),
        None => return Err(Skip::NoHash),
    };
    if bounds.check(&password_hash).is_err() {
        return Err(Skip::HashTooCostly);
    }
    let given = row.name.as_deref().filter(|name| !name.trim().is_empty());
    let name = match given {
        Some(raw) => DisplayName::parse("name", raw),
        None => DisplayName::parse("name", local_part(&email)),
    }
    .map_err(|_| Skip::InvalidName)?;
    Ok(Checked {
        user: BulkUser {
            id: UserId::new(),
            email,
            name,
            password_hash,
            email_verified: row.email_verified.unwrap_or(assume_verified),
            created_at: now,
            ext_id: Some(ext_id),
        },
        named_from_email: given.is_none(),
        verified_assumed: row.email_verified.is_none(),
    })
}

fn local_part(email: &Email) -> &str {
    email
        .as_str()
        .rsplit_once('@')
        .map_or(email.as_str(), |(local, _)| local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hash_bounds::{
        ARGON2_MAX_LANES, ARGON2_MAX_MEMORY_KIB, ARGON2_MAX_WORK_KIB, BCRYPT_MAX_COST,
    };

    const HASH: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
    const ARGON2_4_GIB: &str = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNhbA$\
                                AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn row(id: &str, email: &str, hash: Option<&str>, name: Option<&str>) -> SourceRow {
        SourceRow {
            id: Some(id.into()),
            email: Some(email.into()),
            password_hash: hash.map(Into::into),
            name: name.map(Into::into),
            email_verified: None,
        }
    }

    /// The bounds with authd's default cost configured.
    fn bounds() -> CostBounds {
        use clap::Parser;
        #[derive(Parser)]
        struct Cost {
            #[command(flatten)]
            cost: crate::config::HashCostSettings,
        }
        Cost::parse_from(["cost"]).cost.bounds()
    }

    fn skip(row: SourceRow) -> Option<Skip> {
        check(row, &bounds(), false, Utc::now()).err()
    }

    #[test]
    fn a_good_row_keeps_its_id_hash_and_lower_cased_email() {
        let checked = check(
            row("42", " Ada@Example.COM", Some(HASH), Some("Ada")),
            &bounds(),
            true,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(checked.user.ext_id.as_deref(), Some("42"));
        assert_eq!(checked.user.email.as_str(), "ada@example.com");
        assert_eq!(checked.user.password_hash, HASH);
        assert_eq!(checked.user.name.as_str(), "Ada");
        assert!(checked.user.email_verified && checked.verified_assumed);
        assert!(!checked.named_from_email);
    }

    #[test]
    fn an_email_with_a_kelvin_sign_is_invalid_not_someone_elses() {
        let skipped = check(
            row("7", "\u{212a}ate@example.com", Some(HASH), None),
            &bounds(),
            true,
            Utc::now(),
        );
        assert!(
            matches!(skipped, Err(Skip::InvalidEmail)),
            "a Kelvin sign must not fold into `kate@example.com`"
        );
    }

    #[test]
    fn a_missing_name_is_the_emails_local_part() {
        for name in [None, Some(""), Some("   ")] {
            let checked = check(
                row("7", "grace@example.com", Some(HASH), name),
                &bounds(),
                false,
                Utc::now(),
            )
            .unwrap();
            assert_eq!(checked.user.name.as_str(), "grace");
            assert!(checked.named_from_email);
            assert!(!checked.user.email_verified);
        }
    }

    #[test]
    fn the_source_says_whether_the_email_is_verified_when_it_can() {
        let mut unverified = row("7", "grace@example.com", Some(HASH), None);
        unverified.email_verified = Some(false);
        let checked = check(unverified, &bounds(), true, Utc::now()).unwrap();
        assert!(!checked.user.email_verified && !checked.verified_assumed);
    }

    #[test]
    fn bad_rows_are_skipped_with_their_reason() {
        let cases = [
            (row("1", "", Some(HASH), None), Skip::InvalidEmail),
            (
                row("1", "not an email", Some(HASH), None),
                Skip::InvalidEmail,
            ),
            (row("1", "a@example.com", None, None), Skip::NoHash),
            (row("1", "a@example.com", Some(""), None), Skip::NoHash),
            (
                row("1", "a@example.com", Some("hunter2"), None),
                Skip::HashNotBcrypt,
            ),
            (
                row(
                    "1",
                    "a@example.com",
                    Some(&HASH.replace("$10$", "$31$")),
                    None,
                ),
                Skip::HashTooCostly,
            ),
            (
                row(
                    "1",
                    "a@example.com",
                    Some(&HASH.replace("$10$", "$14$")),
                    None,
                ),
                Skip::HashTooCostly,
            ),
            (
                row("1", "a@example.com", Some(ARGON2_4_GIB), None),
                Skip::HashTooCostly,
            ),
            (
                row(
                    "1",
                    "a@example.com",
                    Some(&HASH.replace("$10$", "$1x$")),
                    None,
                ),
                Skip::HashNotBcrypt,
            ),
            (
                row("1", "a@example.com", Some(HASH), Some(&"n".repeat(201))),
                Skip::InvalidName,
            ),
            (row("", "a@example.com", Some(HASH), None), Skip::InvalidId),
            (
                row("a\nb", "a@example.com", Some(HASH), None),
                Skip::InvalidId,
            ),
            (
                row(&"9".repeat(256), "a@example.com", Some(HASH), None),
                Skip::InvalidId,
            ),
        ];
        for (row, want) in cases {
            assert_eq!(skip(row.clone()), Some(want), "{row:?}");
        }
        let mut no_id = row("1", "a@example.com", Some(HASH), None);
        no_id.id = None;
        assert_eq!(skip(no_id), Some(Skip::InvalidId));
    }

    #[test]
    fn hashes_up_to_the_bounds_are_kept() {
        for hash in [
            HASH.replace("$10$", "$13$"),
            "$argon2id$v=19$m=65536,t=3,p=4$c2l4dGVlbiBieXRlIHNhbA$\
             AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_owned(),
        ] {
            let checked = check(
                row("1", "a@example.com", Some(&hash), None),
                &bounds(),
                false,
                Utc::now(),
            );
            assert_eq!(checked.ok().map(|c| c.user.password_hash), Some(hash));
        }
    }

    #[test]
    fn the_too_costly_reason_names_the_bounds_there_are() {
        let reason = Skip::HashTooCostly.describe();
        let mib = |kib: u64| format!("{} MiB", kib / 1024);
        for bound in [
            format!("bcrypt cost {BCRYPT_MAX_COST}"),
            format!("m of {}", mib(ARGON2_MAX_MEMORY_KIB.into())),
            format!("m × t of {}", mib(ARGON2_MAX_WORK_KIB)),
            format!("p of {ARGON2_MAX_LANES}"),
        ] {
            assert!(reason.contains(&bound), "{reason:?} lacks {bound:?}");
        }
    }

    #[test]
    fn a_place_shows_the_line_and_id_only() {
        let place = Place {
            line: Some(3),
            id: Some("cl9x\"0".into()),
            detail: None,
        };
        assert_eq!(place.to_string(), "line 3 (id cl9x\\\"0)");
        let malformed = Place {
            line: Some(9),
            id: None,
            detail: Some("not JSON"),
        };
        assert_eq!(malformed.to_string(), "line 9: not JSON");
    }
}
