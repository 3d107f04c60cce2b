//! Unit-test helpers: Ed25519 keys made from a seed, their JWK Set, and tokens forged byte by
//! byte (any header, any payload, any signature) the way an attacker would; [`KeyPair`]s of each
//! algorithm authd signs with (EdDSA, ES256, RS256), signed with by jsonwebtoken.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use serde_json::{Value, json};

pub const ISSUER: &str = "http://authd.test";
pub const AUDIENCE: &str = "authd";
pub const KID: &str = "key-1";

/// A signing key from a one-byte seed: tests need distinct keys, not secret ones.
pub fn key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

/// The public JWK of `key` under `kid`, as authd publishes it.
pub fn jwk(kid: &str, key: &ed25519_dalek::SigningKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    })
}

/// A JWK Set of `(kid, key)` pairs.
pub fn jwks(keys: &[(&str, &ed25519_dalek::SigningKey)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(kid, key)| jwk(kid, key)).collect();
    json!({ "keys": keys }).to_string()
}

/// The header authd writes.
pub fn header() -> Value {
    json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": KID })
}

/// Claims authd would sign at `now` for fifteen minutes.
pub fn claims(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5a",
        "aud": AUDIENCE,
        "exp": now + 900,
        "iat": now,
        "jti": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5b",
        "sid": "0190f3c4-7b2a-7cc1-9a57-2f1e0c3d4b5c",
        "client_id": "web",
        "email": "a@example.com",
        "email_verified": true,
    })
}

/// `header.payload` in base64url, ready to sign.
pub fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

/// A compact JWS of `header` and `payload` signed with `key` (whatever the header says).
pub fn sign(header: &Value, payload: &Value, key: &ed25519_dalek::SigningKey) -> String {
    let input = signing_input(header, payload);
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Unix seconds now.
pub fn now() -> i64 {
    crate::checks::unix_now()
}

/// A token like authd's under `kid`, signed with `key`.
pub fn token(kid: &str, key: &ed25519_dalek::SigningKey) -> String {
    let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
    sign(&header, &claims(now()), key)
}

/// The one 2048-bit RSA key of the test binary: making one takes a while.
static RSA_2048: std::sync::LazyLock<rsa::RsaPrivateKey> =
    std::sync::LazyLock::new(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap());

/// A key pair of one algorithm: its public JWK as authd publishes it, and the private half as
/// jsonwebtoken signs with it.
pub struct KeyPair {
    pub algorithm: jsonwebtoken::Algorithm,
    pub encoding: jsonwebtoken::EncodingKey,
    /// The public JWK's key members (`kty`, `crv`, `x`, `y`, `n`, `e`).
    public: Value,
}

impl KeyPair {
    /// An Ed25519 (EdDSA) pair from a one-byte seed.
    pub fn ed25519(seed: u8) -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = key(seed);
        let der = key.to_pkcs8_der().unwrap();
        Self {
            algorithm: jsonwebtoken::Algorithm::EdDSA,
            encoding: jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
            public: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
        }
    }

    /// A P-256 (ES256) pair from a one-byte seed (the scalar with every byte `seed`).
    pub fn p256(seed: u8) -> Self {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let der = key.to_pkcs8_der().unwrap();
        Self {
            algorithm: jsonwebtoken::Algorithm::ES256,
            encoding: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            public: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
            }),
        }
    }

    /// The test binary's 2048-bit RSA (RS256) pair.
    pub fn rsa() -> Self {
        Self::rsa_of(&RSA_2048)
    }

    /// An RS256 pair of `key`, whatever its size.
    pub fn rsa_of(key: &rsa::RsaPrivateKey) -> Self {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let der = key.to_pkcs1_der().unwrap();
        Self {
            algorithm: jsonwebtoken::Algorithm::RS256,
            encoding: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
            public: json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            }),
        }
    }

    /// One pair of each algorithm authd signs with.
    pub fn all() -> [Self; 3] {
        [Self::ed25519(1), Self::p256(1), Self::rsa()]
    }

    /// The public JWK under `kid`, as authd publishes it (`use: sig` and the `alg`).
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.public.clone();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg());
        jwk
    }

    /// The algorithm's JWS name.
    pub fn alg(&self) -> String {
        json!(self.algorithm).as_str().unwrap().to_owned()
    }

    /// A compact JWS of `header` and `payload` signed by jsonwebtoken with this key under its
    /// own algorithm, whatever the header says.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let input = signing_input(header, payload);
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.algorithm).unwrap();
        format!("{input}.{signature}")
    }

    /// A token like authd's under `kid`, as jsonwebtoken's `encode` makes it.
    pub fn token(&self, kid: &str) -> String {
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims(now()), &self.encoding).unwrap()
    }
}

/// What [`JwksServer`] answers.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Send `body` this many times with no content-length (the end is the close).
    pub repeat: Option<usize>,
}

impl Answer {
    pub fn jwks(json: String) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "application/jwk-set+json".into())],
            body: json.into_bytes(),
            repeat: None,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            repeat: None,
        }
    }

    pub fn with(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A real HTTP/1.1 server on 127.0.0.1 that answers every request with the current
/// [`Answer`] (304 when the request's If-None-Match is the answer's ETag) and counts requests
/// and the body bytes it managed to write.
pub struct JwksServer {
    pub url: String,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    answer: std::sync::Arc<std::sync::Mutex<Answer>>,
}

impl JwksServer {
    pub async fn start(answer: Answer) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let hits = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(std::sync::Mutex::new(answer));
        let (h, w, a) = (hits.clone(), written.clone(), answer.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (hits, written, answer) = (h.clone(), w.clone(), a.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    let answer = answer.lock().unwrap().clone();
                    let etag = answer.headers.iter().find(|(n, _)| *n == "etag");
                    let not_modified = etag.is_some_and(|(_, etag)| {
                        request.contains(&format!("if-none-match: {}", etag.to_ascii_lowercase()))
                    });
                    let status = if not_modified { 304 } else { answer.status };
                    let mut head = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
                    for (name, value) in &answer.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    if answer.repeat.is_none() && !not_modified {
                        head.push_str(&format!("content-length: {}\r\n", answer.body.len()));
                    }
                    head.push_str("\r\n");
                    if stream.write_all(head.as_bytes()).await.is_err() || not_modified {
                        return;
                    }
                    for _ in 0..answer.repeat.unwrap_or(1) {
                        if stream.write_all(&answer.body).await.is_err() {
                            return;
                        }
                        written.fetch_add(answer.body.len(), Ordering::SeqCst);
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            url,
            hits,
            written,
            answer,
        }
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Log lines written while the guard lives (on this thread: use a current-thread runtime).
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        // While this thread's subscriber is the only one registered, tracing caches a callsite's
        // interest from the default of whichever thread registers it first: a test beside this
        // one, with no subscriber, would turn the callsite off here too. A global subscriber
        // (that takes nothing) makes callsites ask the subscriber of each event's own thread.
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let _ =
                tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new());
        });
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
