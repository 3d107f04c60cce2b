//! Signing keys get a life cycle and may be sealed.
//!
//! - `activates_at`: when the key starts signing. A key is published in the JWK Set from when it
//!   is created, so verifiers that cache the set know it before any token carries its `kid`.
//!   Keys from before this migration signed from their creation: `activates_at = created_at`.
//! - `sealed_with`: the id of the key-encryption key that sealed `private_key`
//!   (AUTHD_KEY_ENCRYPTION_KEY), or NULL for a private key stored in the clear.
//!
//! A retired key keeps its row (for `authd keys list`) but loses its private half.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .add_column(
                        ColumnDef::new(SigningKeys::ActivatesAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SigningKeys::Table)
                    .add_column(
                        ColumnDef::new(SigningKeys::SealedWith)
                            .string_len(32)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(SigningKeys::Table)
                    .value(SigningKeys::ActivatesAt, Expr::col(SigningKeys::CreatedAt))
                    .and_where(Expr::col(SigningKeys::ActivatesAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [SigningKeys::SealedWith, SigningKeys::ActivatesAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SigningKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    CreatedAt,
    ActivatesAt,
    SealedWith,
}
