//! The audit trail's rows.

use crate::db::entity::audit_event;
use crate::db::{Store, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, Set};

/// An audit row about to be written.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub user_id: Option<uuid::Uuid>,
    pub session_id: Option<uuid::Uuid>,
    pub ip: String,
    pub user_agent: String,
    pub detail: String,
}

impl Store {
    /// Writes audit rows, all in one statement.
    pub async fn insert_audit_events(&self, events: Vec<NewAuditEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = events.into_iter().map(|e| audit_event::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            at: Set(e.at),
            kind: Set(e.kind.to_owned()),
            user_id: Set(e.user_id),
            session_id: Set(e.session_id),
            ip: Set(e.ip),
            user_agent: Set(e.user_agent),
            detail: Set(e.detail),
        });
        audit_event::Entity::insert_many(rows)
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }
}
