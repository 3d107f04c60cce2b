//! The database: connecting, migrating, transactions, the store error, the SeaORM entities and
//! the batched session reads of token checks. The queries themselves belong to the features
//! (`*/queries.rs`, each an `impl Store` block or functions taking a `Connection`, so a use case
//! that spans features still runs in one transaction); nothing else touches `sea_orm`.
//!
//! Multi-step changes (rotating a refresh token, spending a one-time token, resetting a password)
//! each run in one transaction, and every "spend" is a conditional `UPDATE … WHERE spent_at IS
//! NULL` whose row count decides the winner, so concurrent callers cannot both succeed on either
//! database.

pub mod entity;
pub(crate) mod session_reads;
mod statements;

pub use entity::{one_time_token::Model as OneTimeTokenRecord, session::Model as SessionRecord};
pub use entity::{refresh_token::Model as RefreshTokenRecord, user::Model as UserRecord};
pub use statements::StatementCounts;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Advisory lock keys (PostgreSQL) for work that one replica at a time must do.
const MIGRATION_LOCK: i64 = 0x6175_7468_6400_0001;
pub(crate) const SIGNING_KEY_LOCK: i64 = 0x6175_7468_6400_0002;

/// How to reach the database: plain values, so the store knows nothing of how settings are read.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://…` or `postgres://…`; it may hold a password.
    pub url: SecretString,
    /// Most connections kept open.
    pub max_connections: u32,
    /// How long to wait for a connection (and to open one) before giving up.
    pub timeout: Duration,
}

/// The database behind authd: SQLite or PostgreSQL, with the same queries for both.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    /// Rung when a queued mail is committed (see `Store::mail_queued`).
    pub(crate) outbox: Arc<Notify>,
    /// Rung when sessions ended, after the commit (see `Store::revocations_recorded`).
    revocations: Arc<Notify>,
    /// Concurrent session reads of token checks, made in one query.
    pub(crate) session_reads: Arc<session_reads::SessionReads>,
    /// Every statement sent, by kind and table (see `statements`).
    statements: StatementCounts,
}

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or has no free connection: worth retrying later.
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// A unique constraint refused the write.
    #[error("unique constraint violated")]
    Conflict(#[source] DbErr),
    #[error("database query failed")]
    Query(#[source] DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return Self::Conflict(err);
        }
        if is_outage(&err) {
            return Self::Unavailable(err);
        }
        Self::Query(err)
    }
}

/// Connection failures, pool exhaustion, broken sockets and lock conflicts, as opposed to bad
/// queries: the request may succeed if tried again.
fn is_outage(err: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(
                e.as_ref(),
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
            ) || e
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| is_transient_code(&code))
        }
        _ => false,
    }
}

/// Database error codes that say "not now" rather than "wrong": the caller may retry.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        // PostgreSQL: serialization failure, deadlock, query cancelled, admin or crash shutdown,
        // cannot connect now, database gone (dropped).
        "40001" | "40P01" | "57014" | "57P01" | "57P02" | "57P03" | "3D000"
        // SQLite: busy or locked, with their extended codes.
        | "5" | "6" | "261" | "262" | "517" | "773"
    )
    // PostgreSQL classes: connection exception, insufficient resources.
    || code.starts_with("08")
    || code.starts_with("53")
}

