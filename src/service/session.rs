//! Login, refresh-token rotation and logout.

use super::{AuthError, AuthService, ClientInfo, TokenPair, UserView, after};
use crate::crypto::jwt::Subject;
use crate::crypto::token::{IssuedToken, TokenDigest};
use crate::domain::{Email, Password, SessionId, UserId, Violations};
use crate::store::{NewSession, RefreshTokenRecord, Rotation, SessionRecord, UserRecord};
use chrono::{DateTime, Utc};

impl AuthService {
    /// Checks the password and starts a session. Unknown emails cost the same as wrong
    /// passwords and get the same answer.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let mut v = Violations::default();
        let email = v.check(Email::parse("email", email));
        let password = v.check(Password::parse_attempt("password", password));
        let (email, password) = v.finish(email.zip(password))?;

        // Counted before hashing, so guesses sent in parallel count as they arrive; a correct
        // password clears the count.
        self.login_limiter
            .attempt(email.as_str())
            .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        let user = self.store.user_by_email(&email).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.as_str());
        let verified = self
            .hasher
            .verify(&password, stored_hash, &Default::default())
            .await?;
        let Some(user) = user.filter(|_| verified.matches) else {
            return Err(AuthError::InvalidCredentials);
        };
        self.login_limiter.clear(email.as_str());
        // Only someone who knows the password learns that the email is unverified.
        if self.policy.require_verified_email && !user.email_verified {
            return Err(AuthError::EmailNotVerified);
        }

        let now = Utc::now();
        let session_id = SessionId::new();
        let refresh = IssuedToken::generate()?;
        let expires_at = after(now, self.policy.refresh_ttl);
        let new_session = NewSession {
            id: session_id,
            user_id: UserId(user.id),
            now,
            expires_at,
            user_agent: client.user_agent,
            ip: client.ip,
        };
        let started = self
            .store
            .start_session(new_session, &refresh.digest, &user.password_hash)
            .await?;
        if !started {
            // The password changed between the check and now: the old one no longer logs in.
            return Err(AuthError::InvalidCredentials);
        }
        tracing::info!(user_id = %user.id, session_id = %session_id, "session started");
        // After the session, whose check is on the hash that was verified, not the upgraded one.
        if verified.needs_rehash {
            self.upgrade_hash(&user, &password).await;
        }
        self.token_pair(user, session_id, refresh.secret, now, expires_at)
    }

    /// Spends a refresh token and returns a new pair for the same session. Presenting a spent
    /// token again is taken as theft and ends the session (RFC 9700 §4.14.2), unless it happens
    /// within the configured reuse grace.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let (token, session) = self.find_refresh(refresh_token).await?;
        let now = Utc::now();
        if !session.is_live(now) || token.expires_at <= now {
            return Err(AuthError::InvalidRefreshToken);
        }
        let user = self
            .store
            .user_by_id(UserId(session.user_id))
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let new = IssuedToken::generate()?;
        let expires_at = after(now, self.policy.refresh_ttl);
        let session_id = SessionId(session.id);

        let rotation = match token.spent_at {
            None => {
                self.store
                    .rotate_refresh(&token, &new.digest, now, expires_at)
                    .await?
            }
            Some(spent_at) => {
                self.reuse(&session, spent_at, now, &new.digest, expires_at)
                    .await?
            }
        };
        match rotation {
            Rotation::Rotated => self.token_pair(user, session_id, new.secret, now, expires_at),
            Rotation::SessionEnded => Err(AuthError::InvalidRefreshToken),
            // Lost a race to a concurrent refresh with the same token: that is reuse as well.
            Rotation::AlreadySpent => {
                match self
                    .reuse(&session, now, now, &new.digest, expires_at)
                    .await?
                {
                    Rotation::Rotated => {
                        self.token_pair(user, session_id, new.secret, now, expires_at)
                    }
                    _ => Err(AuthError::InvalidRefreshToken),
                }
            }
        }
    }

    /// Ends the session of the refresh token, or with `all_sessions` every session of its user
    /// (which needs a token that is still current).
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, refresh_token: &str, all_sessions: bool) -> Result<(), AuthError> {
        let (token, session) = self.find_refresh(refresh_token).await?;
        let now = Utc::now();
        if all_sessions {
            let current =
                token.spent_at.is_none() && token.expires_at > now && session.is_live(now);
            if !current {
                return Err(AuthError::InvalidRefreshToken);
            }
            let ended = self
                .store
                .revoke_user_sessions(UserId(session.user_id), now)
                .await?;
            tracing::info!(user_id = %session.user_id, ended, "all sessions ended");
        } else {
            self.store
                .revoke_session(SessionId(session.id), now)
                .await?;
            tracing::info!(user_id = %session.user_id, session_id = %session.id, "session ended");
        }
        Ok(())
    }

    async fn find_refresh(
        &self,
        raw: &str,
    ) -> Result<(RefreshTokenRecord, SessionRecord), AuthError> {
        let digest = TokenDigest::of_presented(raw.trim()).ok_or(AuthError::InvalidRefreshToken)?;
        self.store
            .refresh_token(&digest)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)
    }

    /// A spent token presented again: within the grace window another token is added to the
    /// session; otherwise the session ends.
    async fn reuse(
        &self,
        session: &SessionRecord,
        spent_at: DateTime<Utc>,
        now: DateTime<Utc>,
        new: &TokenDigest,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation, AuthError> {
        let grace = chrono::Duration::from_std(self.policy.refresh_reuse_grace)
            .unwrap_or(chrono::Duration::MAX);
        if !self.policy.refresh_reuse_grace.is_zero() && now - spent_at <= grace {
            return Ok(self
                .store
                .add_refresh(SessionId(session.id), new, now, expires_at)
                .await?);
        }
        tracing::warn!(user_id = %session.user_id, session_id = %session.id, "spent refresh token reused: session ended");
        self.store
            .revoke_session(SessionId(session.id), now)
            .await?;
        Ok(Rotation::SessionEnded)
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

    fn token_pair(
        &self,
        user: UserRecord,
        session_id: SessionId,
        refresh_token: String,
        now: DateTime<Utc>,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let subject = Subject {
            user_id: UserId(user.id),
            session_id,
            email: &user.email,
            email_verified: user.email_verified,
        };
        let access_token = self.tokens.issue(&subject, now.timestamp())?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.tokens.ttl(),
            refresh_expires_in: (refresh_expires_at - now).to_std().unwrap_or_default(),
            user: UserView::from(user),
        })
    }
}
