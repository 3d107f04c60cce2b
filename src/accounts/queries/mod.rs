//! The queries behind AccountService: a user's own profile, password and sessions. Every query
//! is scoped by the user id as well as the row id, so one user's call can never read or change
//! another user's rows.

mod one_time;
mod users;

pub use one_time::{NewOneTimeToken, Purpose};
pub use users::NewUser;

use crate::db::entity::{session, user};
use crate::db::{SessionRecord, Store, StoreError, UserRecord};
use crate::domain::{DisplayName, SessionId, UserId};
use crate::mail::queries::Mail;
use crate::revocations::queries::{Ending, end_sessions};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// The most sessions a listing returns (the newest). Every login starts a session, so a script
/// that logs in in a loop could otherwise make one answer as large as it likes.
pub const MAX_LISTED_SESSIONS: u64 = 1000;

/// A password change about to be stored.
pub struct PasswordChange<'a> {
    pub user_id: UserId,
    /// The session that asked: it stays alive, every other one ends.
    pub keep: SessionId,
    /// The hash the current password was checked against: the change happens only if it is
    /// still the stored one.
    pub verified_hash: &'a str,
    pub new_hash: String,
    /// The mail telling the user, queued with the change.
    pub notice: &'a Mail,
    /// Now, and the access-token lifetime the other sessions' revocations last for.
    pub ending: Ending,
}

/// How a password change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChanged {
    /// The new hash is stored; this many other sessions were ended.
    Changed { ended: u64 },
    /// The stored hash is no longer the one that was verified (a concurrent change or reset,
    /// or an upgrade at login): nothing was changed.
    HashChanged,
    /// The calling session ended meanwhile: nothing was changed.
    SessionEnded,
}

impl Store {
    /// Sets the user's display name; `None` if the user does not exist.
    pub async fn update_user_name(
        &self,
        id: UserId,
        name: &DisplayName,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.begin().await?;
        let updated = user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value(name.as_str()))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Ok(None);
        }
        let user = user::Entity::find_by_id(id.0).one(&txn).await?;
        txn.commit().await?;
        Ok(user)
    }

    /// The user's live sessions at `now` (not revoked, not expired), newest first, at most
    /// [`MAX_LISTED_SESSIONS`].
    pub async fn live_sessions(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(session::Entity::find()
            .filter(session::Column::UserId.eq(user_id.0))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .order_by_desc(session::Column::CreatedAt)
            // Session ids are time-ordered (v7): ties on the timestamp keep the same order.
            .order_by_desc(session::Column::Id)
            .limit(MAX_LISTED_SESSIONS)
            .all(&self.db)
            .await?)
    }

    /// Ends the user's session `id` if it is theirs and live; `false` for a session of another
    /// user, one that does not exist, or one that has ended (revoked or expired) — the caller
    /// cannot tell these apart.
    pub async fn revoke_own_session(
        &self,
        user_id: UserId,
        id: SessionId,
        ending: Ending,
    ) -> Result<bool, StoreError> {
        let txn = self.begin().await?;
        let ended = end_sessions(
            &txn,
            Condition::all()
                .add(session::Column::Id.eq(id.0))
                .add(session::Column::UserId.eq(user_id.0))
                .add(session::Column::ExpiresAt.gt(ending.at)),
            ending,
        )
        .await?;
        txn.commit().await?;
        self.sessions_ended(ended);
        Ok(ended == 1)
    }

    /// Stores the new password hash, ends every other session of the user (their refresh tokens
    /// stop working with them) and queues the notice: all or nothing, and only while the stored
    /// hash is still the verified one and the calling session is live. Of concurrent changes
    /// verified against the same hash, exactly one succeeds.
    pub async fn change_password(
        &self,
        change: PasswordChange<'_>,
    ) -> Result<PasswordChanged, StoreError> {
        let now = change.ending.at;
        let txn = self.begin().await?;
        // The user's row first, as every transaction that changes a user's tokens or sessions
        // takes it (see `Store::verify_email`). The conditional UPDATE is the check: a second
        // change waits here for the first and then finds the hash changed.
        let updated = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(change.new_hash))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(change.user_id.0))
            .filter(user::Column::PasswordHash.eq(change.verified_hash))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Ok(PasswordChanged::HashChanged);
        }
        let kept = session::Entity::find_by_id(change.keep.0)
            .filter(session::Column::UserId.eq(change.user_id.0))
            .one(&txn)
            .await?
            .is_some_and(|s| crate::sessions::rules::is_live(&s, now));
        if !kept {
            return Ok(PasswordChanged::SessionEnded);
        }
        crate::mfa::queries::drop_challenges(&txn, change.user_id).await?;
        Self::enqueue_mail(&txn, change.notice, now).await?;
        // Last: it takes the revocation lock (see `store::revocations`).
        let ended = end_sessions(
            &txn,
            Condition::all()
                .add(session::Column::UserId.eq(change.user_id.0))
                .add(session::Column::Id.ne(change.keep.0)),
            change.ending,
        )
        .await?;
        txn.commit().await?;
        self.mail_committed();
        self.sessions_ended(ended);
        Ok(PasswordChanged::Changed { ended })
    }
}
