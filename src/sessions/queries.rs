use crate::crypto::token::TokenDigest;
use crate::db::entity::{refresh_token, session, user};
use crate::db::{RefreshTokenRecord, SessionRecord, Store, StoreError, UserRecord};
use crate::domain::{AuthMethods, SessionId, UserId};
use crate::mfa::queries::{MfaCompletion, SecondFactor, spend_challenge_and_factor};
use crate::revocations::queries::{Ending, end_sessions};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set,
};

/// A session about to start, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: String,
    pub ip: String,
    pub client_id: String,
    /// How the login was authenticated.
    pub amr: AuthMethods,
}

/// Where a session is being used from (at a refresh): kept with the session, so its owner sees
/// where it was last used, not only where it started.
#[derive(Debug, Clone, Copy)]
pub struct UsedFrom<'a> {
    pub user_agent: &'a str,
    pub ip: &'a str,
}

/// How a rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is spent and the new one stored.
    Rotated,
    /// Someone spent the old token first.
    AlreadySpent,
    /// The session ended meanwhile.
    SessionEnded,
}

impl Store {
    /// Starts a session and stores the digest of its first refresh token, together, but only
    /// while the user's password hash is still `verified_hash`. `false` if it changed since it
    /// was checked (a password reset committed meanwhile): a reset ends every session, including
    /// one that a login with the old password was about to start.
    pub async fn start_session(
        &self,
        new: NewSession,
        refresh: &TokenDigest,
        verified_hash: &str,
    ) -> Result<bool, StoreError> {
        let txn = self.begin().await?;
        // Takes the user's row lock first, as a reset does, and re-checks the hash under it.
        let unchanged = user::Entity::update_many()
            .col_expr(
                user::Column::PasswordHash,
                Expr::col(user::Column::PasswordHash),
            )
            .filter(user::Column::Id.eq(new.user_id.0))
            .filter(user::Column::PasswordHash.eq(verified_hash))
            .exec(&txn)
            .await?;
        if unchanged.rows_affected != 1 {
            return Ok(false);
        }
        session::Entity::insert(new_session_row(&new))
            .exec_without_returning(&txn)
            .await?;
        insert_refresh(&txn, new.id, refresh, new.now, new.expires_at).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// The refresh token with this digest, its session and the session's user, in one query
    /// (a refresh needs all three).
    pub async fn refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshTokenRecord, SessionRecord, UserRecord)>, StoreError> {
        let found = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(digest.0.to_vec()))
            .find_also_related(session::Entity)
            .and_also_related(user::Entity)
            .one(&self.db)
            .await?;
        Ok(found.and_then(|(token, session, user)| Some((token, session?, user?))))
    }

    /// Spends `old` and stores `new` for the same session, extending the session to `expires_at`.
    /// Exactly one of several concurrent calls with the same `old` gets `Rotated`.
    pub async fn rotate_refresh(
        &self,
        old: &RefreshTokenRecord,
        new: &TokenDigest,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        from: UsedFrom<'_>,
    ) -> Result<Rotation, StoreError> {
        let txn = self.begin().await?;
        // The conditional UPDATE comes first, so the transaction takes its write lock at once
        // (SQLite) and concurrent rotations queue on the row (PostgreSQL).
        let spent = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::SpentAt, Expr::value(now))
            .filter(refresh_token::Column::Id.eq(old.id))
            .filter(refresh_token::Column::SpentAt.is_null())
            .exec(&txn)
            .await?;
        if spent.rows_affected != 1 {
            return Ok(Rotation::AlreadySpent);
        }
        if !touch_session(&txn, old.session_id, now, expires_at, from).await? {
            return Ok(Rotation::SessionEnded);
        }
        insert_refresh(&txn, SessionId(old.session_id), new, now, expires_at).await?;
        txn.commit().await?;
        Ok(Rotation::Rotated)
    }

    /// Adds another refresh token to a live session without spending any (the reuse grace).
    pub async fn add_refresh(
        &self,
        session_id: SessionId,
        new: &TokenDigest,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        from: UsedFrom<'_>,
    ) -> Result<Rotation, StoreError> {
        let txn = self.begin().await?;
        if !touch_session(&txn, session_id.0, now, expires_at, from).await? {
            return Ok(Rotation::SessionEnded);
        }
        insert_refresh(&txn, session_id, new, now, expires_at).await?;
        txn.commit().await?;
        Ok(Rotation::Rotated)
    }

    /// The session as it is now: read together with the other reads asked for meanwhile (see
    /// `session_reads`), by a query that starts after this call.
    pub async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.session_reads.read(&self.db, id.0).await
    }

    /// Ends one session; ending an ended session changes nothing.
    pub async fn revoke_session(&self, id: SessionId, ending: Ending) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        let ended = end_sessions(
            &txn,
            Condition::all().add(session::Column::Id.eq(id.0)),
            ending,
        )
        .await?;
        txn.commit().await?;
        self.sessions_ended(ended);
        Ok(())
    }

    /// Ends every session of a user. Returns how many were live.
    pub async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        ending: Ending,
    ) -> Result<u64, StoreError> {
        let txn = self.begin().await?;
        let ended = revoke_all(&txn, user_id.0, ending).await?;
        txn.commit().await?;
        self.sessions_ended(ended);
        Ok(ended)
    }
}

