//! gRPC server metrics with the names and labels of go-grpc-prometheus (grpc-ecosystem), which
//! Grafana dashboards and alerts expect: `grpc_server_started_total`,
//! `grpc_server_handled_total`, `grpc_server_msg_received_total`, `grpc_server_msg_sent_total`
//! and the `grpc_server_handling_seconds` histogram, labelled `grpc_type`, `grpc_service`,
//! `grpc_method` (and `grpc_code` on handled).
//!
//! The methods and their types come from the encoded descriptor sets of the services the server
//! runs, so the table cannot drift from what is served. A path outside it (clients can send any
//! path) is counted under one fixed `unknown` method: label values never carry caller text and
//! the number of series is fixed at start-up. As go-grpc-prometheus does, every series exists
//! from the start (at 0), every code included, so rates and ratios have no gaps.
//!
//! [`GrpcCall`] is one call in flight; the tower layer in `crate::grpc::layer` feeds it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use prost::Message as _;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tonic::Code;

/// The label value of every path that is not a served method.
pub const UNKNOWN: &str = "unknown";

/// Upper bounds (seconds) of the handling-time buckets: Prometheus' default buckets, with 1 ms
/// in front for the fast calls (Introspect, GetJwks, Health/Check).
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The 17 gRPC status codes in numeric order, so `CODES[code as usize]` is that code.
const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// How a method streams, as the `grpc_type` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
    /// A path that is not a served method.
    Unknown,
}

impl MethodType {
    pub fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
            Self::Unknown => UNKNOWN,
        }
    }

    fn of(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStream,
            (false, true) => Self::ServerStream,
            (true, true) => Self::BidiStream,
        }
    }
}

/// One served method, named as in its request path `/<service>/<method>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcMethod {
    /// Fully qualified service name, e.g. `auth.v1.AuthService`.
    pub service: String,
    pub method: String,
    pub kind: MethodType,
}

impl GrpcMethod {
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Every method of every service in these encoded `FileDescriptorSet`s, by path, once each.
pub fn methods_in(descriptor_sets: &[&[u8]]) -> Result<Vec<GrpcMethod>, prost::DecodeError> {
    let mut methods = BTreeMap::new();
    for set in descriptor_sets {
        let set = prost_types::FileDescriptorSet::decode(*set)?;
        for file in &set.file {
            for service in &file.service {
                let service_name = match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                };
                for method in &service.method {
                    let found = GrpcMethod {
                        service: service_name.clone(),
                        method: method.name().to_owned(),
                        kind: MethodType::of(method.client_streaming(), method.server_streaming()),
                    };
                    methods.insert(found.path(), found);
                }
            }
        }
    }
    Ok(methods.into_values().collect())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

/// The series of one method, taken from the families once at start-up, so a call touches only
/// its own atomics (and the histogram's lock), never a label lookup.
#[derive(Debug)]
pub struct MethodMetrics {
    started: Counter,
    handled: [Counter; CODES.len()],
    received: Counter,
    sent: Counter,
    handling: Histogram,
}

impl MethodMetrics {
    /// Whole gRPC messages the client sent.
    pub fn received(&self, messages: u64) {
        if messages > 0 {
            self.received.inc_by(messages);
        }
    }
}

/// The gRPC server families and the table of served methods.
#[derive(Debug)]
pub struct GrpcServerMetrics {
    by_path: HashMap<String, Arc<MethodMetrics>>,
    unknown: Arc<MethodMetrics>,
}

impl GrpcServerMetrics {
    /// Registers the families and creates every series of `methods` and of the unknown method.
    pub fn register(registry: &mut Registry, methods: &[GrpcMethod]) -> Self {
        let started = Family::<MethodLabels, Counter>::default();
        let handled = Family::<HandledLabels, Counter>::default();
        let received = Family::<MethodLabels, Counter>::default();
        let sent = Family::<MethodLabels, Counter>::default();
        let handling =
            Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(BUCKETS)
            });
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            handled.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            sent.clone(),
        );
        registry.register_with_unit(
            "grpc_server_handling",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
            Unit::Seconds,
            handling.clone(),
        );
        let series = |kind: MethodType, service: &str, method: &str| {
            let labels = MethodLabels {
                grpc_type: kind.label(),
                grpc_service: service.to_owned(),
                grpc_method: method.to_owned(),
            };
            Arc::new(MethodMetrics {
                started: started.get_or_create_owned(&labels),
                handled: CODES.map(|code| {
                    handled.get_or_create_owned(&HandledLabels {
                        grpc_type: labels.grpc_type,
                        grpc_service: labels.grpc_service.clone(),
                        grpc_method: labels.grpc_method.clone(),
                        grpc_code: code_name(code),
                    })
                }),
                received: received.get_or_create_owned(&labels),
                sent: sent.get_or_create_owned(&labels),
                handling: handling.get_or_create_owned(&labels),
            })
        };
        Self {
            by_path: methods
                .iter()
                .map(|m| (m.path(), series(m.kind, &m.service, &m.method)))
                .collect(),
            unknown: series(MethodType::Unknown, UNKNOWN, UNKNOWN),
        }
    }

    /// The series of the method at this request path, or of the unknown method.
    fn method(&self, path: &str) -> &Arc<MethodMetrics> {
        self.by_path.get(path).unwrap_or(&self.unknown)
    }

    /// Counts a call as started; the returned guard counts it as handled once.
    pub fn start(&self, path: &str) -> GrpcCall {
        let method = Arc::clone(self.method(path));
        method.started.inc();
        GrpcCall {
            method,
            started: Instant::now(),
            handled: false,
        }
    }
}

