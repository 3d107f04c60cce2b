//! The second factor: each user's TOTP factor, their recovery codes, and the challenges Login
//! hands out when a second factor is needed.
//!
//! Every transaction that changes these takes the user's row first, as the password and session
//! transactions do (see `Store::verify_email`), so they queue behind each other in one order.
//! Spending is conditional, as everywhere in the store: a TOTP step by `last_step < step`, a
//! recovery code and a challenge by `… IS NULL`; the row count decides the one winner.

use crate::crypto::token::TokenDigest;
use crate::db::entity::{mfa_challenge, recovery_code, totp_factor, user};
use crate::db::{Store, StoreError, UserRecord};
use crate::domain::UserId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set,
};

pub use crate::db::entity::mfa_challenge::Model as MfaChallengeRecord;
pub use crate::db::entity::totp_factor::Model as TotpFactorRecord;

/// A TOTP secret as stored: sealed (and by which key) or in the clear.
pub struct StoredSecret {
    pub bytes: Vec<u8>,
    pub sealed_with: Option<String>,
}

/// A challenge about to be handed out by Login.
pub struct NewMfaChallenge {
    pub digest: TokenDigest,
    pub user_id: UserId,
    pub client_id: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What proves the second factor.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor {
    /// A TOTP code that matched this time step.
    Step(i64),
    /// The digest of a recovery code.
    RecoveryCode([u8; 32]),
}

/// A live challenge, read with its user and the user's TOTP factor in one query.
#[derive(Debug, Clone)]
pub struct LiveChallenge {
    pub challenge: MfaChallengeRecord,
    pub user: UserRecord,
    pub totp: Option<TotpFactorRecord>,
}

/// How completing a challenge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaCompletion {
    /// The challenge and the factor are spent and the session started.
    SessionStarted,
    /// The challenge is unknown, spent, expired, or its user's second factor was removed.
    ChallengeGone,
    /// The code was spent already (a replay, or a parallel call won), or no such recovery code
    /// is unused: nothing was written.
    FactorRefused,
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

