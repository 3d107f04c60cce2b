//! Introspect callers that must authenticate, TLS and mTLS on the gRPC port, certificates
//! renewed while authd runs, and clients that open a connection and never finish a handshake.
//! Certificates are made here with rcgen; the server is the real one, the clients are tonic's.

use crate::helpers::{PASSWORD, TestApp, code, settings};
use crate::smtp::SmtpServer;
use authd::app::Application;
use authd::pb::{self, auth_service_client::AuthServiceClient};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A bound on waits for things that should happen at once: a hang fails, a slow machine does not.
const PATIENCE: Duration = Duration::from_secs(10);

/// A test certificate authority.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM, and the certificate's DER to compare with what is served.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub(crate) fn server(&self, name: &str, serial: u64) -> Issued {
        self.issue(
            vec!["localhost".into(), "127.0.0.1".into()],
            name,
            serial,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self, name: &str) -> Issued {
        self.issue(vec![], name, 100, ExtendedKeyUsagePurpose::ClientAuth)
    }

    pub(crate) fn issue(
        &self,
        names: Vec<String>,
        common_name: &str,
        serial: u64,
        purpose: ExtendedKeyUsagePurpose,
    ) -> Issued {
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// The files authd reads: server certificate, key, client CA.
pub(crate) struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    pub(crate) fn new(server: &Issued) -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.install(server);
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn cert(&self) -> PathBuf {
        self.path("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// Replaces a file whole, as a renewal tool would (write aside, then rename).
    fn write(&self, path: &Path, contents: &str) {
        let aside = path.with_extension("new");
        std::fs::write(&aside, contents).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }

    fn install(&self, server: &Issued) {
        self.write(&self.cert(), &server.cert_pem);
        self.write(&self.key(), &server.key_pem);
    }

    /// Flags that turn TLS on with these files, re-read every second.
    pub(crate) fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert().display().to_string(),
            "--tls-key".into(),
            self.key().display().to_string(),
            "--tls-reload-interval".into(),
            "1s".into(),
        ]
    }

    pub(crate) fn with_client_ca(&self, ca: &Ca) -> Vec<String> {
        let path = self.path("clients-ca.pem");
        self.write(&path, &ca.pem());
        let mut flags = self.flags();
        flags.extend(["--tls-client-ca".into(), path.display().to_string()]);
        flags
    }
}

pub(crate) async fn spawn(flags: &[String]) -> TestApp {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestApp::spawn_with(&flags).await
}

