//! Every route of the HTTP API (grpc-gateway's for Conduit) against the `culvert` binary over
//! real sockets: protojson bodies, grpc-gateway's error shape and status codes, bad input
//! refused with nothing stored, the OpenAPI document and Swagger UI, health and readiness.
//! Each test checks one thing on a server of its own, so a failure hides no other check.

use crate::harness::{data_dir, wait_until, Server};
use crate::http_client::{request, Reply};
use serde_json::{json, Value};
use std::path::PathBuf;
use tempfile::TempDir;

struct Http {
    address: String,
}

impl Http {
    fn new(server: &mut Server) -> Self {
        Self {
            address: server.http_address(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        request(&self.address, method, path, &[], bytes.as_deref())
    }

    /// A call that must succeed (200); returns the JSON body.
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let reply = self.call(method, path, body);
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text());
        reply.json()
    }

    /// A call that must fail with `http` and gRPC `code`; returns the error body.
    fn fails(&self, method: &str, path: &str, body: Option<Value>, http: u16, code: i64) -> Value {
        let reply = self.call(method, path, body);
        self.check_error(&reply, method, path, http, code)
    }

    fn check_error(&self, reply: &Reply, method: &str, path: &str, http: u16, code: i64) -> Value {
        assert_eq!(reply.status, http, "{method} {path}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["code"], code, "{method} {path}: {body}");
        assert!(body["message"].is_string(), "{body}");
        assert!(body["details"].is_array(), "{body}");
        body
    }

    /// Every pipeline, connector and processor as the API lists them, without the
    /// connectors' runtime state (a running source's position moves on by itself).
    fn state(&self) -> (Value, Value, Value) {
        let mut connectors = self.ok("GET", "/v1/connectors", None);
        for connector in connectors.as_array_mut().into_iter().flatten() {
            if let Some(fields) = connector.as_object_mut() {
                fields.remove("sourceState");
                fields.remove("destinationState");
            }
        }
        (
            self.ok("GET", "/v1/pipelines", None),
            connectors,
            self.ok("GET", "/v1/processors", None),
        )
    }
}

/// Valid settings for the built-in generator.
fn generator(rate: u32) -> Value {
    json!({"format.type": "structured", "format.options.id": "int", "rate": rate.to_string()})
}

fn ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .expect("a bare JSON array")
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A server on a fresh data directory, and a client of its HTTP API.
struct Env {
    dir: TempDir,
    data: PathBuf,
    server: Server,
    h: Http,
}

fn env(args: &[&str]) -> Env {
    let (dir, data) = data_dir();
    let mut server = Server::start(&data, args);
    let h = Http::new(&mut server);
    Env {
        dir,
        data,
        server,
        h,
    }
}

/// A server with a small HTTP body limit and one pipeline ("taken"): its id, and the state
/// before any bad request.
fn bad_input_env() -> (Env, String, (Value, Value, Value)) {
    let e = env(&["--api.http.max-body-bytes", "4096"]);
    let id = e.h.pipeline("taken");
    let before = e.h.state();
    (e, id, before)
}

impl Http {
    /// A new pipeline's id.
    fn pipeline(&self, name: &str) -> String {
        let p = self.ok(
            "POST",
            "/v1/pipelines",
            Some(json!({"config": {"name": name}})),
        );
        p["id"].as_str().unwrap().to_owned()
    }

    /// A new connector's id: a generator source or a log destination.
    fn connector(&self, pipeline: &str, source: bool) -> String {
        let body = if source {
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": pipeline,
                   "config": {"name": "source", "settings": generator(10)}})
        } else {
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:log", "pipelineId": pipeline,
                   "config": {"name": "sink"}})
        };
        self.ok("POST", "/v1/connectors", Some(body))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[test]
fn pipelines_are_created_got_listed_and_updated_over_http() {
    let e = env(&[]);
    let h = &e.h;
    assert_eq!(h.ok("GET", "/v1/pipelines", None), json!([]));

    // Pipelines: protojson out, every field present, enums as names, timestamps RFC 3339.
    let p = h.ok(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "orders", "description": "copy orders"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    assert_eq!(p["state"]["status"], "STATUS_STOPPED");
    assert_eq!(p["state"]["error"], "");
    assert_eq!(
        p["config"],
        json!({"name": "orders", "description": "copy orders"})
    );
    assert_eq!(p["connectorIds"], json!([]));
    assert_eq!(p["processorIds"], json!([]));
    let created = p["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    assert_eq!(h.ok("GET", &format!("/v1/pipelines/{id}"), None), p);
    h.ok(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "other"}})),
    );
    assert_eq!(
        ids(&h.ok("GET", "/v1/pipelines?name=ord.*", None)),
        vec![id.clone()]
    );
    assert_eq!(h.ok("GET", "/v1/pipelines?name=ord", None), json!([]));
    assert_eq!(
        h.ok("GET", "/v1/pipelines", None).as_array().unwrap().len(),
        2
    );

    let updated = h.ok(
        "PUT",
        &format!("/v1/pipelines/{id}"),
        Some(json!({"config": {"name": "orders-v2", "description": "renamed"}})),
    );
    assert_eq!(updated["config"]["name"], "orders-v2");
    assert_eq!(updated["createdAt"], p["createdAt"]);
}

