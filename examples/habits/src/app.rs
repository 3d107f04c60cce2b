//! Builds the habits service from its settings and runs it: the store, the token verifier
//! (local, revocation-aware local or remote mode), and one gRPC server with health and reflection open to anyone and
//! `habits.v1.Habits` behind `authd_verifier::AuthLayer`.
//!
//! `App::build` binds the port and returns before serving, so callers (and tests, which bind
//! port 0) learn the real address first.

use crate::grpc::HabitsGrpc;
use crate::pb;
use crate::settings::{AuthdSettings, Settings};
use crate::store::HabitStore;
use authd_verifier::{
    AuthLayer, Checks, JwksSource, LocalSettings, LocalVerifier, RemoteSettings, RemoteVerifier,
    Verify,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

/// How often health re-checks the database and the keys.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long in-flight calls get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request accepted: a habit is a few KiB at most.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The service names gRPC health answers for.
const HEALTH_NAMES: [&str; 2] = [
    "",
    <pb::habits_server::HabitsServer<HabitsGrpc> as tonic::server::NamedService>::NAME,
];

/// What can stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("opening the habits database: {0}")]
    Database(#[source] sea_orm::DbErr),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the token verifier: {0}")]
    Verifier(String),
    #[error("building gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built, not yet running, habits service.
pub struct App {
    store: HabitStore,
    listener: TcpListener,
    verifier: Arc<dyn Verify>,
    /// In local mode, the verifier whose keys health waits for.
    local: Option<LocalVerifier>,
    mode: &'static str,
    /// Where the keys or the answers come from, for the start-up log line.
    authd: String,
}

impl App {
    /// Opens the database (creating the table if missing), starts the verifier and binds the
    /// port. In local mode the JWKS is fetched in the background: calls get UNAVAILABLE, and
    /// health says NOT_SERVING, until the keys are there.
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let (verifier, local, mode, authd): (Arc<dyn Verify>, _, _, _) = match settings.authd {
            AuthdSettings::Local {
                jwks_url,
                issuer,
                audiences,
                revocations,
            } => {
                let mut local = LocalSettings::new(
                    JwksSource::Http(jwks_url.clone()),
                    Checks::new(issuer, audiences),
                );
                let mut mode = "local";
                let mut authd = jwks_url;
                if let Some(revocations) = revocations {
                    mode = "local, revocation-aware";
                    authd = format!("{authd} and {}", revocations.endpoint);
                    local = local.with_revocations(revocations);
                }
                let local = LocalVerifier::start(local);
                (Arc::new(local.clone()), Some(local), mode, authd)
            }
            AuthdSettings::Remote { endpoint, client } => {
                let remote = RemoteVerifier::new(RemoteSettings {
                    endpoint: endpoint.clone(),
                    client,
                    cache_ttl: Duration::ZERO,
                })
                .map_err(|err| AppError::Verifier(err.to_string()))?;
                (Arc::new(remote), None, "remote", endpoint)
            }
        };
        let store = HabitStore::open(&settings.database_url)
            .await
            .map_err(AppError::Database)?;
        let listener = TcpListener::bind(settings.addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: settings.addr,
                source,
            })?;
        Ok(Self {
            store,
            listener,
            verifier,
            local,
            mode,
            authd,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` completes; then health says NOT_SERVING, the listener closes and
    /// in-flight calls finish (for up to 10 s).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        let readiness = Readiness {
            store: self.store.clone(),
            local: self.local.clone(),
        };
        // Both names answer before the first call is accepted.
        let mut status = readiness.status().await;
        report(&health, status).await;

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let habits = pb::habits_server::HabitsServer::new(HabitsGrpc::new(self.store.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES);
        let addr = self.addr();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let server = tonic::transport::Server::builder()
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            .layer(AuthLayer::from_arc(self.verifier).allow_health_and_reflection())
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(habits)
            .serve_with_incoming_shutdown(TcpIncoming::from(self.listener), async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            });
        let server = tokio::spawn(server);
        tracing::info!(%addr, mode = self.mode, authd = %self.authd, "habits serving");

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                next = readiness.next_status(status) => {
                    status = next;
                    report(&health, status).await;
                }
            }
        }
        let mut health = health;
        report(&health, ServingStatus::NotServing).await;
        tracing::info!("shutting down: finishing in-flight calls");
        let _ = stop_tx.send(true);
        // Health Watch streams never end by themselves; forgetting the statuses ends them, so
        // their connections do not hold the drain open.
        for name in HEALTH_NAMES {
            health.clear_service_status(name).await;
        }
        let served = tokio::time::timeout(DRAIN_TIMEOUT, server).await;
        self.store.close().await;
        match served {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => tracing::error!(error = %join, "gRPC server task failed"),
            Err(_) => tracing::warn!("calls still running after {DRAIN_TIMEOUT:?}; stopped anyway"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// SERVING while the database answers and (in local mode) the keys are loaded.
struct Readiness {
    store: HabitStore,
    local: Option<LocalVerifier>,
}

impl Readiness {
    async fn status(&self) -> ServingStatus {
        let keys = match &self.local {
            Some(local) => local.ready(Duration::ZERO).await,
            None => true,
        };
        if keys && self.store.ping().await {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    }

    /// The next status different from `last`: as soon as missing keys arrive, otherwise
    /// re-checked every [`HEALTH_INTERVAL`].
    async fn next_status(&self, last: ServingStatus) -> ServingStatus {
        loop {
            match &self.local {
                Some(local) if !local.ready(Duration::ZERO).await => {
                    local.ready(HEALTH_INTERVAL).await;
                }
                _ => tokio::time::sleep(HEALTH_INTERVAL).await,
            }
            let status = self.status().await;
            if status != last {
                return status;
            }
        }
    }
}

async fn report(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
