use crate::crypto::token::TokenDigest;
use crate::db::entity::{one_time_token, user};
use crate::db::{OneTimeTokenRecord, Store, StoreError, UserRecord};
use crate::domain::UserId;
use crate::mail::queries::Mail;
use crate::revocations::queries::Ending;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// What a one-time token is for. Stored as text so the table can hold later kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A one-time token about to be stored (only its digest).
pub struct NewOneTimeToken {
    pub purpose: Purpose,
    pub digest: TokenDigest,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores a one-time token and queues its mail, in one transaction. With `replace_earlier`,
    /// the user's unspent tokens of the same purpose stop working.
    pub async fn issue_one_time_token(
        &self,
        user_id: UserId,
        token: NewOneTimeToken,
        mail: &Mail,
        replace_earlier: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        if replace_earlier {
            spend_all(&txn, user_id.0, token.purpose, now).await?;
        }
        insert_token(&txn, user_id, token, now).await?;
        Self::enqueue_mail(&txn, mail, now).await?;
        txn.commit().await?;
        self.mail_committed();
        Ok(())
    }

    /// The token with this digest and purpose, spent or not.
    pub async fn one_time_token(
        &self,
        digest: &TokenDigest,
        purpose: Purpose,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        Ok(one_time_token::Entity::find()
            .filter(one_time_token::Column::TokenHash.eq(digest.0.to_vec()))
            .filter(one_time_token::Column::Purpose.eq(purpose.as_str()))
            .one(&self.db)
            .await?)
    }

    /// Spends a verification token and marks the email verified. `None` if the token was spent
    /// meanwhile (a concurrent call won).
    pub async fn verify_email(
        &self,
        token: &OneTimeTokenRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.begin().await?;
        // Lock order, for every transaction that changes a user's tokens: the user's row
        // first, then tokens, then sessions. Opposite orders deadlock on PostgreSQL.
        user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(token.user_id))
            .exec(&txn)
            .await?;
        if !spend(&txn, token.id, now).await? {
            return Ok(None);
        }
        // Any other verification link of this user is pointless now.
        spend_all(&txn, token.user_id, Purpose::VerifyEmail, now).await?;
        let user = user::Entity::find_by_id(token.user_id).one(&txn).await?;
        txn.commit().await?;
        Ok(user)
    }

    /// Spends a reset token, sets the new password hash, ends every session of the user and
    /// voids their other reset and verification links: all or nothing. `false` if the token was
    /// spent meanwhile. Following the mailed link proves the address, so the email counts as
    /// verified too. `notice` (the mail telling the user) is queued with it.
    pub async fn reset_password(
        &self,
        token: &OneTimeTokenRecord,
        password_hash: String,
        notice: &Mail,
        ending: Ending,
    ) -> Result<bool, StoreError> {
        let now = ending.at;
        let txn = self.begin().await?;
        // The user's row first (see verify_email). A login that verified the old password
        // re-checks the hash under this same lock, so it cannot start a session after the reset.
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(token.user_id))
            .exec(&txn)
            .await?;
        if !spend(&txn, token.id, now).await? {
            return Ok(false);
        }
        spend_all(&txn, token.user_id, Purpose::ResetPassword, now).await?;
        spend_all(&txn, token.user_id, Purpose::VerifyEmail, now).await?;
        crate::mfa::queries::drop_challenges(&txn, UserId(token.user_id)).await?;
        Self::enqueue_mail(&txn, notice, now).await?;
        // Last: it takes the revocation lock (see `store::revocations`).
        let ended = crate::sessions::queries::revoke_all(&txn, token.user_id, ending).await?;
        txn.commit().await?;
        self.mail_committed();
        self.sessions_ended(ended);
        Ok(true)
    }
}

pub(crate) async fn insert_token<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
    token: NewOneTimeToken,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    one_time_token::Entity::insert(one_time_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        user_id: Set(user_id.0),
        purpose: Set(token.purpose.as_str().to_owned()),
        token_hash: Set(token.digest.0.to_vec()),
        created_at: Set(now),
        expires_at: Set(token.expires_at),
        spent_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Spends one token if nobody has: the row count says who won.
async fn spend<C: ConnectionTrait>(
    db: &C,
    id: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::SpentAt, Expr::value(now))
        .filter(one_time_token::Column::Id.eq(id))
        .filter(one_time_token::Column::SpentAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub(crate) async fn spend_all<C: ConnectionTrait>(
    db: &C,
    user_id: uuid::Uuid,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::SpentAt, Expr::value(now))
        .filter(one_time_token::Column::UserId.eq(user_id))
        .filter(one_time_token::Column::Purpose.eq(purpose.as_str()))
        .filter(one_time_token::Column::SpentAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
