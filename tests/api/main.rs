//! authd's integration tests: one binary that starts the real server on 127.0.0.1:0 and talks
//! to it over TCP with the generated gRPC client, a real SMTP server and the HTTP side port.
//!
//! The database is a fresh SQLite file per test, or with `AUTHD_TEST_DATABASE=postgres` a fresh
//! PostgreSQL database per test (on `AUTHD_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). `scripts/test` runs the suite on both.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod authd_process;
mod helpers;
mod smtp;

mod abuse;
mod account;
mod bad_input;
mod bulk;
mod client_id;
mod discovery;
mod ext_authz;
mod flows;
mod habits;
mod healthcheck;
mod import;
mod keys;
mod mail;
mod memory;
mod metrics;
mod mfa;
mod outage;
mod passwords;
mod races;
mod refresh;
mod revocations;
mod server;
mod settings;
mod shutdown;
mod statements;
mod throttle;
mod tls;
mod tokens;
mod verifier;
mod verifier_jwks;
mod verifier_layer;
mod verifier_revocations;
