//! `culvert doctor` on a good working directory (all ok, exit 0), a broken one (a data
//! directory that cannot be created, an address another program holds: exit 3; a broken
//! pipeline file: exit 2), and next to a running server (its address: a warning).

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
