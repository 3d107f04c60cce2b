//! The gRPC face of authd: thin handlers that turn requests into use-case calls, the one mapping
//! from `AuthError` to `tonic::Status`, a layer that counts calls for `/metrics`, who may call
//! Introspect, who is calling AccountService, and TLS for the port.

mod account;
mod auth;
mod bearer;
mod client;
pub mod client_auth;
pub mod codec;
mod layer;
mod status;
pub mod tls;

pub use account::AccountGrpc;
pub use auth::AuthGrpc;
pub use bearer::SessionTokens;
pub use client::TrustedProxies;
pub use layer::MetricsLayer;

/// The encoded descriptors of every service the gRPC port serves: AuthService and
/// AccountService (one file), health, and both reflection versions. The metrics' method table is made from these.
pub const DESCRIPTOR_SETS: [&[u8]; 4] = [
    pb::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// The encoded descriptors server reflection serves, so that grpcurl and other generic clients
/// need no proto file: the services people call, and the error details their errors carry.
pub const REFLECTED_DESCRIPTOR_SETS: [&[u8]; 3] = [
    pb::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    pb::ERROR_DETAILS_DESCRIPTOR_SET,
];

/// Code generated from `proto/auth/v1/auth.proto`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("auth.v1");

    /// Encoded descriptors of the proto files, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/auth_descriptor.bin"));

    /// Encoded descriptors of `google/rpc/error_details.proto` and its import
    /// (`google/protobuf/duration.proto`), so that reflection clients can decode the
    /// `google.rpc.BadRequest` and `google.rpc.RetryInfo` details that authd's errors carry.
    pub const ERROR_DETAILS_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/error_details_descriptor.bin"));
}
