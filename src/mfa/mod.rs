//! The second factor: TOTP secrets (sealed with the key-encryption key when one is set), the
//! codes they match, recovery codes, and the challenge a login with a right password gets when
//! the user has a factor on. Login and VerifyMfa (in `sessions`) and enrollment (in `accounts`)
//! use it; the SQL is in `queries`.

pub mod queries;

use crate::audit::{AuditEvent, AuditKind, AuditLog};
use crate::crypto::seal::Sealer;
use crate::crypto::token::IssuedToken;
use crate::crypto::totp::{self, TotpSecret};
use crate::db::{Store, UserRecord};
use crate::domain::{ClientId, ClientInfo, FieldViolation, MfaChallenge, UserId, after};
use crate::error::AuthError;
use chrono::Utc;
use queries::{NewMfaChallenge, StoredSecret, TotpFactorRecord};
use std::time::Duration;

/// Wrong codes a challenge takes before it is spent.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// What VerifyMfa accepts, as Login names them.
pub const FACTORS: [&str; 2] = ["otp", "recovery_code"];
/// Longest code field looked at; anything longer is refused before it is read.
const MAX_CODE_CHARS: usize = 64;

/// What the second factor needs, and nothing more.
pub struct SecondFactors {
    store: Store,
    audit: AuditLog,
    /// Seals TOTP secrets (AUTHD_KEY_ENCRYPTION_KEY); without one they are stored in the clear.
    sealer: Option<Sealer>,
    /// How long a login's `mfa_token` stays good.
    mfa_token_ttl: Duration,
    /// The issuer authenticator apps show for the account.
    totp_issuer: String,
}

/// A TOTP code as the app shows it: 6 ASCII digits, spaces allowed. Full-width and other
/// Unicode digits are refused, as is anything long.
pub fn parse_code<'a>(field: &'static str, code: &'a str) -> Result<&'a str, FieldViolation> {
    if code.trim().is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    let digits = code.len() <= MAX_CODE_CHARS && {
        let kept: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        kept.len() == totp::DIGITS as usize && kept.bytes().all(|b| b.is_ascii_digit())
    };
    if digits {
        Ok(code)
    } else {
        Err(FieldViolation::new(
            field,
            "must be the 6 digits the app shows",
        ))
    }
}

impl SecondFactors {
    pub fn new(
        store: Store,
        audit: AuditLog,
        sealer: Option<Sealer>,
        mfa_token_ttl: Duration,
        totp_issuer: String,
    ) -> Self {
        Self {
            store,
            audit,
            sealer,
            mfa_token_ttl,
            totp_issuer,
        }
    }

    /// The issuer authenticator apps show for the account.
    pub fn totp_issuer(&self) -> &str {
        &self.totp_issuer
    }

    /// Hands out a challenge for `user`, whose password was right.
    pub async fn challenge(
        &self,
        user: &UserRecord,
        client_id: &ClientId,
        client: &ClientInfo,
    ) -> Result<MfaChallenge, AuthError> {
        let now = Utc::now();
        let token = IssuedToken::generate()?;
        let ttl = self.mfa_token_ttl;
        self.store
            .create_mfa_challenge(NewMfaChallenge {
                digest: token.digest,
                user_id: UserId(user.id),
                client_id: client_id.to_string(),
                now,
                expires_at: after(now, ttl),
            })
            .await?;
        self.audit
            .record(AuditEvent::new(AuditKind::MfaRequired, client).user(UserId(user.id)));
        Ok(MfaChallenge {
            mfa_token: token.secret,
            expires_in: ttl,
            factors: &FACTORS,
        })
    }

    /// The time step `code` matches for the user's factor at `now` (unix seconds), if it is one
    /// not yet spent (see `totp::verify`).
    pub fn matching_step(
        &self,
        factor: &TotpFactorRecord,
        code: &str,
        now: i64,
    ) -> Result<Option<i64>, AuthError> {
        let secret = self.totp_secret(factor)?;
        Ok(totp::verify(&secret, code, now, factor.last_step))
    }

    /// The user's TOTP secret, opened with the key-encryption key if it is sealed.
    fn totp_secret(&self, factor: &TotpFactorRecord) -> Result<TotpSecret, AuthError> {
        let bytes = match (&factor.sealed_with, &self.sealer) {
            (None, _) => factor.secret.clone(),
            (Some(id), Some(sealer)) if id == sealer.id() => sealer
                .open(&secret_aad(UserId(factor.user_id)), &factor.secret)
                .map_err(|e| anyhow::anyhow!("opening a TOTP secret: {e}"))?,
            (Some(id), _) => {
                return Err(anyhow::anyhow!(
                    "the TOTP secret of user {} is sealed with key {id}, which AUTHD_KEY_ENCRYPTION_KEY is not",
                    factor.user_id
                )
                .into());
            }
        };
        Ok(TotpSecret::from_bytes(bytes))
    }

    /// The secret as it is to be stored: sealed when a key-encryption key is configured.
    pub fn stored_secret(
        &self,
        user: UserId,
        secret: &TotpSecret,
    ) -> Result<StoredSecret, AuthError> {
        Ok(match &self.sealer {
            Some(sealer) => StoredSecret {
                bytes: sealer.seal(&secret_aad(user), secret.as_bytes())?,
                sealed_with: Some(Sealer::id(sealer).to_owned()),
            },
            None => StoredSecret {
                bytes: secret.as_bytes().to_vec(),
                sealed_with: None,
            },
        })
    }
}

/// `authd keys reseal` for TOTP secrets: each sealed with `new` (in the clear when `None`),
/// opened with `old` (secrets in the clear need none). All or nothing: a secret neither key opens
/// stops it before anything changes. How many were resealed.
pub async fn reseal_totp(
    store: &Store,
    old: Option<&Sealer>,
    new: Option<&Sealer>,
) -> anyhow::Result<usize> {
    store
        .reseal_totp_secrets(|factor| {
            if factor.sealed_with.as_deref() == new.map(Sealer::id) {
                return Ok(None);
            }
            let what = secret_aad(UserId(factor.user_id));
            let clear = match (&factor.sealed_with, old) {
                (None, _) => factor.secret.clone(),
                (Some(id), Some(old)) if id == old.id() => old.open(&what, &factor.secret)?,
                (Some(id), _) => anyhow::bail!(
                    "the TOTP secret of user {} is sealed with the key-encryption key {id}, which \
                     is neither the old key ({}) nor the new one ({})",
                    factor.user_id,
                    old.map_or("none given", Sealer::id),
                    new.map_or("none: store in the clear", Sealer::id),
                ),
            };
            Ok(Some(match new {
                Some(new) => StoredSecret {
                    bytes: new.seal(&what, &clear)?,
                    sealed_with: Some(new.id().to_owned()),
                },
                None => StoredSecret {
                    bytes: clear,
                    sealed_with: None,
                },
            }))
        })
        .await
}

/// What a TOTP secret's seal is bound to: a sealed secret cannot be moved to another user.
fn secret_aad(user: UserId) -> String {
    format!("totp secret {user}")
}
