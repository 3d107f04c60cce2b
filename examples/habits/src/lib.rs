//! habits: the seed apps' per-user habits API rebuilt on authd, written the way a downstream team
//! writes its own service. `habits.v1.Habits` sits behind `authd_verifier::AuthLayer`, which
//! checks the caller's access token (locally against authd's JWKS, or remotely with Introspect)
//! and hands the handlers typed claims; each user sees and deletes only their own habits.
//! gRPC health and reflection answer without a token.

pub mod app;
pub mod grpc;
pub mod input;
pub mod settings;
pub mod store;

pub use app::{App, AppError, shutdown_signal};
pub use settings::{AuthdSettings, Settings, SettingsError};

/// Code generated from `proto/habits/v1/habits.proto`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("habits.v1");

    /// Encoded descriptors of the proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/habits_descriptor.bin"));
}
