//! The challenges Login hands out when a second factor is needed: making one, finding a live
//! one, counting wrong codes, spending it with the factor presented, and dropping a user's.

use super::totp::{TotpFactorRecord, step_is_fresh};
use super::user_lock::lock_user_with_mfa;
use crate::crypto::token::TokenDigest;
use crate::db::entity::{mfa_challenge, recovery_code, totp_factor, user};
use crate::db::{Store, StoreError, UserRecord};
use crate::domain::UserId;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};

pub use crate::db::entity::mfa_challenge::Model as MfaChallengeRecord;

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
