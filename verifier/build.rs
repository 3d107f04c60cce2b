//! Compiles authd's `proto/auth/v1/auth.proto` (at the workspace root) into the AuthService
//! client that remote mode (Introspect), the gRPC JWKS source (GetJwks) and the revocation
//! stream (WatchRevocations) call. protox is a pure-Rust protobuf compiler, so no system
//! `protoc` is needed. The server half is compiled for the unit tests only (`#[cfg(test)]`),
//! where it plays authd; it needs no crate the client does not.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/auth");
    let fds = protox::compile(["auth/v1/auth.proto"], ["../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .server_mod_attribute(".", "#[cfg(test)]")
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
