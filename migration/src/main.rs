//! Standalone migration tool (`cargo run -p migration --features cli -- status`); `authd migrate`
//! applies pending migrations from the service binary.
//!
//! The database is the one authd itself would use: `-u`/`--database-url` or `DATABASE_URL` as
//! sea-orm's tool reads them, else `AUTHD_DATABASE_URL`, else authd's default SQLite file.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{Database, DbErr};

/// authd's default database (`authd serve` with nothing set).
const AUTHD_DEFAULT_URL: &str = "sqlite://authd.db?mode=rwc";

#[tokio::main]
async fn main() {
    let named_on_command_line = std::env::args().any(|arg| {
        arg == "-u"
            || arg.starts_with("-u=")
            || arg == "--database-url"
            || arg.starts_with("--database-url=")
    });
    if named_on_command_line || std::env::var_os("DATABASE_URL").is_some() {
        cli::run_cli(migration::Migrator).await;
        return;
    }
    let url = std::env::var("AUTHD_DATABASE_URL").unwrap_or_else(|_| AUTHD_DEFAULT_URL.to_owned());
    cli::run_cli_with_custom_connection(migration::Migrator, async || -> Result<_, DbErr> {
        Database::connect(url.as_str()).await
    })
    .await;
}
