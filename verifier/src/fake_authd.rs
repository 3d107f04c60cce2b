//! Unit-test helper: a real gRPC server on loopback that plays authd's WatchRevocations and
//! Introspect as the contract says (backlog, `x-authd-backlog-end`, live revocations,
//! OUT_OF_RANGE for a cursor it never gave out), and can misbehave on demand: end every stream
//! with a status, hold the backlog back, refuse streams, stop, start again on the same port,
//! or freeze the network silently (a proxy in front that stops forwarding).

use crate::client::pb;
use crate::client::pb::auth_service_server::{AuthService, AuthServiceServer};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

#[derive(Clone)]
enum Event {
    Revoked(pb::Revocation),
    Cut(tonic::Status),
}

/// What the fake knows and how it behaves; shared by the test and the server.
#[derive(Default)]
pub struct Script {
    /// Every revocation of "the database", in cursor order.
    log: Mutex<Vec<pb::Revocation>>,
    /// The `after_cursor` of every WatchRevocations call.
    pub asked: Mutex<Vec<i64>>,
    /// Streams refused with UNAVAILABLE while set (Introspect still answers).
    pub refuse_streams: AtomicBool,
    pub introspects: AtomicUsize,
    pub open_streams: Arc<AtomicUsize>,
}

/// The fake authd; dropping it stops the server.
pub struct FakeAuthd {
    pub script: Arc<Script>,
    /// Where the verifier connects: the proxy in front of the server.
    pub endpoint: String,
    server_addr: SocketAddr,
    events: broadcast::Sender<Event>,
    /// Holds back every backlog while false.
    release: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    frozen: Arc<AtomicBool>,
}

struct Service {
    script: Arc<Script>,
    events: broadcast::Sender<Event>,
    release: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl AuthService for Service {
    async fn watch_revocations(
        &self,
        request: tonic::Request<pb::WatchRevocationsRequest>,
    ) -> Result<tonic::Response<tonic::codegen::BoxStream<pb::Revocation>>, tonic::Status> {
        let after = request.into_inner().after_cursor;
        self.script.asked.lock().unwrap().push(after);
        if self.script.refuse_streams.load(Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("streams refused"));
        }
        if after < 0 {
            return Err(tonic::Status::invalid_argument("after_cursor < 0"));
        }
        let mut live = self.events.subscribe();
        let (backlog, end) = {
            let log = self.script.log.lock().unwrap();
            let end = log.last().map_or(0, |r| r.cursor);
            if after > end {
                return Err(tonic::Status::out_of_range("cursor never given out"));
            }
            let backlog: Vec<_> = log.iter().filter(|r| r.cursor > after).cloned().collect();
            (backlog, end)
        };
        let (tx, rx) = mpsc::channel(16);
        let mut release = self.release.clone();
        let open = Arc::clone(&self.script.open_streams);
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let forward = async {
                let _ = release.wait_for(|released| *released).await;
                for revocation in backlog {
                    tx.send(Ok(revocation)).await.ok()?;
                }
                loop {
                    match live.recv().await.ok()? {
                        Event::Revoked(r) if r.cursor > after => tx.send(Ok(r)).await.ok()?,
                        Event::Revoked(_) => {}
                        Event::Cut(status) => {
                            let _ = tx.send(Err(status)).await;
                            return None::<()>;
                        }
                    }
                }
            };
            tokio::select! {
                _ = forward => {}
                () = tx.closed() => {}
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
        let mut response =
            tonic::Response::new(Box::pin(ReceiverStream::new(rx)) as tonic::codegen::BoxStream<_>);
        response.metadata_mut().insert(
            crate::revocation_stream::BACKLOG_END,
            end.to_string().parse().unwrap(),
        );
        Ok(response)
    }

    /// Active unless the token's session is in the log; the claims are the token's own.
    async fn introspect(
        &self,
        request: tonic::Request<pb::IntrospectRequest>,
    ) -> Result<tonic::Response<pb::IntrospectResponse>, tonic::Status> {
        self.script.introspects.fetch_add(1, Ordering::SeqCst);
        let token = request.into_inner().token;
        let payload = token.split('.').nth(1).unwrap_or_default();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap_or_default())
                .unwrap_or_default();
        let text = |name: &str| claims[name].as_str().unwrap_or_default().to_owned();
        let sid = text("sid");
        let revoked = self
            .script
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.session_id == sid);
        if revoked || sid.is_empty() {
            return Ok(tonic::Response::new(pb::IntrospectResponse::default()));
        }
        Ok(tonic::Response::new(pb::IntrospectResponse {
            active: true,
            sub: text("sub"),
            email: text("email"),
            sid,
            jti: text("jti"),
            iss: text("iss"),
            aud: vec![text("aud")],
            exp: claims["exp"].as_i64().unwrap_or_default(),
            iat: claims["iat"].as_i64().unwrap_or_default(),
            email_verified: true,
            token_type: "Bearer".into(),
            client_id: String::new(),
            amr: Vec::new(),
            ext_id: String::new(),
        }))
    }
}

