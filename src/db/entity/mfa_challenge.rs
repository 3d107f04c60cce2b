use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_challenges")]
pub struct Model {
    /// SHA-256 of the `mfa_token` Login handed out; the token itself is never stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    /// The client the login named, for the session the challenge leads to.
    pub client_id: String,
    /// Wrong codes tried against this challenge.
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub spent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    /// The user's TOTP factor, read with the challenge by VerifyMfa (both keyed by the user).
    #[sea_orm(
        belongs_to = "super::totp_factor::Entity",
        from = "Column::UserId",
        to = "super::totp_factor::Column::UserId"
    )]
    TotpFactor,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::totp_factor::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TotpFactor.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
