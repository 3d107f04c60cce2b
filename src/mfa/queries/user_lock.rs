//! The user's row lock that every transaction changing the second factor takes first, so they
//! queue behind each other (and behind the password and session transactions) in one order.

use crate::db::StoreError;
use crate::db::entity::user;
use crate::domain::UserId;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};

/// Takes the user's row lock (a no-op update). `false` when there is no such user.
pub(super) async fn lock_user<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
) -> Result<bool, StoreError> {
    lock_user_where(db, user_id, Condition::all()).await
}

/// Takes the user's row lock if the second factor is on. `false` when it is not.
pub(super) async fn lock_user_with_mfa<C: ConnectionTrait>(
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
