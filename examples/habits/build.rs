//! Compiles this service's own proto (`proto/habits/v1/habits.proto`) with protox, a pure-Rust
//! protobuf compiler, so no system `protoc` is needed. The encoded descriptor set is written next
//! to the generated code for gRPC server reflection.

use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["habits/v1/habits.proto"], ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("habits_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
