//! A tonic service protected by authd-verifier, as the README's "protect your service in five
//! lines" shows it. With authd running (`cargo run --release -- serve`):
//!
//! ```text
//! cargo run -p authd-verifier --example protect
//! grpcurl -plaintext 127.0.0.1:50070 grpc.health.v1.Health/Check          # UNAUTHENTICATED
//! grpcurl -plaintext -H "authorization: Bearer $ACCESS_TOKEN" \
//!     127.0.0.1:50070 grpc.health.v1.Health/Check                         # SERVING
//! ```
//!
//! The health service stands in for yours, so here it is protected: the layer is the README's
//! without `.allow_health_and_reflection()`. Settings: `AUTHD_JWKS_URL`, `AUTHD_ISSUER`,
//! `AUTHD_AUDIENCE` (authd's defaults), `PROTECT_ADDR` (`127.0.0.1:50070`).

use authd_verifier::{AuthLayer, Checks, JwksSource, LocalSettings, LocalVerifier};
use tonic::transport::Server;
use tonic_health::pb::health_server::HealthServer as MyServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let jwks = env(
        "AUTHD_JWKS_URL",
        "http://127.0.0.1:8080/.well-known/jwks.json",
    );
    let issuer = env("AUTHD_ISSUER", "http://127.0.0.1:8080");
    let audience = env("AUTHD_AUDIENCE", "authd");
    let addr = env("PROTECT_ADDR", "127.0.0.1:50070").parse()?;
    let (reporter, _) = tonic_health::server::health_reporter();
    let my_service = tonic_health::server::HealthService::from_health_reporter(reporter);

    let verifier = LocalVerifier::start(LocalSettings::new(
        JwksSource::Http(jwks),
        Checks::new(issuer, vec![audience]),
    ));
    println!("protected health service on {addr}");
    Server::builder()
        .layer(AuthLayer::new(verifier))
        .add_service(MyServer::new(my_service))
        .serve(addr)
        .await?;
    Ok(())
}
