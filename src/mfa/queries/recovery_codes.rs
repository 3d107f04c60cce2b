//! Recovery codes: replacing a user's set (only their digests are stored) and counting the
//! unused ones.

use super::user_lock::lock_user_with_mfa;
use crate::db::entity::recovery_code;
use crate::db::{Store, StoreError};
use crate::domain::UserId;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

impl Store {
    /// Replaces the user's recovery codes. `false` (nothing written) when the second factor is
    /// not on.
    pub async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        recovery_codes: &[[u8; 32]],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin().await?;
        if !lock_user_with_mfa(&txn, user_id).await? {
            return Ok(false);
        }
        replace_codes(&txn, user_id, recovery_codes, now).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Unused recovery codes the user has left.
    pub async fn recovery_codes_left(&self, user_id: UserId) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(user_id.0))
            .filter(recovery_code::Column::UsedAt.is_null())
            .count(&self.db)
            .await?)
    }
}

pub(super) async fn replace_codes<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
    codes: &[[u8; 32]],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id.0))
        .exec(db)
        .await?;
    if codes.is_empty() {
        return Ok(());
    }
    recovery_code::Entity::insert_many(codes.iter().map(|digest| recovery_code::ActiveModel {
        user_id: Set(user_id.0),
        code_hash: Set(digest.to_vec()),
        created_at: Set(now),
        used_at: Set(None),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}