/// One call from its start until it is handled. Dropped before [`GrpcCall::handled`] (the
/// client cancelled, the connection broke, the server stopped), it counts as CANCELLED.
#[derive(Debug)]
pub struct GrpcCall {
    method: Arc<MethodMetrics>,
    started: Instant,
    handled: bool,
}

impl GrpcCall {
    /// The series of this call's method (the request body counts received messages there).
    pub fn method(&self) -> Arc<MethodMetrics> {
        Arc::clone(&self.method)
    }

    /// Whole gRPC messages the server sent.
    pub fn sent(&self, messages: u64) {
        if messages > 0 {
            self.method.sent.inc_by(messages);
        }
    }

    /// Counts the call as handled with `code`, and its handling time; only the first time.
    pub fn handled(&mut self, code: Code) {
        if std::mem::replace(&mut self.handled, true) {
            return;
        }
        // CODES holds every code, so this always finds one.
        if let Some(counter) = CODES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.method.handled.get(i))
        {
            counter.inc();
        }
        self.method
            .handling
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        self.handled(Code::Cancelled);
    }
}

/// The canonical name of a status code, as gRPC's own libraries print it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn served() -> Vec<GrpcMethod> {
        methods_in(&crate::grpc::DESCRIPTOR_SETS).unwrap()
    }

    fn find<'a>(methods: &'a [GrpcMethod], path: &str) -> &'a GrpcMethod {
        methods
            .iter()
            .find(|m| m.path() == path)
            .unwrap_or_else(|| panic!("{path} missing from {methods:?}"))
    }

    #[test]
    fn the_method_table_comes_from_the_descriptors_with_each_methods_type() {
        let methods = served();
        let login = find(&methods, "/auth.v1.AuthService/Login");
        assert_eq!(login.service, "auth.v1.AuthService");
        assert_eq!(login.method, "Login");
        assert_eq!(login.kind, MethodType::Unary);
        assert_eq!(
            find(&methods, "/grpc.health.v1.Health/Check").kind,
            MethodType::Unary
        );
        assert_eq!(
            find(&methods, "/grpc.health.v1.Health/Watch").kind,
            MethodType::ServerStream
        );
        for reflection in [
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(find(&methods, reflection).kind, MethodType::BidiStream);
        }
        // Every AuthService RPC of the contract, and each path once.
        for rpc in [
            "Signup",
            "Login",
            "Refresh",
            "Logout",
            "VerifyEmail",
            "ResendVerification",
            "RequestPasswordReset",
            "ResetPassword",
            "Introspect",
            "GetJwks",
        ] {
            find(&methods, &format!("/auth.v1.AuthService/{rpc}"));
        }
        let mut paths: Vec<_> = methods.iter().map(GrpcMethod::path).collect();
        paths.dedup();
        assert_eq!(paths.len(), methods.len());
    }

    #[test]
    fn a_descriptor_set_that_does_not_decode_is_an_error() {
        assert!(methods_in(&[&[0x0a, 0x05, 0x01]]).is_err());
        assert_eq!(methods_in(&[]).unwrap(), vec![]);
    }

    #[test]
    fn unknown_paths_share_one_series_and_add_no_label_values() {
        let mut registry = Registry::default();
        let metrics = GrpcServerMetrics::register(&mut registry, &served());
        let mut before = String::new();
        encode(&mut before, &registry).unwrap();
        for path in [
            "/auth.v1.AuthService/Made\"Up",
            "/x",
            "",
            "/auth.v1.AuthService/Login/extra",
            "/auth.v1.authservice/login",
            "/\u{202e}evil\n{grpc_code=\"OK\"}",
        ] {
            metrics.start(path).handled(Code::Unimplemented);
        }
        let mut after = String::new();
        encode(&mut after, &registry).unwrap();
        assert_eq!(before.lines().count(), after.lines().count());
        assert!(after.contains(
            "grpc_server_started_total{grpc_type=\"unknown\",grpc_service=\"unknown\",grpc_method=\"unknown\"} 6\n"
        ), "{after}");
        assert!(after.contains(
            "grpc_server_handled_total{grpc_type=\"unknown\",grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_code=\"UNIMPLEMENTED\"} 6\n"
        ));
        assert!(!after.contains("Made") && !after.contains("evil"));
    }

    #[test]
    fn a_call_is_handled_once_and_cancelled_when_dropped_unhandled() {
        let mut registry = Registry::default();
        let metrics = GrpcServerMetrics::register(&mut registry, &served());
        let mut call = metrics.start("/auth.v1.AuthService/Login");
        call.handled(Code::Unauthenticated);
        call.handled(Code::Ok);
        drop(call);
        drop(metrics.start("/grpc.health.v1.Health/Watch"));
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let login =
            "grpc_type=\"unary\",grpc_service=\"auth.v1.AuthService\",grpc_method=\"Login\"";
        assert!(text.contains(&format!(
            "grpc_server_handled_total{{{login},grpc_code=\"UNAUTHENTICATED\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "grpc_server_handled_total{{{login},grpc_code=\"OK\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "grpc_server_handling_seconds_count{{{login}}} 1\n"
        )));
        assert!(text.contains("grpc_server_handled_total{grpc_type=\"server_stream\",grpc_service=\"grpc.health.v1.Health\",grpc_method=\"Watch\",grpc_code=\"CANCELLED\"} 1\n"), "{text}");
    }
}