#[test]
fn the_dead_letter_queue_over_http() {
    let e = env(&[]);
    let h = &e.h;
    // The DLQ file lives in the test's own directory.
    let dlq_path = e.dir.path().join("dlq.jsonl");
    let dlq_path = dlq_path.to_str().unwrap();
    let id = h.pipeline("orders");
    // Dead-letter queue: the body is the DLQ itself; 64-bit integers are strings.
    let dlq = h.ok(
        "GET",
        &format!("/v1/pipelines/{id}/dead-letter-queue"),
        None,
    );
    assert_eq!(dlq["plugin"], "builtin:log");
    let dlq = h.ok(
        "PUT",
        &format!("/v1/pipelines/{id}/dead-letter-queue"),
        Some(
            json!({"plugin": "builtin:file", "settings": {"path": dlq_path},
                    "windowSize": "5", "windowNackThreshold": 2}),
        ),
    );
    assert_eq!(dlq["windowSize"], "5");
    assert_eq!(dlq["windowNackThreshold"], "2");
    assert_eq!(
        h.ok(
            "GET",
            &format!("/v1/pipelines/{id}/dead-letter-queue"),
            None
        ),
        dlq
    );
}

#[test]
fn connectors_over_http_by_json_or_proto_names() {
    let e = env(&[]);
    let h = &e.h;
    let id = h.pipeline("orders");
    let other = h.ok(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "other"}})),
    );
    // Connectors: enum by name or number, fields by JSON or proto name.
    let src = h.ok(
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
                    "config": {"name": "source", "settings": generator(10)}}),
        ),
    );
    assert_eq!(src["type"], "TYPE_SOURCE");
    assert_eq!(src["pipelineId"], id);
    assert_eq!(src["config"]["settings"], generator(10));
    let dst = h.ok(
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": 2, "plugin": "builtin:log", "pipeline_id": id,
                    "config": {"name": "sink"}, "unknownField": true}),
        ),
    );
    assert_eq!(dst["type"], "TYPE_DESTINATION");
    let src_id = src["id"].as_str().unwrap().to_owned();
    let dst_id = dst["id"].as_str().unwrap().to_owned();
    let mut both = vec![src_id.clone(), dst_id.clone()];
    both.sort();
    assert_eq!(
        ids(&h.ok("GET", &format!("/v1/connectors?pipelineId={id}"), None)),
        both
    );
    assert_eq!(
        ids(&h.ok("GET", &format!("/v1/connectors?pipeline_id={id}"), None)),
        both
    );
    assert_eq!(
        h.ok(
            "GET",
            &format!(
                "/v1/connectors?pipelineId={}",
                other["id"].as_str().unwrap()
            ),
            None
        ),
        json!([])
    );
    assert_eq!(h.ok("GET", &format!("/v1/connectors/{src_id}"), None), src);
    let src = h.ok(
        "PUT",
        &format!("/v1/connectors/{src_id}"),
        Some(json!({"config": {"name": "source", "settings": generator(20)}})),
    );
    assert_eq!(src["config"]["settings"]["rate"], "20");
    let pipeline = h.ok("GET", &format!("/v1/pipelines/{id}"), None);
    assert_eq!(pipeline["connectorIds"].as_array().unwrap().len(), 2);
}

#[test]
fn processors_over_http_and_their_plugin_must_exist() {
    let e = env(&[]);
    let h = &e.h;
    let id = h.pipeline("orders");
    let src_id = h.connector(&id, true);
    // Processors on a connector and on the pipeline.
    let on_connector = h.ok(
        "POST",
        "/v1/processors",
        Some(
            json!({"plugin": "field.set", "parent": {"type": "TYPE_CONNECTOR", "id": src_id},
                    "config": {"settings": {"field": ".Metadata.x", "value": "1"}, "workers": 2},
                    "condition": "{{ true }}"}),
        ),
    );
    assert_eq!(on_connector["parent"]["type"], "TYPE_CONNECTOR");
    assert_eq!(on_connector["config"]["workers"], 2);
    // The plugin must exist (Conduit checks it on create), else 404 and nothing is stored.
    let before = h.state();
    let unknown = h.fails(
        "POST",
        "/v1/processors",
        Some(json!({"plugin": "no.such.processor", "parent": {"type": "TYPE_PIPELINE", "id": id}})),
        404,
        5,
    );
    assert!(
        unknown["message"]
            .as_str()
            .unwrap()
            .contains("no.such.processor"),
        "{unknown}"
    );
    assert_eq!(h.state(), before);
    let on_pipeline = h.ok(
        "POST",
        "/v1/processors",
        Some(
            json!({"plugin": "builtin:filter", "parent": {"type": "TYPE_PIPELINE", "id": id},
                    "condition": "{{ eq .Metadata.x \"never\" }}"}),
        ),
    );
    let pc_id = on_connector["id"].as_str().unwrap().to_owned();
    let pp_id = on_pipeline["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ids(&h.ok("GET", &format!("/v1/processors?parentIds={src_id}"), None)),
        vec![pc_id.clone()]
    );
    let mut two = vec![pc_id.clone(), pp_id.clone()];
    two.sort();
    assert_eq!(
        ids(&h.ok(
            "GET",
            &format!("/v1/processors?parent_ids={src_id}&parent_ids={id}"),
            None
        )),
        two
    );
    assert_eq!(
        h.ok("GET", &format!("/v1/processors/{pc_id}"), None),
        on_connector
    );
    let changed = h.ok(
        "PUT",
        &format!("/v1/processors/{pc_id}"),
        Some(json!({"config": {"settings": {"field": ".Metadata.y"}, "workers": 1}})),
    );
    assert_eq!(
        changed["config"]["settings"],
        json!({"field": ".Metadata.y"})
    );

    assert_eq!(
        h.ok("DELETE", &format!("/v1/processors/{pc_id}"), None),
        json!({})
    );
    assert_eq!(
        h.ok("DELETE", &format!("/v1/processors/{pp_id}"), None),
        json!({})
    );
}

