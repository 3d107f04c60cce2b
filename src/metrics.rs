//! Counters for `/metrics`, in Prometheus text format. Small and dependency-free: a few counters
//! and one latency histogram per gRPC method, behind a mutex taken once per request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The gRPC methods that get their own label. Anything else, including unknown paths that a
/// client can make up freely, counts as `other`, so the table stays small and label values
/// never carry caller-chosen text.
const KNOWN_METHODS: [&str; 12] = [
    "auth.v1.AuthService/Signup",
    "auth.v1.AuthService/Login",
    "auth.v1.AuthService/Refresh",
    "auth.v1.AuthService/Logout",
    "auth.v1.AuthService/VerifyEmail",
    "auth.v1.AuthService/ResendVerification",
    "auth.v1.AuthService/RequestPasswordReset",
    "auth.v1.AuthService/ResetPassword",
    "auth.v1.AuthService/Introspect",
    "auth.v1.AuthService/GetJwks",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
];

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    grpc: Mutex<BTreeMap<&'static str, MethodStats>>,
    mail_sent: AtomicU64,
    mail_logged: AtomicU64,
    mail_failed: AtomicU64,
    mail_undeliverable: AtomicU64,
    audit_dropped: AtomicU64,
}

#[derive(Default)]
struct MethodStats {
    by_code: BTreeMap<&'static str, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    seconds: f64,
}

impl Metrics {
    /// Records one gRPC call by its request path.
    pub fn observe_grpc(&self, path: &str, code: tonic::Code, elapsed: Duration) {
        let path = path.strip_prefix('/').unwrap_or(path);
        let method = KNOWN_METHODS
            .iter()
            .find(|known| **known == path)
            .copied()
            .unwrap_or("other");
        let seconds = elapsed.as_secs_f64();
        let mut grpc = self.grpc.lock().unwrap_or_else(|e| e.into_inner());
        let stats = grpc.entry(method).or_default();
        *stats.by_code.entry(code_name(code)).or_default() += 1;
        for (bucket, bound) in stats.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        stats.count += 1;
        stats.seconds += seconds;
    }

    pub fn mail_sent(&self) {
        self.mail_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A mail written to the log (AUTHD_MAIL_TO_LOG) instead of sent.
    pub fn mail_logged(&self) {
        self.mail_logged.fetch_add(1, Ordering::Relaxed);
    }

    pub fn mail_failed(&self) {
        self.mail_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn audit_dropped(&self) {
        self.audit_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn mail_undeliverable(&self) {
        self.mail_undeliverable.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition; `queued_mails` and `database_up` are read fresh by the caller.
    pub fn render(&self, queued_mails: Option<u64>, database_up: bool) -> String {
        let mut out = String::new();
        let grpc = self.grpc.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP authd_grpc_requests_total gRPC calls by method and status code.\n");
        out.push_str("# TYPE authd_grpc_requests_total counter\n");
        for (method, stats) in grpc.iter() {
            for (code, n) in &stats.by_code {
                let _ = writeln!(
                    out,
                    "authd_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP authd_grpc_request_duration_seconds Time to the response headers of a gRPC call.\n");
        out.push_str("# TYPE authd_grpc_request_duration_seconds histogram\n");
        for (method, stats) in grpc.iter() {
            for (bound, n) in BUCKETS.iter().zip(stats.buckets) {
                let _ = writeln!(
                    out,
                    "authd_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "authd_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                stats.count
            );
            let _ = writeln!(
                out,
                "authd_grpc_request_duration_seconds_sum{{method=\"{method}\"}} {}",
                stats.seconds
            );
            let _ = writeln!(
                out,
                "authd_grpc_request_duration_seconds_count{{method=\"{method}\"}} {}",
                stats.count
            );
        }
        drop(grpc);
        out.push_str(
            "# HELP authd_mail_sent_total Mails delivered.\n# TYPE authd_mail_sent_total counter\n",
        );
        let _ = writeln!(
            out,
            "authd_mail_sent_total {}",
            self.mail_sent.load(Ordering::Relaxed)
        );
        out.push_str("# HELP authd_mail_logged_total Mails written to the log (AUTHD_MAIL_TO_LOG) instead of sent.\n# TYPE authd_mail_logged_total counter\n");
        let _ = writeln!(
            out,
            "authd_mail_logged_total {}",
            self.mail_logged.load(Ordering::Relaxed)
        );
        out.push_str("# HELP authd_mail_failures_total Failed delivery attempts (each is retried).\n# TYPE authd_mail_failures_total counter\n");
        let _ = writeln!(
            out,
            "authd_mail_failures_total {}",
            self.mail_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP authd_audit_dropped_total Audit rows not stored (queue full or database down); their log lines were written.\n# TYPE authd_audit_dropped_total counter\n");
        let _ = writeln!(
            out,
            "authd_audit_dropped_total {}",
            self.audit_dropped.load(Ordering::Relaxed)
        );
        out.push_str("# HELP authd_mail_undeliverable_total Mails refused for good (e.g. unknown recipient) and dropped.\n# TYPE authd_mail_undeliverable_total counter\n");
        let _ = writeln!(
            out,
            "authd_mail_undeliverable_total {}",
            self.mail_undeliverable.load(Ordering::Relaxed)
        );
        if let Some(queued) = queued_mails {
            out.push_str("# HELP authd_mail_queued Mails waiting in the outbox.\n# TYPE authd_mail_queued gauge\n");
            let _ = writeln!(out, "authd_mail_queued {queued}");
        }
        out.push_str("# HELP authd_database_up Whether the database answered this scrape.\n# TYPE authd_database_up gauge\n");
        let _ = writeln!(out, "authd_database_up {}", u8::from(database_up));
        out
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let metrics = Metrics::default();
        metrics.observe_grpc(
            "/auth.v1.AuthService/Login",
            tonic::Code::Ok,
            Duration::from_millis(30),
        );
        metrics.observe_grpc(
            "/auth.v1.AuthService/Login",
            tonic::Code::Unauthenticated,
            Duration::from_millis(30),
        );
        metrics.observe_grpc("/random/junk", tonic::Code::Unimplemented, Duration::ZERO);
        metrics.observe_grpc(
            "/auth.v1.AuthService/Made\"Up",
            tonic::Code::Unimplemented,
            Duration::ZERO,
        );
        let text = metrics.render(Some(2), true);
        assert!(text.contains("authd_grpc_requests_total{method=\"auth.v1.AuthService/Login\",code=\"UNAUTHENTICATED\"} 1"));
        assert!(text.contains("authd_grpc_request_duration_seconds_bucket{method=\"auth.v1.AuthService/Login\",le=\"0.05\"} 2"));
        assert!(text.contains("authd_grpc_request_duration_seconds_bucket{method=\"auth.v1.AuthService/Login\",le=\"0.025\"} 0"));
        assert!(
            text.contains("authd_grpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"} 2")
        );
        assert!(
            !text.contains("Made"),
            "made-up paths get no label of their own"
        );
        assert!(text.contains("authd_mail_queued 2"));
    }
}
