//! A second factor (TOTP with recovery codes), and users moved in from another app.
//!
//! - `totp_factors`: at most one authenticator per user. `secret` is the RFC 6238 key, sealed
//!   when `sealed_with` names the key-encryption key (AUTHD_KEY_ENCRYPTION_KEY) that sealed it,
//!   in the clear otherwise. Unconfirmed until the user has entered a code from it
//!   (`confirmed_at`); `last_step` is the newest time step spent, so no code is accepted twice.
//! - `recovery_codes`: single-use codes, stored only as SHA-256 digests.
//! - `mfa_challenges`: the short-lived token Login hands out instead of tokens when a second
//!   factor is needed, stored only as a digest, with the wrong codes tried against it.
//! - `users.mfa_enabled`: whether login needs the second factor, set in the transaction that
//!   confirms or removes the user's TOTP factor, so a login reads it with the user row.
//! - `users.ext_id`: the user's id in the app they were imported from, unique when set.
//! - `sessions.amr`: how the session's login was authenticated (RFC 8176 values, space
//!   separated); NULL for sessions from before this migration, which were password logins.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .col(
                        ColumnDef::new(TotpFactors::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TotpFactors::Secret).blob().not_null())
                    .col(
                        ColumnDef::new(TotpFactors::SealedWith)
                            .string_len(32)
                            .null(),
                    )
                    .col(timestamp(TotpFactors::CreatedAt))
                    .col(
                        ColumnDef::new(TotpFactors::ConfirmedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(TotpFactors::LastStep).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_totp_factors_user")
                            .from(TotpFactors::Table, TotpFactors::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(RecoveryCodes::CodeHash).blob().not_null())
                    .col(timestamp(RecoveryCodes::CreatedAt))
                    .col(
                        ColumnDef::new(RecoveryCodes::UsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::CodeHash),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recovery_codes_user")
                            .from(RecoveryCodes::Table, RecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MfaChallenges::Table)
                    .col(
                        ColumnDef::new(MfaChallenges::TokenHash)
                            .blob()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MfaChallenges::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(MfaChallenges::ClientId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp(MfaChallenges::CreatedAt))
                    .col(timestamp(MfaChallenges::ExpiresAt))
                    .col(
                        ColumnDef::new(MfaChallenges::SpentAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mfa_challenges_user")
                            .from(MfaChallenges::Table, MfaChallenges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_mfa_challenges_user")
                    .table(MfaChallenges::Table)
                    .col(MfaChallenges::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_mfa_challenges_expires_at")
                    .table(MfaChallenges::Table)
                    .col(MfaChallenges::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::ExtId).string_len(255).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::MfaEnabled)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_ext_id")
                    .table(Users::Table)
                    .col(Users::ExtId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::Amr).string_len(32).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Amr)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_users_ext_id")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Users::MfaEnabled, Users::ExtId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            MfaChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpFactors::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn timestamp<T: IntoIden>(column: T) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    ExtId,
    MfaEnabled,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Amr,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    Secret,
    SealedWith,
    CreatedAt,
    ConfirmedAt,
    LastStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    ClientId,
    Attempts,
    CreatedAt,
    ExpiresAt,
    SpentAt,
}