#[test]
fn plugin_listings_and_information_over_http() {
    let e = env(&[]);
    let h = &e.h;
    // The literal plugin routes win over /{id}; the built-in connectors are listed.
    let plugins = h.ok("GET", "/v1/connectors/plugins", None);
    // file, generator, kafka, log, oracle (ours), postgres, s3.
    assert_eq!(plugins.as_array().unwrap().len(), 7, "{plugins}");
    let file = h.ok("GET", "/v1/connectors/plugins?name=builtin:file.*", None);
    assert_eq!(
        file[0]["destinationParams"]["path"]["validations"][0]["type"],
        "TYPE_REQUIRED"
    );
    assert_eq!(file[0]["sourceParams"]["path"]["type"], "TYPE_STRING");
    let processor_plugins = h.ok(
        "GET",
        "/v1/processors/plugins?name=builtin:(field.(exclude|rename|set)|filter)@.*",
        None,
    );
    let names: Vec<&str> = processor_plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "builtin:field.exclude@v0.1.0",
            "builtin:field.rename@v0.1.0",
            "builtin:field.set@v0.1.0",
            "builtin:filter@v0.1.0"
        ]
    );
    assert_eq!(
        processor_plugins[2]["parameters"]["field"]["validations"][1],
        json!({"type": "TYPE_EXCLUSION", "value": ".Position"})
    );
    assert_eq!(
        h.ok("GET", "/v1/plugins", None).as_array().unwrap().len(),
        7
    );
    let info = h.ok("GET", "/info", None);
    assert!(info["version"].as_str().unwrap().starts_with('v'));
    assert_eq!(info["os"], std::env::consts::OS);
}

#[test]
fn start_and_stop_over_http_and_a_running_pipeline_refuses_edits() {
    let e = env(&[]);
    let h = &e.h;
    let id = h.pipeline("orders");
    h.connector(&id, true);
    let dst_id = h.connector(&id, false);
    // Start and stop requests; a running pipeline refuses edits (FAILED_PRECONDITION, 400).
    assert_eq!(
        h.ok("POST", &format!("/v1/pipelines/{id}/start"), None),
        json!({})
    );
    assert_eq!(
        h.ok("GET", &format!("/v1/pipelines/{id}"), None)["state"]["status"],
        "STATUS_RUNNING"
    );
    let before = h.state();
    h.fails(
        "PUT",
        &format!("/v1/pipelines/{id}"),
        Some(json!({"config": {"name": "x"}})),
        400,
        9,
    );
    h.fails("DELETE", &format!("/v1/connectors/{dst_id}"), None, 400, 9);
    h.fails("POST", &format!("/v1/pipelines/{id}/start"), None, 400, 9);
    assert_eq!(h.state(), before, "refused edits store nothing");
    assert_eq!(
        h.ok(
            "POST",
            &format!("/v1/pipelines/{id}/stop"),
            Some(json!({"force": true}))
        ),
        json!({})
    );
    // A forced stop cancels the engine; the pipeline is then reported stopped.
    let deadline = std::time::Instant::now() + crate::harness::DEADLINE;
    while h.ok("GET", &format!("/v1/pipelines/{id}"), None)["state"]["status"] != "STATUS_STOPPED" {
        assert!(
            std::time::Instant::now() < deadline,
            "pipeline did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn deletes_go_children_first_over_http() {
    let e = env(&[]);
    let h = &e.h;
    let other = h.ok(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "other"}})),
    );
    // Deletes (on the other pipeline, which never ran).
    let other_id = other["id"].as_str().unwrap().to_owned();
    let lone = h.ok(
        "POST",
        "/v1/connectors",
        Some(json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator",
                    "pipelineId": other_id, "config": {"name": "s", "settings": generator(1)}})),
    );
    let lone_id = lone["id"].as_str().unwrap().to_owned();
    let lone_proc = h.ok(
        "POST",
        "/v1/processors",
        Some(json!({"plugin": "field.set", "parent": {"type": "TYPE_CONNECTOR", "id": lone_id}})),
    );
    let lone_proc_id = lone_proc["id"].as_str().unwrap().to_owned();
    h.fails("DELETE", &format!("/v1/connectors/{lone_id}"), None, 400, 9);
    assert_eq!(
        h.ok("DELETE", &format!("/v1/processors/{lone_proc_id}"), None),
        json!({})
    );
    h.fails(
        "GET",
        &format!("/v1/processors/{lone_proc_id}"),
        None,
        404,
        5,
    );
    assert_eq!(
        h.ok("DELETE", &format!("/v1/connectors/{lone_id}"), None),
        json!({})
    );
    assert_eq!(
        h.ok("DELETE", &format!("/v1/pipelines/{other_id}"), None),
        json!({})
    );
    h.fails("GET", &format!("/v1/pipelines/{other_id}"), None, 404, 5);
}

