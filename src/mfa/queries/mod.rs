//! The second factor: each user's TOTP factor, their recovery codes, and the challenges Login
//! hands out when a second factor is needed.
//!
//! Every transaction that changes these takes the user's row first, as the password and session
//! transactions do (see `Store::verify_email`), so they queue behind each other in one order.
//! Spending is conditional, as everywhere in the store: a TOTP step by `last_step < step`, a
//! recovery code and a challenge by `… IS NULL`; the row count decides the one winner.

mod challenges;
mod recovery_codes;
mod totp;
mod user_lock;

pub use challenges::{
    LiveChallenge, MfaChallengeRecord, MfaCompletion, NewMfaChallenge, SecondFactor,
};
pub(crate) use challenges::{drop_challenges, spend_challenge_and_factor};
pub use totp::{StoredSecret, TotpFactorRecord};

use crate::db::entity::{recovery_code, totp_factor, user};
use crate::db::{Store, StoreError};
use crate::domain::UserId;
use chrono::{DateTime, Utc};
use recovery_codes::replace_codes;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use totp::step_is_fresh;
use user_lock::lock_user;

/// Turning the second factor on and off: each changes the factor, the recovery codes and the
/// user's `mfa_enabled` together.
impl Store {
    /// Confirms the user's unconfirmed factor with the step of the code that was entered, turns
    /// the second factor on, and stores the recovery codes (replacing any). `false` (nothing
    /// written) when there was no unconfirmed factor to confirm, or that step is spent.
    pub async fn confirm_totp(
        &self,
        user_id: UserId,
        step: i64,
        recovery_codes: &[[u8; 32]],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin().await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(false);
        }
        let confirmed = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::ConfirmedAt, Expr::value(now))
            .col_expr(totp_factor::Column::LastStep, Expr::value(step))
            .filter(totp_factor::Column::UserId.eq(user_id.0))
            .filter(totp_factor::Column::ConfirmedAt.is_null())
            .filter(step_is_fresh(step))
            .exec(&txn)
            .await?;
        if confirmed.rows_affected != 1 {
            return Ok(false);
        }
        set_mfa_enabled(&txn, user_id, true).await?;
        replace_codes(&txn, user_id, recovery_codes, now).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Removes the user's second factor: the TOTP factor, the recovery codes and every pending
    /// challenge. `false` when the second factor was not on (an unconfirmed factor is removed
    /// all the same).
    pub async fn remove_totp(&self, user_id: UserId) -> Result<bool, StoreError> {
        let txn = self.begin().await?;
        let was_on = user::Entity::update_many()
            .col_expr(user::Column::MfaEnabled, Expr::value(false))
            .filter(user::Column::Id.eq(user_id.0))
            .filter(user::Column::MfaEnabled.eq(true))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        totp_factor::Entity::delete_by_id(user_id.0)
            .exec(&txn)
            .await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id.0))
            .exec(&txn)
            .await?;
        drop_challenges(&txn, user_id).await?;
        txn.commit().await?;
        Ok(was_on)
    }
}

async fn set_mfa_enabled<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
    on: bool,
) -> Result<(), StoreError> {
    user::Entity::update_many()
        .col_expr(user::Column::MfaEnabled, Expr::value(on))
        .filter(user::Column::Id.eq(user_id.0))
        .exec(db)
        .await?;
    Ok(())
}
