//! Login: the password, then either a session or (for a user with a second factor) a challenge.

use super::Sessions;
use crate::audit::{AuditEvent, AuditKind};
use crate::crypto::password::StoredHash;
use crate::db::UserRecord;
use crate::domain::{
    AuthMethods, ClientId, ClientInfo, Email, LoginOutcome, Password, UserId, Violations,
};
use crate::error::AuthError;
use chrono::Utc;

impl Sessions {
    /// Checks the password and starts a session for the OAuth client `client_id` (self-declared;
    /// empty for the configured default). Unknown emails cost the same as wrong passwords and
    /// get the same answer.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_id: &str,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let mut v = Violations::default();
        let email = v.check(Email::parse("email", email));
        let password = v.check(Password::parse_attempt("password", password));
        let client_id = v.check(if client_id.is_empty() {
            Ok(self.policy.default_client_id.clone())
        } else {
            ClientId::parse("client_id", client_id)
        });
        let ((email, password), client_id) = v.finish(email.zip(password).zip(client_id))?;

        // Counted before hashing, so guesses sent in parallel count as they arrive; taken back
        // if the call ends before its hash started.
        let attempt = match self.throttle.begin_login(&email, &client.ip).await {
            Ok(attempt) => attempt,
            Err(err) => {
                if matches!(err, AuthError::RateLimited { .. }) {
                    self.audit(AuditEvent::new(AuditKind::Throttled, &client).detail("login"));
                }
                return Err(err);
            }
        };
        let user = self.store.user_by_email(&email).await?;
        let stored_hash = user.as_ref().map(|u| StoredHash {
            user_id: UserId(u.id),
            hash: &u.password_hash,
        });
        let verified = self
            .hasher
            .verify(&password, stored_hash, attempt.started())
            .await?;
        let user = match user {
            Some(user) if verified.matches => user,
            other => {
                attempt.failed();
                let event = AuditEvent::new(AuditKind::LoginFailed, &client);
                self.audit(match other {
                    Some(user) => event.user(UserId(user.id)).detail("wrong password"),
                    None => event.detail("unknown email"),
                });
                return Err(AuthError::InvalidCredentials);
            }
        };
        attempt.succeeded().await?;
        // Only someone who knows the password learns that the email is unverified.
        if self.policy.require_verified_email && !user.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        if user.mfa_enabled {
            if verified.needs_rehash {
                self.upgrade_hash(&user, &password).await;
            }
            let challenge = self.factors.challenge(&user, &client_id, &client).await?;
            return Ok(LoginOutcome::MfaRequired(challenge));
        }

        let user_id = UserId(user.id);
        let start = self.prepare(
            user_id,
            client_id,
            AuthMethods::Password,
            &client,
            Utc::now(),
        )?;
        let started = self
            .store
            .start_session(
                start.session.clone(),
                &start.refresh.digest,
                &user.password_hash,
            )
            .await?;
        if !started {
            // The hash changed since it was checked: a reset (then the old password no longer
            // logs in) or an upgrade by a concurrent login of the same password. Check the
            // password once more against the hash there is now.
            let current = self.store.user_by_id(user_id).await?;
            let still = match &current {
                Some(current) => {
                    self.hasher
                        .verify(
                            &password,
                            Some(StoredHash {
                                user_id,
                                hash: &current.password_hash,
                            }),
                            &Default::default(),
                        )
                        .await?
                        .matches
                }
                None => false,
            };
            let restarted = match (&current, still) {
                (Some(current), true) => {
                    self.store
                        .start_session(
                            start.session.clone(),
                            &start.refresh.digest,
                            &current.password_hash,
                        )
                        .await?
                }
                _ => false,
            };
            if !restarted {
                return Err(AuthError::InvalidCredentials);
            }
        }
        self.audit(
            AuditEvent::new(AuditKind::LoginSucceeded, &client)
                .user(user_id)
                .session(start.id()),
        );
        // After the session, whose check is on the hash that was verified, not the upgraded one.
        if verified.needs_rehash {
            self.upgrade_hash(&user, &password).await;
        }
        self.hand_out(user, start).map(LoginOutcome::Tokens)
    }

    /// Stores a hash of the current algorithm and cost. A failure only delays the upgrade.
    async fn upgrade_hash(&self, user: &UserRecord, password: &Password) {
        let result = async {
            let new_hash = self.hasher.hash(password).await?;
            self.store
                .upgrade_password_hash(UserId(user.id), &user.password_hash, new_hash)
                .await?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => tracing::info!(user_id = %user.id, "password hash upgraded"),
            Err(err) => {
                tracing::warn!(user_id = %user.id, error = %err, "password hash upgrade failed")
            }
        }
    }
}