    pub async fn create_mfa_challenge(&self, new: NewMfaChallenge) -> Result<(), StoreError> {
        mfa_challenge::Entity::insert(mfa_challenge::ActiveModel {
            token_hash: Set(new.digest.0.to_vec()),
            user_id: Set(new.user_id.0),
            client_id: Set(new.client_id),
            attempts: Set(0),
            created_at: Set(new.now),
            expires_at: Set(new.expires_at),
            spent_at: Set(None),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The challenge with this digest, if it can still be completed at `now`, with its user
    /// and the user's TOTP factor.
    pub async fn live_mfa_challenge(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<LiveChallenge>, StoreError> {
        let found = mfa_challenge::Entity::find_by_id(digest.0.to_vec())
            .filter(mfa_challenge::Column::SpentAt.is_null())
            .filter(mfa_challenge::Column::ExpiresAt.gt(now))
            .find_also_related(user::Entity)
            .find_also(mfa_challenge::Entity, totp_factor::Entity)
            .one(&self.db)
            .await?;
        Ok(match found {
            Some((challenge, Some(user), totp)) if user.mfa_enabled => Some(LiveChallenge {
                challenge,
                user,
                totp,
            }),
            _ => None,
        })
    }

    /// Counts a wrong code against the challenge; at `max_attempts` it is spent.
    pub async fn mfa_challenge_failed(
        &self,
        digest: &TokenDigest,
        max_attempts: i32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let attempts = Expr::col(mfa_challenge::Column::Attempts).add(1);
        mfa_challenge::Entity::update_many()
            .col_expr(mfa_challenge::Column::Attempts, attempts.clone())
            .col_expr(
                mfa_challenge::Column::SpentAt,
                Expr::case(attempts.gte(max_attempts), Expr::value(now))
                    .finally(Expr::col(mfa_challenge::Column::SpentAt))
                    .into(),
            )
            .filter(mfa_challenge::Column::TokenHash.eq(digest.0.to_vec()))
            .filter(mfa_challenge::Column::SpentAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// Spends, in `txn`, the challenge `challenge` of `user_id` and the second factor presented with
/// it (a TOTP step or a recovery code), after taking the user's row lock while the factor is on.
/// Anything but `SessionStarted` means the caller must drop the transaction.
pub(crate) async fn spend_challenge_and_factor(
    txn: &DatabaseTransaction,
    challenge: &TokenDigest,
    factor: SecondFactor,
    user_id: UserId,
    now: DateTime<Utc>,
) -> Result<MfaCompletion, StoreError> {
    // The user's row first; the factor must still be on.
    if !lock_user_with_mfa(txn, user_id).await? {
        return Ok(MfaCompletion::ChallengeGone);
    }
    let spent = mfa_challenge::Entity::update_many()
        .col_expr(mfa_challenge::Column::SpentAt, Expr::value(now))
        .filter(mfa_challenge::Column::TokenHash.eq(challenge.0.to_vec()))
        .filter(mfa_challenge::Column::UserId.eq(user_id.0))
        .filter(mfa_challenge::Column::SpentAt.is_null())
        .filter(mfa_challenge::Column::ExpiresAt.gt(now))
        .exec(txn)
        .await?;
    if spent.rows_affected != 1 {
        return Ok(MfaCompletion::ChallengeGone);
    }
    let factor_spent = match factor {
        SecondFactor::Step(step) => {
            totp_factor::Entity::update_many()
                .col_expr(totp_factor::Column::LastStep, Expr::value(step))
                .filter(totp_factor::Column::UserId.eq(user_id.0))
                .filter(totp_factor::Column::ConfirmedAt.is_not_null())
                .filter(step_is_fresh(step))
                .exec(txn)
                .await?
                .rows_affected
        }
        SecondFactor::RecoveryCode(digest) => {
            recovery_code::Entity::update_many()
                .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
                .filter(recovery_code::Column::UserId.eq(user_id.0))
                .filter(recovery_code::Column::CodeHash.eq(digest.to_vec()))
                .filter(recovery_code::Column::UsedAt.is_null())
                .exec(txn)
                .await?
                .rows_affected
        }
    };
    if factor_spent != 1 {
        return Ok(MfaCompletion::FactorRefused);
    }
    Ok(MfaCompletion::SessionStarted)
}

/// Takes the user's row lock (a no-op update). `false` when there is no such user.
async fn lock_user<C: ConnectionTrait>(db: &C, user_id: UserId) -> Result<bool, StoreError> {
    lock_user_where(db, user_id, Condition::all()).await
}

/// Takes the user's row lock if the second factor is on. `false` when it is not.
async fn lock_user_with_mfa<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
) -> Result<bool, StoreError> {
    let on = Condition::all().add(user::Column::MfaEnabled.eq(true));
    lock_user_where(db, user_id, on).await
}

async fn lock_user_where<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
    condition: Condition,
) -> Result<bool, StoreError> {
    Ok(user::Entity::update_many()
        .col_expr(
            user::Column::MfaEnabled,
            Expr::col(user::Column::MfaEnabled),
        )
        .filter(user::Column::Id.eq(user_id.0))
        .filter(condition)
        .exec(db)
        .await?
        .rows_affected
        == 1)
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

/// A step after the last one spent.
fn step_is_fresh(step: i64) -> Condition {
    Condition::any()
        .add(totp_factor::Column::LastStep.is_null())
        .add(totp_factor::Column::LastStep.lt(step))
}

async fn replace_codes<C: ConnectionTrait>(
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

/// Forgets the user's pending challenges: after a password reset or change, or when the second
/// factor is removed, a login begun before must start again.
pub(crate) async fn drop_challenges<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
) -> Result<(), StoreError> {
    mfa_challenge::Entity::delete_many()
        .filter(mfa_challenge::Column::UserId.eq(user_id.0))
        .exec(db)
        .await?;
    Ok(())
}