#[test]
fn import_refusals_and_unknown_inspected_ids() {
    let e = env(&[]);
    let h = &e.h;
    let id = h.pipeline("orders");
    let src_id = h.connector(&id, true);
    h.ok(
        "POST",
        "/v1/processors",
        Some(json!({"plugin": "field.set", "parent": {"type": "TYPE_CONNECTOR", "id": src_id}})),
    );
    // Import: an existing pipeline is ALREADY_EXISTS; a pipeline without its id is
    // INVALID_ARGUMENT.
    let exported = h.ok("POST", &format!("/v1/pipelines/{id}/export"), None);
    h.fails("POST", "/v1/pipelines/import", Some(exported), 409, 6);
    h.fails(
        "POST",
        "/v1/pipelines/import",
        Some(json!({"id": ""})),
        400,
        3,
    );
    // The inspector's routes answer an unknown id with 404 and NOT_FOUND in grpc-gateway's
    // stream error line, `{"error": status}` (grpc-go gives the gateway that failure at the
    // stream's first read); the live streams are tests/inspector.rs's.
    for path in [
        "/v1/connectors/nope/inspect",
        "/v1/processors/nope/inspect-in",
        "/v1/processors/nope/inspect-out",
    ] {
        let reply = h.call("GET", path, None);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        assert!(
            reply.text().ends_with("}\n"),
            "one line: {:?}",
            reply.text()
        );
        let body = reply.json();
        assert_eq!(body["error"]["code"], 5, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("nope"),
            "{body}"
        );
        let kind = if path.contains("connectors") {
            "connector"
        } else {
            "processor"
        };
        assert_eq!(
            body["error"]["details"][0]["reason"],
            format!("{kind}.instance_not_found"),
            "{body}"
        );
    }
}

#[test]
fn plan_and_apply_take_a_pipeline_document() {
    let e = env(&[]);
    let h = &e.h;
    // Plan and apply take a pipeline document (ApplyPipeline is how `culvert pipelines
    // import` creates pipelines); without one they are refused.
    h.fails("POST", "/v1/pipelines/plan", Some(json!({})), 400, 3);
    h.fails("POST", "/v1/pipelines/apply", Some(json!({})), 400, 3);
    let document = json!({"config": {"id": "applied", "status": "stopped", "description": "doc",
        "connectors": [
            {"id": "gen", "type": "source", "plugin": "builtin:generator",
             "settings": {"format.type": "raw", "format.options.id": "int"}},
            {"id": "log", "type": "destination", "plugin": "builtin:log"}],
        "processors": [{"id": "f", "plugin": "filter", "condition": "{{ false }}"}]}});
    let plan = h.ok("POST", "/v1/pipelines/plan", Some(document.clone()));
    // The answer is the diff itself (response_body: "diff").
    assert_eq!(plan["pipelineId"], "applied");
    let planned: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            ("create".to_owned(), "applied".to_owned()),
            ("create".to_owned(), "applied:gen".to_owned()),
            ("create".to_owned(), "applied:log".to_owned()),
            ("create".to_owned(), "applied:f".to_owned()),
        ]
    );
    // Conduit's code and effect: a first deploy changes nothing that runs.
    for change in plan["changes"].as_array().unwrap() {
        assert_eq!(
            change["code"],
            format!(
                "provisioning.{}.create",
                change["resource"].as_str().unwrap()
            )
        );
        assert_eq!(change["effect"], "in_place", "{change}");
    }
    h.fails("GET", "/v1/pipelines/applied", None, 404, 5);
    let mut stale = document.clone();
    stale["hash"] = json!("not-the-plan");
    h.fails("POST", "/v1/pipelines/apply", Some(stale), 400, 9);
    let mut apply = document.clone();
    apply["hash"] = plan["hash"].clone();
    h.ok("POST", "/v1/pipelines/apply", Some(apply));
    let applied = h.ok("GET", "/v1/pipelines/applied", None);
    assert_eq!(applied["config"]["description"], "doc");
    assert_eq!(applied["processorIds"], json!(["applied:f"]));
    // Applied again: nothing to change. An apply must carry its plan's hash, as in Conduit:
    // an empty one is stale too. A bad plugin names the field.
    h.fails(
        "POST",
        "/v1/pipelines/apply",
        Some(document.clone()),
        400,
        9,
    );
    let mut again = document.clone();
    again["hash"] = h.ok("POST", "/v1/pipelines/plan", Some(document.clone()))["hash"].clone();
    let again = h.ok("POST", "/v1/pipelines/apply", Some(again));
    assert_eq!(again["changes"], json!([]));
    let mut bad = document.clone();
    bad["config"]["connectors"][1]["plugin"] = json!("builtin:nope");
    let refused = h.fails("POST", "/v1/pipelines/apply", Some(bad), 400, 3);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("/connectors/1/plugin: connector \"log\": plugin \"builtin:nope\" not found"),
        "{refused}"
    );
}

