//! The signed-in user's second factor (AccountService): setting up an authenticator app (TOTP,
//! RFC 6238), turning it off, and replacing the recovery codes.
//!
//! The secret is stored sealed when a key-encryption key is configured, bound to its user. It is
//! shown only by BeginTotpEnrollment, and guards nothing until ConfirmTotp has seen a code from
//! it. Turning it off or replacing the recovery codes needs fresh proof, the password or a
//! current code, so that a stolen access token alone cannot take the factor away.

use super::Accounts;
use crate::audit::{AuditEvent, AuditKind};
use crate::crypto::qr;
use crate::crypto::recovery;
use crate::crypto::totp::TotpSecret;
use crate::db::UserRecord;
use crate::domain::{Caller, ClientInfo};
use crate::domain::{FieldViolation, Password, UserId};
use crate::error::AuthError;
use crate::mfa::parse_code;
use chrono::Utc;

/// What BeginTotpEnrollment hands the user's app.
#[derive(Clone)]
pub struct TotpEnrollment {
    pub otpauth_uri: String,
    /// The secret in base32.
    pub secret: String,
    /// A PNG of the URI's QR code.
    pub qr_png: Vec<u8>,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(..)")
    }
}

const ALREADY_ON: &str = "TOTP is already on; disable it first";
const NOT_ON: &str = "TOTP is not on";

impl Accounts {
    /// A new secret for the caller's authenticator app, replacing an unconfirmed one.
    #[tracing::instrument(skip_all)]
    pub async fn begin_totp_enrollment(&self, caller: Caller) -> Result<TotpEnrollment, AuthError> {
        let user = self.caller_record(caller).await?;
        if user.mfa_enabled {
            return Err(AuthError::SecondFactorState(ALREADY_ON));
        }
        let secret = TotpSecret::generate()?;
        let stored = self.factors.stored_secret(caller.user_id, &secret)?;
        if !self
            .store
            .begin_totp(caller.user_id, stored, Utc::now())
            .await?
        {
            return Err(AuthError::SecondFactorState(ALREADY_ON));
        }
        let otpauth_uri = secret.uri(self.factors.totp_issuer(), &user.email);
        let qr_png = qr::png(&otpauth_uri)?;
        Ok(TotpEnrollment {
            secret: secret.base32(),
            otpauth_uri,
            qr_png,
        })
    }

    /// Turns TOTP on with a code from the app; the recovery codes, shown this once.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_totp(
        &self,
        caller: Caller,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let code = parse_code("code", code).map_err(|v| vec![v])?;
        let factor = match self.store.totp_factor(caller.user_id).await? {
            Some(factor) if factor.confirmed_at.is_some() => {
                return Err(AuthError::SecondFactorState(ALREADY_ON));
            }
            Some(factor) => factor,
            None => {
                return Err(AuthError::SecondFactorState(
                    "no TOTP enrollment begun: call BeginTotpEnrollment first",
                ));
            }
        };
        let Some(step) = self
            .factors
            .matching_step(&factor, code, Utc::now().timestamp())?
        else {
            return Err(vec![FieldViolation::new(
                "code",
                "is not the app's current code (check the device's clock)",
            )]
            .into());
        };
        let codes = recovery::generate(caller.user_id)?;
        let digests: Vec<[u8; 32]> = codes.iter().map(|c| c.digest).collect();
        if !self
            .store
            .confirm_totp(caller.user_id, step, &digests, Utc::now())
            .await?
        {
            return Err(AuthError::SecondFactorState(
                "the enrollment changed meanwhile (confirmed or begun again)",
            ));
        }
        tracing::info!(user_id = %caller.user_id, "totp turned on");
        self.audit(
            AuditEvent::new(AuditKind::TotpEnabled, client)
                .user(caller.user_id)
                .session(caller.session_id),
        );
        Ok(codes.into_iter().map(|c| c.text).collect())
    }

    /// Turns TOTP off, given the password or a current code.
    #[tracing::instrument(skip_all)]
    pub async fn disable_totp(
        &self,
        caller: Caller,
        password: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        self.prove_second_factor_owner(caller, password, code, client)
            .await?;
        if !self.store.remove_totp(caller.user_id).await? {
            return Err(AuthError::SecondFactorState(NOT_ON));
        }
        tracing::info!(user_id = %caller.user_id, "totp turned off");
        self.audit(
            AuditEvent::new(AuditKind::TotpDisabled, client)
                .user(caller.user_id)
                .session(caller.session_id),
        );
        Ok(())
    }

    /// New recovery codes in place of the old ones, given the password or a current code.
    #[tracing::instrument(skip_all)]
    pub async fn regenerate_recovery_codes(
        &self,
        caller: Caller,
        password: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        self.prove_second_factor_owner(caller, password, code, client)
            .await?;
        let codes = recovery::generate(caller.user_id)?;
        let digests: Vec<[u8; 32]> = codes.iter().map(|c| c.digest).collect();
        if !self
            .store
            .replace_recovery_codes(caller.user_id, &digests, Utc::now())
            .await?
        {
            return Err(AuthError::SecondFactorState(NOT_ON));
        }
        self.audit(
            AuditEvent::new(AuditKind::RecoveryCodesRegenerated, client)
                .user(caller.user_id)
                .session(caller.session_id),
        );
        Ok(codes.into_iter().map(|c| c.text).collect())
    }

    /// Fresh proof, for changes to a second factor that is on: exactly one of the account
    /// password (throttled like a login) or a current TOTP code (spent, throttled like VerifyMfa).
    async fn prove_second_factor_owner(
        &self,
        caller: Caller,
        password: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let proof = match (password.is_empty(), code.trim().is_empty()) {
            (false, false) => Err(FieldViolation::new(
                "code",
                "give password or code, not both",
            )),
            (false, true) => Password::parse_attempt("password", password).map(Proof::Password),
            (true, _) => parse_code("code", code).map(Proof::Code).map_err(|_| {
                FieldViolation::new(
                    "code",
                    "give the account password or the app's current 6-digit code",
                )
            }),
        }
        .map_err(|v| vec![v])?;
        let user = self.caller_record(caller).await?;
        if !user.mfa_enabled {
            return Err(AuthError::SecondFactorState(NOT_ON));
        }
        match proof {
            Proof::Password(password) => {
                if self
                    .check_current_password(&user, &password, client, "second factor change")
                    .await?
                {
                    Ok(())
                } else {
                    self.audit(
                        AuditEvent::new(AuditKind::MfaFailed, client)
                            .user(caller.user_id)
                            .session(caller.session_id)
                            .detail("wrong password for a second factor change"),
                    );
                    Err(AuthError::WrongCurrentPassword)
                }
            }
            Proof::Code(code) => self.spend_current_code(&user, code).await,
        }
    }

    /// Checks and spends a TOTP code of the user's confirmed factor.
    async fn spend_current_code(&self, user: &UserRecord, code: &str) -> Result<(), AuthError> {
        let user_id = UserId(user.id);
        let mut attempt = self.throttle.begin_second_factor(user_id, None).await?;
        let Some(factor) = self.store.totp_factor(user_id).await? else {
            return Err(AuthError::SecondFactorState(NOT_ON));
        };
        let step = self
            .factors
            .matching_step(&factor, code, Utc::now().timestamp())?;
        attempt.checked();
        match step {
            Some(step) if self.store.spend_totp_step(user_id, step).await? => {
                attempt.succeeded().await
            }
            _ => Err(AuthError::InvalidMfaCode),
        }
    }
}

enum Proof<'a> {
    Password(Password),
    Code(&'a str),
}
