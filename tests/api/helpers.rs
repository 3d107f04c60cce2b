//! Starting authd for a test and talking to it.

use crate::smtp::{SmtpServer, extract_token};
use authd::app::Application;
use authd::config::{Cli, Command};
use authd::pb::auth_service_client::AuthServiceClient;
use authd::pb::{self, TokenResponse, User};
use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const PASSWORD: &str = "correct horse battery";
pub const MAIL_WAIT: Duration = Duration::from_secs(10);
/// The subject of the notice mailed after a password reset.
pub const PASSWORD_CHANGED: &str = "Your password was changed";

/// A database of the test's own: a SQLite file in a temporary folder, or a new PostgreSQL
/// database with a random name.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database this handle made, dropped with it.
    created: Option<String>,
}

impl Drop for TestDb {
    /// A test's PostgreSQL database goes when the test ends, passed or failed (scripts/test
    /// sweeps its own prefix again at the end, for a run that was killed).
    fn drop(&mut self) {
        let Some(name) = self.created.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = Database::connect(&admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                let dropped = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string());
                admin.close().await.ok();
                dropped
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("AUTHD_TEST_DATABASE").as_deref() {
            Ok("postgres") => Self::postgres().await,
            Ok("sqlite") | Err(_) => Self::sqlite(),
            Ok(other) => panic!("AUTHD_TEST_DATABASE must be sqlite or postgres, not {other}"),
        }
    }

    /// Whether `TestDb::new` makes PostgreSQL databases (the suite's PostgreSQL pass).
    pub fn new_is_postgres() -> bool {
        std::env::var("AUTHD_TEST_DATABASE").as_deref() == Ok("postgres")
    }

    /// A database someone else keeps (a PostgreSQL server the test runs itself).
    pub fn at(url: String) -> Self {
        Self {
            url,
            _dir: None,
            created: None,
        }
    }

    /// The same database for a second server (a replica); the first handle keeps it alive.
    pub fn share(&self) -> Self {
        Self {
            url: self.url.clone(),
            _dir: None,
            created: None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("authd.db").display()
        );
        Self {
            url,
            _dir: Some(dir),
            created: None,
        }
    }

    /// A new PostgreSQL database whatever AUTHD_TEST_DATABASE says (a source database, say).
    pub async fn postgres() -> Self {
        let admin_url = admin_url();
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("AUTHD_TEST_DATABASE=postgres but {admin_url} is unreachable: {e}")
        });
        // scripts/test gives each run a prefix of its own and drops exactly those databases.
        let prefix =
            std::env::var("AUTHD_TEST_DB_PREFIX").unwrap_or_else(|_| "authd_test_".to_owned());
        // PostgreSQL cuts names at 63 bytes without an error, so the part that makes a name
        // unique must fit whole: a 41-byte prefix plus a 32-hex UUID lost its last ten digits,
        // and two databases made in the same millisecond got one name. Now: this process, a
        // count, and the random low 32 bits of a v7 UUID, at most 22 bytes after the prefix.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "{prefix}{:x}_{made}_{:08x}",
            std::process::id(),
            uuid::Uuid::now_v7().as_u128() as u32
        );
        assert!(
            name.len() <= 63,
            "test database name {name} is longer than PostgreSQL's 63 bytes: shorten AUTHD_TEST_DB_PREFIX"
        );
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("admin URL names a database");
        Self {
            url: format!("{base}/{name}"),
            _dir: None,
            created: Some(name),
        }
    }

    /// `authd keys ARGS` against this database, with `env` set too.
    pub fn keys_cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut command = authd_command();
        command
            .arg("keys")
            .args(args)
            .env("AUTHD_DATABASE_URL", &self.url)
            .env("RUST_LOG", "warn");
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// Runs [`Self::keys_cli`] in a blocking task, so servers on the test's runtime keep
    /// answering meanwhile.
    pub async fn keys_command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut command = self.keys_cli(args, env);
        tokio::task::spawn_blocking(move || command.output().expect("run authd keys"))
            .await
            .expect("authd keys finished")
    }

    /// A connection for looking at what authd stored.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

/// The real `authd` binary, with nothing of the test's environment that could configure it
/// (no `AUTHD_*`, no `DATABASE_URL`): what it does is what the test sets.
pub fn authd_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authd"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AUTHD_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
}

