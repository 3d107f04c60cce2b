//! The periodic clean-up of everything that has expired.

use crate::db::entity::{audit_event, mfa_challenge, one_time_token, session};
use crate::db::{Store, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

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
