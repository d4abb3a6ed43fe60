//! Logs: `--log.level` takes module short names, and a running pipeline's log lines carry
//! its id from the pipeline span (JSON logs list the spans).

use crate::harness::{data_dir, Server};

#[test]
fn pipeline_log_lines_carry_the_pipeline_span_and_module_levels_take_short_names() {
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(
        pipelines.join("spans.yaml"),
        format!(
            "version: \"2.2\"\npipelines:\n  - id: spans\n    status: running\n    connectors:\n      \
             - id: src\n        type: source\n        plugin: builtin:generator\n        \
             settings:\n          format.type: structured\n          format.options.id: int\n          \
             recordCount: \"10\"\n      - id: dst\n        type: destination\n        \
             plugin: builtin:file\n        settings:\n          path: {}\n",
            out.display()
        ),
    )
    .unwrap();
    let mut server = Server::start(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--log.level",
            "info,supervisor=debug,hyper=warn",
        ],
    );
    let line = server.wait_for_line("pipeline started");
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["span"]["name"], "pipeline", "{line}");
    assert_eq!(line["span"]["id"], "spans", "{line}");
    assert_eq!(line["target"], "culvert_supervisor", "{line}");

    // An unknown level is refused at start, naming the flag.
    let mut bad = Server::start(&data, &["--log.level", "engine=loud"]);
    assert!(!bad.wait().success());
}
