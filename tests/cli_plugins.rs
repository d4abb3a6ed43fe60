//! `culvert connector-plugins install|uninstall|list|describe` and `culvert
//! processor-plugins install|uninstall`: real plugins (Conduit's file connector, built
//! with Go, and our WASM fixture processor) installed from a local index file and over
//! HTTP from a server in this test, their SHA-256 checked before anything is kept (a
//! tampered artifact leaves nothing behind), files that are no plugin refused, a second
//! install refused without --force, uninstalls, and a server started on the directory
//! listing what was installed.

use crate::harness::{culvert, data_dir, listed_names, Server};
use sha2::{Digest as _, Sha256};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

/// This machine's OS and architecture in Go's terms (the index's `os` and `arch`).
fn platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (std::env::consts::OS, arch)
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An index in `dir` offering the file connector v0.10.8 (right digest) and v0.10.9 (a
/// tampered artifact: the digest is of other bytes), both as `artifacts/...` relative to
/// the index; its path.
fn index(dir: &Path, connector: &Path) -> PathBuf {
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(connector, artifacts.join("file-v0.10.8")).unwrap();
    let mut tampered = std::fs::read(connector).unwrap();
    let good_digest = sha256(connector);
    tampered.extend_from_slice(b"appended by an attacker");
    std::fs::write(artifacts.join("file-v0.10.9"), &tampered).unwrap();
    let (os, arch) = platform();
    let index = serde_json::json!({
        "version": 1,
        "plugins": [
            {"name": "file", "version": "v0.10.8", "kind": "connector", "os": os, "arch": arch,
             "url": "artifacts/file-v0.10.8", "sha256": good_digest},
            {"name": "file", "version": "v0.10.9", "kind": "connector", "os": os, "arch": arch,
             "url": "artifacts/file-v0.10.9", "sha256": good_digest},
            {"name": "file", "version": "v0.11.0", "kind": "connector", "os": "plan9", "arch": arch,
             "url": "artifacts/none", "sha256": good_digest},
        ]
    });
    let path = dir.join("index.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();
    path
}

/// Every file of `dir` (names), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn connectors_install_from_an_index_verified_and_a_server_lists_them() {
    let connector = crate::standalone::upstream_connector("file", "v0.10.8");
    let (tmp, data) = data_dir();
    let index = index(&tmp.path().join("index"), &connector);
    let index = index.to_str().unwrap();
    let plugins = tmp.path().join("connectors");
    let dir = plugins.to_str().unwrap();

    // The newest for this platform is v0.10.9, whose artifact was tampered with: refused,
    // naming both digests, and nothing is left in the directory.
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "install",
        "file",
        "--index",
        index,
        "--path",
        dir,
    ]);
    assert_eq!(code, 3, "{out}\n{err}");
    let expected = sha256(&connector);
    let tampered = sha256(&tmp.path().join("index/artifacts/file-v0.10.9"));
    assert!(
        err.contains("checksum mismatch")
            && err.contains(&format!("expected sha256 {expected}"))
            && err.contains(&format!("got {tampered}")),
        "{err}"
    );
    assert_eq!(files(&plugins), Vec::<String>::new(), "left behind");

    // A version not in the index, and one for another platform only: usage errors.
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v9.9.9",
        "--index",
        index,
        "--path",
        dir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("file@v0.10.8") && err.contains("(plan9/"),
        "{err}"
    );
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        "s3",
        "--index",
        index,
        "--path",
        dir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no connector plugin \"s3\" in the index; it has: file"),
        "{err}"
    );

    // The good version, through a file:// URL.
    let url = format!("file://{index}");
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v0.10.8",
        "--index",
        &url,
        "--path",
        dir,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("installed standalone:file@v0.10.8 (connector)") && out.contains(&expected),
        "{out}"
    );
    assert_eq!(files(&plugins), ["file"]);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(plugins.join("file"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "not executable: {mode:o}");
    assert_eq!(sha256(&plugins.join("file")), expected);

    // Again: refused without --force, replaced with it.
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v0.10.8",
        "--index",
        index,
        "--path",
        dir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already installed") && err.contains("--force"),
        "{err}"
    );
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v0.10.8",
        "--index",
        index,
        "--path",
        dir,
        "--force",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(files(&plugins), ["file"]);

    // Files that are no connector plugin are refused and leave nothing behind.
    let script = tmp.path().join("not-a-plugin");
    std::fs::write(&script, "#!/bin/sh\necho 'no plugin here' >&2\n").unwrap();
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        script.to_str().unwrap(),
        "--path",
        dir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not a standalone connector plugin"),
        "{err}"
    );
    let wasm = tmp.path().join("module.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        wasm.to_str().unwrap(),
        "--path",
        dir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("processor-plugins install"), "{err}");
    assert_eq!(files(&plugins), ["file"]);

    // A server started on the directory lists it, over HTTP and through the CLI.
    let mut server = Server::start(&data, &["--connectors.path", dir]);
    // The log says gRPC first, then HTTP.
    let grpc = server.grpc_address();
    let http = server.http_address();
    let listed = listed_names(&http, "/v1/connectors/plugins?name=standalone:.*");
    assert_eq!(listed, ["standalone:file@v0.10.8"]);
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "list",
        "--name",
        "standalone:.*",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("standalone:file@v0.10.8"), "{out}");
    assert!(!out.contains("builtin:"), "{out}");
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "describe",
        "standalone:file",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Version:     v0.10.8") && out.contains("Parameters (source):"),
        "{out}"
    );
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "describe",
        "file",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("matches 2 connector plugins"), "{err}");
    let (code, out, err) = culvert(&["processor-plugins", "list", "--grpc.address", &grpc]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("builtin:field.set@") && !out.contains("standalone:file"),
        "{out}"
    );
    server.terminate();
    assert!(server.wait().success());

    // Audited against the index: verified. A copy whose bytes changed and a file that is
    // no plugin are warnings; a yanked version fails the audit (and is not installed).
    let (code, out, err) = culvert(&["connectors", "audit", "--index", index, "--path", dir]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("VERIFIED") && out.contains("1 checked") && out.contains("1 pass"),
        "{out}"
    );
    let mut drifted = std::fs::read(&connector).unwrap();
    drifted.extend_from_slice(b"changed on disk");
    std::fs::write(plugins.join("drifted"), drifted).unwrap();
    std::fs::set_permissions(
        plugins.join("drifted"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::copy(&script, plugins.join("junk")).unwrap();
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "audit",
        "--index",
        index,
        "--path",
        dir,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let codes: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["file"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("drifted", "DRIFTED"),
            ("file", "VERIFIED"),
            ("junk", "UNREADABLE")
        ],
        "{out}"
    );
    assert_eq!(
        report["summary"],
        serde_json::json!({"checked": 3, "pass": 1, "warn": 2, "fail": 0})
    );
    let mut yanked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(index).unwrap()).unwrap();
    yanked["plugins"][0]["yanked"] = serde_json::json!(true);
    yanked["plugins"][0]["yanked_reason"] = serde_json::json!("a data-loss bug");
    let yanked_index = tmp.path().join("index/yanked.json");
    std::fs::write(&yanked_index, serde_json::to_vec(&yanked).unwrap()).unwrap();
    let yanked_index = yanked_index.to_str().unwrap();
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "audit",
        "--index",
        yanked_index,
        "--path",
        dir,
    ]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        out.contains("YANKED_VERSION") && out.contains("file@v0.10.8 was yanked: a data-loss bug"),
        "{out}"
    );
    assert!(err.contains("failed the audit"), "{err}");
    let elsewhere = tmp.path().join("elsewhere");
    let (code, _, err) = culvert(&[
        "connectors",
        "install",
        "file@v0.10.8",
        "--index",
        yanked_index,
        "--path",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("was yanked: a data-loss bug"), "{err}");
    assert_eq!(files(&elsewhere), Vec::<String>::new());
    std::fs::remove_file(plugins.join("drifted")).unwrap();
    std::fs::remove_file(plugins.join("junk")).unwrap();

    // Uninstalled; a second time it is unknown, and the installed names are listed.
    std::fs::copy(&connector, plugins.join("other")).unwrap();
    let (code, out, err) = culvert(&["connector-plugins", "uninstall", "file", "--path", dir]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(files(&plugins), ["other"]);
    let (code, _, err) = culvert(&["connector-plugins", "uninstall", "file", "--path", dir]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no connector plugin \"file\"") && err.contains("installed: other"),
        "{err}"
    );

    // Without --path: the directory the server's config file names.
    let configured = tmp.path().join("from-config");
    let config = tmp.path().join("culvert.yaml");
    std::fs::write(
        &config,
        format!("connectors:\n  path: {}\n", configured.display()),
    )
    .unwrap();
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v0.10.8",
        "--index",
        index,
        "--config.path",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(files(&configured), ["file"]);
}

