//! Parsing the fixture files (every field and version, and each kind of mistake, with its
//! exact message and place), and provisioning them into an in-memory control plane.

use crate::config::{self, Problem, Severity};
use crate::{Provisioner, Report};
use culvert_commands::{Context, ControlPlaneWriter, PipelineOrchestrator};
use culvert_domain::{DomainError, PipelineId, PipelineStatus, Seq};
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{EventLog, MemoryStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn env(name: &str) -> Option<String> {
    match name {
        "OUT_DIR" => Some("/tmp/out".into()),
        "GEN_RATE" => Some("25".into()),
        _ => None,
    }
}

fn parse(name: &str) -> config::Parsed {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    config::parse(name, &text, &env)
}

/// The problems as `line:column severity path: message` lines.
fn problems(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            let severity = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            format!(
                "{}:{} {severity} {}: {}",
                p.at.line, p.at.column, p.path, p.message
            )
        })
        .collect()
}

#[test]
fn every_field_of_the_latest_version() {
    let parsed = parse("full-v2.2.yaml");
    assert_eq!(problems(&parsed.problems), Vec::<String>::new());
    let p = &parsed.pipelines[0];
    assert_eq!(
        (
            p.id.as_str(),
            p.running,
            p.name.as_str(),
            p.description.as_str()
        ),
        ("full", true, "Full pipeline", "Every field, set.")
    );
    assert_eq!(p.at.line, 4);
    let gen = &p.connectors[0];
    assert!(gen.source);
    assert_eq!(gen.name, "the generator");
    assert_eq!(gen.settings["recordCount"], "100");
    let tag = &gen.processors[0];
    assert_eq!(tag.condition, r#"{{ eq .Operation "create" }}"#);
    assert_eq!((tag.workers, tag.settings["value"].as_str()), (2, "yes"));
    let out = &p.connectors[1];
    assert!(!out.source);
    assert_eq!(out.name, "out", "a connector's name defaults to its id");
    assert_eq!(
        out.settings["path"], "/tmp/out/full.jsonl",
        "${{OUT_DIR}} expanded"
    );
    assert_eq!(p.processors.len(), 2);
    assert_eq!(p.processors[0].plugin, "builtin:field.rename");
    assert_eq!(p.processors[1].workers, 1, "workers default to 1");
    assert_eq!(p.dlq.window_size, 5);
    assert_eq!(p.dlq.window_nack_threshold, 2);
    assert_eq!(p.dlq.settings["message"], "nacked");
}

#[test]
fn older_versions_and_no_version() {
    let v20 = parse("v2.0.yaml");
    assert_eq!(problems(&v20.problems), Vec::<String>::new());
    assert_eq!(
        v20.pipelines[0].processors[0].plugin, "field.set",
        "`type` names the plugin"
    );
    assert!(!v20.pipelines[0].running);

    let v21 = parse("v2.1.yaml");
    assert_eq!(problems(&v21.problems), Vec::<String>::new());
    assert_eq!(
        v21.pipelines[0].processors[0].condition,
        r#"{{ eq .Operation "update" }}"#
    );

    let none = parse("no-version.yaml");
    assert_eq!(
        problems(&none.problems),
        ["2:1 warning /version: no version given; the file is read as version 2.2"]
    );
    assert_eq!(none.pipelines.len(), 1);

    // 1.x: mappings keyed by id, rewritten into 2.x lists in the order written.
    let v1 = parse("v1.yaml");
    assert_eq!(
        problems(&v1.problems),
        [
            "1:10 warning /0/version: version 1.x is deprecated: its processors are run in the \
             order written (Conduit runs them in no fixed order); convert the file to version 2.2",
            "29:5 warning /0/pipelines/0/dead-letter-queue: field dead-letter-queue was introduced \
             in version 1.1, please update the pipeline config version",
            "34:10 warning /1/version: unknown version \"1.12\"; the file is read as version 1.1",
            "34:10 warning /1/version: version 1.x is deprecated: its processors are run in the \
             order written (Conduit runs them in no fixed order); convert the file to version 2.2",
        ]
    );
    let ids: Vec<&str> = v1.pipelines.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["legacy", "newer"]);
    let legacy = &v1.pipelines[0];
    assert!(!legacy.running);
    assert_eq!(legacy.description, "a version 1.0 file");
    let connectors: Vec<(&str, bool, &str)> = legacy
        .connectors
        .iter()
        .map(|c| (c.id.as_str(), c.source, c.plugin.as_str()))
        .collect();
    assert_eq!(
        connectors,
        [
            ("in", true, "builtin:generator"),
            ("out", false, "builtin:log")
        ]
    );
    assert_eq!(legacy.connectors[0].settings["format.type"], "raw");
    let tag = &legacy.connectors[0].processors[0];
    assert_eq!((tag.id.as_str(), tag.plugin.as_str()), ("tag", "field.set"));
    assert_eq!(tag.settings["value"], "legacy");
    let order: Vec<(&str, i32)> = legacy
        .processors
        .iter()
        .map(|p| (p.id.as_str(), p.workers))
        .collect();
    assert_eq!(
        order,
        [("second", 1), ("first", 2)],
        "`type` names the plugin"
    );
    assert!(legacy.processors.iter().all(|p| p.plugin == "field.set"));
    assert_eq!(
        (legacy.dlq.window_size, legacy.dlq.window_nack_threshold),
        (4, 2)
    );
    assert_eq!(v1.pipelines[1].connectors[0].id, "only");

    let list = config::parse(
        "x.yaml",
        "version: \"1.1\"\npipelines: [ { id: p } ]\n",
        &env,
    );
    assert_eq!(
        problems(&list.problems),
        ["2:12 error /pipelines: version 1.x wants a mapping of id to entry here, found a sequence"]
    );
    assert!(list.pipelines.is_empty());

    let newer = config::parse("x.yaml", "version: \"2.9\"\npipelines: []\n", &env);
    assert_eq!(
        problems(&newer.problems),
        ["1:10 warning /version: unknown version \"2.9\"; the file is read as version 2.2"]
    );
    let bare = config::parse("x.yaml", "version: 2\npipelines: []\n", &env);
    assert_eq!(
        problems(&bare.problems),
        ["1:10 warning /version: unknown version \"2\"; the file is read as version 2.2"]
    );
    let alien = config::parse("x.yaml", "version: \"3.0\"\npipelines: []\n", &env);
    assert_eq!(
        problems(&alien.problems),
        ["1:10 error /version: unrecognized version \"3.0\""]
    );
    let early = config::parse(
        "x.yaml",
        "version: \"2.0\"\npipelines:\n  - id: p\n    status: stopped\n    processors:\n      - id: f\n        plugin: filter\n        condition: \"{{ true }}\"\n",
        &env,
    );
    assert_eq!(
        problems(&early.problems),
        [
            "7:9 warning /pipelines/0/processors/0/plugin: field plugin was introduced in version 2.2, please update the pipeline config version to 2.2",
            "8:9 warning /pipelines/0/processors/0/condition: field condition was introduced in version 2.1, please update the pipeline config version to 2.2",
        ]
    );
}

