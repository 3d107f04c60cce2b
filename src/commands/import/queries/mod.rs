//! The idempotent half of `authd import`: a batch of users written in one transaction with
//! `INSERT … ON CONFLICT DO NOTHING` (the same statement on SQLite and PostgreSQL), so a row
//! whose id, email or `ext_id` is already there is left as it is, and then, in the same
//! transaction, why each row that was not written was not: its `ext_id` is there (imported
//! before) or its email belongs to an authd user.

mod bulk;
mod source;

pub use bulk::BulkUser;
pub use source::{Identifier, SourceReader, SourceRow, SourceTable, TableName};

use crate::db::entity::user;
use crate::db::{Store, StoreError};
use bulk::new_user_row;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait};
use std::collections::HashSet;

/// Rows per statement: 9 columns × 1,000 rows stay below SQLite's 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 1000;

/// What became of one row of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Inserted,
    /// A user with this `ext_id` exists: imported before.
    ExtIdTaken,
    /// The email belongs to a user with no or another `ext_id`.
    EmailTaken,
    /// Not written, yet nothing in the table explains why (a row written and removed by
    /// someone else meanwhile).
    Conflicted,
}

impl Store {
    /// Writes what it can of `users` in one transaction and says, row by row, what happened.
    /// With `dry_run` the transaction is rolled back, so the outcomes are what a real run would
    /// report and nothing is written.
    pub async fn import_users(
        &self,
        users: &[BulkUser],
        dry_run: bool,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let txn = self.begin().await?;
        let mut inserted = HashSet::new();
        for chunk in users.chunks(ROWS_PER_STATEMENT) {
            let mut insert = user::Entity::insert_many(chunk.iter().map(new_user_row))
                // No conflict target: any unique column (id, email, ext_id) makes it skip the row.
                .on_conflict(OnConflict::new().do_nothing().to_owned())
                .into_query();
            insert.returning_col(user::Column::Id);
            for row in txn.query_all(&insert).await? {
                inserted.insert(row.try_get::<uuid::Uuid>("", "id")?);
            }
        }
        let left: Vec<&BulkUser> = users
            .iter()
            .filter(|u| !inserted.contains(&u.id.0))
            .collect();
        let mut ext_ids = HashSet::new();
        let mut emails = HashSet::new();
        for chunk in left.chunks(ROWS_PER_STATEMENT) {
            let found: Vec<(String, Option<String>)> = user::Entity::find()
                .select_only()
                .column(user::Column::Email)
                .column(user::Column::ExtId)
                .filter(
                    user::Column::Email
                        .is_in(chunk.iter().map(|u| u.email.as_str()))
                        .or(user::Column::ExtId
                            .is_in(chunk.iter().filter_map(|u| u.ext_id.as_deref()))),
                )
                .into_tuple()
                .all(&txn)
                .await?;
            for (email, ext_id) in found {
                emails.insert(email);
                ext_ids.extend(ext_id);
            }
        }
        if dry_run {
            txn.rollback().await?;
        } else {
            txn.commit().await?;
        }
        Ok(users
            .iter()
            .map(|u| {
                if inserted.contains(&u.id.0) {
                    ImportOutcome::Inserted
                } else if u.ext_id.as_ref().is_some_and(|id| ext_ids.contains(id)) {
                    ImportOutcome::ExtIdTaken
                } else if emails.contains(u.email.as_str()) {
                    ImportOutcome::EmailTaken
                } else {
                    ImportOutcome::Conflicted
                }
            })
            .collect())
    }
}
