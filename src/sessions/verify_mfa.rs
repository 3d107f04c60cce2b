//! VerifyMfa: a login that needed a second factor, completed with a TOTP code or a recovery
//! code.
//!
//! Guessing is bounded three ways: each challenge dies after [`MAX_CODE_ATTEMPTS`] wrong codes,
//! each account waits a doubling delay after a few wrong codes (a right password does not clear
//! it), and a client presenting unknown challenges is throttled like one presenting unknown
//! refresh tokens. A code is accepted once: its time step is spent with a conditional update, in
//! the transaction that starts the session, so of parallel calls with one code exactly one wins.

use super::Sessions;
use crate::audit::{AuditEvent, AuditKind};
use crate::crypto::recovery;
use crate::domain::{
    AuthMethods, ClientId, ClientInfo, FieldViolation, TokenPair, UserId, Violations,
};
use crate::error::AuthError;
use crate::mfa::queries::{LiveChallenge, MfaCompletion, SecondFactor};
use crate::mfa::{MAX_CODE_ATTEMPTS, parse_code};
use chrono::Utc;

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

impl Sessions {
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

        let now = Utc::now();
        // The challenge first, with its user and factor; the client's failures are checked in
        // the same throttle read as the account's wrong codes.
        let Some((digest, found)) = self
            .throttle
            .find_presented_then_check(&client.ip, token, |digest| async move {
                self.store.live_mfa_challenge(&digest, now).await
            })
            .await?
        else {
            return Err(AuthError::InvalidMfaToken);
        };
        let LiveChallenge {
            challenge,
            user,
            totp,
        } = found;
        let user_id = UserId(user.id);
        let mut attempt = match self
            .throttle
            .begin_second_factor(user_id, Some(&client.ip))
            .await
        {
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
                let Some(totp) = totp else {
                    return Err(AuthError::InvalidMfaToken);
                };
                self.factors
                    .matching_step(&totp, code, now.timestamp())?
                    .map(SecondFactor::Step)
            }
            Presented::RecoveryCode(text) => {
                recovery::digest_of_presented(user_id, text).map(SecondFactor::RecoveryCode)
            }
        };
        attempt.checked();

        let client_id = ClientId::parse("client_id", &challenge.client_id)
            .unwrap_or_else(|_| self.policy.default_client_id.clone());
        let start = self.prepare(
            user_id,
            client_id,
            AuthMethods::PasswordAndOtp,
            &client,
            now,
        )?;
        let completion = match factor {
            Some(factor) => {
                self.store
                    .complete_mfa(
                        &digest,
                        factor,
                        start.session.clone(),
                        &start.refresh.digest,
                    )
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
                        .session(start.id())
                        .detail(how),
                );
                self.hand_out(user, start)
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
}
