//! Builds authd from its settings: database, keys, use cases, gRPC and HTTP servers, mail worker.
//! `Application::build` binds the ports and returns before serving, so callers (and tests, which
//! bind port 0) learn the real addresses first.

use super::{Application, Services};
use crate::accounts::{AccountPolicy, Accounts, Background};
use crate::audit::AuditLog;
use crate::cleanup::CleanupJob;
use crate::config::{HashAlgorithm, Settings, SettingsError, ThrottleSettings};
use crate::crypto::jwt::AccessTokens;
use crate::crypto::password::PasswordHasher;
use crate::db::{Store, connect};
use crate::domain::PasswordPolicy;
use crate::grpc::client_auth::{self, ClientAuth};
use crate::grpc::tls::GrpcTls;
use crate::grpc::{AccountGrpc, AuthGrpc, ExtAuthzGrpc, SessionTokens, TrustedProxies};
use crate::keys::{KeyManager, KeyReloader, key_policy_of};
use crate::mail::{MailComposer, OutboxWorker, Transport};
use crate::metrics::Metrics;
use crate::mfa::SecondFactors;
use crate::revocations::RevocationFeed;
use crate::sessions::{SessionPolicy, Sessions};
use crate::throttle::{Throttle, ThrottleLimits};
use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;

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
        let store = connect_and_migrate(&settings).await?;
        let key_manager = Arc::new(
            KeyManager::start(
                store.clone(),
                key_policy_of(&settings.keys, settings.access_ttl),
                sealer,
            )
            .await?,
        );
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
        let (audit, audit_writer) = AuditLog::new(store.clone(), Arc::clone(&metrics));
        let (revocations, revocation_poller) = RevocationFeed::start(store.clone())
            .await
            .context("reading the latest revocation")?;
        let throttle = Throttle::new(store.clone(), throttle_limits(&settings.throttle));
        let factors = Arc::new(SecondFactors::new(
            store.clone(),
            audit.clone(),
            totp_sealer,
            settings.mfa_token_ttl,
            settings.totp_issuer.clone(),
        ));
        let sessions = Arc::new(Sessions::new(
            store.clone(),
            hasher.clone(),
            Arc::new(tokens),
            throttle.clone(),
            audit.clone(),
            Arc::clone(&factors),
            session_policy(&settings),
        ));
        let background = Background::default();
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            hasher,
            mails,
            throttle,
            audit,
            factors,
            background.clone(),
            account_policy(&settings),
        ));
        let services = Services {
            auth: AuthGrpc::new(
                Arc::clone(&sessions),
                Arc::clone(&accounts),
                revocations,
                Arc::clone(&keys),
                proxies.clone(),
                Arc::clone(&introspect_callers),
            ),
            account: AccountGrpc::new(accounts, proxies),
            account_tokens: SessionTokens::new(Arc::clone(&sessions)),
            ext_authz: ExtAuthzGrpc::new(sessions, introspect_callers),
        };
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
            services,
            background,
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
            http_listener,
            shutdown_grace: settings.shutdown_grace,
            issuer: settings.issuer(),
        })
    }
}

/// The throttle's limits, as settings give them.
fn throttle_limits(s: &ThrottleSettings) -> ThrottleLimits {
    ThrottleLimits {
        client_account_failures: s.client_account_failures,
        account_failures: s.account_failures,
        account_max_failures: s.account_max_failures,
        account_mfa_failures: s.account_mfa_failures,
        client_failures: s.client_failures,
        account_mails: s.account_mails,
        client_mails: s.client_mails,
        client_signups: s.client_signups,
        max_delay: s.max_delay,
        forget_after: s.forget_after,
        known_client_for: s.known_client_for,
    }
}

fn session_policy(settings: &Settings) -> SessionPolicy {
    SessionPolicy {
        refresh_ttl: settings.refresh_ttl,
        session_max_lifetime: settings.session_max_lifetime,
        require_verified_email: settings.require_verified_email,
        refresh_reuse_grace: settings.refresh_reuse_grace,
        default_client_id: settings.default_client_id.clone(),
    }
}

fn account_policy(settings: &Settings) -> AccountPolicy {
    AccountPolicy {
        verify_ttl: settings.verify_ttl,
        reset_ttl: settings.reset_ttl,
        signup_enumeration_protection: settings.signup_enumeration_protection,
        password: PasswordPolicy {
            min_chars: usize::from(settings.password.min_length),
            max_bytes: (settings.password.algorithm == HashAlgorithm::Bcrypt).then_some(72),
            service_name: settings.password.service_name.clone(),
        },
        access_ttl: settings.access_ttl,
    }
}

/// Connects, then applies the pending migrations, or with `AUTHD_NO_MIGRATE` refuses a database
/// that lacks any.
async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<Store> {
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
    Ok(store)
}
