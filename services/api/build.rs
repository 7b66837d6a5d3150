//! Compiles proto/ with protox (no system protoc) and writes the descriptor set that server
//! reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "caseway/common/v1/common.proto",
        "caseway/tenancy/v1/tenancy.proto",
        "caseway/catalog/v1/catalog.proto",
        "caseway/clients/v1/clients.proto",
        "caseway/clients/v1/assessments.proto",
        "caseway/clients/v1/barriers.proto",
        "caseway/records/v1/records.proto",
        "caseway/authorizations/v1/authorizations.proto",
        "caseway/events/v1/events.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("caseway_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
