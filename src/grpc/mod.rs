//! The gRPC face of authd: thin handlers that turn requests into use-case calls, the one mapping
//! from `AuthError` to `tonic::Status`, a layer that counts calls for `/metrics`, who may call
//! Introspect, who is calling AccountService, Envoy's external authorization, and TLS for the
//! port.

mod account;
mod auth;
mod bearer;
mod client;
pub mod client_auth;
pub mod codec;
pub mod ext_authz;
mod layer;
mod status;
pub mod tls;

pub use account::AccountGrpc;
pub use auth::AuthGrpc;
pub use bearer::SessionTokens;
pub use client::TrustedProxies;
pub use ext_authz::ExtAuthzGrpc;
pub use layer::MetricsLayer;

/// The encoded descriptors of every service the gRPC port serves: AuthService and
/// AccountService (one file), Envoy's Authorization, health, and both reflection versions. The
/// metrics' method table is made from these.
pub const DESCRIPTOR_SETS: [&[u8]; 5] = [
    pb::FILE_DESCRIPTOR_SET,
    envoy::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// The encoded descriptors server reflection serves, so that grpcurl and other generic clients
/// need no proto file: the services people call, and the error details their errors carry.
pub const REFLECTED_DESCRIPTOR_SETS: [&[u8]; 4] = [
    pb::FILE_DESCRIPTOR_SET,
    envoy::FILE_DESCRIPTOR_SET,
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

/// Code generated from `proto/envoy/` (a subset of Envoy's ext_authz v3 API, see its LICENSE),
/// in modules that mirror Envoy's packages, as the generated code refers to its types.
pub mod envoy {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]

    /// Encoded descriptors of the Envoy files and their imports (`google/rpc/status.proto`,
    /// `google/protobuf/any.proto`), for server reflection and the metrics.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptor.bin"));

    pub mod config {
        pub mod core {
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }

    pub mod r#type {
        pub mod v3 {
            // prost names the file after the escaped module name.
            tonic::include_proto!("envoy.r#type.v3");
        }
    }

    pub mod service {
        pub mod auth {
            pub mod v3 {
                tonic::include_proto!("envoy.service.auth.v3");
            }
        }
    }
}
