//! `culvert doctor` on a good working directory (all ok, exit 0), a broken one (a data
//! directory that cannot be created, an address another program holds: exit 3; a broken
//! pipeline file: exit 2), and next to a running server (its address: a warning); and its
//! switches: `--check NAME` (only those; an unknown name exit 2), `--quiet` (only what
//! warns or fails), `--require-server` (a server must answer on both addresses),
//! `--deep` (every standalone connector started and asked for its specification) and
//! `-o json|yaml`.

use crate::harness::{culvert, data_dir, Server};
use std::process::Command;

/// Run `culvert doctor` in `dir` with free API ports unless `args` set them.
fn doctor(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
    command.current_dir(dir).arg("doctor");
    for flag in ["--api.grpc.address", "--api.http.address"] {
        if !args.contains(&flag) {
            command.args([flag, "127.0.0.1:0"]);
        }
    }
    let output = command.args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap(),
    )
}

/// The status word of a check's line.
fn status<'o>(out: &'o str, check: &str) -> &'o str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&format!("{check}:")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {check} line in:\n{out}"))
}

#[test]
fn a_fresh_working_directory_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = culvert(&["init", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = doctor(tmp.path(), &[]);
    assert_eq!(code, 0, "{out}");
    for check in [
        "version",
        "config.file",
        "config.validate",
        "config.pipelines",
        "store.dir",
        "store.open",
        "network.grpc",
        "network.http",
        "plugins.connectors_dir",
        "plugins.processors_dir",
        "limits.open_files",
    ] {
        assert_eq!(status(&out, check), "ok", "{check} in:\n{out}");
    }
    assert!(out.contains("config.file: read ./culvert.yaml"), "{out}");
    assert!(
        out.contains("config.pipelines: ./pipelines is valid"),
        "{out}"
    );
    assert!(
        out.contains("store.dir: ./data does not exist yet; it will be created"),
        "{out}"
    );
}

#[test]
fn deep_starts_every_standalone_connector() {
    let tmp = tempfile::tempdir().unwrap();
    let connectors = tmp.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    let deep = ["--deep", "--check", "plugins.standalone_compat"];
    // Without --deep the check is not run, and naming it is a usage error.
    let (code, out) = doctor(tmp.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("plugins.standalone_compat"), "{out}");
    let (code, out) = doctor(tmp.path(), &deep[1..]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("requires --deep"), "{out}");
    // An empty directory: a warning.
    let (code, out) = doctor(tmp.path(), &deep);
    assert_eq!(code, 0, "{out}");
    assert_eq!(status(&out, "plugins.standalone_compat"), "warn", "{out}");
    // A real connector passes; a file that is no plugin fails the check (exit 1).
    std::fs::copy(
        crate::harness::upstream_connector("file", "v0.10.8"),
        connectors.join("file"),
    )
    .unwrap();
    let (code, out) = doctor(tmp.path(), &deep);
    assert_eq!(code, 0, "{out}");
    assert_eq!(status(&out, "plugins.standalone_compat"), "ok", "{out}");
    assert!(out.contains("file@v0.10.8"), "{out}");
    let junk = connectors.join("junk");
    std::fs::write(&junk, "#!/bin/sh\nexit 7\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out) = doctor(tmp.path(), &deep);
    assert_eq!(code, 1, "{out}");
    assert_eq!(status(&out, "plugins.standalone_compat"), "fail", "{out}");
    assert!(
        out.contains("1 of 2 standalone connector plugin(s)") && out.contains("junk: "),
        "{out}"
    );
}

#[test]
fn a_broken_setup_fails_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory under a regular file cannot be created (even by root), and an
    // address another program listens on is taken.
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let (code, out) = doctor(
        tmp.path(),
        &[
            "--db.rocksdb.path",
            "file/data",
            "--api.grpc.address",
            &taken,
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert_eq!(status(&out, "store.dir"), "fail", "{out}");
    assert!(out.contains("file/data cannot be created"), "{out}");
    assert!(out.contains("set --db.rocksdb.path"), "{out}");
    assert_eq!(status(&out, "network.grpc"), "fail", "{out}");
    assert!(
        out.contains(&format!(
            "{taken} is in use by another program: free it or set --api.grpc.address"
        )),
        "{out}"
    );
    assert_eq!(status(&out, "plugins.connectors_dir"), "warn", "{out}");
    assert!(out.contains("2 failed"), "{out}");

    // A pipeline file with an error: invalid configuration, exit 2.
    let pipelines = tmp.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("bad.yaml"),
        "version: \"2.2\"\npipelines:\n  - id: p\n    status: paused\n",
    )
    .unwrap();
    let (code, out) = doctor(tmp.path(), &["--pipelines.path", "pipelines"]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(status(&out, "config.pipelines"), "fail", "{out}");
    assert!(
        out.contains("run `culvert pipelines validate pipelines`"),
        "{out}"
    );
}

#[test]
fn next_to_a_running_server_its_address_is_a_warning() {
    let (_tmp, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let http = server.http_address();
    server.wait_for_line("culvert ready");
    let (code, out) = doctor(
        data.parent().unwrap(),
        &[
            "--api.http.address",
            &http,
            "--db.rocksdb.path",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(status(&out, "network.http"), "warn", "{out}");
    assert!(out.contains("already runs there"), "{out}");
    // The store opens read-only beside the server.
    assert_eq!(status(&out, "store.open"), "ok", "{out}");
    assert!(out.contains("layout version"), "{out}");
}

/// The check names printed, in order (table output).
fn names(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with("summary:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| n.trim_end_matches(':'))
        .collect()
}

#[test]
fn check_runs_only_the_named_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = doctor(
        tmp.path(),
        &[
            "--check",
            "store.dir",
            "--check",
            "version,limits.open_files",
        ],
    );
    assert_eq!(code, 0, "{out}");
    // In the order doctor runs them, whatever the order asked.
    assert_eq!(
        names(&out),
        ["version", "store.dir", "limits.open_files"],
        "{out}"
    );
    assert!(out.contains("summary: 3 checks, 3 ok"), "{out}");

    // A check that fails still decides the exit code when it is the only one run.
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let (code, out) = doctor(
        tmp.path(),
        &["--check", "store.dir", "--db.rocksdb.path", "file/data"],
    );
    assert_eq!(code, 3, "{out}");
    assert_eq!(names(&out), ["store.dir"], "{out}");

    // An unknown name: a usage error naming every valid check.
    let (code, out) = doctor(tmp.path(), &["--check", "store.dri"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("store.dri"), "{out}");
    for name in [
        "version",
        "config.file",
        "config.validate",
        "config.pipelines",
        "store.dir",
        "store.open",
        "network.grpc",
        "network.http",
        "plugins.connectors_dir",
        "plugins.processors_dir",
        "disk.free",
        "limits.open_files",
    ] {
        assert!(out.contains(name), "{name} not listed in:\n{out}");
    }
}

#[test]
fn quiet_prints_only_what_warns_or_fails() {
    let tmp = tempfile::tempdir().unwrap();
    // No connectors/ or processors/ here: two warnings, nothing failed.
    let (code, out) = doctor(tmp.path(), &["--quiet"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        names(&out),
        ["plugins.connectors_dir", "plugins.processors_dir"],
        "{out}"
    );
    assert!(out.lines().all(|l| l.starts_with("warn ")), "{out}");
    assert!(!out.contains("summary:"), "{out}");

    // All well: nothing at all.
    let (code, out, err) = culvert(&["init", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = doctor(tmp.path(), &["--quiet"]);
    assert_eq!((code, out.as_str()), (0, ""));

    // A failure is printed, as JSON too.
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let (code, out) = doctor(
        tmp.path(),
        &["--quiet", "--json", "--db.rocksdb.path", "file/data"],
    );
    assert_eq!(code, 3, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["check"], "store.dir");
    assert_eq!(lines[0]["status"], "fail");
}

#[test]
fn output_yaml_is_one_document_per_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = doctor(tmp.path(), &["--check", "version,store.dir", "-o", "yaml"]);
    assert_eq!(code, 0, "{out}");
    let documents = yaml_rust2::YamlLoader::load_from_str(&out).unwrap();
    assert_eq!(documents.len(), 2, "{out}");
    assert_eq!(documents[0]["check"].as_str(), Some("version"));
    assert_eq!(documents[1]["check"].as_str(), Some("store.dir"));
    assert_eq!(documents[1]["status"].as_str(), Some("ok"));
    // `--json` and `--output` do not go together.
    let (code, out) = doctor(tmp.path(), &["--json", "-o", "yaml"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn require_server_fails_without_one_and_passes_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let network = ["--check", "network.grpc,network.http", "--require-server"];

    // Nothing listens on a port just freed; something that never answers holds another.
    let freed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_address = mute.local_addr().unwrap().to_string();
    let mut args = network.to_vec();
    args.extend([
        "--api.grpc.address",
        &freed,
        "--api.http.address",
        &mute_address,
    ]);
    let (code, out) = doctor(tmp.path(), &args);
    assert_eq!(code, 3, "{out}");
    assert_eq!(status(&out, "network.grpc"), "fail", "{out}");
    assert!(
        out.contains(&format!("no server answers at {freed}")),
        "{out}"
    );
    assert!(out.contains("`culvert run`"), "{out}");
    assert_eq!(status(&out, "network.http"), "fail", "{out}");
    assert!(out.contains("GET /healthz does not answer 200"), "{out}");
    drop(mute);

    // Port 0 names no server: a usage problem.
    let (code, out) = doctor(tmp.path(), &network);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("port 0"), "{out}");

    // A running server answers on both.
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    server.wait_for_line("culvert ready");
    let mut args = network.to_vec();
    args.extend(["--api.grpc.address", &grpc, "--api.http.address", &http]);
    let (code, out) = doctor(tmp.path(), &args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(status(&out, "network.grpc"), "ok", "{out}");
    assert!(
        out.contains(&format!("a server answers gRPC at {grpc} (version v")),
        "{out}"
    );
    assert_eq!(status(&out, "network.http"), "ok", "{out}");
    // The gRPC address is not the HTTP API: swapped, both fail.
    let mut args = network.to_vec();
    args.extend(["--api.grpc.address", &http, "--api.http.address", &grpc]);
    let (code, out) = doctor(tmp.path(), &args);
    assert_eq!(code, 3, "{out}");
    assert_eq!(status(&out, "network.grpc"), "fail", "{out}");
    assert_eq!(status(&out, "network.http"), "fail", "{out}");
}
