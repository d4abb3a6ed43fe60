//! The admin CLI against a running server: every verb's table and JSON output, and its
//! exit codes for an unknown id and an unreachable server; and the verbs that need none.

use crate::harness::{culvert, data_dir, wait_until, Server};
use crate::http_client::request;
use serde_json::{json, Value};

/// Run a verb that must succeed; its standard output.
fn ok(args: &[&str]) -> String {
    let (code, out, err) = culvert(args);
    assert_eq!(code, 0, "culvert {args:?}: {err}");
    out
}

fn post(address: &str, path: &str, body: Value) -> Value {
    let bytes = serde_json::to_vec(&body).unwrap();
    let reply = request(address, "POST", path, &[], Some(&bytes));
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

#[test]
fn admin_cli_verbs() {
    let (dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let at = ["--grpc.address", grpc.as_str()];
    let with = |verb: &[&'static str]| -> Vec<String> {
        verb.iter()
            .map(|s| s.to_string())
            .chain(at.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let info = run(with(&["info"]));
    assert!(info.starts_with("version: v"), "{info}");
    let info: Value = serde_json::from_str(&run(with(&["info", "--json"]))).unwrap();
    assert_eq!(info["os"], std::env::consts::OS);

    let mut create = with(&["pipelines", "create", "demo"]);
    create.extend(["--description".into(), "made by the CLI".into()]);
    let id = run(create).trim().to_owned();
    assert_eq!(id.len(), 36, "a generated id: {id}");
    let table = run(with(&["pipelines", "ls"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID"), "{table}");
    let row = lines.next().unwrap();
    assert!(
        row.contains(&id) && row.contains("demo") && row.contains("stopped"),
        "{row}"
    );
    let listed: Value = serde_json::from_str(&run(with(&["pipelines", "ls", "--json"]))).unwrap();
    assert_eq!(listed[0]["config"]["description"], "made by the CLI");

    let src = post(
        &http,
        "/v1/connectors",
        json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
               "config": {"name": "src", "settings": {"format.type": "raw",
               "format.options.id": "int", "rate": "50"}}}),
    );
    let src_id = src["id"].as_str().unwrap().to_owned();
    post(
        &http,
        "/v1/connectors",
        json!({"type": "TYPE_DESTINATION", "plugin": "builtin:log", "pipelineId": id,
               "config": {"name": "out"}}),
    );
    let processor = post(
        &http,
        "/v1/processors",
        json!({"plugin": "field.set", "parent": {"type": "TYPE_CONNECTOR", "id": src_id},
               "config": {"settings": {"field": ".Metadata.via", "value": "cli"}},
               "condition": "{{ true }}"}),
    );
    let processor_id = processor["id"].as_str().unwrap().to_owned();

    let mut connectors = with(&["connectors", "ls"]);
    connectors.extend(["--pipeline".into(), id.clone()]);
    let table = run(connectors);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(
        table.contains("builtin:generator") && table.contains("destination"),
        "{table}"
    );
    let mut describe = with(&["connectors", "describe"]);
    describe.push(src_id.clone());
    let described = run(describe);
    assert!(
        described.contains("Plugin:     builtin:generator"),
        "{described}"
    );
    assert!(described.contains("  rate: 50"), "{described}");
    assert!(described.contains(&processor_id), "{described}");

    let table = run(with(&["processors", "ls"]));
    assert!(
        table.contains(&processor_id) && table.contains("{{ true }}"),
        "{table}"
    );
    let mut describe = with(&["processors", "describe", "--json"]);
    describe.push(processor_id.clone());
    let p: Value = serde_json::from_str(&run(describe)).unwrap();
    assert_eq!(p["config"]["settings"]["value"], "cli");

    // The pipeline as a picture: DOT with the flow and the DLQ; an SVG file naming each node.
    let mut graph = with(&["pipelines", "graph"]);
    graph.push(id.clone());
    let dot = run(graph);
    assert!(dot.starts_with("digraph \"demo\""), "{dot}");
    assert!(
        dot.contains(&format!("\"{src_id}\" -> \"{processor_id}\";"))
            && dot.contains(&format!(
                "\"{processor_id}\" -> \"dead-letter queue\" [style=dashed"
            )),
        "{dot}"
    );
    let picture = dir.path().join("demo.svg");
    let mut graph = with(&["pipelines", "graph", "--format", "svg"]);
    graph.extend([
        "-o".into(),
        picture.to_str().unwrap().to_owned(),
        id.clone(),
    ]);
    run(graph);
    let svg = std::fs::read_to_string(&picture).unwrap();
    assert!(svg.contains("<svg") && svg.contains(&src_id) && svg.contains("builtin:log"));

    let plugins = run(with(&["plugins", "ls"]));
    assert!(
        plugins.contains("builtin:generator@") && plugins.contains("connector"),
        "{plugins}"
    );
    assert!(
        plugins.contains("builtin:field.set@") && plugins.contains("processor"),
        "{plugins}"
    );

    let mut start = with(&["pipelines", "start"]);
    start.push(id.clone());
    assert_eq!(run(start).trim(), format!("pipeline {id}: running"));
    let mut describe = with(&["pipelines", "describe"]);
    describe.push(id.clone());
    let described = run(describe);
    assert!(described.contains("Status:      running"), "{described}");
    assert!(
        described.contains(&format!("  {processor_id} (field.set, on {src_id})")),
        "{described}"
    );
    let mut stop = with(&["pipelines", "stop"]);
    stop.push(id.clone());
    assert_eq!(run(stop).trim(), format!("pipeline {id}: stop requested"));
    wait_until("the pipeline stopped", || {
        let reply = request(&http, "GET", &format!("/v1/pipelines/{id}"), &[], None);
        reply.json()["state"]["status"] == "STATUS_STOPPED"
    });

    // Exit codes: an unknown id is a usage error, the pipeline with children refuses to go
    // (validation), no server is the environment.
    let mut describe = with(&["pipelines", "describe"]);
    describe.push("nope".into());
    let (code, _, stderr) = culvert(&describe.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{stderr}");
    let mut delete = with(&["pipelines", "delete"]);
    delete.push(id.clone());
    let (code, _, stderr) = culvert(&delete.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("connectors attached"), "{stderr}");
    server.terminate();
    assert!(server.wait().success());
    let (code, _, stderr) = culvert(&["info", "--grpc.address", &grpc]);
    assert_eq!(code, 3, "{stderr}");
}

/// Verbs that need no server: `version` (Conduit's shape, `v<version> <os>/<arch>`) and
/// `completion` for each shell; a shell it does not know is a usage error (exit 2).
#[test]
fn offline_verbs_version_and_completion() {
    let version = ok(&["version"]);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(
        version.trim(),
        format!(
            "v{} {}/{arch}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS
        )
    );
    for (shell, says) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef culvert"),
        ("fish", "complete -c culvert"),
    ] {
        let script = ok(&["completion", shell]);
        assert!(script.contains(says), "{shell}: {script}");
        assert!(script.contains("dlq"), "{shell} completes every verb");
    }
    let (code, _, stderr) = culvert(&["completion", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("tcsh"), "{stderr}");
}

/// `pipelines deploy` plans and prints the plan's hash; `pipelines apply --plan-hash`
/// applies that plan and refuses it once the file changed; `deploy --apply --yes` does both.
#[test]
fn deploy_plans_and_apply_applies_the_plan_it_was_shown() {
    let (dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let file = dir.path().join("shop.yaml");
    let document = |description: &str| {
        format!(
            "version: \"2.2\"\npipelines:\n  - id: shop\n    description: {description}\n    \
             connectors:\n      - id: src\n        type: source\n        plugin: builtin:generator\n        \
             settings:\n          format.type: raw\n          format.options.id: int\n          rate: \"1\"\n      - id: dst\n        \
             type: destination\n        plugin: builtin:log\n"
        )
    };
    std::fs::write(&file, document("first")).unwrap();
    let file_arg = file.to_str().unwrap();
    let at = ["--grpc.address", grpc.as_str()];
    let verb = |args: &[&str]| culvert(&[args, &at[..]].concat());

    let (code, out, err) = verb(&["pipelines", "deploy", file_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pipeline shop: would make"), "{out}");
    let hash = out
        .split("--plan-hash ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no plan hash in {out}"))
        .to_owned();
    // Nothing was applied by the plan.
    let (code, out, _) = verb(&["pipelines", "ls"]);
    assert_eq!(code, 0);
    assert!(!out.contains("shop"), "{out}");
    // The file changes after the plan: its hash is stale, nothing is applied.
    std::fs::write(&file, document("second")).unwrap();
    let (code, _, err) = verb(&["pipelines", "apply", file_arg, "--plan-hash", &hash]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the plan changed"), "{err}");
    // Planned again, its hash applies.
    let (_, out, _) = verb(&["pipelines", "deploy", file_arg]);
    let hash = out
        .split("--plan-hash ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let (code, out, err) = verb(&["pipelines", "apply", file_arg, "--plan-hash", hash]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pipeline shop: made"), "{out}");
    let (_, described, _) = verb(&["pipelines", "describe", "shop", "--json"]);
    assert!(described.contains("second"), "{described}");
    // deploy --apply --yes: plan and apply in one call. The pipeline runs, and a change
    // restarts it: refused by a server started without --api.allow-live-restart-apply
    // (as Conduit's), applied once the pipeline is stopped.
    std::fs::write(&file, document("third")).unwrap();
    let (code, _, err) = verb(&["pipelines", "deploy", file_arg, "--apply", "--yes"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("--api.allow-live-restart-apply"), "{err}");
    let (code, _, err) = verb(&["pipelines", "stop", "shop"]);
    assert_eq!(code, 0, "{err}");
    let http = server.http_address();
    wait_until("the pipeline stopped", || {
        let reply = request(&http, "GET", "/v1/pipelines/shop", &[], None);
        reply.json()["state"]["status"] == "STATUS_STOPPED"
    });
    let (code, out, err) = verb(&["pipelines", "deploy", file_arg, "--apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pipeline shop: made"), "{out}");
    let (_, described, _) = verb(&["pipelines", "describe", "shop", "--json"]);
    assert!(described.contains("third"), "{described}");
    server.terminate();
    assert!(server.wait().success());
}