pub fn admin_url() -> String {
    std::env::var("AUTHD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A running authd with its own database and SMTP server.
pub struct TestApp {
    pub client: AuthServiceClient<Channel>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub smtp: SmtpServer,
    pub db: TestDb,
    args: Vec<String>,
    /// Dropping it (with the `TestApp`) stops the server too.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// The private half (PKCS#8 DER) of authd's signing key `kid`, read from its database: for
    /// tests that sign what authd would not, to show that the check is more than the signature.
    pub async fn stored_private_key(&self, kid: &str) -> Vec<u8> {
        use authd::db::entity::signing_key;
        use sea_orm::EntityTrait;
        signing_key::Entity::find()
            .all(&self.db.connect().await)
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.kid == kid)
            .expect("the signing key is stored")
            .private_key
    }

    /// authd with test settings (cheap password hashing, a mail server of its own).
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Like `spawn`, with extra command-line flags.
    pub async fn spawn_with(extra: &[&str]) -> Self {
        let smtp = SmtpServer::start().await;
        Self::spawn_on(TestDb::new().await, smtp, extra).await
    }

    /// authd on a given database and mail server.
    pub async fn spawn_on(db: TestDb, smtp: SmtpServer, extra: &[&str]) -> Self {
        init_logging();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let settings = settings(&db.url, &smtp.url(), &args);
        let app = Application::build(settings).await.expect("authd builds");
        let (grpc_addr, http_addr) = (app.grpc_addr(), app.http_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        // Lazy: a test that turns TLS on talks to the port with a client of its own.
        let client = AuthServiceClient::new(
            tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
                .expect("gRPC address")
                .connect_lazy(),
        );
        Self {
            client,
            grpc_addr,
            http_addr,
            smtp,
            db,
            args,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops authd gracefully and waits until it has.
    pub async fn stop(mut self) -> (TestDb, SmtpServer) {
        self.shutdown().await;
        let Self { db, smtp, .. } = self;
        (db, smtp)
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }

    /// Stops and starts again on the same database and mail server, with the same flags.
    pub async fn restart(self) -> Self {
        let args = self.args.clone();
        let (db, smtp) = self.stop().await;
        let extra: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn_on(db, smtp, &extra).await
    }

    pub async fn signup(&mut self, email: &str) -> User {
        self.client
            .signup(pb::SignupRequest {
                email: email.into(),
                password: PASSWORD.into(),
                name: "Test User".into(),
            })
            .await
            .expect("signup")
            .into_inner()
            .user
            .expect("user")
    }

    /// The token of the next mail to `email` whose link goes to `path`. A "password changed"
    /// notice (sent after every reset) on the way is taken too.
    pub async fn mailed_token(&self, email: &str, path: &str) -> String {
        loop {
            let mail = self.smtp.wait_for_mail_to(email, MAIL_WAIT).await;
            if mail.subject != PASSWORD_CHANGED {
                return extract_token(&mail.body, path);
            }
        }
    }

    /// Asks for a password reset for `email` and returns the token from the mail that follows.
    pub async fn reset_token(&mut self, email: &str) -> String {
        self.client
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: email.into(),
            })
            .await
            .expect("request password reset");
        self.mailed_token(email, "reset-password").await
    }

    /// Signs up, verifies by the mailed link and logs in.
    pub async fn signup_verified_login(&mut self, email: &str) -> TokenResponse {
        self.signup(email).await;
        let token = self.mailed_token(email, "verify-email").await;
        self.client
            .verify_email(pb::VerifyEmailRequest { token })
            .await
            .expect("verify email");
        self.login(email, PASSWORD).await.expect("login")
    }

    pub async fn login(
        &mut self,
        email: &str,
        password: &str,
    ) -> Result<TokenResponse, tonic::Status> {
        self.client
            .login(pb::LoginRequest {
                email: email.into(),
                password: password.into(),
                client_id: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Login naming the OAuth client the session is for.
    pub async fn login_as(
        &mut self,
        email: &str,
        password: &str,
        client_id: &str,
    ) -> Result<TokenResponse, tonic::Status> {
        self.client
            .login(pb::LoginRequest {
                email: email.into(),
                password: password.into(),
                client_id: client_id.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Ends the session of `refresh_token` (or every session of its user); the test fails if
    /// authd refuses.
    pub async fn logout(&self, refresh_token: &str, all_sessions: bool) {
        self.client
            .clone()
            .logout(pb::LogoutRequest {
                refresh_token: refresh_token.into(),
                all_sessions,
            })
            .await
            .expect("logout");
    }

    pub async fn refresh(&mut self, refresh_token: &str) -> Result<TokenResponse, tonic::Status> {
        self.client
            .refresh(pb::RefreshRequest {
                refresh_token: refresh_token.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn introspect(&mut self, token: &str) -> pb::IntrospectResponse {
        self.client
            .introspect(pb::IntrospectRequest {
                token: token.into(),
            })
            .await
            .expect("introspect never fails for a bad token")
            .into_inner()
    }

    /// GET on the HTTP side port: status, headers (lower-case names) and body.
    pub async fn http_get(&self, path: &str) -> HttpResponse {
        http_get(self.http_addr, path).await
    }

    /// A request with a method and headers of the caller's choice on the HTTP side port.
    pub async fn http_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        http_request(self.http_addr, method, path, headers).await
    }
}

pub fn settings(database_url: &str, smtp_url: &str, extra: &[String]) -> authd::config::Settings {
    let defaults = [
        ("--database-url", database_url),
        ("--grpc-addr", "127.0.0.1:0"),
        ("--http-addr", "127.0.0.1:0"),
        ("--issuer", "http://authd.test"),
        ("--audience", "authd"),
        ("--app-url", "https://app.example"),
        ("--smtp-url", smtp_url),
        ("--mail-from", "authd <no-reply@authd.test>"),
        // Cheap hashing: the cost is configuration, the code path is the production one.
        ("--argon2-memory-kib", "64"),
        ("--argon2-iterations", "1"),
        ("--bcrypt-cost", "4"),
        // Tests stop servers often; the shutdown test sets a grace of its own.
        ("--shutdown-grace", "0s"),
        // Two suites at once on one PostgreSQL (scripts/test-concurrent) can keep a new
        // connection waiting over a second; the outage tests set the production 1 s.
        ("--database-timeout", "5s"),
    ];
    let mut args = vec!["authd".to_owned(), "serve".to_owned()];
    // A flag the test gives replaces the default (list flags such as --audience would append).
    for (flag, value) in defaults {
        if !extra.iter().any(|arg| arg == flag) {
            args.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    args.extend(extra.iter().cloned());
    match Cli::try_parse_from(args)
        .expect("test settings parse")
        .command
    {
        Command::Serve(settings) => *settings,
        _ => unreachable!(),
    }
}

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        authd::telemetry::init(authd::config::LogFormat::Text);
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A verified user written straight into the database with the given password hash, as an
/// import from another system would create it. Returns its id.
pub async fn insert_user_with_hash(
    app: &TestApp,
    email: &str,
    password_hash: String,
) -> uuid::Uuid {
    use authd::db::entity::user;
    use sea_orm::{ActiveModelTrait, Set};
    let now = chrono::Utc::now();
    let id = uuid::Uuid::now_v7();
    user::ActiveModel {
        id: Set(id),
        email: Set(email.to_lowercase()),
        name: Set("Imported".into()),
        password_hash: Set(password_hash),
        email_verified: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ext_id: Set(None),
        mfa_enabled: Set(false),
    }
    .insert(&app.db.connect().await)
    .await
    .expect("insert user");
    id
}

/// The password hash stored for `email`.
pub async fn stored_hash(app: &TestApp, email: &str) -> String {
    use authd::db::entity::user;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.db.connect().await)
        .await
        .unwrap()
        .expect("user row")
        .password_hash
}

/// A plain HTTP/1.1 GET, enough for the side port's small answers.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_get_with(addr, path, &[]).await
}

/// [`http_get`] with extra request headers.
pub async fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(addr, "GET", path, headers).await
}

/// A plain HTTP/1.1 request with extra headers, on a connection of its own.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header(http::header::CONNECTION, "close")
        .body(Empty::new())
        .expect("HTTP request");
    let response = client.request(request).await.expect("HTTP request");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8(value.as_bytes().to_vec()).expect("UTF-8 header");
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("HTTP body")
        .to_bytes();
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 answer"),
    }
}

/// Claims of an access token, checked with the public keys from the HTTP JWKS endpoint only.
pub async fn verify_with_jwks(
    app: &TestApp,
    token: &str,
) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&app.http_get("/.well-known/jwks.json").await.body)
            .expect("JWKS parses");
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.clone().unwrap_or_default();
    let jwk = jwks
        .find(&kid)
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["authd"]);
    validation.set_issuer(&["http://authd.test"]);
    // Exact expiry, as authd itself checks it.
    validation.leeway = 0;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map(|data| data.claims)
}

pub fn code(result: Result<impl Sized, tonic::Status>) -> tonic::Code {
    match result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => {
            // Shown with the test's output when an assertion on the code fails.
            eprintln!("status: {:?} {}", status.code(), status.message());
            status.code()
        }
    }
}
