//! Serving and the drain.

use super::{Application, Services};
use crate::db::Store;
use crate::grpc::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use crate::grpc::{AccountGrpc, AuthGrpc, ExtAuthzGrpc, MetricsLayer, pb};
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

/// How often readiness (gRPC health) re-checks the database.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long in-flight calls get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

impl Application {
    /// Serves until `shutdown` completes. Then, for Kubernetes and load balancers: gRPC health
    /// and `/readyz` say NOT_SERVING at once while both ports keep serving for the shutdown
    /// grace, so traffic moves away before anything is refused; then the listeners close,
    /// in-flight calls finish, and the mail worker stops after its current round (mails still
    /// queued are sent after the next start).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Shutdown goes in three stages, one token each: `draining` (readiness says NOT_SERVING
        // while both ports still serve), `stopping` (the listeners close and the workers finish
        // their round), and last `audit_stop` (the audit writer, once the calls' rows are in).
        let draining = CancellationToken::new();
        let stopping = CancellationToken::new();
        let audit_stop = CancellationToken::new();

        let (health, health_service) = tonic_health::server::health_reporter();
        // Both names answer before the first call is accepted.
        let status = database_health(&self.store).await;
        report_health(&health, status).await;
        let health_task = tokio::spawn(watch_health(
            self.store.clone(),
            health,
            status,
            draining.clone(),
        ));
        let reflection = || {
            crate::grpc::REFLECTED_DESCRIPTOR_SETS.iter().fold(
                tonic_reflection::server::Builder::configure(),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let grpc_addr = self.grpc_addr();
        let http_addr = self.http_addr();
        let Services {
            auth,
            account,
            account_tokens,
            ext_authz,
        } = self.services;
        let auth = pb::auth_service_server::AuthServiceServer::new(auth);
        // Envoy's external authorization: the Introspect check for each request a proxy sees.
        let ext_authz = AuthorizationServer::new(ext_authz);
        // Only AccountService needs a caller token. Its layer sits inside the metrics layer, so
        // refused calls are counted (UNAUTHENTICATED) like any other answer.
        let account = tower::Layer::layer(
            &account_tokens.into_layer(),
            pb::account_service_server::AccountServiceServer::new(account),
        );

        let grpc = tonic::transport::Server::builder()
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            .layer(MetricsLayer::new(Arc::clone(&self.metrics)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(crate::grpc::codec::FramingErrors::new(auth))
            .add_service(crate::grpc::codec::FramingErrors::new(account))
            .add_service(crate::grpc::codec::FramingErrors::new(ext_authz));
        let grpc_stopped = stopping.clone().cancelled_owned();
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
                draining.clone(),
            ),
        )
        .with_graceful_shutdown(stopping.clone().cancelled_owned());
        let http_task = tokio::spawn(async move { http.await });
        let mut workers = JoinSet::new();
        workers.spawn(self.outbox.run(stopping.clone()));
        workers.spawn(self.cleanup.run(stopping.clone()));
        workers.spawn(self.key_reloader.run(stopping.clone()));
        // Ends every WatchRevocations stream when the listeners close, so none holds the drain.
        workers.spawn(self.revocation_poller.run(stopping.clone()));
        // The audit writer stops only after the calls have finished, so their rows are written.
        let audit_task = tokio::spawn(self.audit_writer.run(audit_stop.clone()));
        tracing::info!(%grpc_addr, %http_addr, database = self.store.backend_name(), "authd serving");

        shutdown.await;
        draining.cancel();
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
        stopping.cancel();
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
            self.background.finish().await;
            while let Some(finished) = workers.join_next().await {
                if let Err(err) = finished {
                    tracing::warn!(error = %err, "a background worker ended abnormally");
                }
            }
            audit_stop.cancel();
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
    draining: CancellationToken,
) -> tonic_health::server::HealthReporter {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = draining.cancelled() => {}
        }
        if draining.is_cancelled() {
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
