use super::one_time;
use crate::db::entity::user;
use crate::db::{Store, StoreError, UserRecord};
use crate::domain::{DisplayName, Email, UserId};
use crate::mail::queries::Mail;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

/// A user about to be created.
pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a Email,
    pub name: &'a DisplayName,
    pub password_hash: String,
    pub now: DateTime<Utc>,
}

impl Store {
    /// Creates the user together with its verification token and mail: all three or none.
    /// A taken email gives `StoreError::Conflict`.
    pub async fn create_user(
        &self,
        new: NewUser<'_>,
        verification: one_time::NewOneTimeToken,
        mail: &Mail,
    ) -> Result<UserRecord, StoreError> {
        let txn = self.begin().await?;
        let user = user::ActiveModel {
            id: Set(new.id.0),
            email: Set(new.email.as_str().to_owned()),
            name: Set(new.name.as_str().to_owned()),
            password_hash: Set(new.password_hash),
            email_verified: Set(false),
            created_at: Set(new.now),
            updated_at: Set(new.now),
            ext_id: Set(None),
            mfa_enabled: Set(false),
        }
        .insert(&txn)
        .await?;
        one_time::insert_token(&txn, new.id, verification, new.now).await?;
        Self::enqueue_mail(&txn, mail, new.now).await?;
        txn.commit().await?;
        self.mail_committed();
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?)
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(user::Entity::find_by_id(id.0).one(&self.db).await?)
    }

    /// Replaces a password hash with a stronger one of the same password (upgrade at login).
    /// Only if the hash is still the one that was verified, so a concurrent reset wins.
    pub async fn upgrade_password_hash(
        &self,
        id: UserId,
        verified_hash: &str,
        new_hash: String,
    ) -> Result<(), StoreError> {
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(new_hash))
            .filter(user::Column::Id.eq(id.0))
            .filter(user::Column::PasswordHash.eq(verified_hash))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

impl From<UserRecord> for crate::domain::UserView {
    fn from(user: UserRecord) -> Self {
        Self {
            id: UserId(user.id),
            email: user.email,
            name: user.name,
            email_verified: user.email_verified,
            created_at: user.created_at,
            ext_id: user.ext_id,
            mfa_enabled: user.mfa_enabled,
        }
    }
}
