//! The TOTP factor: enrolling it (stored unconfirmed until a code proves the app has it),
//! reading it, spending a time step, and resealing every secret under a new key.

use super::user_lock::lock_user;
use crate::db::entity::totp_factor;
use crate::db::{Store, StoreError};
use crate::domain::UserId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, Set};

pub use crate::db::entity::totp_factor::Model as TotpFactorRecord;

/// A TOTP secret as stored: sealed (and by which key) or in the clear.
pub struct StoredSecret {
    pub bytes: Vec<u8>,
    pub sealed_with: Option<String>,
}

impl Store {
    /// Stores a new, unconfirmed TOTP factor for `user_id`, replacing an unconfirmed one.
    /// `false` (and nothing written) when the user has a confirmed factor.
    pub async fn begin_totp(
        &self,
        user_id: UserId,
        secret: StoredSecret,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin().await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(false);
        }
        let existing = totp_factor::Entity::find_by_id(user_id.0).one(&txn).await?;
        if existing.as_ref().is_some_and(|f| f.confirmed_at.is_some()) {
            return Ok(false);
        }
        if existing.is_some() {
            totp_factor::Entity::delete_by_id(user_id.0)
                .exec(&txn)
                .await?;
        }
        totp_factor::Entity::insert(totp_factor::ActiveModel {
            user_id: Set(user_id.0),
            secret: Set(secret.bytes),
            sealed_with: Set(secret.sealed_with),
            created_at: Set(now),
            confirmed_at: Set(None),
            last_step: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Rewrites the TOTP secrets for which `reseal` gives a new stored form, all in one
    /// transaction: an error from `reseal` changes nothing. How many were rewritten.
    pub async fn reseal_totp_secrets<F>(&self, mut reseal: F) -> anyhow::Result<usize>
    where
        F: FnMut(&TotpFactorRecord) -> anyhow::Result<Option<StoredSecret>>,
    {
        let txn = self.begin().await?;
        let factors = totp_factor::Entity::find()
            .all(&txn)
            .await
            .map_err(StoreError::from)?;
        let mut count = 0;
        for factor in &factors {
            let Some(stored) = reseal(factor)? else {
                continue;
            };
            totp_factor::Entity::update_many()
                .col_expr(totp_factor::Column::Secret, Expr::value(stored.bytes))
                .col_expr(
                    totp_factor::Column::SealedWith,
                    Expr::value(stored.sealed_with),
                )
                .filter(totp_factor::Column::UserId.eq(factor.user_id))
                .exec(&txn)
                .await
                .map_err(StoreError::from)?;
            count += 1;
        }
        txn.commit().await.map_err(StoreError::from)?;
        Ok(count)
    }

    /// The user's TOTP factor, confirmed or not.
    pub async fn totp_factor(
        &self,
        user_id: UserId,
    ) -> Result<Option<TotpFactorRecord>, StoreError> {
        Ok(totp_factor::Entity::find_by_id(user_id.0)
            .one(&self.db)
            .await?)
    }

    /// Spends a TOTP step of the user's confirmed factor (a code given as proof for DisableTotp
    /// or RegenerateRecoveryCodes). `false` when it was spent already.
    pub async fn spend_totp_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError> {
        let spent = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::LastStep, Expr::value(step))
            .filter(totp_factor::Column::UserId.eq(user_id.0))
            .filter(totp_factor::Column::ConfirmedAt.is_not_null())
            .filter(step_is_fresh(step))
            .exec(&self.db)
            .await?;
        Ok(spent.rows_affected == 1)
    }
}

/// A step after the last one spent.
pub(super) fn step_is_fresh(step: i64) -> Condition {
    Condition::any()
        .add(totp_factor::Column::LastStep.is_null())
        .add(totp_factor::Column::LastStep.lt(step))
}
