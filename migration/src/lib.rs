//! authd's database schema, as an ordered list of migrations. Each migration declares its own
//! identifiers and never imports the application's entities, so history stays frozen when the
//! entities change.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261201_000002_throttles_and_audit;
mod m20261202_000003_session_client_id;
mod m20261203_000004_revocations;
mod m20261204_000005_key_life_cycle;
mod m20261205_000006_second_factor;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261201_000002_throttles_and_audit::Migration),
            Box::new(m20261202_000003_session_client_id::Migration),
            Box::new(m20261203_000004_revocations::Migration),
            Box::new(m20261204_000005_key_life_cycle::Migration),
            Box::new(m20261205_000006_second_factor::Migration),
        ]
    }
}
