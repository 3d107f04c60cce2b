//! The composition root: `build` wires authd from its settings (database, keys, features, the
//! gRPC and HTTP servers, the background workers) and binds the ports; `run` serves until
//! shutdown and drains. Nothing below `app` imports it.

mod build;
mod run;

use crate::accounts::Background;
use crate::audit::AuditWriter;
use crate::cleanup::CleanupJob;
use crate::config::DatabaseSettings;
use crate::crypto::keys::KeyRing;
use crate::db::{Store, connect};
use crate::grpc::tls::GrpcTls;
use crate::grpc::{AccountGrpc, AuthGrpc, ExtAuthzGrpc, SessionTokens};
use crate::keys::KeyReloader;
use crate::mail::OutboxWorker;
use crate::metrics::Metrics;
use crate::revocations::RevocationPoller;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use run::shutdown_signal;

/// A built, not yet running, authd.
pub struct Application {
    store: Store,
    /// The gRPC services, wired to the features.
    services: Services,
    /// Work still running after its call was answered, finished before the database closes.
    background: Background,
    keys: Arc<KeyRing>,
    key_reloader: KeyReloader,
    /// How long the HTTP JWK Set may be cached (shorter than the publish lead).
    jwks_max_age: Duration,
    metrics: Arc<Metrics>,
    outbox: OutboxWorker,
    audit_writer: AuditWriter,
    cleanup: CleanupJob,
    revocation_poller: RevocationPoller,
    grpc_listener: TcpListener,
    /// TLS for the gRPC port, when configured.
    grpc_tls: Option<GrpcTls>,
    http_listener: TcpListener,
    /// Time between readiness going NOT_SERVING and the listeners closing.
    shutdown_grace: Duration,
    /// The `iss` claim, named by the discovery documents.
    issuer: String,
}

/// The gRPC services `build` wires to the features, ready to serve.
struct Services {
    auth: AuthGrpc,
    account: AccountGrpc,
    account_tokens: SessionTokens,
    ext_authz: ExtAuthzGrpc,
}

impl Application {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// `authd migrate`.
pub async fn migrate(database: &DatabaseSettings) -> anyhow::Result<()> {
    let store = connect(database).await?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    tracing::info!(database = store.backend_name(), "migrations applied");
    store.close().await;
    Ok(())
}
