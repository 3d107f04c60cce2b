//! The audit trail: one structured log line (target `authd::audit`) and one `audit_events` row
//! per security event, with user, session, client address and user agent, never a secret.
//!
//! Rows are written by a background writer in batches, fed through a bounded queue: a flood of
//! events (throttled guesses, say) costs the callers nothing and cannot grow memory; when the
//! queue is full the row is dropped and counted, and the log line is still written.

pub mod queries;

use crate::db::Store;
use crate::domain::{ClientInfo, SessionId, UserId};
use crate::metrics::Metrics;
use queries::NewAuditEvent;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Rows waiting to be written, at most.
const QUEUE: usize = 4096;
/// Rows per insert, at most.
const BATCH: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Signup,
    LoginSucceeded,
    LoginFailed,
    Throttled,
    Refreshed,
    RefreshReuse,
    Logout,
    LogoutAll,
    EmailVerified,
    VerificationRequested,
    PasswordResetRequested,
    PasswordReset,
    ProfileUpdated,
    PasswordChanged,
    PasswordChangeFailed,
    SessionRevoked,
    MfaRequired,
    MfaSucceeded,
    MfaFailed,
    TotpEnabled,
    TotpDisabled,
    RecoveryCodesRegenerated,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::Throttled => "throttled",
            Self::Refreshed => "refreshed",
            Self::RefreshReuse => "refresh_reuse_detected",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::EmailVerified => "email_verified",
            Self::VerificationRequested => "verification_requested",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::ProfileUpdated => "profile_updated",
            Self::PasswordChanged => "password_changed",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::SessionRevoked => "session_revoked",
            Self::MfaRequired => "mfa_required",
            Self::MfaSucceeded => "mfa_succeeded",
            Self::MfaFailed => "mfa_failed",
            Self::TotpEnabled => "totp_enabled",
            Self::TotpDisabled => "totp_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
        }
    }
}

/// One event, filled in as far as the use case knows it.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    kind: AuditKind,
    user_id: Option<UserId>,
    session_id: Option<SessionId>,
    client: ClientInfo,
    detail: &'static str,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, client: &ClientInfo) -> Self {
        Self {
            kind,
            user_id: None,
            session_id: None,
            client: client.clone(),
            detail: "",
        }
    }

    pub fn user(mut self, id: UserId) -> Self {
        self.user_id = Some(id);
        self
    }

    pub fn session(mut self, id: SessionId) -> Self {
        self.session_id = Some(id);
        self
    }

    /// A short fixed note (what was throttled, why a login failed); never caller input.
    pub fn detail(mut self, detail: &'static str) -> Self {
        self.detail = detail;
        self
    }
}

/// Where use cases send events.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<NewAuditEvent>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// The log and the writer that stores its rows (run it with `AuditWriter::run`).
    pub fn new(store: Store, metrics: Arc<Metrics>) -> (Self, AuditWriter) {
        let (queue, rows) = mpsc::channel(QUEUE);
        (
            Self {
                queue,
                metrics: Arc::clone(&metrics),
            },
            AuditWriter {
                store,
                rows,
                metrics,
            },
        )
    }

    pub fn record(&self, event: AuditEvent) {
        let user_id = event.user_id.map(|id| id.0);
        let session_id = event.session_id.map(|id| id.0);
        tracing::info!(
            target: "authd::audit",
            event = event.kind.as_str(),
            user_id = user_id.map(tracing::field::display),
            session_id = session_id.map(tracing::field::display),
            ip = %event.client.ip,
            user_agent = %event.client.user_agent,
            detail = event.detail,
            "audit"
        );
        let row = NewAuditEvent {
            at: chrono::Utc::now(),
            kind: event.kind.as_str(),
            user_id,
            session_id,
            ip: event.client.ip,
            user_agent: event.client.user_agent,
            detail: event.detail.to_owned(),
        };
        if self.queue.try_send(row).is_err() {
            self.metrics.audit_dropped();
        }
    }
}

/// Writes queued audit rows in batches.
pub struct AuditWriter {
    store: Store,
    rows: mpsc::Receiver<NewAuditEvent>,
    metrics: Arc<Metrics>,
}

impl AuditWriter {
    /// Runs until `shutdown`, then writes what is still queued and stops.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let stopping = tokio::select! {
                n = self.rows.recv_many(&mut batch, BATCH) => n == 0,
                _ = shutdown.cancelled() => true,
            };
            if stopping {
                break;
            }
            self.write(&mut batch).await;
        }
        // What was queued before the stop is still written.
        self.rows.close();
        while self.rows.recv_many(&mut batch, BATCH).await > 0 {
            self.write(&mut batch).await;
        }
    }

    async fn write(&self, batch: &mut Vec<NewAuditEvent>) {
        let rows = std::mem::take(batch);
        let n = rows.len();
        if let Err(err) = self.store.insert_audit_events(rows).await {
            tracing::warn!(error = %err, rows = n, "could not write audit rows; they are in the log");
            for _ in 0..n {
                self.metrics.audit_dropped();
            }
        }
    }
}
