use sea_orm::entity::prelude::*;

/// An ended session whose access tokens may still be unexpired (see `store::revocations`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revocations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub cursor: i64,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub revoked_at: DateTimeUtc,
    pub not_after: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
