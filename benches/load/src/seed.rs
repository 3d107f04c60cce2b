//! Fills an authd database quickly through authd's own store (not through the RPCs): `n` users
//! who all have the harness's password, and a live session each with a refresh token, written
//! in transactions of `BATCH` users. `authd-load seed` runs it alone; the scale phase runs it
//! before it starts authd on the database.
//!
//! Every user shares one password hash, made with the settings `authd serve` has by default,
//! so that Login verifies it at the real cost and finds nothing to upgrade. Benchmark data
//! only: real users never share a salt. The refresh tokens are random and not kept.

use crate::PASSWORD;
use anyhow::Context;
use authd::commands::import::queries::BulkUser;
use authd::crypto::password::PasswordHasher;
use authd::crypto::token::IssuedToken;
use authd::db::{Store, StoreOptions};
use authd::domain::{DisplayName, Email, Password, SessionId, UserId};
use authd::sessions::queries::NewSession;
use std::time::{Duration, Instant};

/// Users per transaction.
const BATCH: usize = 10_000;

/// Seeded user `i`'s email.
pub fn email(i: usize) -> String {
    format!("scale{i}@bench.example")
}

/// What seeding took.
pub struct Seeded {
    pub users: usize,
    pub elapsed: Duration,
}

impl Seeded {
    /// `N users and sessions in S s (R users/s)`.
    pub fn summary(&self) -> String {
        format!(
            "{} users and sessions in {:.1} s ({:.0} users/s)",
            self.users,
            self.elapsed.as_secs_f64(),
            self.users as f64 / self.elapsed.as_secs_f64()
        )
    }
}

/// Migrates the database at `database_url` and adds `users` users, numbered from 0, with a
/// session each. The database must not hold seeded users yet.
pub async fn seed(database_url: &str, users: usize, progress: bool) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let store = Store::connect(&StoreOptions {
        url: database_url.to_owned().into(),
        max_connections: 2,
        timeout: Duration::from_secs(30),
    })
    .await
    .context("connect to the database")?;
    store.migrate().await.context("migrate")?;
    // Seeding sends no mail; `serve` refuses to start without somewhere to send it.
    let loaded =
        authd::config::parse_args(["authd", "serve", "--mail-to-log", "true"]).map_err(|err| {
            match err {
                authd::config::CliError::Usage(err) => anyhow::anyhow!("{err}"),
                authd::config::CliError::Invalid(err) => anyhow::anyhow!("{err}"),
            }
        })?;
    let settings = match loaded.cli.command {
        authd::config::Command::Serve(settings) => settings,
        _ => anyhow::bail!("`authd serve` parsed as another command"),
    };
    let hasher = PasswordHasher::new(&settings.password.hash_params())?;
    let password = Password::parse_attempt("password", PASSWORD)
        .map_err(|_| anyhow::anyhow!("the harness's password is refused"))?;
    let hash = hasher.hash(&password).await?;
    let name = DisplayName::parse("name", "Seeded").map_err(|v| anyhow::anyhow!("{v:?}"))?;
    let now = chrono::Utc::now();
    let expires_at = now + chrono::Duration::days(7);

    let mut done = 0;
    while done < users {
        let end = (done + BATCH).min(users);
        let mut batch = Vec::with_capacity(end - done);
        for i in done..end {
            batch.push(BulkUser {
                id: UserId::new(),
                email: Email::parse("email", &email(i)).map_err(|v| anyhow::anyhow!("{v:?}"))?,
                name: name.clone(),
                password_hash: hash.clone(),
                email_verified: true,
                created_at: now,
                ext_id: None,
            });
        }
        store.insert_users(&batch).await.context("insert users")?;
        let sessions = batch
            .iter()
            .map(|u| {
                let session = NewSession {
                    id: SessionId::new(),
                    user_id: u.id,
                    now,
                    expires_at,
                    user_agent: "authd-load seed".into(),
                    ip: "127.0.0.1".into(),
                    client_id: settings.default_client_id.as_str().to_owned(),
                    amr: Default::default(),
                };
                Ok((session, IssuedToken::generate()?.digest))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store
            .insert_sessions(&sessions)
            .await
            .context("insert sessions")?;
        done = end;
        if progress && (done % 100_000 == 0 || done == users) {
            eprintln!(
                "authd-load seed: {done} of {users} users ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    store.close().await;
    Ok(Seeded {
        users,
        elapsed: started.elapsed(),
    })
}