/// A change applied to a running pipeline restarts it: refused unless the operator started
/// the server with `--api.allow-live-restart-apply` (Conduit's gate), and the document's
/// status counts only for a pipeline it creates.
#[test]
fn a_running_pipeline_is_changed_by_apply_only_with_the_operators_flag() {
    for allowed in [false, true] {
        let args: &[&str] = if allowed {
            &["--api.allow-live-restart-apply"]
        } else {
            &[]
        };
        let e = env(args);
        let h = &e.h;
        let document = |description: &str, status: &str| {
            json!({"config": {"id": "live", "status": status, "description": description,
                "connectors": [
                    {"id": "gen", "type": "source", "plugin": "builtin:generator",
                     "settings": generator(10)},
                    {"id": "log", "type": "destination", "plugin": "builtin:log"}]}})
        };
        let apply = |mut document: Value| {
            let plan = h.ok("POST", "/v1/pipelines/plan", Some(document.clone()));
            document["hash"] = plan["hash"].clone();
            h.call("POST", "/v1/pipelines/apply", Some(document))
        };
        let status = || h.ok("GET", "/v1/pipelines/live", None)["state"]["status"].clone();
        // A new pipeline: the document's status counts.
        let created = apply(document("one", "running"));
        assert_eq!(created.status, 200, "{}", created.text());
        wait_until("the pipeline to run", || status() == "STATUS_RUNNING");
        // A change to it while it runs (the status in the document does not count).
        let changed = apply(document("two", "stopped"));
        let description =
            || h.ok("GET", "/v1/pipelines/live", None)["config"]["description"].clone();
        if allowed {
            assert_eq!(changed.status, 200, "{}", changed.text());
            let listed = &changed.json()["changes"];
            assert_eq!(
                listed,
                &json!([{"resource": "pipeline", "id": "live", "action": "update",
                         "effect": "in_place", "configPaths": [],
                         "code": "provisioning.pipeline.update"}]),
                "the stop and start around it are not changes"
            );
            assert_eq!(description(), "two");
            wait_until("the pipeline to run again", || status() == "STATUS_RUNNING");
        } else {
            let refused = h.check_error(&changed, "POST", "/v1/pipelines/apply", 400, 9);
            assert_eq!(
                refused["details"][0]["reason"], "provisioning.live_apply_unauthorized",
                "{refused}"
            );
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("--api.allow-live-restart-apply"),
                "{refused}"
            );
            assert_eq!(description(), "one", "nothing changed");
            assert_eq!(status(), "STATUS_RUNNING");
            // Stopped, the same apply goes through, and the pipeline stays stopped.
            h.ok("POST", "/v1/pipelines/live/stop", None);
            wait_until("the pipeline to stop", || status() == "STATUS_STOPPED");
            let changed = apply(document("two", "running"));
            assert_eq!(changed.status, 200, "{}", changed.text());
            assert_eq!(description(), "two");
            assert_eq!(status(), "STATUS_STOPPED");
        }
    }
}

#[test]
fn connector_settings_are_validated_over_http() {
    let e = env(&[]);
    let h = &e.h;
    assert_eq!(
        h.ok(
            "POST",
            "/v1/connectors/validate",
            Some(json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator",
                        "config": {"settings": generator(5)}})),
        ),
        json!({})
    );
    let refused = h.fails(
        "POST",
        "/v1/connectors/validate",
        Some(json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator"})),
        400,
        9,
    );
    assert!(
        refused["message"].as_str().unwrap().contains("format.type"),
        "{refused}"
    );
    // Conduit's versions of its built-ins are accepted, with or without the version.
    for plugin in ["builtin:file@v0.10.8", "builtin:file", "file@latest"] {
        let settings = json!({"path": "/tmp/x"});
        assert_eq!(
            h.ok(
                "POST",
                "/v1/connectors/validate",
                Some(json!({"type": "TYPE_DESTINATION", "plugin": plugin,
                            "config": {"settings": settings}})),
            ),
            json!({}),
            "{plugin}"
        );
    }
    let versionless = h.fails(
        "POST",
        "/v1/connectors/validate",
        Some(
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:file@v9",
                    "config": {"settings": {"path": "/tmp/x"}}}),
        ),
        404,
        5,
    );
    assert_eq!(
        versionless["message"],
        "plugin \"builtin:file@v9\" not found; available versions: [v0.10.8]"
    );
}

