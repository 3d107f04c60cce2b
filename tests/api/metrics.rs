//! `/metrics` as a Prometheus user sees it, after real gRPC calls over TCP: unary calls with
//! several codes, a Health/Watch stream and reflection streams cancelled by the client, a
//! cancelled unary call, and made-up paths with hostile characters; then a scrape over HTTP,
//! parsed line by line.

use crate::helpers::{PASSWORD, TestApp, code, http_get_with};
use authd::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

const GRPC_FAMILIES: [&str; 4] = [
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
];

/// One sample line of the text exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parser of the sample lines (comments skipped): `name{k="v",…} value`, with the
/// label value escapes of the format. Panics on anything else.
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            let mut key = String::new();
            loop {
                let (i, c) = chars.next().expect(line);
                match c {
                    '}' => {
                        rest = &inner[i + 1..];
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect(line).1 {
                                '"' => break,
                                '\\' => match chars.next().expect(line).1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                other => value.push(other),
                            }
                        }
                        assert!(
                            labels.insert(std::mem::take(&mut key), value).is_none(),
                            "{line}"
                        );
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest.trim();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    async fn plain(app: &TestApp) -> Self {
        let answer = http_get_with(app.http_addr, "/metrics", &[]).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        Self {
            samples: parse(&answer.body),
        }
    }

    /// The one sample of `name` whose labels are exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == wanted)
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0].value
    }

    fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Every label set of the gRPC families: what "no new label values" compares.
    fn grpc_series(&self) -> BTreeSet<(String, Vec<(String, String)>)> {
        self.samples
            .iter()
            .filter(|s| s.name.starts_with("grpc_server_"))
            .map(|s| {
                let labels = s.labels.clone().into_iter().collect();
                (s.name.clone(), labels)
            })
            .collect()
    }
}

/// The labels of one method, plus `extra`.
fn method<'a>(
    kind: &'a str,
    service: &'a str,
    name: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![
        ("grpc_type", kind),
        ("grpc_service", service),
        ("grpc_method", name),
    ];
    labels.extend_from_slice(extra);
    labels
}

fn auth(name: &str) -> Vec<(&str, &str)> {
    method("unary", "auth.v1.AuthService", name, &[])
}

fn with<'a>(mut labels: Vec<(&'a str, &'a str)>, code: &'a str) -> Vec<(&'a str, &'a str)> {
    labels.push(("grpc_code", code));
    labels
}

/// Scrapes until `done` holds (the server learns of a client's cancel asynchronously).
async fn scrape_until(app: &TestApp, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::plain(app).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A unary call to any path, as a client that makes paths up would send it.
async fn call_path(channel: Channel, path: http::uri::PathAndQuery) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::LoginRequest, pb::TokenResponse>::default();
    code(
        grpc.unary(
            tonic::Request::new(pb::LoginRequest::default()),
            path,
            codec,
        )
        .await,
    )
}

fn list_services() -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }
}

