//! Logins with a second factor. For a user with TOTP on, a right password gets no tokens but a
//! challenge: a short-lived, single-use `mfa_token`. VerifyMfa completes it with a code from
//! the authenticator app or a recovery code, and the session it starts says so in `amr`.
//!
//! Guessing is bounded three ways: each challenge dies after [`MAX_CODE_ATTEMPTS`] wrong codes,
//! each account waits a doubling delay after a few wrong codes (a right password does not clear
//! it), and a client presenting unknown challenges is throttled like one presenting unknown
//! refresh tokens. A code is accepted once: its time step is spent with a conditional update, in
//! the transaction that starts the session, so of parallel calls with one code exactly one wins.

use super::session::Grant;
use super::{AuditEvent, AuditKind, AuthError, AuthService, ClientInfo, TokenPair, after};
use crate::crypto::recovery;
use crate::crypto::seal::Sealer;
use crate::crypto::token::{IssuedToken, TokenDigest};
use crate::crypto::totp::{self, TotpSecret};
use crate::domain::{AuthMethods, ClientId, FieldViolation, SessionId, UserId, Violations};
pub use crate::domain::{LoginOutcome, MfaChallenge};
use crate::store::{
    MfaCompletion, NewMfaChallenge, NewSession, SecondFactor, StoredSecret, TotpFactorRecord,
    UserRecord,
};
use chrono::Utc;

/// Wrong codes a challenge takes before it is spent.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// What VerifyMfa accepts, as Login names them.
pub const FACTORS: [&str; 2] = ["otp", "recovery_code"];
/// Longest code field looked at; anything longer is refused before it is read.
const MAX_CODE_CHARS: usize = 64;

/// The second factor a VerifyMfa caller presented.
enum Presented<'a> {
    Code(&'a str),
    RecoveryCode(&'a str),
}

impl<'a> Presented<'a> {
    /// VerifyMfa's two fields: exactly one of a TOTP code or a recovery code, well-formed.
    fn parse(code: &'a str, recovery_code: &'a str) -> Result<Self, FieldViolation> {
        match (code.trim().is_empty(), recovery_code.trim().is_empty()) {
            (false, false) => Err(FieldViolation::new(
                "recovery_code",
                "give code or recovery_code, not both",
            )),
            (true, false) => {
                if recovery::is_well_formed(recovery_code) {
                    Ok(Self::RecoveryCode(recovery_code))
                } else {
                    Err(FieldViolation::new(
                        "recovery_code",
                        "is not a recovery code",
                    ))
                }
            }
            (_, true) => parse_code("code", code).map(Self::Code),
        }
    }
}

/// A TOTP code as the app shows it: 6 ASCII digits, spaces allowed. Full-width and other
/// Unicode digits are refused, as is anything long.
pub(super) fn parse_code<'a>(
    field: &'static str,
    code: &'a str,
) -> Result<&'a str, FieldViolation> {
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

impl AuthService {
    /// Hands out a challenge for `user`, whose password was right.
    pub(super) async fn mfa_challenge(
        &self,
        user: &UserRecord,
        client_id: &ClientId,
        client: &ClientInfo,
    ) -> Result<MfaChallenge, AuthError> {
        let now = Utc::now();
        let token = IssuedToken::generate()?;
        let ttl = self.policy.mfa_token_ttl;
        self.store
            .create_mfa_challenge(NewMfaChallenge {
                digest: token.digest,
                user_id: UserId(user.id),
                client_id: client_id.to_string(),
                now,
                expires_at: after(now, ttl),
            })
            .await?;
        self.audit(AuditEvent::new(AuditKind::MfaRequired, client).user(UserId(user.id)));
        Ok(MfaChallenge {
            mfa_token: token.secret,
            expires_in: ttl,
            factors: &FACTORS,
        })
    }