impl Store {
    /// Connects (creating the SQLite file if the URL says `mode=rwc`).
    pub async fn connect(settings: &StoreOptions) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(settings.url.expose_secret().to_owned());
        options
            .max_connections(settings.max_connections)
            .min_connections(1)
            .connect_timeout(settings.timeout)
            .acquire_timeout(settings.timeout)
            .sqlx_logging(false);
        let mut db = Database::connect(options).await?;
        let counts = StatementCounts::default();
        statements::count_into(&mut db, counts.clone());
        if db.get_database_backend() == DbBackend::Sqlite {
            // WAL lets readers proceed while one writer commits. The setting persists in the
            // file, so if another process holds the lock now, it has set it or will.
            if let Err(err) = db.execute_unprepared("PRAGMA journal_mode=WAL").await {
                tracing::warn!(error = %err, "could not switch SQLite to WAL now");
            }
        }
        Ok(Self {
            db,
            outbox: Arc::new(Notify::new()),
            revocations: Arc::new(Notify::new()),
            session_reads: Arc::default(),
            statements: counts,
        })
    }

    /// The statements sent so far, by kind and table, for /metrics.
    pub fn statement_counts(&self) -> StatementCounts {
        self.statements.clone()
    }

    /// Applies pending migrations.
    ///
    /// Replicas may start together on a fresh database. On PostgreSQL they take turns under an
    /// advisory lock; on SQLite (one file, rarely shared) a failed attempt is retried a few
    /// times, by when the other process has finished and nothing is pending.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let lock = self.exclusive(MIGRATION_LOCK).await?;
        let mut attempt = 1;
        let result = loop {
            match Migrator::up(&self.db, None).await {
                Err(err) if lock.is_none() && attempt < 8 => {
                    tracing::warn!(error = %err, attempt, "migration failed; another process may be migrating, retrying");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                    attempt += 1;
                }
                result => break result,
            }
        };
        if let Some(lock) = lock {
            lock.commit().await?;
        }
        Ok(result?)
    }

    /// Migrations this build has that the database has not applied, oldest first. A database
    /// that authd never migrated has them all.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied = match self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                "SELECT version FROM seaql_migrations",
            ))
            .await
        {
            Ok(rows) => rows
                .iter()
                .filter_map(|row| row.try_get::<String>("", "version").ok())
                .collect::<Vec<_>>(),
            // No bookkeeping table: nothing was ever applied. An outage is an outage.
            Err(err) if !is_outage(&err) => Vec::new(),
            Err(err) => return Err(err.into()),
        };
        Ok(Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect())
    }

    /// On PostgreSQL, a transaction holding the advisory lock `key` (released when it ends);
    /// elsewhere nothing. Other connections run the guarded work meanwhile.
    pub(crate) async fn exclusive(
        &self,
        key: i64,
    ) -> Result<Option<sea_orm::DatabaseTransaction>, StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let txn = self.begin().await?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})"))
            .await?;
        Ok(Some(txn))
    }

    /// A new transaction, begun in a task of its own.
    ///
    /// sqlx (0.9.0) counts a transaction as open only once BEGIN has been answered, so a call
    /// cancelled while its BEGIN is on the wire puts the connection back into the pool inside a
    /// transaction that nothing will end: every later statement on that connection joins it, and
    /// the row locks they take are never released. Begun in its own task, BEGIN is always
    /// answered; when the caller is gone by then, the transaction is dropped and rolled back.
    pub(crate) async fn begin(&self) -> Result<sea_orm::DatabaseTransaction, StoreError> {
        let db = self.db.clone();
        tokio::spawn(async move { db.begin().await })
            .await
            .map_err(|e| {
                StoreError::Query(DbErr::Custom(format!(
                    "the task beginning a transaction failed: {e}"
                )))
            })?
            .map_err(StoreError::from)
    }

    /// Tells the revocation feed that sessions ended, so it reads their revocations at once
    /// rather than at its next poll. Every method that ends sessions calls this after its commit.
    pub(crate) fn sessions_ended(&self, ended: u64) {
        if ended > 0 {
            self.revocations.notify_one();
        }
    }

    /// Waits until sessions have ended in this process since the last wait (for the
    /// revocation feed; other processes' revocations are found by polling).
    pub async fn revocations_recorded(&self) {
        self.revocations.notified().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            _ => "other",
        }
    }

    pub async fn close(self) {
        if let Err(err) = self.db.close().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
    }
}

/// Connects; the error names the database without its password, and drivers that quote the
/// URL in their messages have the password cut out.
pub async fn connect(database: &crate::config::DatabaseSettings) -> anyhow::Result<Store> {
    let url = database.url();
    let options = StoreOptions {
        url: url.clone(),
        max_connections: database.max_connections,
        timeout: database.timeout,
    };
    Store::connect(&options).await.map_err(|err| {
        let cause = crate::config::scrub(
            &crate::telemetry::error_chain(&anyhow::Error::from(err)),
            &url,
        );
        let hint = sqlite_hint(url.expose_secret())
            .map(|hint| format!(" ({hint})"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "connecting to the database {}: {cause}{hint}",
            crate::config::redact(&url)
        )
    })
}

/// Why SQLite may not open the file of `url`, in the terms of the setting: SQLite itself says
/// only "unable to open database file". `None` for other databases, or when the file and its
/// folder are there.
fn sqlite_hint(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let path = std::path::Path::new(path);
    if path.exists() {
        return None;
    }
    let folder = match path.parent() {
        Some(folder) if folder.as_os_str().is_empty() => std::path::Path::new("."),
        Some(folder) => folder,
        None => return None,
    };
    let creates = query.split('&').any(|pair| pair == "mode=rwc");
    Some(if !folder.is_dir() {
        format!("the folder {} does not exist", folder.display())
    } else if !creates {
        format!(
            "{} does not exist: add ?mode=rwc to AUTHD_DATABASE_URL to create it",
            path.display()
        )
    } else {
        format!(
            "{} cannot be created: check that authd may write in {}",
            path.display(),
            folder.display()
        )
    })
}