#[test]
fn state_survives_a_restart_over_http() {
    let Env {
        data,
        mut server,
        h,
        dir: _dir,
    } = env(&[]);
    let id = h.pipeline("orders");
    let src_id = h.connector(&id, true);
    h.connector(&id, false);
    h.ok(
        "POST",
        "/v1/processors",
        Some(
            json!({"plugin": "field.set", "parent": {"type": "TYPE_CONNECTOR", "id": src_id},
                    "config": {"settings": {"field": ".Metadata.x", "value": "1"}}}),
        ),
    );
    // A restart rebuilds exactly the same state from the log.
    let state = h.state();
    server.terminate();
    let exit = server.wait();
    assert!(exit.success(), "{exit:?} {:#?}", server.seen);
    let mut server = Server::start(&data, &[]);
    let h = Http::new(&mut server);
    assert_eq!(h.state(), state);
}

#[test]
fn malformed_bodies_and_unknown_enums_are_refused_over_http() {
    let (e, id, before) = bad_input_env();
    let h = &e.h;
    // Malformed JSON and wrong JSON types.
    for body in [&b"{not json"[..], b"[1,2]", b"{\"config\": {\"name\": 5}}"] {
        let reply = request(&h.address, "POST", "/v1/pipelines", &[], Some(body));
        let error = h.check_error(&reply, "POST", "/v1/pipelines", 400, 3);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("invalid request body"),
            "{error}"
        );
    }
    // Unknown enum values, by name and by number.
    h.fails(
        "POST",
        "/v1/connectors",
        Some(json!({"type": "TYPE_BOGUS", "plugin": "builtin:log", "pipelineId": id})),
        400,
        3,
    );
    h.fails(
        "POST",
        "/v1/connectors",
        Some(json!({"type": 7, "plugin": "builtin:log", "pipelineId": id,
                    "config": {"name": "c"}})),
        400,
        3,
    );
    h.fails(
        "POST",
        "/v1/processors",
        Some(json!({"plugin": "field.set", "parent": {"type": "TYPE_NOPE", "id": id}})),
        400,
        3,
    );
    assert_eq!(h.state(), before, "nothing stored by a refused request");
}

#[test]
fn missing_invalid_and_unknown_fields_and_ids_are_refused_over_http() {
    let (e, id, before) = bad_input_env();
    let h = &e.h;
    // Missing required fields.
    h.fails("POST", "/v1/pipelines", Some(json!({})), 400, 3);
    h.fails("POST", "/v1/pipelines", None, 400, 3);
    let missing_plugin = h.fails(
        "POST",
        "/v1/connectors",
        Some(json!({"type": "TYPE_SOURCE", "pipelineId": id, "config": {"name": "c"}})),
        400,
        3,
    );
    assert!(missing_plugin["message"]
        .as_str()
        .unwrap()
        .contains("plugin"));
    h.fails(
        "POST",
        "/v1/processors",
        Some(json!({"plugin": "field.set"})),
        400,
        3,
    );
    h.fails(
        "PUT",
        &format!("/v1/pipelines/{id}/dead-letter-queue"),
        None,
        400,
        3,
    );
    // Empty and over-long names; a taken name.
    let empty = h.fails(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": ""}})),
        400,
        3,
    );
    assert_eq!(
        empty["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    assert_eq!(empty["details"][0]["metadata"]["field"], "name");
    h.fails(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "n".repeat(129)}})),
        400,
        3,
    );
    h.fails(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "taken"}})),
        409,
        6,
    );
    // Unknown ids.
    h.fails("GET", "/v1/pipelines/nope", None, 404, 5);
    h.fails(
        "PUT",
        "/v1/pipelines/nope",
        Some(json!({"config": {"name": "x"}})),
        404,
        5,
    );
    h.fails("DELETE", "/v1/pipelines/nope", None, 404, 5);
    h.fails("POST", "/v1/pipelines/nope/start", None, 404, 5);
    h.fails("GET", "/v1/connectors/nope", None, 404, 5);
    h.fails("GET", "/v1/processors/nope", None, 404, 5);
    h.fails(
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": "missing",
                    "config": {"name": "c", "settings": generator(1)}}),
        ),
        404,
        5,
    );
    assert_eq!(h.state(), before, "nothing stored by a refused request");
}

