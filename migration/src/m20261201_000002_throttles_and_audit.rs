//! Abuse resistance: throttle counters that every replica sees, and the audit trail.
//!
//! `throttles` holds one row per counted key (`id`) (a scope, an account digest and/or a client
//! address): consecutive failures or requests, when the last one was, and when the row may be
//! forgotten. Times are Unix milliseconds, so that the conditional upserts compare plain integers
//! on both databases. `audit_events` records who did what, from where, and never a secret.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Throttles::Table)
                    .col(
                        ColumnDef::new(Throttles::Id)
                            .string_len(160)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Throttles::Scope).string_len(32).not_null())
                    .col(ColumnDef::new(Throttles::Account).string_len(64).not_null())
                    .col(ColumnDef::new(Throttles::Failures).integer().not_null())
                    .col(ColumnDef::new(Throttles::LastAt).big_integer().not_null())
                    .col(
                        ColumnDef::new(Throttles::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_throttles_account")
                    .table(Throttles::Table)
                    .col(Throttles::Account)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_throttles_expires")
                    .table(Throttles::Table)
                    .col(Throttles::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::Kind).string_len(40).not_null())
                    .col(ColumnDef::new(AuditEvents::UserId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::SessionId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::Ip).string_len(64).not_null())
                    .col(
                        ColumnDef::new(AuditEvents::UserAgent)
                            .string_len(512)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Detail)
                            .string_len(200)
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_audit_events_at", AuditEvents::At),
            ("ix_audit_events_user", AuditEvents::UserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [AuditEvents::Table.into_iden(), Throttles::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Throttles {
    Table,
    Id,
    Scope,
    Account,
    Failures,
    LastAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Kind,
    UserId,
    SessionId,
    Ip,
    UserAgent,
    Detail,
}
