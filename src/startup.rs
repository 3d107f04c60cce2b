//! Builds authd from its settings: database, keys, use cases, gRPC and HTTP servers, mail worker.
//! `Application::build` binds the ports and returns before serving, so callers (and tests, which
//! bind port 0) learn the real addresses first.

use crate::config::{DatabaseSettings, HashAlgorithm, Settings, SettingsError, redact, scrub};
use crate::crypto::jwt::AccessTokens;
use crate::crypto::keys::KeyRing;
use crate::crypto::password::PasswordHasher;
use crate::domain::PasswordPolicy;
use crate::grpc::client_auth::{self, ClientAuth};
use crate::grpc::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use crate::grpc::tls::GrpcTls;
use crate::grpc::{
    AccountGrpc, AuthGrpc, ExtAuthzGrpc, MetricsLayer, SessionTokens, TrustedProxies, pb,
};
use crate::mail::{MailComposer, OutboxWorker, Transport};
use crate::metrics::Metrics;
use crate::service::{
    AuditLog, AuditWriter, AuthService, CleanupJob, KeyManager, KeyPolicy, KeyReloader, Policy,
    RevocationFeed, RevocationPoller, Throttle, ThrottleLimits,
};
use crate::store::{Store, StoreOptions};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

/// How often readiness (gRPC health) re-checks the database.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long in-flight calls get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A built, not yet running, authd.
pub struct Application {
    store: Store,
    service: Arc<AuthService>,
    proxies: TrustedProxies,
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
    introspect_callers: Arc<ClientAuth>,
    http_listener: TcpListener,
    /// Time between readiness going NOT_SERVING and the listeners closing.
    shutdown_grace: Duration,
    /// The `iss` claim, named by the discovery documents.
    issuer: String,
}