#[test]
fn limits_routes_and_methods_are_refused_over_http() {
    let (e, id, before) = bad_input_env();
    let h = &e.h;
    // Stopping a stopped pipeline; an invalid name regex (INTERNAL, as Conduit).
    h.fails("POST", &format!("/v1/pipelines/{id}/stop"), None, 400, 9);
    h.fails("GET", "/v1/pipelines?name=(", None, 500, 13);
    // Bodies over the limit, declared or not.
    let big = json!({"config": {"name": "big", "description": "d".repeat(5000)}});
    h.fails("POST", "/v1/pipelines", Some(big), 413, 8);
    // Unknown routes and wrong methods, as grpc-gateway answers them.
    let not_found = h.fails("GET", "/v1/nothing-here", None, 404, 5);
    assert_eq!(not_found["message"], "Not Found");
    let wrong = h.fails("PATCH", "/v1/pipelines", None, 501, 12);
    assert_eq!(wrong["message"], "Method Not Allowed");
    assert_eq!(h.state(), before, "nothing stored by a refused request");
}

#[test]
fn openapi_document_swagger_ui_health_and_headers() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let h = Http::new(&mut server);

    // The document: OpenAPI 3, every $ref resolves, every operation has an id.
    let doc = h.ok("GET", "/openapi/api/v1/api.swagger.json", None);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Conduit REST API");
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    let pipeline = &schemas["api.v1.Pipeline"]["properties"];
    for field in [
        "id",
        "state",
        "config",
        "connectorIds",
        "processorIds",
        "createdAt",
    ] {
        assert!(pipeline.get(field).is_some(), "Pipeline has no {field}");
    }
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "only {} paths", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(op["operationId"].is_string(), "{method} {path}");
            // Every path answers: the route exists (no gateway 404 "Not Found", no 501
            // "Method Not Allowed"); with a made-up id the service itself answers.
            let mut concrete = path
                .replace("{id}", "no-such-id")
                .replace("{entity_id}", "no-such-id")
                .replace("{seq}", "1");
            if path == "/v1/events/watch" {
                // A watch follows the log forever: ask for one past the end (refused at once).
                concrete.push_str("?from_seq=999999");
            }
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let reply = h.call(&method.to_uppercase(), &concrete, body);
            if reply.status == 404 || reply.status == 501 {
                // A streaming route's error is grpc-gateway's `{"error": status}` line.
                let body = reply.json();
                let status = if body.get("error").is_some() {
                    &body["error"]
                } else {
                    &body
                };
                let message = status["message"].as_str().unwrap().to_owned();
                assert!(
                    message != "Not Found" && message != "Method Not Allowed",
                    "{method} {concrete} is not routed: {message}"
                );
            } else {
                assert!(reply.status < 500, "{method} {concrete}: {}", reply.text());
            }
        }
    }
    // 13 pipeline, 8 connector, 8 processor, 1 information and 1 plugin route of Conduit's,
    // and 5 event-log (with revert), 2 source-position and 3 dead-letter routes of ours.
    assert_eq!(operations, 41);
    validate_with_openapi_spec_validator(&doc);

    // Swagger UI, served by us with its assets inline (works offline).
    let redirect = h.call("GET", "/openapi", None);
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("location"), Some("/openapi/"));
    let ui = h.call("GET", "/openapi/", None);
    assert_eq!(ui.status, 200);
    let html = ui.text();
    assert!(
        html.contains("SwaggerUIBundle"),
        "no Swagger UI in {}",
        &html[..200]
    );
    assert!(html.contains("/v1/pipelines"), "the UI embeds the document");
    for external in ["src=\"http", "href=\"http", "cdn"] {
        assert!(!html.contains(external), "the UI loads {external}");
    }
    assert_eq!(
        h.call("GET", "/openapi/oauth-receiver.html", None).status,
        200
    );
    // Other paths under it are not found (the UI is built only for its own pages).
    assert_eq!(h.call("GET", "/openapi/nope.js", None).status, 404);

    // Health and readiness, as Conduit answers them.
    assert_eq!(h.ok("GET", "/healthz", None), json!({"status": "SERVING"}));
    assert_eq!(
        h.ok("GET", "/healthz?service=PipelineService", None),
        json!({"status": "SERVING"})
    );
    h.fails("GET", "/healthz?service=Nope", None, 404, 5);
    let ready = h.ok("GET", "/readyz", None);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["pipelines"]["total"], 0);
    // No degraded pipeline: no list (Conduit omits it when empty).
    assert!(
        ready["pipelines"].get("degradedPipelines").is_none(),
        "{ready}"
    );

    // x-request-id is echoed (or made up); ?pretty indents.
    let reply = request(
        &h.address,
        "GET",
        "/v1/pipelines",
        &[("X-Request-Id", "req-42")],
        None,
    );
    assert_eq!(reply.header("x-request-id"), Some("req-42"));
    let reply = h.call("GET", "/v1/pipelines/nope", None);
    assert!(reply.header("x-request-id").is_some_and(|v| v.len() == 36));
    h.ok(
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "p"}})),
    );
    let pretty = h.call("GET", "/v1/pipelines?pretty", None);
    assert!(pretty.text().contains("\n  "), "{}", pretty.text());
    assert_eq!(h.ok("GET", "/readyz", None)["pipelines"]["total"], 1);
}

