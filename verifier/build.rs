//! Compiles authd's `proto/auth/v1/auth.proto` (at the workspace root) into the AuthService
//! client that remote mode (Introspect) and the gRPC JWKS source (GetJwks) call. protox is a
//! pure-Rust protobuf compiler, so no system `protoc` is needed. Client only: no server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/auth");
    let fds = protox::compile(["auth/v1/auth.proto"], ["../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
