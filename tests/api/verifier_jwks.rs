//! authd-verifier's JWKS fetches against a real authd, counted by a small TCP proxy in front of
//! authd's HTTP port: a flood of made-up kids, and keys unreachable at start.

use crate::helpers::TestApp;
use crate::verifier::{READY, checks, foreign_key, parts, sign};
use authd_verifier::{JwksSource, LocalSettings, LocalVerifier, Refusal, Verify};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP proxy in front of `upstream` (none yet: connections are closed at once) that counts
/// the JWKS requests passing through.
pub struct CountingProxy {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    requests: Arc<AtomicUsize>,
}

impl CountingProxy {
    pub async fn start(upstream: Option<SocketAddr>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let requests = Arc::new(AtomicUsize::new(0));
        let (target, count) = (upstream.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let to = *target.lock().unwrap();
                let count = count.clone();
                tokio::spawn(async move {
                    let Some(to) = to else { return };
                    let Ok(server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upload = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                            let text = String::from_utf8_lossy(&buf[..n]);
                            let seen = text.matches("GET /.well-known/jwks.json ").count();
                            count.fetch_add(seen, Ordering::SeqCst);
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = server_write.shutdown().await;
                    };
                    let download = async {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(upload, download);
                });
            }
        });
        Self {
            addr,
            upstream,
            requests,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub fn point_at(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = Some(upstream);
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_thousand_made_up_kids_cost_a_handful_of_jwks_fetches() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("flood@example.com").await;
    let proxy = CountingProxy::start(Some(app.http_addr)).await;
    let verifier =
        LocalVerifier::start(LocalSettings::new(JwksSource::Http(proxy.url()), checks()));
    assert!(verifier.ready(READY).await);
    assert_eq!(
        proxy.requests(),
        1,
        "the first fetch went through the proxy"
    );
    let (_, claims) = parts(&tokens.access_token);
    let attacker = foreign_key();
    let flood: Vec<_> = (0..1000)
        .map(|i| {
            let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": format!("made-up-{i}")});
            let token = sign(&header, &claims, &attacker);
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in flood {
        assert_eq!(task.await.unwrap(), Err(Refusal::UnknownKey));
    }
    let fetches = proxy.requests() - 1;
    assert!(
        fetches <= 2,
        "{fetches} JWKS fetches for 1,000 made-up kids"
    );
    assert_eq!(
        verifier.fetch_count(),
        u64::try_from(proxy.requests()).unwrap()
    );
    assert!(
        verifier.verify(&tokens.access_token).await.is_ok(),
        "real tokens still pass"
    );
}

#[tokio::test]
async fn keys_unreachable_at_start_are_fetched_once_authd_is_up() {
    let proxy = CountingProxy::start(None).await;
    let verifier =
        LocalVerifier::start(LocalSettings::new(JwksSource::Http(proxy.url()), checks()));
    assert!(!verifier.ready(Duration::from_millis(1500)).await);
    assert_eq!(verifier.verify("a.b.c").await, Err(Refusal::Unavailable));
    assert!(verifier.fetch_count() >= 2, "retried");

    let mut app = TestApp::spawn().await;
    proxy.point_at(app.http_addr);
    let tokens = app.signup_verified_login("late@example.com").await;
    assert!(verifier.ready(READY).await, "fetched after authd came up");
    let claims = verifier.verify(&tokens.access_token).await.unwrap();
    assert_eq!(claims.email, "late@example.com");
}
