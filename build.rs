//! Compiles `proto/` into Rust with protox (a pure-Rust protobuf compiler), so building authd
//! needs no system `protoc`. The encoded descriptor set is written next to the generated code for
//! gRPC server reflection.
//!
//! `proto/google/rpc/error_details.proto` (googleapis, vendored) is compiled into a descriptor
//! set of its own for reflection only: its Rust types come from `tonic-types`.
//!
//! The AuthService server and client use authd's own codec (`src/grpc/codec.rs`): prost's
//! encoding, and a decoder that answers a request that does not decode with INVALID_ARGUMENT.
//! Messages know their protobuf names (`prost::Name`), so that answer can say which message it
//! expected.
//!
//! `proto/envoy/` (a subset of Envoy's ext_authz v3 API, see its LICENSE) is compiled the same
//! way into a descriptor set and code of its own; its `google.rpc.Status` is `tonic_types::Status`.

use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["auth/v1/auth.proto"], ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("auth_descriptor.bin"), fds.encode_to_vec())?;
    let details = protox::compile(["google/rpc/error_details.proto"], ["proto"])?;
    fs::write(
        out_dir.join("error_details_descriptor.bin"),
        details.encode_to_vec(),
    )?;
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::grpc::codec::ProtoCodec")
        .compile_fds_with_config(fds, config)?;

    let envoy = protox::compile(["envoy/service/auth/v3/external_auth.proto"], ["proto"])?;
    fs::write(out_dir.join("envoy_descriptor.bin"), envoy.encode_to_vec())?;
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.extern_path(".google.rpc.Status", "::tonic_types::Status");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::grpc::codec::ProtoCodec")
        .compile_fds_with_config(envoy, config)?;
    Ok(())
}