/// A gRPC client over TLS that trusts `ca`, presenting `identity` if given.
fn tls_client(app: &TestApp, ca: &Ca, identity: Option<&Issued>) -> AuthServiceClient<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    let channel = Endpoint::from_shared(format!("https://{}", app.grpc_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(PATIENCE)
        .timeout(PATIENCE)
        .connect_lazy();
    AuthServiceClient::new(channel)
}

/// The certificate a fresh TLS connection is served, as seen by a client trusting `ca`.
async fn served_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio::time::timeout(
        PATIENCE,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Waits until fresh connections are served `expected`; false if they never are.
async fn wait_for_certificate(addr: SocketAddr, ca: &Ca, expected: &Issued) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if served_certificate(addr, ca).await == expected.der {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn introspect(
    client: &mut AuthServiceClient<Channel>,
    token: &str,
    authorization: Option<&str>,
) -> Result<pb::IntrospectResponse, tonic::Status> {
    let mut request = tonic::Request::new(pb::IntrospectRequest {
        token: token.into(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    client
        .introspect(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn get_jwks(client: &mut AuthServiceClient<Channel>) -> Result<(), tonic::Status> {
    client.get_jwks(pb::GetJwksRequest {}).await.map(|_| ())
}

/// A credential as `authd introspect-client new` prints it: (secret, setting entry).
pub fn credential(id: &str) -> (String, String) {
    let out = authd::grpc::client_auth::new_credential(id).unwrap();
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_owned();
    let entry = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{id}:")))
        .unwrap()
        .to_owned();
    assert!(
        out.contains(&basic(id, &secret)),
        "prints the header to send"
    );
    (secret, entry)
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test]
async fn introspect_needs_client_credentials_once_they_are_configured() {
    let (secret, entry) = credential("gateway");
    let (other_secret, other_entry) = credential("billing");
    let clients = format!("{entry},{other_entry}");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &clients]).await;
    // The other RPCs need no credentials: signup, verification, login, refresh, JWKS.
    let tokens = app.signup_verified_login("caller@example.com").await;
    let tokens = app.refresh(&tokens.refresh_token).await.unwrap();
    get_jwks(&mut app.client).await.unwrap();
    let access = tokens.access_token.as_str();

    let refused = [
        None,
        Some(basic("gateway", "wrong-secret")),
        Some(basic("gateway", &other_secret)),
        Some(basic("nobody", &secret)),
        Some(basic("gateway", "")),
        Some(basic("", &secret)),
        Some(basic("gateway", &format!("{secret}x"))),
        Some(format!(
            "Basic {}",
            STANDARD.encode(format!("gateway{secret}"))
        )),
        Some("Basic !!!not-base64!!!".to_owned()),
        Some("Basic".to_owned()),
        Some(format!("Bearer {access}")),
        Some(format!("Basic {}", "QUFB".repeat(400))),
    ];
    let mut messages = Vec::new();
    for authorization in &refused {
        let status = introspect(&mut app.client, access, authorization.as_deref())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{authorization:?}");
        assert!(!status.message().contains(&secret));
        messages.push(status.message().to_owned());
    }
    // A wrong secret and an unknown id read alike: the answer does not reveal client ids.
    assert_eq!(messages[1], messages[3]);

    for (id, secret) in [("gateway", &secret), ("billing", &other_secret)] {
        let answer = introspect(&mut app.client, access, Some(&basic(id, secret)))
            .await
            .unwrap();
        assert!(answer.active, "{id}");
        // A bad token is still an answer, not an error, for a caller that is let in.
        let answer = introspect(&mut app.client, "not a token", Some(&basic(id, secret)))
            .await
            .unwrap();
        assert!(!answer.active);
    }
}

#[tokio::test]
async fn right_and_wrong_callers_in_parallel_each_get_their_own_answer() {
    let (secret, entry) = credential("gateway");
    let mut app = TestApp::spawn_with(&["--introspect-clients", &entry]).await;
    let access = app
        .signup_verified_login("parallel@example.com")
        .await
        .access_token;
    let calls = (0..64).map(|i| {
        let mut client = app.client.clone();
        let access = access.clone();
        let authorization = if i % 2 == 0 {
            basic("gateway", &secret)
        } else {
            basic("gateway", &format!("wrong{i}"))
        };
        tokio::spawn(async move {
            let result = introspect(&mut client, &access, Some(&authorization)).await;
            (i, result.map(|answer| answer.active).map_err(|s| s.code()))
        })
    });
    for call in join_all(calls).await {
        let (i, result) = call;
        if i % 2 == 0 {
            assert_eq!(result, Ok(true), "call {i}");
        } else {
            assert_eq!(result, Err(Code::Unauthenticated), "call {i}");
        }
    }
}

async fn join_all<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

/// `Application::build`'s error for these flags, as `authd serve` would print it.
async fn startup_error(extra: &[String]) -> String {
    let smtp = SmtpServer::start().await;
    let db = crate::helpers::TestDb::new().await;
    match Application::build(settings(&db.url, &smtp.url(), extra)).await {
        Ok(_) => panic!("start-up must fail with {extra:?}"),
        Err(err) => format!("{err:#}"),
    }
}

#[tokio::test]
async fn bad_settings_stop_startup_naming_the_setting() {
    let ca = Ca::new("authd test CA");
    let files = TlsFiles::new(&ca.server("authd", 1));
    let secret = "q7Vb2m0h5YJzG1xkKcT9aWnR3dLs8fUe4oPiQyNwBvA";

    let err = startup_error(&["--introspect-clients".into(), format!("gateway:{secret}")]).await;
    assert!(err.contains("AUTHD_INTROSPECT_CLIENTS"), "{err}");
    assert!(!err.contains(secret), "{err}");

    let missing = files.path("absent.pem").display().to_string();
    let mut flags = files.flags();
    flags[1] = missing.clone();
    let err = startup_error(&flags).await;
    assert!(
        err.contains("AUTHD_TLS_CERT") && err.contains(&missing),
        "{err}"
    );

    let garbage = files.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let mut flags = files.flags();
    flags[1] = garbage.display().to_string();
    let err = startup_error(&flags).await;
    assert!(err.contains("AUTHD_TLS_CERT"), "{err}");

    // A key that is no key, and a key of another certificate; neither is printed.
    let other = ca.server("other", 2);
    for key in [
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        &other.key_pem,
    ] {
        let path = files.path("wrong.key");
        std::fs::write(&path, key).unwrap();
        let mut flags = files.flags();
        flags[3] = path.display().to_string();
        let err = startup_error(&flags).await;
        assert!(err.contains("AUTHD_TLS_KEY"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }

    let err = startup_error(&files.flags()[..2]).await;
    assert!(err.contains("AUTHD_TLS_KEY"), "{err}");
    let ca_path = files.path("clients-ca.pem");
    std::fs::write(&ca_path, "not a CA").unwrap();
    let mut flags = files.flags();
    flags.extend(["--tls-client-ca".into(), ca_path.display().to_string()]);
    let err = startup_error(&flags).await;
    assert!(err.contains("AUTHD_TLS_CLIENT_CA"), "{err}");
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_in_and_a_plaintext_one_does_not() {
    let ca = Ca::new("authd test CA");
    let server = ca.server("authd", 1);
    let files = TlsFiles::new(&server);
    let mut flags = files.flags();
    flags.extend(["--require-verified-email".into(), "false".into()]);
    let mut app = spawn(&flags).await;
    let mut client = tls_client(&app, &ca, None);

    client
        .signup(pb::SignupRequest {
            email: "tls@example.com".into(),
            password: PASSWORD.into(),
            name: "Over TLS".into(),
        })
        .await
        .unwrap();
    let tokens = client
        .login(pb::LoginRequest {
            email: "tls@example.com".into(),
            password: PASSWORD.into(),
            client_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    // Open Introspect (nothing configured) works over TLS too.
    let answer = introspect(&mut client, &tokens.access_token, None)
        .await
        .unwrap();
    assert!(answer.active);
    // The session knows the client's address through the TLS layer.
    let sessions = {
        use authd::db::entity::session;
        use sea_orm::EntityTrait;
        session::Entity::find()
            .all(&app.db.connect().await)
            .await
            .unwrap()
    };
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].ip, "127.0.0.1");

    assert_eq!(served_certificate(app.grpc_addr, &ca).await, server.der);
    // A plaintext client on the TLS port is refused (and so is a client trusting another CA).
    let plain = tokio::time::timeout(PATIENCE, get_jwks(&mut app.client))
        .await
        .expect("refused in time, not hung");
    assert_ne!(code(plain), Code::Ok);
    let mut stranger = tls_client(&app, &Ca::new("some other CA"), None);
    assert_ne!(code(get_jwks(&mut stranger).await), Code::Ok);
}

#[tokio::test]
async fn mtls_lets_in_only_clients_with_a_certificate_of_the_client_ca() {
    let ca = Ca::new("authd server CA");
    let clients_ca = Ca::new("authd clients CA");
    let files = TlsFiles::new(&ca.server("authd", 1));
    let (secret, entry) = credential("gateway");
    let mut flags = files.with_client_ca(&clients_ca);
    flags.extend(["--introspect-clients".into(), entry]);
    let app = spawn(&flags).await;

    let member = clients_ca.client("gateway.internal");
    let mut trusted = tls_client(&app, &ca, Some(&member));
    get_jwks(&mut trusted).await.unwrap();
    // The verified certificate lets the caller introspect without a secret.
    let answer = introspect(&mut trusted, "not a token", None).await.unwrap();
    assert!(!answer.active);
    introspect(&mut trusted, "x", Some(&basic("gateway", &secret)))
        .await
        .unwrap();

    let mut anonymous = tls_client(&app, &ca, None);
    assert_ne!(code(get_jwks(&mut anonymous).await), Code::Ok);
    // A client certificate from another CA, even one the server's CA signed.
    let outsider = Ca::new("outsider CA").client("gateway.internal");
    let mut forged = tls_client(&app, &ca, Some(&outsider));
    assert_ne!(code(get_jwks(&mut forged).await), Code::Ok);
    let sibling = ca.client("gateway.internal");
    let mut sibling = tls_client(&app, &ca, Some(&sibling));
    assert_ne!(code(get_jwks(&mut sibling).await), Code::Ok);
    let mut forged = tls_client(&app, &ca, Some(&outsider));
    assert_ne!(
        code(introspect(&mut forged, "x", Some(&basic("gateway", &secret))).await),
        Code::Ok,
        "no TLS connection, whatever the credentials"
    );
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_and_a_broken_one_is_ignored() {
    let ca = Ca::new("authd test CA");
    let first = ca.server("authd first", 1);
    let files = TlsFiles::new(&first);
    let app = spawn(&files.flags()).await;
    let mut client = tls_client(&app, &ca, None);
    get_jwks(&mut client).await.unwrap();
    assert_eq!(served_certificate(app.grpc_addr, &ca).await, first.der);

    let second = ca.server("authd second", 2);
    files.install(&second);
    assert!(
        wait_for_certificate(app.grpc_addr, &ca, &second).await,
        "the renewed certificate is served"
    );
    // The connection opened before the renewal goes on working.
    get_jwks(&mut client).await.unwrap();

    // A broken certificate, then a key that fits no certificate: the loaded pair stays.
    files.write(&files.cert(), "-----BEGIN CERTIFICATE-----\ngarbage\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_certificate(app.grpc_addr, &ca).await, second.der);
    files.write(&files.cert(), &ca.server("mismatch", 3).cert_pem);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_certificate(app.grpc_addr, &ca).await, second.der);
    get_jwks(&mut tls_client(&app, &ca, None)).await.unwrap();

    // The watcher survived the broken files: the next good pair is served.
    let third = ca.server("authd third", 3);
    files.install(&third);
    assert!(wait_for_certificate(app.grpc_addr, &ca, &third).await);
    get_jwks(&mut tls_client(&app, &ca, None)).await.unwrap();
}

#[tokio::test]
async fn connections_that_never_handshake_do_not_hold_up_others() {
    let ca = Ca::new("authd test CA");
    let files = TlsFiles::new(&ca.server("authd", 1));
    let mut flags = files.flags();
    flags.extend(["--tls-handshake-timeout".into(), "4s".into()]);
    let app = spawn(&flags).await;

    // Some say nothing; one sends half a ClientHello and stops.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(app.grpc_addr).await.unwrap());
    }
    let mut half = TcpStream::connect(app.grpc_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    // Before any of them times out, a real client is served.
    let mut client = tls_client(&app, &ca, None);
    tokio::time::timeout(Duration::from_secs(3), get_jwks(&mut client))
        .await
        .expect("served while others stall")
        .unwrap();

    // And the stalled connections are closed once their time is up.
    for stream in silent.iter_mut().chain([&mut half]) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the server closes a stalled handshake");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
