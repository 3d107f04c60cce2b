//! Login, refresh-token rotation and logout.

use super::mfa::LoginOutcome;
use super::{
    AuditEvent, AuditKind, AuthError, AuthService, ClientInfo, TokenPair, UserView, after,
};
use crate::crypto::jwt::Subject;
use crate::crypto::token::{IssuedToken, TokenDigest};
use crate::domain::{AuthMethods, ClientId, Email, Password, SessionId, UserId, Violations};
use crate::store::{NewSession, RefreshTokenRecord, Rotation, SessionRecord, UsedFrom, UserRecord};
use chrono::{DateTime, Utc};

impl AuthService {
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
        let stored_hash = user.as_ref().map(|u| u.password_hash.as_str());
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
            let challenge = self.mfa_challenge(&user, &client_id, &client).await?;
            return Ok(LoginOutcome::MfaRequired(challenge));
        }

        let now = Utc::now();
        let session_id = SessionId::new();
        let refresh = IssuedToken::generate()?;
        let expires_at = self.session_expiry(now, now);
        let new_session = || NewSession {
            id: session_id,
            user_id: UserId(user.id),
            now,
            expires_at,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            client_id: client_id.to_string(),
            amr: AuthMethods::Password,
        };
        let started = self
            .store
            .start_session(new_session(), &refresh.digest, &user.password_hash)
            .await?;
        if !started {
            // The hash changed since it was checked: a reset (then the old password no longer
            // logs in) or an upgrade by a concurrent login of the same password. Check the
            // password once more against the hash there is now.
            let current = self.store.user_by_id(UserId(user.id)).await?;
            let still = match &current {
                Some(current) => {
                    self.hasher
                        .verify(&password, Some(&current.password_hash), &Default::default())
                        .await?
                        .matches
                }
                None => false,
            };
            let restarted = match (&current, still) {
                (Some(current), true) => {
                    self.store
                        .start_session(new_session(), &refresh.digest, &current.password_hash)
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
                .user(UserId(user.id))
                .session(session_id),
        );
        // After the session, whose check is on the hash that was verified, not the upgraded one.
        if verified.needs_rehash {
            self.upgrade_hash(&user, &password).await;
        }
        let grant = Grant {
            session_id,
            client_id: &client_id,
            methods: AuthMethods::Password,
        };
        self.token_pair(user, &grant, refresh.secret, now, expires_at)
            .map(LoginOutcome::Tokens)
    }

    /// Spends a refresh token and returns a new pair for the same session. Presenting a spent
    /// token again is taken as theft and ends the session (RFC 9700 §4.14.2), unless it happens
    /// within the configured reuse grace.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let (token, session, user) = self.find_refresh(refresh_token, client).await?;
        let now = Utc::now();
        // Past its absolute lifetime a session ends, however recently it was refreshed.
        let expires_at = self.session_expiry(session.created_at, now);
        if !session.is_live(now) || token.expires_at <= now || expires_at <= now {
            return Err(AuthError::InvalidRefreshToken);
        }
        let new = IssuedToken::generate()?;
        let session_id = SessionId(session.id);

        let rotation = match token.spent_at {
            None => {
                self.store
                    .rotate_refresh(&token, &new.digest, now, expires_at, used_from(client))
                    .await?
            }
            Some(spent_at) => {
                self.reuse(&session, spent_at, now, &new.digest, expires_at, client)
                    .await?
            }
        };
        let rotation = match rotation {
            // Lost a race to a concurrent refresh with the same token: that is reuse as well.
            Rotation::AlreadySpent => {
                self.reuse(&session, now, now, &new.digest, expires_at, client)
                    .await?
            }
            other => other,
        };
        match rotation {
            Rotation::Rotated => {
                self.audit(
                    AuditEvent::new(AuditKind::Refreshed, client)
                        .user(UserId(session.user_id))
                        .session(session_id),
                );
                let client_id = self.session_client_id(&session);
                let grant = Grant {
                    session_id,
                    client_id: &client_id,
                    methods: AuthMethods::from_stored(session.amr.as_deref()),
                };
                self.token_pair(user, &grant, new.secret, now, expires_at)
            }
            Rotation::SessionEnded | Rotation::AlreadySpent => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// When a session that started at `started` ends if it is used at `now`: the idle lifetime
    /// from now, but never past the absolute lifetime from its start.
    pub(super) fn session_expiry(
        &self,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        after(now, self.policy.refresh_ttl).min(after(started, self.policy.session_max_lifetime))
    }

    /// Ends the session of the refresh token, or with `all_sessions` every session of its user
    /// (which needs a token that is still current).
    #[tracing::instrument(skip_all)]
    pub async fn logout(
        &self,
        refresh_token: &str,
        all_sessions: bool,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let (token, session, _) = self.find_refresh(refresh_token, client).await?;
        let now = Utc::now();
        if all_sessions {
            let current =
                token.spent_at.is_none() && token.expires_at > now && session.is_live(now);
            if !current {
                return Err(AuthError::InvalidRefreshToken);
            }
            let ended = self
                .store
                .revoke_user_sessions(UserId(session.user_id), self.ending(now))
                .await?;
            tracing::info!(user_id = %session.user_id, ended, "all sessions ended");
            self.audit(AuditEvent::new(AuditKind::LogoutAll, client).user(UserId(session.user_id)));
        } else {
            self.store
                .revoke_session(SessionId(session.id), self.ending(now))
                .await?;
            self.audit(
                AuditEvent::new(AuditKind::Logout, client)
                    .user(UserId(session.user_id))
                    .session(SessionId(session.id)),
            );
        }
        Ok(())
    }

    /// The refresh token `raw`, its session and its user. A client that keeps presenting
    /// unknown tokens is throttled.
    async fn find_refresh(
        &self,
        raw: &str,
        client: &ClientInfo,
    ) -> Result<(RefreshTokenRecord, SessionRecord, UserRecord), AuthError> {
        self.throttle.check_client(&client.ip).await?;
        let found = match TokenDigest::of_presented(raw.trim()) {
            Some(digest) => self.store.refresh_token(&digest).await?,
            None => None,
        };
        match found {
            Some(found) => Ok(found),
            None => {
                self.throttle.client_failed(&client.ip).await?;
                Err(AuthError::InvalidRefreshToken)
            }
        }
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
        client: &ClientInfo,
    ) -> Result<Rotation, AuthError> {
        let grace = chrono::Duration::from_std(self.policy.refresh_reuse_grace)
            .unwrap_or(chrono::Duration::MAX);
        if !self.policy.refresh_reuse_grace.is_zero() && now - spent_at <= grace {
            return Ok(self
                .store
                .add_refresh(
                    SessionId(session.id),
                    new,
                    now,
                    expires_at,
                    used_from(client),
                )
                .await?);
        }
        tracing::warn!(user_id = %session.user_id, session_id = %session.id, "spent refresh token reused: session ended");
        self.audit(
            AuditEvent::new(AuditKind::RefreshReuse, client)
                .user(UserId(session.user_id))
                .session(SessionId(session.id)),
        );
        self.store
            .revoke_session(SessionId(session.id), self.ending(now))
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

    /// The client a session is for: the one its login named, or for a session from before
    /// client ids were recorded, the configured default.
    pub(super) fn session_client_id(&self, session: &SessionRecord) -> ClientId {
        session
            .client_id
            .as_deref()
            .and_then(|raw| ClientId::parse("client_id", raw).ok())
            .unwrap_or_else(|| self.policy.default_client_id.clone())
    }

    /// The access token of `grant`'s session for `user`, with the session's new refresh token.
    pub(super) fn token_pair(
        &self,
        user: UserRecord,
        grant: &Grant<'_>,
        refresh_token: String,
        now: DateTime<Utc>,
        refresh_expires_at: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let subject = Subject {
            user_id: UserId(user.id),
            session_id: grant.session_id,
            client_id: grant.client_id,
            email: &user.email,
            email_verified: user.email_verified,
            methods: grant.methods,
            ext_id: user.ext_id.as_deref(),
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

/// The session an access token is for, as its claims name it.
pub(super) struct Grant<'a> {
    pub session_id: SessionId,
    pub client_id: &'a ClientId,
    pub methods: AuthMethods,
}

/// Where a refresh comes from, as the session keeps it.
fn used_from(client: &ClientInfo) -> UsedFrom<'_> {
    UsedFrom {
        user_agent: &client.user_agent,
        ip: &client.ip,
    }
}
