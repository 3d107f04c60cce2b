use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The RFC 6238 key, sealed when `sealed_with` is set. Deliberately not `Debug`.
    pub secret: Vec<u8>,
    /// Id of the key-encryption key that sealed `secret`; NULL: stored in the clear.
    pub sealed_with: Option<String>,
    pub created_at: DateTimeUtc,
    /// NULL until a code from the authenticator has been entered: until then it does not guard
    /// the login.
    pub confirmed_at: Option<DateTimeUtc>,
    /// The newest time step whose code was accepted; codes of it and earlier steps are spent.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("totp_factor::Model")
            .field("user_id", &self.user_id)
            .field("sealed_with", &self.sealed_with)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
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
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