/// Ends every live session of a user, inside the caller's transaction.
pub(crate) async fn revoke_all(
    txn: &DatabaseTransaction,
    user_id: uuid::Uuid,
    ending: Ending,
) -> Result<u64, StoreError> {
    end_sessions(
        txn,
        Condition::all().add(session::Column::UserId.eq(user_id)),
        ending,
    )
    .await
}

/// Records use of a live session (when, and from where) and slides its expiry; `false` if it
/// has ended.
async fn touch_session<C: ConnectionTrait>(
    db: &C,
    session_id: uuid::Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    from: UsedFrom<'_>,
) -> Result<bool, StoreError> {
    let touched = session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
        .col_expr(session::Column::UserAgent, Expr::value(from.user_agent))
        .col_expr(session::Column::Ip, Expr::value(from.ip))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(touched.rows_affected == 1)
}

pub(crate) async fn insert_refresh<C: ConnectionTrait>(
    db: &C,
    session_id: SessionId,
    digest: &TokenDigest,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    refresh_token::Entity::insert(new_refresh_row(session_id, digest, now, expires_at))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The row of a session about to start: live, last used when it starts.
pub(crate) fn new_session_row(new: &NewSession) -> session::ActiveModel {
    session::ActiveModel {
        id: Set(new.id.0),
        user_id: Set(new.user_id.0),
        created_at: Set(new.now),
        last_used_at: Set(new.now),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        user_agent: Set(new.user_agent.clone()),
        ip: Set(new.ip.clone()),
        client_id: Set(Some(new.client_id.clone())),
        amr: Set(Some(new.amr.as_stored().to_owned())),
    }
}

/// The row of a refresh token not yet spent.
pub(crate) fn new_refresh_row(
    session_id: SessionId,
    digest: &TokenDigest,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> refresh_token::ActiveModel {
    refresh_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        session_id: Set(session_id.0),
        token_hash: Set(digest.0.to_vec()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        spent_at: Set(None),
    }
}

impl Store {
    /// Completes a login's second factor: spends the challenge and the factor, and starts the
    /// session with its first refresh token, all or nothing.
    pub async fn complete_mfa(
        &self,
        challenge: &TokenDigest,
        factor: SecondFactor,
        new: NewSession,
        refresh: &TokenDigest,
    ) -> Result<MfaCompletion, StoreError> {
        let now = new.now;
        let txn = self.begin().await?;
        let spent = spend_challenge_and_factor(&txn, challenge, factor, new.user_id, now).await?;
        if spent != MfaCompletion::SessionStarted {
            // Dropped: nothing of it is spent.
            return Ok(spent);
        }
        session::Entity::insert(new_session_row(&new))
            .exec_without_returning(&txn)
            .await?;
        insert_refresh(&txn, new.id, refresh, now, new.expires_at).await?;
        txn.commit().await?;
        Ok(MfaCompletion::SessionStarted)
    }
}
