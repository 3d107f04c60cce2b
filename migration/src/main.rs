//! Standalone migration tool (`cargo run -p migration --features cli -- up`); `authd migrate` does
//! the same from the service binary.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