/// Check the document with the OpenAPI project's own validator (`openapi-spec-validator`,
/// installed by `make deps`).
fn validate_with_openapi_spec_validator(doc: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run python3 (install it, or run `make deps`)");
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document (is it installed? `make deps` installs \
         it):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn browsers_of_allowed_origins_get_cors_and_others_do_not() {
    let e = env(&[
        "--api.http.cors.allowed-origins",
        "http://ui.example:3000,http://second.example",
    ]);
    let h = &e.h;
    let get = |origin: &str| {
        request(
            &h.address,
            "GET",
            "/v1/pipelines",
            &[("Origin", origin)],
            None,
        )
    };
    for allowed in ["http://ui.example:3000", "http://second.example"] {
        let reply = get(allowed);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("access-control-allow-origin"), Some(allowed));
        assert_eq!(reply.header("vary"), Some("Origin"));
    }
    // Another origin (or a near miss) gets its answer, but no permission for the browser to
    // read it.
    for other in [
        "http://evil.example",
        "http://ui.example:3001",
        "http://ui.example:3000/",
    ] {
        let reply = get(other);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("access-control-allow-origin"), None, "{other}");
    }
    // Errors carry the headers too, so the page can read why.
    let reply = request(
        &h.address,
        "GET",
        "/v1/pipelines/nope",
        &[("Origin", "http://ui.example:3000")],
        None,
    );
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://ui.example:3000")
    );

    // The preflight: the headers asked for, the API's methods, cached for ten minutes.
    let preflight = |origin: &str, headers: Option<&str>| {
        let mut sent = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
        ];
        if let Some(headers) = headers {
            sent.push(("Access-Control-Request-Headers", headers));
        }
        request(&h.address, "OPTIONS", "/v1/pipelines", &sent, None)
    };
    let reply = preflight("http://ui.example:3000", Some("x-request-id,content-type"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://ui.example:3000")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("x-request-id,content-type")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET,HEAD,POST,PUT,DELETE")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    let reply = preflight("http://ui.example:3000", None);
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Content-Type,Accept")
    );
    // A disallowed origin's preflight is an ordinary OPTIONS request: not allowed.
    let reply = preflight("http://evil.example", None);
    assert_ne!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    // A preflight changed nothing.
    assert_eq!(h.ok("GET", "/v1/pipelines", None), json!([]));

    // A page of another origin may not change anything (CSRF: a browser sends a form or a
    // `no-cors` fetch without asking); this server's own pages, allowed origins and
    // non-browser clients may.
    let create = |origin: Option<&str>, name: &str| {
        let body = json!({"config": {"name": name}}).to_string();
        let mut headers = vec![("Content-Type", "text/plain")];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        request(
            &h.address,
            "POST",
            "/v1/pipelines",
            &headers,
            Some(body.as_bytes()),
        )
    };
    for foreign in ["http://evil.example", "null"] {
        let refused = create(Some(foreign), "forged");
        h.check_error(&refused, "POST", "/v1/pipelines", 403, 7);
        assert!(refused.text().contains("--api.http.cors.allowed-origins"));
    }
    assert_eq!(h.ok("GET", "/v1/pipelines", None), json!([]));
    let own = format!("http://{}", h.address);
    for (origin, name) in [
        (Some(own.as_str()), "own"),
        (Some("http://ui.example:3000"), "allowed"),
        (None, "curl"),
    ] {
        let reply = create(origin, name);
        assert_eq!(reply.status, 200, "{origin:?}: {}", reply.text());
    }
    assert_eq!(ids(&h.ok("GET", "/v1/pipelines", None)).len(), 3);

    // Without the flag no origin is allowed.
    let plain = env(&[]);
    let reply = request(
        &plain.h.address,
        "GET",
        "/v1/pipelines",
        &[("Origin", "http://ui.example:3000")],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[test]
fn a_bad_cors_origin_or_an_exposed_wildcard_stops_the_start() {
    let (_dir, data) = data_dir();
    let start = |args: &[&str]| {
        let mut server = Server::start(&data, args);
        let status = server.wait();
        (status.code(), server.seen.join("\n"))
    };
    let (code, stderr) = start(&["--api.http.cors.allowed-origins", "http://ui.example:3000/"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: --api.http.cors.allowed-origins: \"http://ui.example:3000/\" is not an origin"
        ),
        "{stderr}"
    );
    // `*` beyond loopback without authentication: refused.
    let (code, _, stderr) = crate::harness::culvert(&[
        "run",
        "--db.rocksdb.path",
        data.to_str().unwrap(),
        "--api.grpc.address",
        "127.0.0.1:0",
        "--api.http.address",
        "0.0.0.0:0",
        "--api.auth.allow-unauthenticated",
        "--api.http.cors.allowed-origins",
        "*",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'*' (any web page) is refused while the HTTP API listens on 0.0.0.0:0"),
        "{stderr}"
    );
    // On loopback it starts, with a warning.
    let mut server = Server::start(&data, &["--api.http.cors.allowed-origins", "*"]);
    server.wait_for_line("CORS allows any origin");
    let address = server.http_address();
    let reply = request(
        &address,
        "GET",
        "/v1/pipelines",
        &[("Origin", "http://anything.example")],
        None,
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://anything.example")
    );
}
