//! Compiles the .proto files under `../proto` with protox (no system protoc needed).
//!
//! Three things come out of the one descriptor set: the prost messages and tonic stubs, the
//! protojson (serde) impls for the HTTP API, and the encoded descriptor set itself, which the
//! HTTP layer reads to describe every message in the OpenAPI document.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!(): clones sharing one target dir (CI keeps it
    // outside the clone) share this script's binary, and a baked-in path points at another
    // clone.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let files = [
        "conduit/api/v1/api.proto",
        "culvert/api/v1/events.proto",
        "culvert/api/v1/positions.proto",
        "culvert/api/v1/dead_letters.proto",
    ];
    for dir in [
        "conduit/api/v1",
        "culvert/api/v1",
        "config/v1",
        "opencdc/v1",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let fds = protox::compile(files, [&root])?;
    let encoded = fds.encode_to_vec();
    std::fs::write(out.join("descriptors.bin"), &encoded)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The well-known types come from pbjson-types, which carry protojson serde impls
        // (RFC 3339 timestamps, Struct as plain JSON). Turning off prost's own mapping of
        // them to prost-types is what lets this extern path take their place.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // ... except Timestamp, whose JSON must end in `Z` as protojson's does.
        .extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp")
        .compile_fds(fds)?;
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        // grpc-gateway's marshaler in Conduit: every field present, unknown input discarded.
        .emit_fields()
        .ignore_unknown_fields()
        .build(&[".api.v1", ".culvert.api.v1", ".config.v1", ".opencdc.v1"])?;
    Ok(())
}