/// Serve `root`'s files over HTTP/1.1 on loopback (one request a connection), for as long
/// as the test runs; the address.
fn serve(root: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // The headers, up to the blank line.
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" || header == "\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let file = root.join(path.trim_start_matches('/'));
            let (status, body) = match std::fs::read(&file) {
                Ok(body) if file.is_file() => ("200 OK", body),
                _ => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    address
}

#[test]
fn plugins_install_over_http_and_processors_install_and_uninstall() {
    let connector = crate::standalone::upstream_connector("file", "v0.10.8");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    index(&root, &connector);
    let address = serve(root);
    let plugins = tmp.path().join("connectors");
    let dir = plugins.to_str().unwrap();

    // The tampered one, over HTTP: refused, nothing left.
    let url = format!("http://{address}/index.json");
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v0.10.9",
        "--index",
        &url,
        "--path",
        dir,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(files(&plugins), Vec::<String>::new());
    // The good one: fetched relative to the index's URL.
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "install",
        "file@v0.10.8",
        "--index",
        &url,
        "--path",
        dir,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(files(&plugins), ["file"]);
    assert_eq!(sha256(&plugins.join("file")), sha256(&connector));
    // An index that is not there: the environment.
    let (code, _, err) = culvert(&[
        "connector-plugins",
        "install",
        "file",
        "--index",
        &format!("http://{address}/missing.json"),
        "--path",
        dir,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("404"), "{err}");

    // A WASM processor from a local file, checked by its magic bytes and compiled.
    let processors = tmp.path().join("processors");
    let pdir = processors.to_str().unwrap();
    let not_wasm = tmp.path().join("not.wasm");
    std::fs::write(&not_wasm, "plain text").unwrap();
    let (code, _, err) = culvert(&[
        "processor-plugins",
        "install",
        not_wasm.to_str().unwrap(),
        "--path",
        pdir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("magic bytes"), "{err}");
    let module = crate::wasm::fixture_processor();
    let digest = sha256(&module);
    let wrong = "0".repeat(64);
    let (code, _, err) = culvert(&[
        "processor-plugins",
        "install",
        module.to_str().unwrap(),
        "--path",
        pdir,
        "--sha256",
        &wrong,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("expected sha256 {wrong}, got {digest}")),
        "{err}"
    );
    let (code, out, err) = culvert(&[
        "processor-plugins",
        "install",
        module.to_str().unwrap(),
        "--path",
        pdir,
        "--sha256",
        &digest,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("installed standalone:fixture@v0.1.0 (processor)"),
        "{out}"
    );
    assert_eq!(files(&processors), ["fixture.wasm"]);
    let (code, _, err) = culvert(&[
        "processor-plugins",
        "install",
        module.to_str().unwrap(),
        "--path",
        pdir,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already installed"), "{err}");
    let (code, out, err) = culvert(&[
        "processor-plugins",
        "uninstall",
        "standalone:fixture@v0.1.0",
        "--path",
        pdir,
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(files(&processors), Vec::<String>::new());
    let (code, _, err) = culvert(&["processor-plugins", "uninstall", "fixture", "--path", pdir]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("installed: none"), "{err}");
}
