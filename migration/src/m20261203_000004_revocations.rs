//! Revocations: one row per ended session whose access tokens may still be unexpired, so that
//! verifiers checking tokens locally hear of it (AuthService.WatchRevocations).
//!
//! `cursor` orders the stream. It only ever grows, also across deletes (SQLite's AUTOINCREMENT,
//! a PostgreSQL sequence), so a cursor a verifier kept stays meaningful after authd restarts.
//! `not_after` is when the session's last access token expires: rows past it are deleted by the
//! periodic clean-up, hence its index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Revocations::Table)
                    .col(
                        ColumnDef::new(Revocations::Cursor)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Revocations::SessionId).uuid().not_null())
                    .col(ColumnDef::new(Revocations::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(Revocations::RevokedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Revocations::NotAfter)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_revocations_not_after")
                    .table(Revocations::Table)
                    .col(Revocations::NotAfter)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Revocations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Revocations {
    Table,
    Cursor,
    SessionId,
    UserId,
    RevokedAt,
    NotAfter,
}
