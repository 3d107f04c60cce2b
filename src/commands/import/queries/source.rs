//! Reading users out of another app's PostgreSQL database for `authd import`: one read-only
//! REPEATABLE READ transaction (a consistent snapshot, and the server itself refuses any write),
//! a cursor over the table in primary-key order, fetched a page at a time so that a million rows
//! never sit in memory at once.
//!
//! Table and column names come from the command line. They are never pasted into SQL as given:
//! each is parsed into an [`Identifier`] (letters, digits and `_` only) and written quoted.

pub use crate::config::{Identifier, SourceTable, TableName};
use crate::db::StoreError;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, IsolationLevel, Statement, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// One row as the source has it; nothing is checked yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRow {
    pub id: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub name: Option<String>,
    /// `None`: the source does not say (no such column, or NULL).
    pub email_verified: Option<bool>,
}

/// An open cursor over the source table.
pub struct SourceReader {
    db: DatabaseConnection,
    txn: DatabaseTransaction,
    total: u64,
}

const CURSOR: &str = "authd_import_users";

impl SourceReader {
    /// Connects to `url` (PostgreSQL), counts the rows and opens the cursor, all in one
    /// read-only snapshot.
    pub async fn open(url: &SecretString, source: &SourceTable) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.expose_secret().to_owned());
        options
            .max_connections(1)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        let db = Database::connect(options).await?;
        let txn = db
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?;
        let count = txn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT count(*) FROM {}", source.table),
            ))
            .await?;
        let total = count
            .and_then(|row| row.try_get_by_index::<i64>(0).ok())
            .map_or(0, |n| u64::try_from(n).unwrap_or(0));
        txn.execute_unprepared(&format!(
            "DECLARE {CURSOR} NO SCROLL CURSOR FOR {}",
            source.select()
        ))
        .await?;
        Ok(Self { db, txn, total })
    }

    /// Rows in the table when the snapshot was taken.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next `rows` rows; empty at the end.
    pub async fn next_page(&mut self, rows: u32) -> Result<Vec<SourceRow>, StoreError> {
        let page = self
            .txn
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("FETCH FORWARD {rows} FROM {CURSOR}"),
            ))
            .await?;
        Ok(page
            .iter()
            .map(|row| {
                let text = |i: usize| row.try_get_by_index::<Option<String>>(i).ok().flatten();
                SourceRow {
                    id: text(0),
                    email: text(1),
                    password_hash: text(2),
                    name: text(3),
                    email_verified: text(4).map(|v| verified(&v)),
                }
            })
            .collect())
    }

    /// Ends the read-only transaction and disconnects.
    pub async fn close(self) {
        if let Err(err) = self.txn.rollback().await {
            tracing::warn!(error = %err, "ending the source database's transaction failed");
        }
        if let Err(err) = self.db.close().await {
            tracing::warn!(error = %err, "closing the source database failed");
        }
    }
}

/// A verified column's text: PostgreSQL's `false`/`f` is false, anything else set (true, or
/// the timestamp Auth.js-style schemas keep) is true.
fn verified(text: &str) -> bool {
    !matches!(text.trim(), "false" | "f" | "0" | "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_columns_read_as_booleans_or_timestamps() {
        assert!(verified("true"));
        assert!(verified("t"));
        assert!(verified("2024-01-02 03:04:05+00"));
        assert!(!verified("false"));
        assert!(!verified("f"));
    }
}
