//! TLS, and with a client CA mTLS, for the gRPC port, with rustls and the ring provider that
//! sqlx and lettre already bring.
//!
//! The accept loop never waits on a handshake: each runs in a task of its own, bounded by a
//! timeout, and only finished connections reach tonic. The certificate, key and client CA are
//! re-read every few seconds; when their content changes and still makes a valid configuration,
//! new connections get it; when it does not, the error is logged and the old one stays.

use crate::config::TlsSettings;
use anyhow::Context;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Finished handshakes waiting for tonic to take them.
const ACCEPTED_BACKLOG: usize = 64;
/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The TLS files, as the settings name them.
#[derive(Debug, Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// What the files held when last read. No `Debug`: it holds the private key.
#[derive(Clone, PartialEq, Eq)]
struct TlsContents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// TLS for the gRPC port, loaded and ready to serve.
pub struct GrpcTls {
    files: TlsFiles,
    loaded: TlsContents,
    config: watch::Sender<Arc<ServerConfig>>,
    reload_interval: Duration,
    handshake_timeout: Duration,
}

impl GrpcTls {
    /// Loads the files the settings name; `None` when TLS is off. A missing, unreadable or
    /// invalid file stops start-up with an error naming its setting.
    pub fn from_settings(settings: &TlsSettings) -> anyhow::Result<Option<Self>> {
        let (cert, key) = match (&settings.tls_cert, &settings.tls_key) {
            (None, None) => {
                if settings.tls_client_ca.is_some() {
                    anyhow::bail!(
                        "AUTHD_TLS_CLIENT_CA (--tls-client-ca) needs AUTHD_TLS_CERT and AUTHD_TLS_KEY"
                    );
                }
                return Ok(None);
            }
            (Some(_), None) => {
                anyhow::bail!(
                    "AUTHD_TLS_CERT (--tls-cert) is set but AUTHD_TLS_KEY (--tls-key) is not"
                )
            }
            (None, Some(_)) => {
                anyhow::bail!(
                    "AUTHD_TLS_KEY (--tls-key) is set but AUTHD_TLS_CERT (--tls-cert) is not"
                )
            }
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        };
        if settings.tls_handshake_timeout.is_zero() {
            anyhow::bail!(
                "AUTHD_TLS_HANDSHAKE_TIMEOUT (--tls-handshake-timeout) must be more than 0"
            );
        }
        let files = TlsFiles {
            cert,
            key,
            client_ca: settings.tls_client_ca.clone(),
        };
        let loaded = files.read()?;
        let config = server_config(&files, &loaded)?;
        Ok(Some(Self {
            files,
            loaded,
            config: watch::Sender::new(config),
            reload_interval: settings.tls_reload_interval,
            handshake_timeout: settings.tls_handshake_timeout,
        }))
    }

    /// Whether clients must present a certificate signed by the client CA.
    pub fn is_mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Turns the listener into a stream of connections whose TLS handshake has completed, and
    /// starts watching the files. Both stop once the stream is dropped (tonic drops it when it
    /// stops serving).
    pub fn incoming(
        self,
        listener: TcpListener,
    ) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
        let (accepted, stream) = mpsc::channel(ACCEPTED_BACKLOG);
        let config = self.config.subscribe();
        tokio::spawn(accept_loop(
            listener,
            config,
            self.handshake_timeout,
            accepted,
        ));
        if !self.reload_interval.is_zero() {
            tokio::spawn(watch_files(
                self.files,
                self.loaded,
                self.config,
                self.reload_interval,
            ));
        }
        ReceiverStream::new(stream)
    }
}

impl TlsFiles {
    fn read(&self) -> anyhow::Result<TlsContents> {
        Ok(TlsContents {
            cert: read_file("AUTHD_TLS_CERT (--tls-cert)", &self.cert)?,
            key: read_file("AUTHD_TLS_KEY (--tls-key)", &self.key)?,
            client_ca: self
                .client_ca
                .as_deref()
                .map(|path| read_file("AUTHD_TLS_CLIENT_CA (--tls-client-ca)", path))
                .transpose()?,
        })
    }
}

fn read_file(setting: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{setting}: cannot read {}", path.display()))
}

/// A rustls server configuration from the files' content. Errors name the setting and the
/// file; a private key's content never appears in them.
fn server_config(files: &TlsFiles, contents: &TlsContents) -> anyhow::Result<Arc<ServerConfig>> {
    let cert_setting = format!("AUTHD_TLS_CERT (--tls-cert) {}", files.cert.display());
    let key_setting = format!("AUTHD_TLS_KEY (--tls-key) {}", files.key.display());
    let chain = certificates(&contents.cert).with_context(|| cert_setting.clone())?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|_| {
        anyhow::anyhow!("{key_setting}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file")
    })?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let ca_setting = format!("AUTHD_TLS_CLIENT_CA (--tls-client-ca) {}", path.display());
            let mut roots = RootCertStore::empty();
            for ca in certificates(pem).with_context(|| ca_setting.clone())? {
                roots
                    .add(ca)
                    .with_context(|| format!("{ca_setting}: not a usable CA certificate"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| ca_setting.clone())?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|err| {
        anyhow::anyhow!("{cert_setting} with {key_setting}: the key does not fit the certificate or is not usable ({err})")
    })?;
    // gRPC clients (grpc-go, grpcurl) insist on HTTP/2 being negotiated.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| anyhow::anyhow!("not a PEM certificate file ({err})"))?;
    if certs.is_empty() {
        anyhow::bail!("no PEM certificate in the file");
    }
    Ok(certs)
}

/// Accepts TCP connections and hands each to a handshake task of its own, so a client that
/// never finishes its handshake holds up nobody but itself, and only until the timeout.
async fn accept_loop(
    listener: TcpListener,
    config: watch::Receiver<Arc<ServerConfig>>,
    handshake_timeout: Duration,
    accepted: mpsc::Sender<io::Result<TlsStream<TcpStream>>>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            result = listener.accept() => match result {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a gRPC connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = accepted.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        // The configuration of the moment: a reload applies to the connections that follow.
        let acceptor = TlsAcceptor::from(Arc::clone(&config.borrow()));
        let accepted = accepted.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = accepted.send(Ok(tls)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Re-reads the files every `interval` while anyone still accepts connections; swaps in a new
/// configuration when their content changed and is valid, and keeps the old one otherwise.
async fn watch_files(
    files: TlsFiles,
    mut seen: TlsContents,
    config: watch::Sender<Arc<ServerConfig>>,
    interval: Duration,
) {
    let mut unreadable = false;
    while !config.is_closed() {
        tokio::time::sleep(interval).await;
        let contents = match files.read() {
            Ok(contents) => contents,
            Err(err) => {
                // Once per outage, not every few seconds.
                if !unreadable {
                    tracing::warn!(error = %format!("{err:#}"), "TLS files unreadable; keeping the loaded ones");
                }
                unreadable = true;
                continue;
            }
        };
        unreadable = false;
        if contents == seen {
            continue;
        }
        match server_config(&files, &contents) {
            Ok(new) => {
                config.send_replace(new);
                tracing::info!("TLS files changed; new connections use them");
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "changed TLS files are not valid; keeping the loaded ones");
            }
        }
        // Either way, the same content is not tried (or complained about) again.
        seen = contents;
    }
}