#[test]
fn several_documents_in_one_file() {
    let parsed = parse("multi-doc.yaml");
    assert_eq!(problems(&parsed.problems), Vec::<String>::new());
    let ids: Vec<&str> = parsed.pipelines.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["first-of-two", "second-of-two"]);
    assert_eq!(parsed.pipelines[1].path, "/1/pipelines/0");
}

#[test]
fn environment_variables_are_interpolated() {
    let parsed = parse("env.yaml");
    let p = &parsed.pipelines[0];
    assert_eq!(p.description, "rate 25, unset []");
    assert_eq!(p.connectors[0].settings["rate"], "25");
    assert_eq!(p.connectors[1].settings["path"], "/tmp/out/env.jsonl");
    let vars = |name: &str| (name == "A").then(|| "x".to_owned());
    // Go's rules: `$-` is a (special) variable, `${}` is eaten, a final `$` stays.
    assert_eq!(
        config::expand("$A-${A}-$B-${B}-$-${}-a$", &vars),
        "x-x----a$"
    );
    // An unclosed `${` loses only those two characters, as with Go's `os.ExpandEnv`.
    assert_eq!(config::expand("a${A-${B", &vars), "aA-B");
}

#[test]
fn merge_keys_share_settings_between_entries() {
    let text = "version: \"2.2\"\n\
                x-defaults: &log { type: destination, plugin: builtin:log, settings: { level: error } }\n\
                pipelines:\n  - id: merged\n    status: stopped\n    connectors:\n      \
                - <<: *log\n        id: one\n      - <<: *log\n        id: two\n        \
                settings: { level: info }\n";
    let parsed = config::parse("x.yaml", text, &env);
    assert_eq!(
        problems(&parsed.problems),
        ["2:1 warning /x-defaults: unknown field \"x-defaults\"; it is ignored"]
    );
    let connectors = &parsed.pipelines[0].connectors;
    let seen: Vec<(&str, bool, &str, &str)> = connectors
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.source,
                c.plugin.as_str(),
                c.settings["level"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("one", false, "builtin:log", "error"),
            ("two", false, "builtin:log", "info")
        ]
    );
}