    /// Completes a login that needed a second factor: `mfa_token` from Login with a TOTP
    /// `code` or a `recovery_code`.
    #[tracing::instrument(skip_all)]
    pub async fn verify_mfa(
        &self,
        mfa_token: &str,
        code: &str,
        recovery_code: &str,
        client: ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let mut v = Violations::default();
        let token = v.check(if mfa_token.trim().is_empty() {
            Err(FieldViolation::new("mfa_token", "is required"))
        } else {
            Ok(mfa_token.trim())
        });
        let presented = v.check(Presented::parse(code, recovery_code));
        let (token, presented) = v.finish(token.zip(presented))?;

        self.throttle.check_client(&client.ip).await?;
        let now = Utc::now();
        let digest = TokenDigest::of_presented(token);
        let found = match &digest {
            Some(digest) => self.store.live_mfa_challenge(digest, now).await?,
            None => None,
        };
        let (Some(digest), Some((challenge, user))) = (digest, found) else {
            self.throttle.client_failed(&client.ip).await?;
            return Err(AuthError::InvalidMfaToken);
        };
        let user_id = UserId(user.id);
        let mut attempt = match self.throttle.begin_second_factor(user_id).await {
            Ok(attempt) => attempt,
            Err(err) => {
                if matches!(err, AuthError::RateLimited { .. }) {
                    self.audit(
                        AuditEvent::new(AuditKind::Throttled, &client)
                            .user(user_id)
                            .detail("second factor"),
                    );
                }
                return Err(err);
            }
        };
        let factor = match presented {
            Presented::Code(code) => {
                let Some(totp) = self.store.totp_factor(user_id).await? else {
                    return Err(AuthError::InvalidMfaToken);
                };
                self.matching_step(&totp, code, now.timestamp())?
                    .map(SecondFactor::Step)
            }
            Presented::RecoveryCode(text) => {
                recovery::digest_of_presented(user_id, text).map(SecondFactor::RecoveryCode)
            }
        };
        attempt.checked();

        let session_id = SessionId::new();
        let refresh = IssuedToken::generate()?;
        let expires_at = self.session_expiry(now, now);
        let client_id = ClientId::parse("client_id", &challenge.client_id)
            .unwrap_or_else(|_| self.policy.default_client_id.clone());
        let completion = match factor {
            Some(factor) => {
                let session = NewSession {
                    id: session_id,
                    user_id,
                    now,
                    expires_at,
                    user_agent: client.user_agent.clone(),
                    ip: client.ip.clone(),
                    client_id: client_id.to_string(),
                    amr: AuthMethods::PasswordAndOtp,
                };
                self.store
                    .complete_mfa(&digest, factor, session, &refresh.digest)
                    .await?
            }
            None => MfaCompletion::FactorRefused,
        };
        match completion {
            MfaCompletion::SessionStarted => {
                attempt.succeeded().await?;
                let how = match factor {
                    Some(SecondFactor::RecoveryCode(_)) => "recovery code",
                    _ => "totp",
                };
                self.audit(
                    AuditEvent::new(AuditKind::MfaSucceeded, &client)
                        .user(user_id)
                        .session(session_id)
                        .detail(how),
                );
                let grant = Grant {
                    session_id,
                    client_id: &client_id,
                    methods: AuthMethods::PasswordAndOtp,
                };
                self.token_pair(user, &grant, refresh.secret, now, expires_at)
            }
            MfaCompletion::ChallengeGone => Err(AuthError::InvalidMfaToken),
            MfaCompletion::FactorRefused => {
                self.store
                    .mfa_challenge_failed(&digest, MAX_CODE_ATTEMPTS, now)
                    .await?;
                self.audit(
                    AuditEvent::new(AuditKind::MfaFailed, &client)
                        .user(user_id)
                        .detail("wrong or spent code"),
                );
                Err(AuthError::InvalidMfaCode)
            }
        }
    }

    /// The time step `code` matches for the user's factor at `now` (unix seconds), if it is one
    /// not yet spent (see `totp::verify`).
    pub(super) fn matching_step(
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
    pub(super) fn stored_secret(
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
    store: &crate::store::Store,
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
