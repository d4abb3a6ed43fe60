//! `--pipelines.watch`: editing a pipeline file updates the running server — the running
//! pipeline is stopped, changed and started again, recorded with the file as actor — and a
//! broken edit changes nothing, with the problem logged at its file and line.

use crate::harness::{data_dir, wait_until, Server};
use crate::http_client::{call, number};
use std::path::Path;
use std::time::Instant;

fn document(out: &Path, description: &str) -> String {
    format!(
        r#"version: "2.2"
pipelines:
  - id: watched
    status: running
    description: {description}
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings: {{ format.type: structured, format.options.id: int, rate: "200" }}
      - id: out
        type: destination
        plugin: builtin:file
        settings: {{ path: "{}" }}
"#,
        out.display()
    )
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn an_edited_file_updates_the_running_pipeline_and_a_broken_one_changes_nothing() {
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    let file = pipelines.join("watched.yml");
    let (first, second) = (
        dir.path().join("first.jsonl"),
        dir.path().join("second.jsonl"),
    );
    std::fs::write(&file, document(&first, "one")).unwrap();
    let mut server = Server::start(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--pipelines.watch",
        ],
    );
    let address = server.http_address();
    server.wait_for_line("watching pipeline files");
    wait_until("the provisioned pipeline writes", || lines(&first) > 0);

    // Edit: a new destination path and description. The pipeline runs again, writing there.
    let edited = Instant::now();
    std::fs::write(&file, document(&second, "two")).unwrap();
    wait_until("the running server took the edit", || {
        let p = call(&address, "GET", "/v1/pipelines/watched", None);
        p["config"]["description"] == "two" && p["state"]["status"] == "STATUS_RUNNING"
    });
    // A figure for the log, not an assertion (the watcher polls every 250 ms).
    eprintln!(
        "edit applied and pipeline running again after {:?}",
        edited.elapsed()
    );
    let connector = call(&address, "GET", "/v1/connectors/watched:out", None);
    assert_eq!(
        connector["config"]["settings"]["path"],
        second.to_str().unwrap()
    );
    wait_until("the new destination is written", || lines(&second) > 0);
    let events = call(&address, "GET", "/v1/events?entity_id=watched", None);
    let events = events["events"].as_array().unwrap();
    let file_actor = format!("provisioning:{}", file.display());
    let stop = events
        .iter()
        .find(|e| e["type"] == "PipelineStopRequested")
        .expect("the reload stopped the pipeline first");
    assert_eq!(stop["actor"], file_actor.as_str(), "{stop}");
    assert_eq!(stop["reason"], "its configuration file changed");
    let updated = events
        .iter()
        .find(|e| e["type"] == "PipelineUpdated")
        .expect("the description changed");
    assert_eq!(updated["actor"], file_actor.as_str(), "{updated}");

    // A broken edit: the problem is logged with its file and line; nothing changes. First
    // let the restart settle (the engine's start report is the last event it writes; the
    // API shows "starting" as running already).
    wait_until("the engine reported the restart", || {
        let events = call(&address, "GET", "/v1/events?entity_id=watched", None);
        events["events"].as_array().unwrap().last().unwrap()["type"] == "PipelineStarted"
    });
    let head =
        |address: &str| number(&call(address, "GET", "/v1/events?page_size=1", None)["lastSeq"]);
    let before = head(&address);
    std::fs::write(
        &file,
        "version: \"2.2\"\npipelines:\n  - id: watched\n    connectors: [\n",
    )
    .unwrap();
    let logged = server.wait_for_line("pipeline configuration");
    let logged: serde_json::Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(logged["fields"]["file"], file.to_str().unwrap(), "{logged}");
    assert!(logged["fields"]["line"].as_u64().unwrap() >= 1, "{logged}");
    server.wait_for_line("pipelines provisioned");
    let after = call(
        &address,
        "GET",
        &format!("/v1/events?from_seq={}", before + 1),
        None,
    );
    assert_eq!(
        head(&address),
        before,
        "a broken file records nothing: {after}"
    );
    let p = call(&address, "GET", "/v1/pipelines/watched", None);
    assert_eq!(p["state"]["status"], "STATUS_RUNNING", "{p}");
    assert_eq!(p["config"]["description"], "two");
    drop(server);
}

/// Conduit's names for the same flags: `--pipelines` for `--pipelines.path`, `--dev` (and
/// `--dev.enabled`) for `--pipelines.watch`.
#[test]
fn conduits_flag_names_provision_and_watch_the_same() {
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(pipelines.join("watched.yml"), document(&out, "alias")).unwrap();
    for watch in [&["--dev"][..], &["--dev.enabled=true"][..]] {
        let mut args = vec!["--pipelines", pipelines.to_str().unwrap()];
        args.extend_from_slice(watch);
        let mut server = Server::start(&data, &args);
        let address = server.http_address();
        server.wait_for_line("watching pipeline files");
        let p = call(&address, "GET", "/v1/pipelines/watched", None);
        assert_eq!(p["config"]["description"], "alias", "{p}");
        server.terminate();
        assert!(server.wait().success(), "{:#?}", server.seen);
    }
}
