//! Reading users out of another app's PostgreSQL database for `authd import`: one read-only
//! REPEATABLE READ transaction (a consistent snapshot, and the server itself refuses any write),
//! a cursor over the table in primary-key order, fetched a page at a time so that a million rows
//! never sit in memory at once.
//!
//! Table and column names come from the command line. They are never pasted into SQL as given:
//! each is parsed into an [`Identifier`] (letters, digits and `_` only) and written quoted.

use crate::db::StoreError;
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, IsolationLevel, Statement, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

/// A PostgreSQL identifier that is safe to quote: 1 to 63 bytes of ASCII letters, digits and
/// `_`, not starting with a digit. Case is kept (it is always written quoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(String);

impl Identifier {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = (1..=63).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !raw.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a plain identifier: use 1 to 63 letters, digits and _, not starting \
                 with a digit",
                raw.escape_debug()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    /// Quoted, ready for SQL: the characters allowed need no escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// A table, optionally in a schema (`schema.table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<Identifier>,
    pub table: Identifier,
}

impl TableName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.split_once('.') {
            Some((schema, table)) => Ok(Self {
                schema: Some(Identifier::parse(schema)?),
                table: Identifier::parse(table)?,
            }),
            None => Ok(Self {
                schema: None,
                table: Identifier::parse(raw)?,
            }),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => write!(f, "{}", self.table),
        }
    }
}

/// Where the users are in the source database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub table: TableName,
    pub id: Identifier,
    pub email: Identifier,
    pub password_hash: Identifier,
    pub name: Option<Identifier>,
    pub email_verified: Option<Identifier>,
}

impl SourceTable {
    /// The query the cursor runs: every value as text (ids may be numbers, UUIDs or strings;
    /// "verified" may be a boolean or a timestamp), in primary-key order.
    pub fn select(&self) -> String {
        let optional = |column: &Option<Identifier>| {
            column
                .as_ref()
                .map_or_else(|| "NULL::text".to_owned(), |c| format!("{c}::text"))
        };
        format!(
            "SELECT {id}::text, {email}::text, {hash}::text, {name}, {verified} FROM {table} \
             ORDER BY {id}",
            id = self.id,
            email = self.email,
            hash = self.password_hash,
            name = optional(&self.name),
            verified = optional(&self.email_verified),
            table = self.table,
        )
    }
}

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
    fn identifiers_are_plain_names_and_nothing_else() {
        for good in [
            "users",
            "User",
            "password_hash",
            "emailVerified",
            "_x",
            "a1",
        ] {
            assert_eq!(Identifier::parse(good).map(|i| i.0), Ok(good.to_owned()));
        }
        for bad in [
            "",
            "users; DROP TABLE x",
            "users\"; DROP TABLE x; --",
            "1users",
            "email verified",
            "naïve",
            "a-b",
            "a.b",
            "x\0",
            &"a".repeat(64),
        ] {
            assert!(Identifier::parse(bad).is_err(), "accepted {bad:?}");
        }
        let refused = Identifier::parse("users; DROP TABLE x").unwrap_err();
        assert!(refused.contains("not a plain identifier"), "{refused}");
    }

    #[test]
    fn tables_may_name_a_schema() {
        let table = TableName::parse("public.users").unwrap();
        assert_eq!(table.to_string(), "\"public\".\"users\"");
        assert_eq!(TableName::parse("User").unwrap().to_string(), "\"User\"");
        for bad in ["a.b.c", ".users", "users.", "public.users; DROP TABLE x"] {
            assert!(TableName::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn the_query_quotes_every_name() {
        let id = |s: &str| Identifier::parse(s).unwrap();
        let source = SourceTable {
            table: TableName::parse("User").unwrap(),
            id: id("id"),
            email: id("email"),
            password_hash: id("password"),
            name: Some(id("name")),
            email_verified: None,
        };
        assert_eq!(
            source.select(),
            "SELECT \"id\"::text, \"email\"::text, \"password\"::text, \"name\"::text, \
             NULL::text FROM \"User\" ORDER BY \"id\""
        );
    }

    #[test]
    fn verified_columns_read_as_booleans_or_timestamps() {
        assert!(verified("true"));
        assert!(verified("t"));
        assert!(verified("2024-01-02 03:04:05+00"));
        assert!(!verified("false"));
        assert!(!verified("f"));
    }
}
