//! Throttle counters, shared by every replica through the database.
//!
//! Each counted key is one row; bumping the keys of a call is a single atomic upsert that also
//! starts a count afresh when its row has expired, so no replica needs memory of its own and
//! nothing stops counting when a table fills up. Times are Unix milliseconds (plain integers on both databases).

use crate::db::{Store, StoreError};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use std::collections::HashMap;

/// One counted thing: `key` is unique; `scope` and `account` let a whole account's counters be
/// cleared at once (after a successful login or a password reset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pub key: String,
    pub scope: &'static str,
    pub account: String,
}

/// A live counter: how many in the current streak, and when the last one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleCount {
    pub failures: u32,
    pub last_at_ms: i64,
}

/// What a counter becomes when an attempt is settled (see `Store::throttle_settle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleSettle {
    /// Forgotten: a zero count from time 0 that has expired, which reads and bumps take for no
    /// row at all.
    Clear,
    /// One count taken back; when the last one was and when the row expires stay.
    TakeBack,
    /// A zero count that lives until `until_ms`: a marker whose presence is what counts.
    Remember { until_ms: i64 },
}

impl Store {
    /// The live (unexpired) counters among `keys`, by key.
    pub async fn throttle_counts(
        &self,
        keys: &[ThrottleKey],
        now_ms: i64,
    ) -> Result<HashMap<String, ThrottleCount>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let (marks, mut values) = id_list(keys);
        values.push(now_ms.into());
        let sql = format!(
            "SELECT id, failures, last_at FROM throttles WHERE id IN ({marks}) AND expires_at > ?"
        );
        let rows = self.db.query_all_raw(self.statement(&sql, values)).await?;
        let mut counts = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("", "id")?;
            let failures: i32 = row.try_get("", "failures")?;
            let last_at_ms: i64 = row.try_get("", "last_at")?;
            counts.insert(
                key,
                ThrottleCount {
                    failures: u32::try_from(failures).unwrap_or(0),
                    last_at_ms,
                },
            );
        }
        Ok(counts)
    }

    /// Counts one more for each of `keys` (starting afresh where a row expired) in one
    /// statement, and returns the new counts by key. Concurrent bumps of one key each get a
    /// different count. Rows are written in key order, so two calls that share keys lock them in
    /// the same order (PostgreSQL) and cannot deadlock; a key given twice is counted once.
    pub async fn throttle_bump(
        &self,
        keys: &[ThrottleKey],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<HashMap<String, u32>, StoreError> {
        let keys = in_key_order(keys.iter());
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut values: Vec<Value> = Vec::with_capacity(keys.len() * 5 + 1);
        for key in &keys {
            values.extend([
                key.key.clone().into(),
                key.scope.into(),
                key.account.clone().into(),
                now_ms.into(),
                expires_at_ms.into(),
            ]);
        }
        values.push(now_ms.into());
        let rows = vec!["(?, ?, ?, 1, ?, ?)"; keys.len()].join(", ");
        let sql = format!(
            "INSERT INTO throttles (id, scope, account, failures, last_at, expires_at) \
             VALUES {rows} \
             ON CONFLICT (id) DO UPDATE SET \
             failures = CASE WHEN throttles.expires_at <= ? THEN 1 \
                        ELSE throttles.failures + 1 END, \
             last_at = excluded.last_at, expires_at = excluded.expires_at \
             RETURNING id, failures"
        );
        let rows = self.db.query_all_raw(self.statement(&sql, values)).await?;
        let mut counts = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("", "id")?;
            let failures: i32 = row.try_get("", "failures")?;
            counts.insert(key, u32::try_from(failures).unwrap_or(0));
        }
        Ok(counts)
    }

    /// Takes back one count of each key (an attempt that was refused after all, or cancelled
    /// before it did anything).
    pub async fn throttle_refund(&self, keys: &[ThrottleKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let (marks, values) = id_list(keys);
        let sql = format!(
            "UPDATE throttles SET failures = failures - 1 WHERE id IN ({marks}) AND failures > 0"
        );
        self.db.execute_raw(self.statement(&sql, values)).await?;
        Ok(())
    }

    /// Deletes these counters.
    pub async fn throttle_delete(&self, keys: &[ThrottleKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let (marks, values) = id_list(keys);
        let sql = format!("DELETE FROM throttles WHERE id IN ({marks})");
        self.db.execute_raw(self.statement(&sql, values)).await?;
        Ok(())
    }

    /// Settles counters in one statement, each as `settle` says: cleared, one taken back, or
    /// remembered. Absent keys are written as zero counts (expired ones unless remembered), which
    /// every read and bump takes for no row at all. In key order, like `throttle_bump`; a key
    /// given twice is settled as first given.
    pub async fn throttle_settle(
        &self,
        keys: &[(ThrottleKey, ThrottleSettle)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut keys: Vec<&(ThrottleKey, ThrottleSettle)> = keys.iter().collect();
        keys.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        keys.dedup_by(|later, first| later.0.key == first.0.key);
        if keys.is_empty() {
            return Ok(());
        }
        let mut values: Vec<Value> = Vec::with_capacity(keys.len() * 8);
        for (key, settle) in &keys {
            // A cleared count also forgets when it was, so that even read as live (a replica
            // whose clock is behind) it makes no one wait.
            let (last_at, expires_at) = match settle {
                ThrottleSettle::Clear | ThrottleSettle::TakeBack => (0, now_ms),
                ThrottleSettle::Remember { until_ms } => (now_ms, *until_ms),
            };
            values.extend([
                key.key.clone().into(),
                key.scope.into(),
                key.account.clone().into(),
                last_at.into(),
                expires_at.into(),
            ]);
        }
        let rows = vec!["(?, ?, ?, 0, ?, ?)"; keys.len()].join(", ");
        // The rows whose count is taken back keep their time and expiry; the others take the
        // values written.
        let taken_back: Vec<&ThrottleKey> = keys
            .iter()
            .filter(|(_, settle)| *settle == ThrottleSettle::TakeBack)
            .map(|(key, _)| key)
            .collect();
        let is_taken_back = if taken_back.is_empty() {
            "1 = 0".to_owned()
        } else {
            format!(
                "excluded.id IN ({})",
                vec!["?"; taken_back.len()].join(", ")
            )
        };
        for _ in 0..3 {
            values.extend(taken_back.iter().map(|k| Value::from(k.key.clone())));
        }
        let sql = format!(
            "INSERT INTO throttles (id, scope, account, failures, last_at, expires_at) \
             VALUES {rows} \
             ON CONFLICT (id) DO UPDATE SET \
             failures = CASE WHEN {is_taken_back} \
                        THEN CASE WHEN throttles.failures > 0 THEN throttles.failures - 1 ELSE 0 END \
                        ELSE 0 END, \
             last_at = CASE WHEN {is_taken_back} THEN throttles.last_at \
                       ELSE excluded.last_at END, \
             expires_at = CASE WHEN {is_taken_back} THEN throttles.expires_at \
                          ELSE excluded.expires_at END"
        );
        self.db.execute_raw(self.statement(&sql, values)).await?;
        Ok(())
    }

    /// Deletes the counters of `account` in the given scopes.
    pub async fn throttle_clear_account(
        &self,
        account: &str,
        scopes: &[&'static str],
    ) -> Result<(), StoreError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; scopes.len()].join(", ");
        let mut values: Vec<Value> = vec![account.to_owned().into()];
        values.extend(scopes.iter().map(|s| Value::from(*s)));
        let sql = format!("DELETE FROM throttles WHERE account = ? AND scope IN ({marks})");
        self.db.execute_raw(self.statement(&sql, values)).await?;
        Ok(())
    }

    /// Deletes the counters that have expired. Returns how many.
    pub async fn delete_expired_throttles(&self, now_ms: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM throttles WHERE expires_at <= ?";
        let result = self
            .db
            .execute_raw(self.statement(sql, vec![now_ms.into()]))
            .await?;
        Ok(result.rows_affected())
    }

    /// A raw statement for this backend from SQL written with `?` placeholders (numbered `$n`
    /// for PostgreSQL). Values are always bound, never spliced into the text.
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.db.get_database_backend();
        let sql = if backend == DbBackend::Postgres {
            let mut numbered = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push('$');
                    numbered.push_str(&n.to_string());
                } else {
                    numbered.push(c);
                }
            }
            numbered
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(backend, sql, values)
    }
}

/// `keys` sorted by key, each once.
fn in_key_order<'a>(keys: impl Iterator<Item = &'a ThrottleKey>) -> Vec<&'a ThrottleKey> {
    let mut keys: Vec<&ThrottleKey> = keys.collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    keys.dedup_by(|later, first| later.key == first.key);
    keys
}

/// The `?, ?, …` placeholders for the ids of `keys`, and the ids to bind to them.
fn id_list(keys: &[ThrottleKey]) -> (String, Vec<Value>) {
    let marks = vec!["?"; keys.len()].join(", ");
    let values = keys.iter().map(|k| k.key.clone().into()).collect();
    (marks, values)
}
