//! Generates the agent's gRPC types and stubs from proto/agent.proto (needs `protoc`,
//! Debian package protobuf-compiler, which scripts/install-deps installs).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    tonic_prost_build::configure().compile_protos(&["proto/agent.proto"], &["proto"])?;
    Ok(())
}
