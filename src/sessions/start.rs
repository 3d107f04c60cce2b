//! The one place a session begins: Login and VerifyMfa both prepare a [`Start`] (the session's
//! row, its first refresh token and when it ends), store it in their own transaction, and hand
//! out its token pair here.

use super::queries::NewSession;
use super::{Sessions, rules};
use crate::crypto::jwt::Subject;
use crate::crypto::token::IssuedToken;
use crate::db::UserRecord;
use crate::domain::{AuthMethods, ClientId, ClientInfo, SessionId, TokenPair, UserId, UserView};
use crate::error::AuthError;
use chrono::{DateTime, Utc};

/// A session about to begin: what its transaction stores, and what its answer hands out.
pub(super) struct Start {
    pub session: NewSession,
    pub refresh: IssuedToken,
    pub client_id: ClientId,
}

impl Start {
    pub fn id(&self) -> SessionId {
        self.session.id
    }
}

/// The session an access token is for, as its claims name it.
pub(super) struct Grant<'a> {
    pub session_id: SessionId,
    pub client_id: &'a ClientId,
    pub methods: AuthMethods,
}

impl Sessions {
    /// A new session of `user_id` for `client_id`, authenticated by `methods`, from `client`.
    pub(super) fn prepare(
        &self,
        user_id: UserId,
        client_id: ClientId,
        methods: AuthMethods,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Start, AuthError> {
        let expires_at = self.expiry(now, now);
        Ok(Start {
            session: NewSession {
                id: SessionId::new(),
                user_id,
                now,
                expires_at,
                user_agent: client.user_agent.clone(),
                ip: client.ip.clone(),
                client_id: client_id.to_string(),
                amr: methods,
            },
            refresh: IssuedToken::generate()?,
            client_id,
        })
    }

    /// The token pair of a session whose row has been stored.
    pub(super) fn hand_out(&self, user: UserRecord, start: Start) -> Result<TokenPair, AuthError> {
        let grant = Grant {
            session_id: start.session.id,
            client_id: &start.client_id,
            methods: start.session.amr,
        };
        self.token_pair(
            user,
            &grant,
            start.refresh.secret,
            start.session.now,
            start.session.expires_at,
        )
    }

    /// When a session that started at `started` ends if it is used at `now`.
    pub(super) fn expiry(&self, started: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        rules::expiry(
            started,
            now,
            self.policy.refresh_ttl,
            self.policy.session_max_lifetime,
        )
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
