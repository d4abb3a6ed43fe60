//! Compiles Culvert's copies of the connector plugin protocol (`connector.v2`) and of
//! go-plugin's controller and stdio services with protox (no system protoc), clients only
//! (Culvert is the host, the plugins serve), of the WASM processors' command messages, and
//! of the connector-utilities schema service, server only (the host serves it to its
//! plugins).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../proto");
    for dir in [
        "connector/v2",
        "plugin",
        "opencdc/v1",
        "config/v1",
        "connutils/v1",
        "schema/v1",
        "processor/v1",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let files = [
        "connector/v2/specifier.proto",
        "connector/v2/source.proto",
        "connector/v2/destination.proto",
        "plugin/plugin.proto",
        "processor/v1/processor.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    let fds = protox::compile(["connutils/v1/schema.proto"], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .compile_fds(fds)?;
    Ok(())
}
