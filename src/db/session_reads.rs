//! Session reads of concurrent token checks, made together: one query for every session id asked
//! for while the previous query ran.
//!
//! Introspect (and Envoy's Check) read one session row per token, so that a logout counts at once
//! on every replica. The row is small; the cost is the round trip around it: on SQLite a hand-off
//! to sqlx's connection thread and back (a futex wake each way), on PostgreSQL a network round
//! trip. Under load most of a check's server CPU went there. Here a read that arrives while none
//! is running starts a query at once (no waiting to fill a batch, so one caller sees no added
//! latency); reads that arrive meanwhile queue, and the next query fetches all of them with
//! `id IN (...)`. Every read is still answered by a query that started after it was asked, so it
//! sees every session ended before it was asked.
//!
//! The queries run on a task of their own, so a caller that goes away (a cancelled call) does not
//! strand the others waiting on the same query.

use super::entity::session;
use super::{SessionRecord, StoreError};
use parking_lot::Mutex;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;
use uuid::Uuid;

/// At most this many ids in one query (SQLite allows 32,766 parameters; PostgreSQL 65,535).
const MAX_BATCH: usize = 512;

type Answer = Result<Option<SessionRecord>, StoreError>;

#[derive(Default)]
pub(crate) struct SessionReads {
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    waiting: Vec<(Uuid, oneshot::Sender<Answer>)>,
    /// A task is draining `waiting`.
    running: bool,
}

impl SessionReads {
    pub(crate) async fn read(
        self: &Arc<Self>,
        db: &DatabaseConnection,
        id: Uuid,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.state.lock();
            state.waiting.push((id, tx));
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drain(db.clone()));
        }
        rx.await
            .map_err(|_| StoreError::Unavailable(DbErr::Custom("session read abandoned".into())))?
    }

    /// Queries for whatever is waiting until nothing is.
    async fn drain(self: Arc<Self>, db: DatabaseConnection) {
        loop {
            let batch = {
                let mut state = self.state.lock();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                let take = state.waiting.len().min(MAX_BATCH);
                state.waiting.drain(..take).collect::<Vec<_>>()
            };
            let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            // Each length of `IN (...)` is a statement of its own, prepared and cached per
            // connection: padded to a power of two (with the last id again), ten lengths at
            // most instead of one per batch size.
            if let Some(&last) = ids.last() {
                ids.resize(ids.len().next_power_of_two(), last);
            }
            let found = session::Entity::find()
                .filter(session::Column::Id.is_in(ids))
                .all(&db)
                .await;
            match found {
                Ok(rows) => {
                    let by_id: HashMap<Uuid, SessionRecord> =
                        rows.into_iter().map(|row| (row.id, row)).collect();
                    for (id, tx) in batch {
                        let _ = tx.send(Ok(by_id.get(&id).cloned()));
                    }
                }
                Err(err) => {
                    // One error, every waiter told: the same kind (outage or not), its text.
                    let (kind, text): (fn(DbErr) -> StoreError, String) =
                        match StoreError::from(err) {
                            StoreError::Unavailable(e) => (StoreError::Unavailable, e.to_string()),
                            StoreError::Conflict(e) => (StoreError::Conflict, e.to_string()),
                            StoreError::Query(e) => (StoreError::Query, e.to_string()),
                        };
                    for (_, tx) in batch {
                        let _ = tx.send(Err(kind(DbErr::Custom(text.clone()))));
                    }
                }
            }
        }
    }
}