impl FakeAuthd {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let proxy = proxy(server_addr, Arc::clone(&frozen)).await;
        let mut fake = Self {
            script: Arc::default(),
            endpoint: format!("http://{proxy}"),
            server_addr,
            events: broadcast::channel(1024).0,
            release: watch::Sender::new(true),
            stop: None,
            frozen,
        };
        fake.serve(listener);
        fake
    }

    fn serve(&mut self, listener: TcpListener) {
        let service = Service {
            script: Arc::clone(&self.script),
            events: self.events.clone(),
            release: self.release.subscribe(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AuthServiceServer::new(service))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move {
                        let _ = stopped.await;
                    },
                ),
        );
    }

    /// Records a revocation and sends it to every open stream; its cursor.
    pub fn revoke(&self, session: uuid::Uuid, not_after: i64) -> i64 {
        let mut log = self.script.log.lock().unwrap();
        let revocation = pb::Revocation {
            cursor: log.last().map_or(0, |r| r.cursor) + 1,
            session_id: session.to_string(),
            user_id: uuid::Uuid::from_u128(99).to_string(),
            revoked_at: None,
            not_after: Some(prost_types::Timestamp {
                seconds: not_after,
                nanos: 0,
            }),
        };
        let cursor = revocation.cursor;
        log.push(revocation.clone());
        let _ = self.events.send(Event::Revoked(revocation));
        cursor
    }

    /// Ends every open stream with `status`.
    pub fn cut(&self, status: tonic::Status) {
        let _ = self.events.send(Event::Cut(status));
    }

    /// A new database: the log is replaced (cursors start again from 1).
    pub fn replace_database(&self) {
        self.script.log.lock().unwrap().clear();
    }

    pub fn hold_backlog(&self, hold: bool) {
        self.release.send_replace(!hold);
    }

    /// The proxy stops forwarding, without closing anything (a silently cut network).
    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }

    pub fn asked(&self) -> Vec<i64> {
        self.script.asked.lock().unwrap().clone()
    }

    /// Stops the server: open streams end with UNAVAILABLE (as authd's shutdown does), new
    /// connections are refused.
    pub async fn stop(&mut self) {
        self.cut(tonic::Status::unavailable("shutting down"));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Until the port is closed, a reconnect could still reach the old server.
        for _ in 0..100 {
            if TcpStream::connect(self.server_addr).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Starts again on the same port with the same log.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.server_addr).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for FakeAuthd {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TCP proxy to `upstream` that forwards while `frozen` is false and otherwise holds every
/// byte, keeping the connections open; its address.
async fn proxy(upstream: SocketAddr, frozen: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue; // dropping `client` refuses it, as a down authd would
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            forward(client_read, server_write, Arc::clone(&frozen));
            forward(server_read, client_write, Arc::clone(&frozen));
        }
    });
    addr
}

/// Copies `from` to `to` until either closes, holding the bytes while `frozen`.
fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while frozen.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
}