impl Application {
    /// Everything that can be checked without the database is, first: a bad setting fails with
    /// a `SettingsError` before any connection, port or key exists.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        let bad_setting = |err: anyhow::Error| SettingsError::new(format!("{err:#}"));
        let proxies =
            TrustedProxies::parse(&settings.throttle.trusted_proxies).map_err(bad_setting)?;
        let grpc_tls = GrpcTls::from_settings(&settings.tls).map_err(bad_setting)?;
        let introspect_callers = Arc::new(
            ClientAuth::from_settings(
                &settings.introspect,
                grpc_tls.as_ref().is_some_and(GrpcTls::is_mutual),
            )
            .map_err(bad_setting)?,
        );
        let hasher = PasswordHasher::new(&settings.password.hash_params()).map_err(bad_setting)?;
        let mails = MailComposer::new(&settings.app_url).map_err(bad_setting)?;
        let transport = Transport::from_settings(settings.smtp_url.as_ref(), settings.mail_to_log)?;
        let sealer = settings.keys.sealer()?;
        // The same key, for the TOTP secrets the use cases seal.
        let totp_sealer = settings.keys.sealer()?;
        for warning in settings.warnings() {
            tracing::warn!("{warning}");
        }
        for warning in client_auth::exposure_warnings(
            settings.grpc_addr,
            &introspect_callers,
            grpc_tls.is_some(),
        ) {
            tracing::warn!("{warning}");
        }
        let store = connect(&settings.database).await?;
        if settings.no_migrate {
            let pending = store
                .pending_migrations()
                .await
                .context("reading which migrations the database has")?;
            if !pending.is_empty() {
                store.close().await;
                anyhow::bail!(
                    "the database lacks {} of authd's migrations (first missing: {}); run \
                     `authd migrate` against it, or start without AUTHD_NO_MIGRATE",
                    pending.len(),
                    pending.first().map(String::as_str).unwrap_or_default()
                );
            }
        } else {
            store
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        let key_manager =
            Arc::new(KeyManager::start(store.clone(), key_policy(&settings), sealer).await?);
        key_manager.explain();
        let keys = key_manager.ring();
        let key_reloader = KeyReloader {
            keys: key_manager,
            interval: settings.keys.key_reload_interval,
        };
        let mut metrics = Metrics::new(&crate::grpc::DESCRIPTOR_SETS)
            .context("reading the gRPC descriptors for the metrics")?;
        metrics.count_db_statements(store.statement_counts());
        let metrics = Arc::new(metrics);
        let tokens = AccessTokens::new(
            Arc::clone(&keys),
            settings.issuer(),
            settings.audience.clone(),
            settings.access_ttl,
        );
        let policy = Policy {
            refresh_ttl: settings.refresh_ttl,
            session_max_lifetime: settings.session_max_lifetime,
            signup_enumeration_protection: settings.signup_enumeration_protection,
            verify_ttl: settings.verify_ttl,
            reset_ttl: settings.reset_ttl,
            mfa_token_ttl: settings.mfa_token_ttl,
            totp_issuer: settings.totp_issuer.clone(),
            require_verified_email: settings.require_verified_email,
            refresh_reuse_grace: settings.refresh_reuse_grace,
            password: PasswordPolicy {
                min_chars: usize::from(settings.password.min_length),
                max_bytes: (settings.password.algorithm == HashAlgorithm::Bcrypt).then_some(72),
                service_name: settings.password.service_name.clone(),
            },
            default_client_id: settings.default_client_id.clone(),
        };
        let (audit, audit_writer) = AuditLog::new(store.clone(), Arc::clone(&metrics));
        let (revocations, revocation_poller) = RevocationFeed::start(store.clone())
            .await
            .context("reading the latest revocation")?;
        let service = Arc::new(AuthService {
            store: store.clone(),
            hasher,
            tokens,
            keys: Arc::clone(&keys),
            mails,
            throttle: Throttle::new(store.clone(), ThrottleLimits::from(&settings.throttle)),
            audit,
            policy,
            background: AuthService::background_permits(),
            revocations,
            sealer: totp_sealer,
        });
        let cleanup = CleanupJob {
            store: store.clone(),
            interval: settings.cleanup_interval,
            audit_retention: settings.audit_retention,
            access_ttl: settings.access_ttl,
        };
        let outbox = OutboxWorker::new(
            store.clone(),
            transport,
            &settings.mail_from,
            Arc::clone(&metrics),
        )?;
        let grpc_listener = TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC address {}", settings.grpc_addr))?;
        let http_listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("binding the HTTP address {}", settings.http_addr))?;
        Ok(Self {
            store,
            service,
            proxies,
            keys,
            key_reloader,
            jwks_max_age: crate::crypto::keys::jwks_max_age(settings.keys.key_publish_lead),
            metrics,
            outbox,
            audit_writer,
            cleanup,
            revocation_poller,
            grpc_listener,
            grpc_tls,
            introspect_callers,
            http_listener,
            shutdown_grace: settings.shutdown_grace,
            issuer: settings.issuer(),
        })
    }

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

    /// Serves until `shutdown` completes. Then, for Kubernetes and load balancers: gRPC health
    /// and `/readyz` say NOT_SERVING at once while both ports keep serving for the shutdown
    /// grace, so traffic moves away before anything is refused; then the listeners close,
    /// in-flight calls finish, and the mail worker stops after its current round (mails still
    /// queued are sent after the next start).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (draining_tx, draining_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        // Both names answer before the first call is accepted.
        let status = database_health(&self.store).await;
        report_health(&health, status).await;
        let health_task = tokio::spawn(watch_health(
            self.store.clone(),
            health,
            status,
            draining_rx.clone(),
        ));
        let reflection = || {
            crate::grpc::REFLECTED_DESCRIPTOR_SETS.iter().fold(
                tonic_reflection::server::Builder::configure(),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let auth = pb::auth_service_server::AuthServiceServer::new(AuthGrpc::new(
            Arc::clone(&self.service),
            self.proxies.clone(),
            Arc::clone(&self.introspect_callers),
        ));
        // Envoy's external authorization: the Introspect check for each request a proxy sees.
        let ext_authz = AuthorizationServer::new(ExtAuthzGrpc::new(
            Arc::clone(&self.service),
            Arc::clone(&self.introspect_callers),
        ));
        // Only AccountService needs a caller token. Its layer sits inside the metrics layer, so
        // refused calls are counted (UNAUTHENTICATED) like any other answer.
        let account = tower::Layer::layer(
            &SessionTokens::layer(Arc::clone(&self.service)),
            pb::account_service_server::AccountServiceServer::new(AccountGrpc::new(
                Arc::clone(&self.service),
                self.proxies.clone(),
            )),
        );

        let grpc_addr = self.grpc_addr();
        let http_addr = self.http_addr();
        let grpc = tonic::transport::Server::builder()
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            .layer(MetricsLayer::new(Arc::clone(&self.metrics)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(crate::grpc::codec::FramingErrors::new(auth))
            .add_service(crate::grpc::codec::FramingErrors::new(account))
            .add_service(crate::grpc::codec::FramingErrors::new(ext_authz));
        let grpc_stopped = stopped(stop_rx.clone());
        let grpc_task = match self.grpc_tls {
            // Serving from a listener stream bypasses tonic's own TCP_NODELAY setting: without
            // it a two-part response waits for the client's delayed ACK (about 40 ms).
            None => tokio::spawn(grpc.serve_with_incoming_shutdown(
                TcpListenerStream::new(self.grpc_listener).map(|accepted| {
                    accepted.inspect(|stream| {
                        let _ = stream.set_nodelay(true);
                    })
                }),
                grpc_stopped,
            )),
            Some(tls) => tokio::spawn(
                grpc.serve_with_incoming_shutdown(tls.incoming(self.grpc_listener), grpc_stopped),
            ),
        };
        let http = axum::serve(
            self.http_listener,
            crate::http::router(
                Arc::clone(&self.keys),
                self.jwks_max_age,
                self.store.clone(),
                Arc::clone(&self.metrics),
                &self.issuer,
                draining_rx,
            ),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()));
        let http_task = tokio::spawn(async move { http.await });
        let outbox_task = tokio::spawn(self.outbox.run(stop_rx.clone()));
        let cleanup_task = tokio::spawn(self.cleanup.run(stop_rx.clone()));
        let key_task = tokio::spawn(self.key_reloader.run(stop_rx.clone()));
        // Ends every WatchRevocations stream when the listeners close, so none holds the drain.
        let revocation_task = tokio::spawn(self.revocation_poller.run(stop_rx.clone()));
        // The audit writer stops only after the calls have finished, so their rows are written.
        let (audit_stop_tx, audit_stop_rx) = watch::channel(false);
        let audit_task = tokio::spawn(self.audit_writer.run(audit_stop_rx));
        tracing::info!(%grpc_addr, %http_addr, database = self.store.backend_name(), "authd serving");

        shutdown.await;
        let _ = draining_tx.send(true);
        // The health task reports NOT_SERVING and hands the reporter back: only then does the
        // grace start.
        let health = health_task.await.ok();
        if !self.shutdown_grace.is_zero() {
            tracing::info!(
                grace_secs = self.shutdown_grace.as_secs_f64(),
                "shutting down: readiness is NOT_SERVING; still serving during the grace"
            );
            tokio::time::sleep(self.shutdown_grace).await;
        }
        tracing::info!("shutting down: listeners closed, finishing in-flight calls");
        let _ = stop_tx.send(true);
        // Health Watch streams never end by themselves; forgetting the statuses ends them, so
        // their connections do not hold the drain open.
        if let Some(mut health) = health {
            for name in HEALTH_NAMES {
                health.clear_service_status(name).await;
            }
        }
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let grpc = grpc_task.await;
            let http = http_task.await;
            self.service.finish_background().await;
            let _ = outbox_task.await;
            let _ = cleanup_task.await;
            let _ = key_task.await;
            let _ = revocation_task.await;
            let _ = audit_stop_tx.send(true);
            let _ = audit_task.await;
            (grpc, http)
        })
        .await;
        self.store.close().await;
        match drained {
            Ok((grpc, http)) => {
                grpc.context("gRPC server task")?.context("gRPC server")?;
                http.context("HTTP server task")?.context("HTTP server")?;
                tracing::info!("stopped");
            }
            Err(_) => tracing::warn!("calls still running after {DRAIN_TIMEOUT:?}; stopped anyway"),
        }
        Ok(())
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

/// Connects; the error names the database without its password, and drivers that quote the
/// URL in their messages have the password cut out.
pub(crate) async fn connect(database: &DatabaseSettings) -> anyhow::Result<Store> {
    let url = database.url();
    let options = StoreOptions {
        url: url.clone(),
        max_connections: database.max_connections,
        timeout: database.timeout,
    };
    Store::connect(&options).await.map_err(|err| {
        let cause = scrub(
            &crate::telemetry::error_chain(&anyhow::Error::from(err)),
            &url,
        );
        anyhow::anyhow!("connecting to the database {}: {cause}", redact(&url))
    })
}

/// The key life cycle's settings, as `serve` and `authd keys` both read them.
pub fn key_policy_of(keys: &crate::config::KeySettings, access_ttl: Duration) -> KeyPolicy {
    KeyPolicy {
        algorithm: keys.signing_alg,
        publish_lead: keys.key_publish_lead,
        rotation_interval: keys.key_rotation_interval,
        access_ttl,
    }
}

fn key_policy(settings: &Settings) -> KeyPolicy {
    key_policy_of(&settings.keys, settings.access_ttl)
}

/// The service names gRPC health answers for.
const HEALTH_NAMES: [&str; 4] = [
    "",
    <pb::auth_service_server::AuthServiceServer<AuthGrpc> as tonic::server::NamedService>::NAME,
    <pb::account_service_server::AccountServiceServer<AccountGrpc> as tonic::server::NamedService>::NAME,
    <AuthorizationServer<ExtAuthzGrpc> as tonic::server::NamedService>::NAME,
];

/// SERVING while the database answers.
async fn database_health(store: &Store) -> ServingStatus {
    if store.ping().await {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn report_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Keeps gRPC health in step with the database, starting from the status already reported,
/// until draining starts: then it reports NOT_SERVING for good and returns the reporter.
async fn watch_health(
    store: Store,
    health: tonic_health::server::HealthReporter,
    mut last: ServingStatus,
    mut draining: watch::Receiver<bool>,
) -> tonic_health::server::HealthReporter {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = draining.changed() => {}
        }
        if *draining.borrow() {
            report_health(&health, ServingStatus::NotServing).await;
            return health;
        }
        let status = database_health(&store).await;
        if status != last {
            tracing::warn!(?status, "database reachability changed");
            report_health(&health, status).await;
            last = status;
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
