//! Many rows at once: users, and sessions with their refresh tokens, written in multi-row
//! statements inside one transaction per call, for filling a database quickly (the benchmark's
//! scale phase; moving users in from another app needs the users half).

use crate::crypto::token::TokenDigest;
use crate::db::entity::{refresh_token, session, user};
use crate::db::{Store, StoreError};
use crate::domain::{DisplayName, Email, UserId};
use crate::sessions::queries::{NewSession, new_refresh_row, new_session_row};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, Set};

/// Rows per INSERT statement: 1,000 rows of at most 9 columns stay far below SQLite's 32,766
/// bound parameters and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 1000;

/// A user written directly, with a password hash made elsewhere.
pub struct BulkUser {
    pub id: UserId,
    pub email: Email,
    pub name: DisplayName,
    pub password_hash: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    /// The user's id in the app they come from, if any (unique).
    pub ext_id: Option<String>,
}

/// The users row of a bulk user (also what `authd import` writes).
pub(crate) fn new_user_row(u: &BulkUser) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(u.id.0),
        email: Set(u.email.as_str().to_owned()),
        name: Set(u.name.as_str().to_owned()),
        password_hash: Set(u.password_hash.clone()),
        email_verified: Set(u.email_verified),
        created_at: Set(u.created_at),
        updated_at: Set(u.created_at),
        ext_id: Set(u.ext_id.clone()),
        mfa_enabled: Set(false),
    }
}

impl Store {
    /// Inserts `users` in one transaction: all or none. A taken email (or one given twice) gives
    /// `StoreError::Conflict` and writes nothing.
    pub async fn insert_users(&self, users: &[BulkUser]) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        for chunk in users.chunks(ROWS_PER_STATEMENT) {
            user::Entity::insert_many(chunk.iter().map(new_user_row))
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Starts `sessions` (of existing users), each with the digest of its first refresh token,
    /// in one transaction: all or none.
    pub async fn insert_sessions(
        &self,
        sessions: &[(NewSession, TokenDigest)],
    ) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        for chunk in sessions.chunks(ROWS_PER_STATEMENT) {
            session::Entity::insert_many(chunk.iter().map(|(s, _)| new_session_row(s)))
                .exec_without_returning(&txn)
                .await?;
            refresh_token::Entity::insert_many(
                chunk
                    .iter()
                    .map(|(s, digest)| new_refresh_row(s.id, digest, s.now, s.expires_at)),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