#[tokio::test]
async fn every_kind_of_call_is_counted_with_the_grpc_ecosystem_names() {
    let mut app = TestApp::spawn().await;
    let before = Scrape::plain(&app).await;
    // Every series exists from the start, every code included.
    assert_eq!(
        before.value("grpc_server_started_total", &auth("Login")),
        0.0
    );
    assert_eq!(
        before.value(
            "grpc_server_handled_total",
            &with(auth("Login"), "DATA_LOSS")
        ),
        0.0
    );

    // Unary calls with several codes.
    app.signup_verified_login("metrics@example.com").await;
    let wrong = app.login("metrics@example.com", "not the password").await;
    assert_eq!(code(wrong), Code::Unauthenticated);
    let bad = app
        .client
        .signup(pb::SignupRequest {
            email: "not-an-email".into(),
            password: PASSWORD.into(),
            name: "Bad".into(),
        })
        .await;
    assert_eq!(code(bad), Code::InvalidArgument);

    let channel = channel(&app).await;

    // Health/Watch: the first message, then the client cancels.
    let mut health = HealthClient::new(channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(watch.message().await.unwrap().is_some());
    drop(watch);

    // Reflection v1, bidi: three questions and answers on one stream, then cancelled.
    let (questions, outbound) = mpsc::channel(4);
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        questions.send(list_services()).await.unwrap();
        assert!(answers.message().await.unwrap().is_some());
    }
    drop(answers);
    drop(questions);

    // Reflection v1alpha, bidi, run to its end: two questions, the client closes, OK.
    {
        use tonic_reflection::pb::v1alpha as alpha;
        let ask = || alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        };
        let mut answers =
            alpha::server_reflection_client::ServerReflectionClient::new(channel.clone())
                .server_reflection_info(tokio_stream::iter([ask(), ask()]))
                .await
                .unwrap()
                .into_inner();
        let mut got = 0;
        while answers.message().await.unwrap().is_some() {
            got += 1;
        }
        assert_eq!(got, 2);
    }

    // Made-up paths with hostile characters, all at once.
    let hostile = [
        "/auth.v1.AuthService/Login\"}evil{grpc_code=\"OK",
        "/auth.v1.AuthService/Login%22%7D%0Aevil",
        "/auth.v1.AuthService/login",
        "/auth.v1.AuthService/Login/",
        "/auth.v1.AuthService/",
        "/grpc.health.v1.Health/Watch/../Check",
        "/evil.Service/Method?grpc_method=Login",
        "/\u{0}",
    ];
    let mut paths: Vec<http::uri::PathAndQuery> = hostile
        .iter()
        .filter_map(|p| http::uri::PathAndQuery::try_from(*p).ok())
        .collect();
    assert!(paths.len() >= 6, "{paths:?}");
    paths.push(format!("/{}", "evil".repeat(2000)).parse().unwrap());
    let calls = paths
        .iter()
        .cycle()
        .take(40)
        .cloned()
        .map(|path| tokio::spawn(call_path(channel.clone(), path)));
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap(), Code::Unimplemented);
    }

    let watch_labels = method("server_stream", "grpc.health.v1.Health", "Watch", &[]);
    let reflection_v1 = method(
        "bidi_stream",
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        &[],
    );
    let reflection_v1alpha = method(
        "bidi_stream",
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        &[],
    );
    let after = scrape_until(&app, "the cancelled streams handled", |s| {
        s.value(
            "grpc_server_handled_total",
            &with(watch_labels.clone(), "CANCELLED"),
        ) == 1.0
            && s.value(
                "grpc_server_handled_total",
                &with(reflection_v1.clone(), "CANCELLED"),
            ) == 1.0
    })
    .await;

    // Unary: one message in, one out on success; an error is trailers-only, no message out.
    let handled = |labels: Vec<(&str, &str)>, code: &str| {
        after.value("grpc_server_handled_total", &with(labels, code))
    };
    assert_eq!(handled(auth("Signup"), "OK"), 1.0);
    assert_eq!(handled(auth("Signup"), "INVALID_ARGUMENT"), 1.0);
    assert_eq!(handled(auth("VerifyEmail"), "OK"), 1.0);
    assert_eq!(handled(auth("Login"), "OK"), 1.0);
    assert_eq!(handled(auth("Login"), "UNAUTHENTICATED"), 1.0);
    assert_eq!(
        after.value("grpc_server_started_total", &auth("Login")),
        2.0
    );
    assert_eq!(
        after.value("grpc_server_msg_received_total", &auth("Login")),
        2.0
    );
    assert_eq!(
        after.value("grpc_server_msg_sent_total", &auth("Login")),
        1.0
    );
    assert_eq!(
        after.value("grpc_server_handling_seconds_count", &auth("Login")),
        2.0
    );
    assert_eq!(
        after.value(
            "grpc_server_handling_seconds_bucket",
            &[auth("Login"), vec![("le", "+Inf")]].concat()
        ),
        2.0
    );
    assert!(after.value("grpc_server_handling_seconds_sum", &auth("Login")) > 0.0);

    // Health/Watch: its real type, the message it sent, cancelled.
    assert_eq!(after.value("grpc_server_started_total", &watch_labels), 1.0);
    assert_eq!(
        after.value("grpc_server_msg_received_total", &watch_labels),
        1.0
    );
    assert!(after.value("grpc_server_msg_sent_total", &watch_labels) >= 1.0);
    assert_eq!(handled(watch_labels.clone(), "OK"), 0.0);

    // Reflection: every frame of both directions counted.
    for (labels, messages, code) in [
        (&reflection_v1, 3.0, "CANCELLED"),
        (&reflection_v1alpha, 2.0, "OK"),
    ] {
        assert_eq!(
            after.value("grpc_server_msg_received_total", labels),
            messages
        );
        assert_eq!(after.value("grpc_server_msg_sent_total", labels), messages);
        assert_eq!(handled(labels.clone(), code), 1.0);
    }

    // The made-up paths: one fixed series, nothing of theirs in any label.
    let unknown = method("unknown", "unknown", "unknown", &[]);
    assert_eq!(after.value("grpc_server_started_total", &unknown), 40.0);
    assert_eq!(handled(unknown.clone(), "UNIMPLEMENTED"), 40.0);
    assert_eq!(before.grpc_series(), after.grpc_series());
    let codes: BTreeSet<&str> = after
        .samples
        .iter()
        .filter_map(|s| s.labels.get("grpc_code").map(String::as_str))
        .collect();
    assert_eq!(codes.len(), 17, "{codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    );
    for sample in &after.samples {
        for value in sample.labels.values() {
            assert!(!value.contains("evil"), "{sample:?}");
        }
    }

    // Every call started is handled once, whatever its kind.
    let total = |name: &str| -> f64 {
        after
            .samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(
        total("grpc_server_started_total"),
        total("grpc_server_handled_total")
    );

    // The rest of the page: process, build and authd families.
    for family in GRPC_FAMILIES.iter().chain(&[
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
        "authd_mail_sent_total",
        "authd_mail_failures_total",
        "authd_mail_undeliverable_total",
        "authd_mail_logged_total",
        "authd_audit_dropped_total",
        "authd_mail_queued",
        "authd_database_up",
    ]) {
        assert!(after.has(family), "{family} missing");
    }
    assert!(after.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(after.value("process_open_fds", &[]) > 0.0);
    assert_eq!(
        after.value(
            "authd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(after.value("authd_database_up", &[]), 1.0);
}

#[tokio::test]
async fn openmetrics_is_served_to_scrapers_that_ask_for_it() {
    let app = TestApp::spawn().await;
    let accept = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3";
    let answer = http_get_with(app.http_addr, "/metrics", &[("Accept", accept)]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(answer.body.ends_with("# EOF\n"), "{}", answer.body);
    for line in [
        "# TYPE grpc_server_handled counter\n",
        "# TYPE grpc_server_handling_seconds histogram\n",
        "# UNIT grpc_server_handling_seconds seconds\n",
        "# TYPE authd_build info\n",
        "# TYPE process_cpu_seconds counter\n",
    ] {
        assert!(answer.body.contains(line), "{line} missing");
    }
    let samples = parse(answer.body.trim_end_matches("# EOF\n"));
    assert!(
        samples
            .iter()
            .any(|s| s.name == "grpc_server_handled_total")
    );
    assert!(samples.iter().any(|s| s.name == "authd_build_info"));
}

#[tokio::test]
async fn a_unary_call_the_client_abandons_is_handled_cancelled() {
    // Hashing slow enough that the login is surely still running when the client gives up.
    let mut app =
        TestApp::spawn_with(&["--argon2-memory-kib", "65536", "--argon2-iterations", "12"]).await;
    app.signup_verified_login("slow@example.com").await;
    let mut client = app.client.clone();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        client.login(pb::LoginRequest {
            email: "slow@example.com".into(),
            password: PASSWORD.into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(abandoned.is_err(), "the login answered within 100 ms");
    let after = scrape_until(&app, "the abandoned login handled", |s| {
        s.value(
            "grpc_server_handled_total",
            &with(auth("Login"), "CANCELLED"),
        ) == 1.0
    })
    .await;
    assert_eq!(
        after.value("grpc_server_started_total", &auth("Login")),
        2.0
    );
    assert_eq!(
        after.value("grpc_server_handled_total", &with(auth("Login"), "OK")),
        1.0
    );
    assert_eq!(
        after.value("grpc_server_msg_received_total", &auth("Login")),
        2.0
    );
    assert_eq!(
        after.value("grpc_server_msg_sent_total", &auth("Login")),
        1.0
    );
}
