use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    pub algorithm: String,
    /// The private half as jsonwebtoken reads it (PKCS#8 DER; PKCS#1 DER for RS256), sealed
    /// when `sealed_with` is set; empty once retired. Deliberately not `Debug`.
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// NULL only between migration 5's two statements.
    pub activates_at: Option<DateTimeUtc>,
    pub retired_at: Option<DateTimeUtc>,
    /// Id of the key-encryption key that sealed `private_key`; NULL: stored in the clear.
    pub sealed_with: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("signing_key::Model")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .field("sealed_with", &self.sealed_with)
            .finish_non_exhaustive()
    }
}
