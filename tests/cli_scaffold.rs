//! `culvert connectors new` and `culvert processors new`: each scaffolds a Go project that
//! `go mod tidy` and `go build` accept as written (the command runs both), and the plugin
//! it builds installs: a connector is started and gives its specification, a WASM processor
//! is compiled and gives its.

use crate::harness::culvert;

/// `culvert ARGS` with the Go module checksum database off: this machine reaches the Go
/// module proxy but not sum.golang.org (a user's `go` checks it as usual).
fn culvert_go(args: &[&str]) -> (i32, String, String) {
    crate::harness::culvert_with_env(args, &[("GOSUMDB", "off")])
}

#[test]
fn a_scaffolded_connector_builds_and_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("conn");
    let (code, out, err) = culvert_go(&[
        "connectors",
        "new",
        "my-db",
        "--module",
        "github.com/acme/conduit-connector-my-db",
        "--path",
        project.to_str().unwrap(),
        "--git",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("built ") && out.contains("culvert connector-plugins install"),
        "{out}"
    );
    assert!(project.join("go.sum").is_file() && project.join(".git").is_dir());
    let installed = tmp.path().join("connectors");
    let (code, out, err) = culvert(&[
        "connector-plugins",
        "install",
        project.join("my-db").to_str().unwrap(),
        "--path",
        installed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("standalone:my-db@v0.1.0"), "{out}");
    // Again into the same directory: refused without --force.
    let (code, _, err) = culvert_go(&[
        "connectors",
        "new",
        "my-db",
        "--module",
        "github.com/acme/conduit-connector-my-db",
        "--path",
        project.to_str().unwrap(),
        "--skip-build",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn a_scaffolded_processor_builds_and_installs() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proc");
    let (code, out, err) = culvert_go(&[
        "processors",
        "new",
        "tagger",
        "--module",
        "github.com/acme/conduit-processor-tagger",
        "--path",
        project.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let wasm = project.join("tagger.wasm");
    assert!(wasm.is_file(), "{out}");
    let installed = tmp.path().join("processors");
    let (code, out, err) = culvert(&[
        "processor-plugins",
        "install",
        wasm.to_str().unwrap(),
        "--path",
        installed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("standalone:tagger@v0.1.0"), "{out}");
    // A module of the wrong form is a usage error naming the expected one.
    let (code, _, err) = culvert(&[
        "processors",
        "new",
        "tagger",
        "--module",
        "github.com/acme/tagger",
        "--skip-build",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("github.com/<you>/conduit-processor-tagger"),
        "{err}"
    );
}