#[test]
fn a_dead_letter_queue_with_empty_settings_keeps_the_defaults_and_its_window_is_checked() {
    let dlq = |body: &str| {
        config::parse(
            "x.yaml",
            &format!(
                "version: \"2.2\"\npipelines:\n  - id: p\n    status: stopped\n    \
                 dead-letter-queue: {body}\n"
            ),
            &env,
        )
    };
    let empty = dlq("{ plugin: builtin:log, settings: {} }");
    assert_eq!(problems(&empty.problems), Vec::<String>::new());
    assert_eq!(
        empty.pipelines[0].dlq.settings,
        config::DlqConfig::default().settings,
        "Conduit's level and message"
    );
    let window = dlq("{ window-size: 2, window-nack-threshold: 2 }");
    assert_eq!(
        problems(&window.problems),
        [
            "5:24 error /pipelines/0/dead-letter-queue/window-nack-threshold: \
          \"window-nack-threshold\" (2) must be lower than \"window-size\" (2)"
        ]
    );
    assert!(window.pipelines.is_empty());
    // A window of 0 turns the check off, whatever the threshold.
    let off = dlq("{ window-size: 0, window-nack-threshold: 5 }");
    assert_eq!(problems(&off.problems), Vec::<String>::new());
}

#[test]
fn a_typo_is_a_warning_naming_the_field_meant() {
    let parsed = parse("typo.yaml");
    assert_eq!(
        problems(&parsed.problems),
        [
            "5:5 error /pipelines/0/connectors: a running pipeline needs at least one destination connector",
            "5:5 error /pipelines/0/connectors: a running pipeline needs at least one source connector",
            "7:5 warning /pipelines/0/conectors: unknown field \"conectors\" (did you mean \"connectors\"?); it is ignored",
        ]
    );
    assert!(parsed.pipelines.is_empty());
    assert_eq!(parsed.mentioned, ["typo"], "still named by its file");
}

#[test]
fn a_running_pipeline_needs_a_source_and_a_destination() {
    let parsed = parse("missing-destination.yaml");
    assert_eq!(
        problems(&parsed.problems),
        ["3:5 error /pipelines/0/connectors: a running pipeline needs at least one destination connector"]
    );
}

#[test]
fn malformed_yaml_is_reported_where_it_breaks() {
    let parsed = parse("malformed.yaml");
    assert!(parsed.truncated);
    let lines = problems(&parsed.problems);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("5:1 error : malformed YAML: "),
        "{lines:?}"
    );
}

#[test]
fn invalid_fields_are_all_reported_at_once() {
    let parsed = parse("invalid-fields.yaml");
    assert_eq!(
        problems(&parsed.problems),
        [
            "3:5 error /pipelines/0/id: id is mandatory",
            "5:13 error /pipelines/1/status: \"status\" is invalid: \"Running\", want \"running\" or \"stopped\" (did you mean \"running\"?)",
            "7:9 error /pipelines/1/connectors/0/id: connector 0: id is mandatory",
            "10:15 error /pipelines/1/connectors/1/type: connector \"dst\": \"type\" is invalid: \"sink\", want \"source\" or \"destination\"",
            "12:9 error /pipelines/1/connectors/2/id: connector \"id\" must be unique: \"dst\" is used more than once",
            "12:9 error /pipelines/1/connectors/2/plugin: connector \"dst\": \"plugin\" is mandatory",
            "19:13 error /pipelines/1/connectors/3/processors/0/workers: processor \"neg\": \"workers\" can't be negative",
            "22:13 error /pipelines/1/connectors/3/processors/1/id: processor 1: id is mandatory",
        ]
    );
    assert!(parsed.pipelines.is_empty());
}

// ---- provisioning ---------------------------------------------------------------------

struct Plane {
    log: Arc<dyn EventLog>,
    writer: Arc<ControlPlaneWriter>,
    provisioner: Provisioner,
    dir: tempfile::TempDir,
}

