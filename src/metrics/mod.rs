//! What `/metrics` shows, registered and encoded with `prometheus-client`: the gRPC server
//! families of go-grpc-prometheus ([`grpc`]), the standard `process_*` metrics ([`process`]),
//! `authd_build_info`, and authd's own mail, audit and database families.
//!
//! The scrape is answered in OpenMetrics text when the scraper asks for it (Prometheus does,
//! in its Accept header) and in the Prometheus text format 0.0.4 otherwise (curl, older
//! scrapers): see [`Format`].

pub mod grpc;
pub mod process;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use grpc::{GrpcCall, GrpcServerMetrics, MethodMetrics};

/// Every metric of the process, and the handles the rest of authd counts with.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    grpc: GrpcServerMetrics,
    mail_sent: Counter,
    mail_failed: Counter,
    mail_undeliverable: Counter,
    mail_logged: Counter,
    audit_dropped: Counter,
}

impl Metrics {
    /// The metrics of a server that serves the services in these encoded `FileDescriptorSet`s.
    pub fn new(descriptor_sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let methods = grpc::methods_in(descriptor_sets)?;
        let mut registry = Registry::default();
        let grpc = GrpcServerMetrics::register(&mut registry, &methods);
        registry.register_collector(Box::new(process::ProcessCollector));
        registry.register(
            "authd_build",
            "The authd version that is running",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        Ok(Self {
            mail_sent: counter(&mut registry, "authd_mail_sent", "Mails delivered"),
            mail_failed: counter(
                &mut registry,
                "authd_mail_failures",
                "Failed delivery attempts (each is retried)",
            ),
            mail_undeliverable: counter(
                &mut registry,
                "authd_mail_undeliverable",
                "Mails refused for good (e.g. unknown recipient) and dropped",
            ),
            mail_logged: counter(
                &mut registry,
                "authd_mail_logged",
                "Mails written to the log instead of sent (AUTHD_MAIL_TO_LOG)",
            ),
            audit_dropped: counter(
                &mut registry,
                "authd_audit_dropped",
                "Audit rows not stored (queue full or database down); their log lines were written",
            ),
            registry,
            grpc,
        })
    }

    /// Shows the statements the store has sent as `authd_db_statements_total`.
    pub fn count_db_statements(&mut self, counts: crate::db::StatementCounts) {
        self.registry.register(
            "authd_db_statements",
            "Statements sent to the database, by kind and first table (BEGIN and COMMIT not counted)",
            counts,
        );
    }

    /// The gRPC server families, for the layer that counts calls.
    pub fn grpc(&self) -> &GrpcServerMetrics {
        &self.grpc
    }

    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    pub fn mail_failed(&self) {
        self.mail_failed.inc();
    }

    pub fn mail_undeliverable(&self) {
        self.mail_undeliverable.inc();
    }

    /// A mail went to the log instead of to an SMTP server.
    pub fn mail_logged(&self) {
        self.mail_logged.inc();
    }

    pub fn audit_dropped(&self) {
        self.audit_dropped.inc();
    }

    /// The exposition in `format`. `queued_mails` and `database_up` are read fresh by the
    /// caller for this scrape; `authd_mail_queued` is left out when the count is unknown.
    pub fn encode(&self, format: Format, queued_mails: Option<u64>, database_up: bool) -> String {
        let mut fresh = Registry::default();
        if let Some(queued) = queued_mails {
            fresh.register(
                "authd_mail_queued",
                "Mails waiting in the outbox",
                ConstGauge::new(queued),
            );
        }
        fresh.register(
            "authd_database_up",
            "Whether the database answered this scrape",
            ConstGauge::new(i64::from(database_up)),
        );
        let mut out = String::new();
        // Writing to a String cannot fail, and every metric here encodes.
        let _ = match format {
            Format::OpenMetrics => text::encode_registry(&mut out, &self.registry)
                .and_then(|()| text::encode_registry(&mut out, &fresh))
                .and_then(|()| text::encode_eof(&mut out)),
            Format::Prometheus => prometheus_text::encode(&mut out, &self.registry)
                .and_then(|()| prometheus_text::encode(&mut out, &fresh)),
        };
        out
    }
}

/// The two text expositions a scraper may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text (`# EOF`-terminated, `# UNIT` lines, info metrics).
    OpenMetrics,
    /// Prometheus text format 0.0.4, which every scraper reads.
    Prometheus,
}

impl Format {
    const OPENMETRICS_CONTENT_TYPE: &str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// OpenMetrics when the Accept header ranks it at least as high as plain text (Prometheus
    /// sends `application/openmetrics-text;version=1.0.0;q=0.5,…,text/plain;version=0.0.4;q=0.3`);
    /// the Prometheus text format otherwise, also with no Accept header or `*/*`.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut openmetrics, mut plain) = (0.0_f32, 0.0_f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(&crate::grpc::DESCRIPTOR_SETS).unwrap()
    }

    #[test]
    fn both_formats_carry_the_families_and_openmetrics_ends_with_eof() {
        let metrics = metrics();
        metrics.mail_sent();
        metrics.mail_logged();
        metrics.mail_logged();
        let version = env!("CARGO_PKG_VERSION");
        let open = metrics.encode(Format::OpenMetrics, Some(2), true);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert_eq!(open.matches("# EOF").count(), 1);
        assert!(open.contains("# TYPE authd_build info\n"), "{open}");
        let plain = metrics.encode(Format::Prometheus, Some(2), true);
        assert!(!plain.contains("# EOF"));
        assert!(plain.contains("# TYPE authd_build_info gauge\n"), "{plain}");
        for text in [&open, &plain] {
            for line in [
                format!("authd_build_info{{version=\"{version}\"}} 1\n"),
                "authd_mail_sent_total 1\n".to_owned(),
                "authd_mail_logged_total 2\n".to_owned(),
                "authd_mail_failures_total 0\n".to_owned(),
                "authd_mail_undeliverable_total 0\n".to_owned(),
                "authd_audit_dropped_total 0\n".to_owned(),
                "authd_mail_queued 2\n".to_owned(),
                "authd_database_up 1\n".to_owned(),
            ] {
                assert!(text.contains(&line), "{line} missing from\n{text}");
            }
        }
        let down = metrics.encode(Format::Prometheus, None, false);
        assert!(down.contains("authd_database_up 0\n"));
        assert!(!down.contains("authd_mail_queued"));
    }

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_plain_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                          application/openmetrics-text;version=0.0.1;q=0.5,\
                          text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
                          text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        for other in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;q=junk"),
            Some("application/json"),
        ] {
            assert_eq!(Format::negotiate(other), Format::Prometheus, "{other:?}");
        }
        assert!(Format::Prometheus.content_type().starts_with("text/plain"));
    }
}
