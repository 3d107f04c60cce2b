//! The settings of `authd import`: where the users come from (an existing app's PostgreSQL
//! table or a JSON Lines file), which columns hold what, and authd's own database as target.

use super::database::DatabaseSettings;
use super::password::HashCostSettings;
use clap::{Args, ValueEnum};
use secrecy::SecretString;
use std::path::PathBuf;

/// `authd import`: one source, the column names (or a preset that fills them), the target.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from_db", "from_jsonl"])))]
pub struct ImportArgs {
    /// authd's own database, as `serve` has it (migrated first, like `serve` does).
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The hash cost `serve` is configured with (the same settings): a row whose hash would cost
    /// more to check than a login allows is skipped.
    #[command(flatten)]
    pub hash_cost: HashCostSettings,
    /// The existing app's PostgreSQL database (`postgres://…`), read only: one read-only
    /// transaction, rows in primary-key order through a cursor.
    #[arg(long, env = "AUTHD_FROM_DB", hide_env_values = true)]
    pub from_db: Option<SecretString>,
    /// A JSON Lines file instead: one object per line with `id`, `email`, `password_hash`,
    /// `name` and `email_verified`.
    #[arg(long, env = "AUTHD_FROM_JSONL", conflicts_with = "from_db")]
    pub from_jsonl: Option<PathBuf>,
    /// Table and column names of a known schema; the flags below override single names.
    #[arg(long, env = "AUTHD_PRESET")]
    pub preset: Option<Preset>,
    /// The table of users (`schema.table` allowed). Names are matched exactly as written
    /// (they are quoted), so `User` is Prisma's table, not `user`.
    #[arg(long, env = "AUTHD_TABLE")]
    pub table: Option<String>,
    /// The column of email addresses.
    #[arg(long, env = "AUTHD_EMAIL_COLUMN")]
    pub email_column: Option<String>,
    /// The column of password hashes (bcrypt `$2a$`/`$2b$`/`$2y$`, or argon2id).
    #[arg(long, env = "AUTHD_HASH_COLUMN")]
    pub hash_column: Option<String>,
    /// The column of display names; without it, or where it is empty, the email's local part.
    #[arg(long, env = "AUTHD_NAME_COLUMN")]
    pub name_column: Option<String>,
    /// The column that says whether the email is verified (a boolean, or a timestamp that is
    /// set once verified); without it, --assume-verified decides.
    #[arg(long, env = "AUTHD_VERIFIED_COLUMN")]
    pub verified_column: Option<String>,
    /// The primary key, kept as the user's `ext_id` and the order rows are read in
    /// [default: id].
    #[arg(long, env = "AUTHD_ID_COLUMN")]
    pub id_column: Option<String>,
    /// Users whose source says nothing of verification (no verified column or field, or NULL)
    /// are imported as verified. Without it they are unverified and must verify their email
    /// before they can log in (while AUTHD_REQUIRE_VERIFIED_EMAIL is on).
    #[arg(long, env = "AUTHD_ASSUME_VERIFIED", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = super::values::parse_bool)]
    pub assume_verified: bool,
    /// Check and count everything against authd's database, then roll back: nothing written.
    #[arg(long, env = "AUTHD_DRY_RUN", default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = super::values::parse_bool)]
    pub dry_run: bool,
    /// Rows per transaction.
    #[arg(long, env = "AUTHD_BATCH_SIZE", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
}

/// Table and column names of the schemas in the two seed apps' documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Drizzle: `users(id bigserial, email, name, password_hash, email_verified, …)`.
    DrizzleSeed,
    /// Prisma: `"User"(id uuid, email, name?, password, …)`; it has no verified column.
    PrismaSeed,
}
