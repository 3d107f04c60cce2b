//! Revocations: one row per ended session whose access tokens may still be unexpired, read by
//! AuthService.WatchRevocations so that verifiers checking tokens locally refuse them too.
//!
//! Every query that ends sessions goes through [`end_sessions`], inside the transaction that
//! ends them: a way of ending a session cannot forget its revocation, and a revocation is never
//! visible for a session that did not end. The row's `not_after` comes from the session's
//! `last_used_at` as the UPDATE left it (RETURNING), so a refresh that committed just before
//! the revocation is covered: its access token was issued at that `last_used_at`.
//!
//! Cursors are handed out in commit order, so a reader that has seen cursor N has seen every
//! revocation below N: SQLite has one writer at a time; on PostgreSQL the insert takes an
//! advisory lock held until commit, after every row lock of its transaction (so it cannot take
//! part in a deadlock). Clean-up keeps the newest row, so the largest cursor ever given out is
//! always readable: a cursor above it was never given out by this database.

use crate::db::entity::{revocation, session};
use crate::db::{Store, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};

pub use crate::db::entity::revocation::Model as RevocationRecord;

/// Advisory lock (PostgreSQL) that orders revocation cursors by commit.
const REVOCATION_LOCK: i64 = 0x6175_7468_6400_0003;
/// Rows written per INSERT (4 parameters each: well under both databases' limits).
const INSERT_CHUNK: usize = 1000;

/// When sessions end, and for how long their access tokens were issued.
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    pub at: DateTime<Utc>,
    /// `AUTHD_ACCESS_TTL`: a session's last access token expires this long after its last use.
    pub token_ttl: chrono::Duration,
}

impl Ending {
    /// Sessions ending at `at`, whose access tokens live `token_ttl`.
    pub fn new(at: DateTime<Utc>, token_ttl: std::time::Duration) -> Self {
        Self {
            at,
            token_ttl: chrono::Duration::from_std(token_ttl).unwrap_or(chrono::Duration::MAX),
        }
    }
}

/// Ends the live (not yet revoked) sessions that `which` selects and records a revocation for
/// each whose last access token has not expired yet. Returns how many sessions ended.
pub(crate) async fn end_sessions(
    txn: &DatabaseTransaction,
    which: Condition,
    ending: Ending,
) -> Result<u64, StoreError> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(ending.at))
        .filter(which)
        .filter(session::Column::RevokedAt.is_null())
        .into_query();
    update.returning(Query::returning().columns([
        session::Column::Id,
        session::Column::UserId,
        session::Column::LastUsedAt,
    ]));
    let backend = txn.get_database_backend();
    let rows = txn.query_all_raw(backend.build(&update)).await?;
    let mut revoked = Vec::new();
    for row in &rows {
        let last_used_at: DateTime<Utc> = row.try_get("", "last_used_at")?;
        let not_after = last_used_at + ending.token_ttl;
        if not_after > ending.at {
            revoked.push(revocation::ActiveModel {
                session_id: Set(row.try_get("", "id")?),
                user_id: Set(row.try_get("", "user_id")?),
                revoked_at: Set(ending.at),
                not_after: Set(not_after),
                ..Default::default()
            });
        }
    }
    if !revoked.is_empty() {
        if backend == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({REVOCATION_LOCK})"))
                .await?;
        }
        let mut rest = revoked.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<_> = rest.by_ref().take(INSERT_CHUNK).collect();
            revocation::Entity::insert_many(chunk)
                .exec_without_returning(txn)
                .await?;
        }
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}

impl Store {
    /// Revocations with a cursor above `after` whose `not_after` is after `now`, oldest first,
    /// at most `limit`.
    pub async fn revocations_after(
        &self,
        after: i64,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        Ok(revocation::Entity::find()
            .filter(revocation::Column::Cursor.gt(after))
            .filter(revocation::Column::NotAfter.gt(now))
            .order_by_asc(revocation::Column::Cursor)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// The largest cursor this database has given out (0 before the first revocation).
    pub async fn latest_revocation_cursor(&self) -> Result<i64, StoreError> {
        self.max_cursor(Condition::all()).await
    }

    /// The cursor of the newest revocation above `after` still relevant at `now` (0 if none):
    /// where a backlog read with the same `now` ends.
    pub async fn backlog_end(&self, after: i64, now: DateTime<Utc>) -> Result<i64, StoreError> {
        self.max_cursor(
            Condition::all()
                .add(revocation::Column::Cursor.gt(after))
                .add(revocation::Column::NotAfter.gt(now)),
        )
        .await
    }

    async fn max_cursor(&self, which: Condition) -> Result<i64, StoreError> {
        let max: Option<Option<i64>> = revocation::Entity::find()
            .select_only()
            .column_as(revocation::Column::Cursor.max(), "max")
            .filter(which)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(max.flatten().unwrap_or(0))
    }

    /// Deletes revocations past their `not_after`, except the newest row (see the module docs).
    pub(crate) async fn delete_expired_revocations(
        &self,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let newest = self.latest_revocation_cursor().await?;
        Ok(revocation::Entity::delete_many()
            .filter(revocation::Column::NotAfter.lte(now))
            .filter(revocation::Column::Cursor.lt(newest))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
