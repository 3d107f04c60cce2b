//! The audit trail's rows and the periodic clean-up of everything that has expired.

use super::entity::{audit_event, mfa_challenge, one_time_token, session};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Set};

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

/// What one clean-up round deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub sessions: u64,
    pub one_time_tokens: u64,
    pub mfa_challenges: u64,
    pub throttles: u64,
    pub audit_events: u64,
    pub revocations: u64,
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

    /// Deletes what nobody can use any more: sessions that ended (expired or revoked) before
    /// `ended_before`, with their refresh tokens (by cascade); one-time tokens that expired or
    /// were spent before `ended_before`, and login challenges likewise; expired throttle counters; audit rows older than
    /// `audit_before`.
    pub async fn delete_expired(
        &self,
        now: DateTime<Utc>,
        ended_before: DateTime<Utc>,
        audit_before: DateTime<Utc>,
    ) -> Result<Cleaned, StoreError> {
        let sessions = session::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(session::Column::ExpiresAt.lt(ended_before))
                    .add(session::Column::RevokedAt.lt(ended_before)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        let one_time_tokens = one_time_token::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(one_time_token::Column::ExpiresAt.lt(ended_before))
                    .add(one_time_token::Column::SpentAt.lt(ended_before)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        let mfa_challenges = mfa_challenge::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(mfa_challenge::Column::ExpiresAt.lt(ended_before))
                    .add(mfa_challenge::Column::SpentAt.lt(ended_before)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        let throttles = self
            .delete_expired_throttles(now.timestamp_millis())
            .await?;
        let audit_events = audit_event::Entity::delete_many()
            .filter(audit_event::Column::At.lt(audit_before))
            .exec(&self.db)
            .await?
            .rows_affected;
        let revocations = self.delete_expired_revocations(now).await?;
        Ok(Cleaned {
            sessions,
            one_time_tokens,
            mfa_challenges,
            throttles,
            audit_events,
            revocations,
        })
    }
}
