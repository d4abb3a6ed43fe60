//! Compiles the .proto files under `../proto` with protox (no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let files = ["conduit/api/v1/api.proto"];
    for dir in ["conduit/api/v1", "config/v1", "opencdc/v1"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
