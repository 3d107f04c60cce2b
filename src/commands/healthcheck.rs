//! `authd healthcheck`: the container's HEALTHCHECK. It asks the local server's
//! `grpc.health.v1.Health/Check` for service `""` and succeeds only on SERVING, within one timeout
//! that covers the connection as well, so a port that accepts TCP and never answers fails too.
//!
//! It reads the same variables as `serve`, so inside the container it needs no flags:
//! - plain gRPC port: a plaintext HTTP/2 health call;
//! - TLS (`AUTHD_TLS_CERT`): TLS that accepts exactly the certificate in that file (pinned),
//!   whatever names it carries and whoever issued it; the handshake signature is still checked,
//!   so only the holder of the key passes;
//! - mTLS (`AUTHD_TLS_CLIENT_CA` as well): the gRPC port needs a client certificate the container
//!   has no reason to hold, so the check asks `GET /readyz` on the plain HTTP side port instead,
//!   which answers from the same database check.

use crate::config::HealthcheckSettings;
use anyhow::{Context, anyhow, bail};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Runs the check; `Ok` means the server is serving. The error is one short line for stderr.
pub async fn run(settings: &HealthcheckSettings) -> anyhow::Result<()> {
    let timeout = settings.timeout;
    match tokio::time::timeout(timeout, check(settings)).await {
        Ok(result) => result,
        Err(_) => bail!("no answer within {}s", timeout.as_secs_f32()),
    }
}

async fn check(settings: &HealthcheckSettings) -> anyhow::Result<()> {
    match (&settings.tls_cert, &settings.tls_client_ca) {
        (Some(_), Some(_)) => readyz(loopback(settings.http_addr)).await,
        (Some(cert), None) => {
            let pinned = pinned_cert(cert)?;
            grpc_health(loopback(settings.grpc_addr), Some(pinned)).await
        }
        (None, _) => grpc_health(loopback(settings.grpc_addr), None).await,
    }
}

/// Where to connect for a listen address: an unspecified address means this host.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

async fn grpc_health(
    addr: SocketAddr,
    pinned: Option<CertificateDer<'static>>,
) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let channel: Channel = match pinned {
        None => endpoint.connect().await,
        Some(cert) => {
            let tls = TlsConnector::from(Arc::new(pinned_client_config(cert)?));
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let tls = tls.clone();
                    async move {
                        let tcp = TcpStream::connect(addr).await?;
                        let stream = tls.connect(ServerName::from(addr.ip()), tcp).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
    }
    .map_err(|err| anyhow!("cannot connect to {addr}: {}", root_cause(&err)))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| anyhow!("health check at {addr} failed: {:?}", status.code()))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => bail!("{addr} is {}", other.as_str_name()),
    }
}

/// The innermost error: "Connection refused (os error 111)" rather than tonic's "transport error".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `GET /readyz` on the HTTP side port: 200 is ready.
async fn readyz(addr: SocketAddr) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|err| anyhow!("cannot connect to {addr}: {err}"))?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    // The status line is all that matters; the answer is a few bytes.
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer).await?;
    let status_line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    match status_line.split(' ').nth(1) {
        Some("200") => Ok(()),
        Some(code) => bail!("http://{addr}/readyz answered {code}"),
        None => bail!("http://{addr}/readyz gave no HTTP answer"),
    }
}

/// The first certificate of the PEM file the server serves.
fn pinned_cert(path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .with_context(|| format!("AUTHD_TLS_CERT: cannot read {}", path.display()))?
        .next()
        .with_context(|| format!("AUTHD_TLS_CERT: no certificate in {}", path.display()))?
        .with_context(|| format!("AUTHD_TLS_CERT: bad PEM in {}", path.display()))
}

fn pinned_client_config(cert: CertificateDer<'static>) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { cert, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts one certificate, byte for byte: the one authd was told to serve. Names and issuer do
/// not matter (the check connects to loopback, which the certificate need not name); the
/// handshake signature does, so a server without the private key fails.
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(tokio_rustls::rustls::Error::General(
                "the server's certificate is not the one in AUTHD_TLS_CERT".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