fn plane() -> Plane {
    let log: Arc<dyn EventLog> = Arc::new(MemoryStore::new());
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::new(log.clone(), Arc::new(projections));
    let provisioner = Provisioner::new(
        writer.clone(),
        Arc::new(culvert_connectors::registry()),
        Arc::new(culvert_processors::registry()),
    );
    Plane {
        log,
        writer,
        provisioner,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Plane {
    /// Copy fixtures into the pipelines directory (under their own names).
    fn put(&self, names: &[&str]) {
        for name in names {
            std::fs::copy(fixture(name), self.dir.path().join(name)).unwrap();
        }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    fn run(&self) -> Report {
        self.provisioner.provision(self.dir.path(), &env).unwrap()
    }

    /// (event type, actor) of the events after `from`.
    fn events_after(&self, from: Seq) -> Vec<(String, String)> {
        self.log
            .read_from(Seq(from.0 + 1), usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| (e.event_type, e.actor))
            .collect()
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn provisions_creates_then_leaves_alone_then_updates_only_what_changed_then_deletes() {
    let plane = plane();
    plane.put(&["full-v2.2.yaml", "v2.0.yaml"]);
    let report = plane.run();
    assert_eq!(report.errors().count(), 0, "{:?}", report.problems);
    assert_eq!(report.created, ["full", "old-style"]);
    let state = plane.writer.projections().read();
    let full = state.pipeline(&PipelineId("full".into())).unwrap();
    assert_eq!(
        full.provisioned_by.as_deref(),
        Some(plane.file("full-v2.2.yaml").as_str())
    );
    assert_eq!(
        full.status,
        PipelineStatus::Starting,
        "status running: started"
    );
    assert_eq!(full.connector_ids.len(), 2);
    assert_eq!(full.connector_ids[0].as_str(), "full:gen");
    let processors: Vec<&str> = full.processor_ids.iter().map(|p| p.as_str()).collect();
    assert_eq!(processors, ["full:rename", "full:keep-all"]);
    let gen = state.connector(&full.connector_ids[0]).unwrap();
    assert_eq!(gen.processor_ids[0].as_str(), "full:gen:tag");
    assert_eq!(full.dlq.window_size, 5);
    let old = state.pipeline(&PipelineId("old-style".into())).unwrap();
    assert!(matches!(old.status, PipelineStatus::Stopped { .. }));
    drop(state);
    // Every event of a pipeline carries its file as the actor.
    let actor = format!("provisioning:{}", plane.file("full-v2.2.yaml"));
    let events = plane.events_after(Seq::ZERO);
    let of_full: Vec<&(String, String)> = events.iter().filter(|(_, a)| *a == actor).collect();
    assert!(of_full.iter().any(|(t, _)| t == "PipelineProvisioned"));
    assert!(of_full.iter().any(|(t, _)| t == "PipelineStartRequested"));

    // Again, unchanged: nothing written.
    let head = plane.writer.head();
    let again = plane.run();
    assert_eq!(again.unchanged, ["full", "old-style"]);
    assert_eq!(again.events, 0);
    assert_eq!(plane.writer.head(), head);

    // One setting changed: only that connector's update (the pipeline is recorded stopped
    // for the change and started again, as it was running).
    let text = std::fs::read_to_string(fixture("full-v2.2.yaml"))
        .unwrap()
        .replace("recordCount: \"100\"", "recordCount: \"200\"");
    plane.write("full-v2.2.yaml", &text);
    let head = plane.writer.head();
    let changed = plane.run();
    assert_eq!(changed.updated, ["full"]);
    assert_eq!(
        plane.events_after(head),
        [
            ("PipelineStopped".to_owned(), actor.clone()),
            ("ConnectorUpdated".to_owned(), actor.clone()),
            ("PipelineStartRequested".to_owned(), actor.clone()),
        ]
    );

    // The file is gone: the pipeline, its connectors and processors are deleted.
    std::fs::remove_file(plane.dir.path().join("v2.0.yaml")).unwrap();
    let head = plane.writer.head();
    let removed = plane.run();
    assert_eq!(removed.deleted, ["old-style"]);
    let types: Vec<String> = plane
        .events_after(head)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        types,
        [
            "ProcessorDeleted",
            "PipelineProcessorRemoved",
            "ConnectorDeleted",
            "PipelineConnectorRemoved",
            "ConnectorDeleted",
            "PipelineConnectorRemoved",
            "PipelineDeleted"
        ]
    );
    assert!(plane
        .writer
        .projections()
        .read()
        .pipeline(&PipelineId("old-style".into()))
        .is_none());
}

#[test]
fn provisioned_pipelines_cannot_be_changed_over_the_api_but_can_be_stopped() {
    let plane = plane();
    plane.put(&["v2.1.yaml"]);
    plane.run();
    let pipelines = PipelineOrchestrator::new(plane.writer.clone());
    let ctx = Context::new("user:test");
    let id = PipelineId("conditional".into());
    let refused = pipelines
        .update(&ctx, &id, "renamed", "", None)
        .unwrap_err();
    let culvert_commands::CommandError::Domain(DomainError::ProvisionedByConfig { .. }) = &refused
    else {
        panic!("{refused}")
    };
    assert!(refused.to_string().starts_with(
        "entity was provisioned by a config file and cannot be mutated through the API"
    ));
    assert!(pipelines.delete(&ctx, &id).is_err());
    pipelines.start(&ctx, &id).expect("start is allowed");
}

#[test]
fn duplicates_unknown_plugins_and_api_pipelines_are_skipped_with_the_reason() {
    let plane = plane();
    // An API-created pipeline with an id a file uses.
    let pipelines = PipelineOrchestrator::new(plane.writer.clone());
    pipelines
        .create_with_id(
            &Context::new("user:test"),
            PipelineId("from-env".into()),
            "mine",
            "",
        )
        .unwrap();
    plane.put(&[
        "duplicate-a.yaml",
        "duplicate-b.yaml",
        "duplicate-c.yaml",
        "unknown-plugin.yaml",
        "env.yaml",
        "multi-doc.yaml",
        "malformed.yaml",
    ]);
    let report = plane.run();
    assert_eq!(report.created, ["first-of-two", "second-of-two"]);
    let mut skipped = report.skipped.clone();
    skipped.sort();
    assert_eq!(
        skipped,
        ["from-env", "once-valid", "twice", "unknown-plugin"]
    );
    let errors: Vec<String> = report
        .errors()
        .map(|p| {
            format!(
                "{}:{} {}: {}",
                Path::new(&p.file).file_name().unwrap().to_str().unwrap(),
                p.at,
                p.path,
                p.message
            )
        })
        .collect();
    let expect = |needle: &str| {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no error containing {needle:?} in {errors:#?}"
        )
    };
    expect("duplicate-a.yaml:3:5 /pipelines/0/id: 2 pipelines with ID \"twice\" will be skipped");
    expect("duplicate-b.yaml:3:5 /pipelines/0/id: 2 pipelines with ID \"twice\" will be skipped");
    // A copy with errors still counts: the valid one is skipped too (Conduit's order).
    expect(
        "duplicate-c.yaml:3:5 /pipelines/0/id: 2 pipelines with ID \"once-valid\" will be skipped",
    );
    expect("duplicate-c.yaml:3:5 and one entry with errors)");
    expect("unknown-plugin.yaml:6:9 /pipelines/0/connectors/0/plugin: connector \"src\": plugin \"builtin:mysql\" not found");
    expect("unknown-plugin.yaml:11:9 /pipelines/0/processors/0/plugin: processor \"js\": plugin \"acme.enrich\" not found");
    expect("env.yaml:4:5 /pipelines/0/id: pipeline from-env exists and was created over the API");
    expect("malformed.yaml:5:1 : malformed YAML");
    // The API's pipeline is untouched.
    let state = plane.writer.projections().read();
    let mine = state.pipeline(&PipelineId("from-env".into())).unwrap();
    assert_eq!(
        (mine.name.as_str(), mine.provisioned_by.as_ref()),
        ("mine", None)
    );
}

#[test]
fn processors_reordered_or_with_a_new_condition_are_recreated_in_file_order() {
    let plane = plane();
    let file = |order: &[(&str, &str)]| {
        let mut text = String::from(
            "version: \"2.2\"\npipelines:\n  - id: order\n    status: stopped\n    processors:\n",
        );
        for (id, condition) in order {
            text.push_str(&format!(
                "      - {{ id: {id}, plugin: filter, condition: '{condition}' }}\n"
            ));
        }
        text
    };
    plane.write("order.yaml", &file(&[("a", ""), ("b", ""), ("c", "")]));
    plane.run();
    plane.write(
        "order.yaml",
        &file(&[("a", ""), ("c", ""), ("b", "{{ true }}")]),
    );
    let head = plane.writer.head();
    let report = plane.run();
    assert_eq!(report.updated, ["order"]);
    let state = plane.writer.projections().read();
    let order: Vec<&str> = state
        .pipeline(&PipelineId("order".into()))
        .unwrap()
        .processor_ids
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(order, ["order:a", "order:c", "order:b"]);
    let b = state
        .processor(&culvert_domain::ProcessorId("order:b".into()))
        .unwrap();
    assert_eq!(b.condition, "{{ true }}");
    drop(state);
    let types: Vec<String> = plane
        .events_after(head)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(!types
        .iter()
        .any(|t| t.contains("Pipeline") && t.contains("Deleted")));
    // Only b is recreated (new condition, and it moves behind c); a and c stay.
    assert_eq!(types.iter().filter(|t| *t == "ProcessorDeleted").count(), 1);
    assert_eq!(types.iter().filter(|t| *t == "ProcessorCreated").count(), 1);
}
