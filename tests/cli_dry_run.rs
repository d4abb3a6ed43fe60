//! `culvert pipelines dry-run`: a pipeline file run offline for a few records, its
//! destinations replaced by capturing sinks. Proves the records printed are those the
//! destination would have received (every processor applied, exactly N, unique), that the
//! real destination is never written (its file is not even created), that a source with
//! nothing more to give stops at the timeout with what was captured, and that a file with
//! errors exits 2 with `pipelines validate`'s messages.

use crate::harness::culvert;
use std::collections::BTreeSet;

/// A generator -> field.set -> file pipeline writing to `out`.
fn pipeline(out: &std::path::Path, record_count: &str) -> String {
    format!(
        r#"version: "2.2"
pipelines:
  - id: dry
    status: running
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          format.type: structured
          format.options.id: int
          format.options.name: string
          operations: create
          recordCount: "{record_count}"
      - id: out
        type: destination
        plugin: builtin:file
        settings:
          path: {}
    processors:
      - id: tag
        plugin: field.set
        settings:
          field: .Metadata.dryrun
          value: "tagged-{{{{ .Operation }}}}"
"#,
        out.display()
    )
}

#[test]
fn a_dry_run_prints_what_the_destination_would_receive_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let file = dir.path().join("dry.yaml");
    std::fs::write(&file, pipeline(&out, "0")).unwrap();
    let file = file.to_str().unwrap();

    let (code, stdout, stderr) = culvert(&["pipelines", "dry-run", file, "--records", "7"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(records.len(), 7, "{stdout}\n{stderr}");
    // Every record went through the processor, came from the source, and is unique.
    let mut positions = BTreeSet::new();
    for record in &records {
        assert_eq!(record["metadata"]["dryrun"], "tagged-create", "{record}");
        assert_eq!(record["metadata"]["conduit.source.connector.id"], "dry:gen");
        assert!(record["payload"]["after"]["id"].is_i64(), "{record}");
        assert!(
            positions.insert(record["position"].to_string()),
            "duplicate {record}"
        );
    }
    assert!(
        stderr.contains("destination dry:out (builtin:file) would receive 7 record(s)"),
        "{stderr}"
    );
    assert!(!out.exists(), "the real destination's file was created");

    // As one JSON array, per destination.
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "dry-run",
        file,
        "--records",
        "3",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let all: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1, "{stdout}");
    assert_eq!(all[0]["pipeline"], "dry");
    assert_eq!(all[0]["destination"], "dry:out");
    assert_eq!(all[0]["timedOut"], false);
    assert_eq!(all[0]["records"].as_array().unwrap().len(), 3);
    assert!(!out.exists(), "the real destination's file was created");
}

#[test]
fn a_source_that_runs_dry_stops_at_the_timeout_with_what_it_captured() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let file = dir.path().join("dry.yaml");
    // Only 2 records to give, 10 asked for: the source then waits for more.
    std::fs::write(&file, pipeline(&out, "2")).unwrap();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "dry-run",
        file.to_str().unwrap(),
        "--timeout",
        "2s",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.exists());
}

#[test]
fn a_file_with_errors_exits_2_with_validates_messages() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let text =
        pipeline(&dir.path().join("out"), "0").replace("builtin:generator", "builtin:generater");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let (code, dry_out, dry_err) = culvert(&["pipelines", "dry-run", file]);
    assert_eq!(code, 2, "{dry_out}\n{dry_err}");
    let (code, validate_out, _) = culvert(&["pipelines", "validate", file, "--quiet"]);
    assert_eq!(code, 2);
    let message = "error: /pipelines/0/connectors/0/plugin: connector \"gen\": plugin \"builtin:generater\" not found";
    assert!(validate_out.contains(message), "{validate_out}");
    assert_eq!(dry_out, validate_out);

    // An unknown --pipeline is a usage error naming the pipelines there are.
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, pipeline(&dir.path().join("out"), "0")).unwrap();
    let (code, _, err) = culvert(&[
        "pipelines",
        "dry-run",
        good.to_str().unwrap(),
        "--pipeline",
        "nope",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no pipeline \"nope\"") && err.contains("it has: dry"),
        "{err}"
    );
}
