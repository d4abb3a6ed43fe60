//! Every `culvert` verb, end to end, from one table: each row runs the real binary (most
//! against one real server started here, the offline ones on files and directories made
//! here) and checks its exit code and what it printed. The read verbs have a row per
//! output format (`-o table|json|yaml`, and `--json`): the table shows its header, the
//! JSON parses, the YAML parses and holds the same value as the JSON.
//!
//! A guard walks the command tree (`culvert --help`, then each group's `--help`) and fails
//! when a verb has no row here, so a new verb cannot go untested.

use crate::harness::{culvert, data_dir, wait_until, Server};
use crate::http_client::request;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

/// What a row expects of a verb's output (besides its exit code).
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Standard output contains this text.
    Out(&'static str),
    /// Standard error contains this text.
    Err(&'static str),
    /// Standard output is one JSON document.
    Json,
    /// Standard output is one JSON object a line (at least one line).
    JsonLines,
    /// Standard output is YAML: one document, or one per item of a stream, each holding
    /// the value of the same row's JSON (see [`Row::same_as_json`]).
    Yaml,
}

/// One run of one verb.
struct Row {
    /// The verb's path in the command tree (`pipelines ls`), as the guard finds it.
    verb: &'static str,
    /// The arguments after the verb, with `{name}` placeholders (see [`Vars`]).
    args: Vec<&'static str>,
    /// The exit code it must end with.
    code: i32,
    expect: Expect,
    /// For a YAML row: compare its value with this many rows back (the JSON row of the
    /// same command), when the answer cannot change between the two runs.
    same_as_json: Option<usize>,
    /// Keep the trimmed standard output as this placeholder for later rows.
    capture: Option<&'static str>,
}

fn row(verb: &'static str, args: &[&'static str], code: i32, expect: Expect) -> Row {
    Row {
        verb,
        args: args.to_vec(),
        code,
        expect,
        same_as_json: None,
        capture: None,
    }
}

/// A read verb in each output format: `table` (its header word on standard output),
/// `--json` and `-o json` (JSON, or JSON lines for a stream), `-o yaml` (the same value as
/// YAML when `stable`).
fn formats(
    verb: &'static str,
    args: &[&'static str],
    header: &'static str,
    stream: bool,
    stable: bool,
) -> Vec<Row> {
    let json = if stream {
        Expect::JsonLines
    } else {
        Expect::Json
    };
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(extra).copied().collect::<Vec<_>>()
    };
    vec![
        row(verb, &with(&[]), 0, Expect::Out(header)),
        row(verb, &with(&["--output", "table"]), 0, Expect::Out(header)),
        row(verb, &with(&["--json"]), 0, json),
        row(verb, &with(&["-o", "json"]), 0, json),
        Row {
            same_as_json: stable.then_some(1),
            ..row(verb, &with(&["-o", "yaml"]), 0, Expect::Yaml)
        },
    ]
}

/// Placeholders and their values.
struct Vars(Vec<(String, String)>);

impl Vars {
    /// `arg` with its placeholders filled; `{now}` is the time of the call (RFC 3339).
    fn fill(&self, arg: &str) -> String {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut arg = arg.replace("{now}", &now);
        for (name, value) in &self.0 {
            arg = arg.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !arg.contains('{') || arg.contains("{{"),
            "unfilled placeholder in {arg:?}"
        );
        arg
    }
}

/// The pipeline every server row works on: generator -> log, a processor on the source.
const PIPELINE: &str = r#"version: "2.2"
pipelines:
  - id: verbs
    status: stopped
    name: verbs
    description: every verb of the CLI
    connectors:
      - id: src
        type: source
        plugin: builtin:generator
        settings:
          format.type: raw
          format.options.id: int
          rate: "50"
        processors:
          - id: tag
            plugin: field.set
            settings:
              field: .Metadata.via
              value: cli
      - id: out
        type: destination
        plugin: builtin:log
"#;

/// The rows before the server starts: verbs that need none.
fn offline_rows() -> Vec<Row> {
    let mut rows = vec![
        row("version", &[], 0, Expect::Out(" linux/")),
        row("completion", &["bash"], 0, Expect::Out("complete -F")),
        row("completion", &["tcsh"], 2, Expect::Err("tcsh")),
        row("init", &["{tmp}/work"], 0, Expect::Out("next: cd")),
        row("init", &["{tmp}/work"], 2, Expect::Err("already exist")),
        row(
            "pipelines validate",
            &["{tmp}/work/pipelines"],
            0,
            Expect::Out(""),
        ),
        row(
            "pipelines validate",
            &["{tmp}/work/pipelines", "--output", "json"],
            0,
            Expect::Json,
        ),
        row(
            "pipelines lint",
            &["{tmp}/work/pipelines", "--strict"],
            0,
            Expect::Out(""),
        ),
        row(
            "config",
            &["--config.path", "{tmp}/work/culvert.yaml"],
            0,
            Expect::Out("pipelines.path"),
        ),
        row(
            "config",
            &[
                "--config.path",
                "{tmp}/work/culvert.yaml",
                "--output",
                "json",
            ],
            0,
            Expect::Json,
        ),
        row(
            "doctor",
            &["--check", "version,config.validate"],
            0,
            Expect::Out("summary: 2 checks, 2 ok"),
        ),
        row(
            "doctor",
            &["--check", "no.such.check"],
            2,
            Expect::Err("limits.open_files"),
        ),
        row(
            "tokens create",
            &["ci", "--tokens-file", "{tmp}/tokens"],
            0,
            Expect::Err("shown only this once"),
        ),
        row(
            "oracle verdict",
            &[
                "--opencdc",
                "{tmp}/nothing.jsonl",
                "--partitions",
                "1",
                "--records",
                "0",
                "--output",
                "json",
            ],
            0,
            Expect::Json,
        ),
    ];
    rows.extend(formats(
        "tokens ls",
        &["--tokens-file", "{tmp}/tokens"],
        "ci",
        false,
        true,
    ));
    rows.extend([
        row(
            "pipelines dry-run",
            &["{tmp}/work/pipelines", "--records", "1"],
            0,
            Expect::JsonLines,
        ),
        row(
            "pipelines dry-run",
            &["{tmp}/work/pipelines", "--records", "1", "--output", "json"],
            0,
            Expect::Json,
        ),
        row(
            "pipelines init",
            &["--pipelines.path", "{tmp}/init"],
            0,
            Expect::Out("written to"),
        ),
        row(
            "pipelines init",
            &["--pipelines.path", "{tmp}/init"],
            2,
            Expect::Err("pipelines.init_destination_exists"),
        ),
        row(
            "pipelines init",
            &[
                "pg-to-kafka",
                "--source",
                "postgres",
                "--destination",
                "kafka",
                "--dry-run",
                "--json",
            ],
            0,
            Expect::Json,
        ),
        row(
            "pipelines init",
            &["--template", "list"],
            0,
            Expect::Out("postgres-cdc-kafka"),
        ),
        row(
            "pipelines init",
            &["--template", "nope"],
            2,
            Expect::Err("pipelines.init_unknown_template"),
        ),
        row(
            "pipelines repair",
            &["{tmp}/repair.yaml"],
            0,
            Expect::Out("[safe     ] /status"),
        ),
        row(
            "pipelines repair",
            &["{tmp}/repair.yaml", "--json"],
            0,
            Expect::Json,
        ),
        row(
            "pipelines repair",
            &["{tmp}/repair.yaml", "--apply"],
            2,
            Expect::Err("--plan-hash"),
        ),
        row(
            "pipelines repair",
            &["{tmp}/repair.yaml", "--apply", "--plan-hash", "0123"],
            2,
            Expect::Err("repair.plan_stale"),
        ),
        row(
            "pipelines repair",
            &["{tmp}/repair.yaml", "--apply", "--yes"],
            0,
            Expect::Out("1 applied, 0 skipped"),
        ),
        row(
            "pipelines repair",
            &["{tmp}/repair.yaml"],
            0,
            Expect::Out("nothing to repair"),
        ),
        row(
            "connector-plugins install",
            &["{tmp}/no-such-plugin", "--path", "{tmp}/connectors"],
            2,
            Expect::Err("give a plugin file"),
        ),
        row(
            "connector-plugins uninstall",
            &["nope", "--path", "{tmp}/connectors"],
            2,
            Expect::Err("installed: none"),
        ),
        row(
            "processor-plugins install",
            &["{tmp}/work/culvert.yaml", "--path", "{tmp}/processors"],
            2,
            Expect::Err("magic bytes"),
        ),
        row(
            "processor-plugins uninstall",
            &["nope", "--path", "{tmp}/processors"],
            2,
            Expect::Err("installed: none"),
        ),
        row(
            "connectors install",
            &["{tmp}/no-such-plugin", "--path", "{tmp}/connectors"],
            2,
            Expect::Err("give a plugin file"),
        ),
        row(
            "connectors uninstall",
            &["nope", "--path", "{tmp}/connectors"],
            2,
            Expect::Err("installed: none"),
        ),
        row(
            "connectors new",
            &["db", "--module", "github.com/a/db", "--skip-build"],
            2,
            Expect::Err("github.com/<you>/conduit-connector-db"),
        ),
        row(
            "processors new",
            &[
                "Tag",
                "--module",
                "github.com/a/conduit-processor-Tag",
                "--skip-build",
            ],
            2,
            Expect::Err("lower-case letters"),
        ),
        row(
            "connectors audit",
            &["--index", "{tmp}/index.json", "--path", "{tmp}/connectors"],
            0,
            Expect::Out("No plugins installed"),
        ),
        row(
            "connector-plugins audit",
            &[
                "--index",
                "{tmp}/no-index.json",
                "--path",
                "{tmp}/connectors",
            ],
            3,
            Expect::Err("reading the index"),
        ),
    ]);
    rows.extend(formats(
        "processor-plugins audit",
        &["--index", "{tmp}/index.json", "--path", "{tmp}/processors"],
        "No plugins installed",
        false,
        true,
    ));
    rows
}

/// The rows against the running server, in order: each may rely on the ones before.
fn server_rows() -> Vec<Row> {
    let mut rows = vec![
        row(
            "pipelines import",
            &["{tmp}/verbs.yaml", "--dry-run", "--grpc.address", "{grpc}"],
            0,
            Expect::Out("pipeline verbs: would change"),
        ),
        row(
            "pipelines import",
            &["{tmp}/verbs.yaml", "--grpc.address", "{grpc}"],
            0,
            Expect::Out("pipeline verbs: changed"),
        ),
        row(
            "pipelines import",
            &["{tmp}/verbs.yaml", "--grpc.address", "{grpc}"],
            0,
            Expect::Out("pipeline verbs: up to date"),
        ),
        row(
            "pipelines deploy",
            &["{tmp}/verbs.yaml", "--grpc.address", "{grpc}"],
            0,
            Expect::Out("pipeline verbs: up to date"),
        ),
        row(
            "pipelines apply",
            &["{tmp}/verbs.yaml", "--grpc.address", "{grpc}"],
            2,
            Expect::Err("needs --plan-hash"),
        ),
        row(
            "pipelines apply",
            &[
                "{tmp}/verbs.yaml",
                "--plan-hash",
                "0000",
                "--grpc.address",
                "{grpc}",
            ],
            2,
            Expect::Err("the plan changed since it was computed"),
        ),
        row(
            "pipelines apply",
            &["{tmp}/verbs.yaml", "--yes", "--grpc.address", "{grpc}"],
            0,
            Expect::Out("pipeline verbs: up to date"),
        ),
        row(
            "pipelines list",
            &["--grpc.address", "{grpc}"],
            0,
            Expect::Out("verbs"),
        ),
    ];
    let grpc = |args: &[&'static str]| -> Vec<&'static str> {
        args.iter()
            .copied()
            .chain(["--grpc.address", "{grpc}"])
            .collect()
    };
    // The read verbs, each in every format, while nothing changes.
    for (verb, args, header) in [
        ("pipelines ls", vec![], "PROCESSORS"),
        (
            "pipelines describe",
            vec!["verbs"],
            "Description: every verb",
        ),
        ("connectors ls", vec!["--pipeline", "verbs"], "PLUGIN"),
        (
            "connectors describe",
            vec!["verbs:src"],
            "Plugin:     builtin:generator",
        ),
        (
            "connectors position",
            vec!["verbs:src"],
            "Position:    none",
        ),
        ("processors ls", vec![], "CONDITION"),
        (
            "processors describe",
            vec!["verbs:src:tag"],
            "Plugin:    field.set",
        ),
        ("plugins ls", vec![], "SUMMARY"),
        ("connector-plugins list", vec![], "SUMMARY"),
        (
            "connector-plugins describe",
            vec!["builtin:log"],
            "Parameters (destination):",
        ),
        ("processor-plugins list", vec![], "SUMMARY"),
        (
            "processor-plugins describe",
            vec!["field.set"],
            "Parameters (processor):",
        ),
        ("info", vec![], "version: v"),
        ("dlq ls", vec!["verbs"], "FAILED IN"),
        (
            "revert",
            vec!["verbs", "--to", "1", "--dry-run"],
            "configuration as of event 1",
        ),
    ] {
        let args: Vec<&'static str> = grpc(&args);
        rows.extend(formats(verb, &args, header, false, true));
    }
    rows.extend([
        row(
            "pipelines describe",
            &grpc(&["nope"]),
            2,
            Expect::Err("nope"),
        ),
        row("dlq show", &grpc(&["verbs", "1"]), 2, Expect::Err("error:")),
        row(
            "dlq reinject",
            &grpc(&["verbs", "--all"]),
            2,
            Expect::Err("nothing to do"),
        ),
        row(
            "pipelines graph",
            &grpc(&["verbs"]),
            0,
            Expect::Out("digraph \"verbs\""),
        ),
        row(
            "pipelines graph",
            &grpc(&["verbs", "--format", "svg", "-o", "{tmp}/verbs.svg"]),
            0,
            Expect::Out(""),
        ),
        row(
            "pipelines export",
            &grpc(&["verbs"]),
            0,
            Expect::Out("- id: \"verbs\""),
        ),
        row(
            "pipelines export",
            &grpc(&["verbs", "--format", "json", "-o", "{tmp}/verbs.json"]),
            0,
            Expect::Out(""),
        ),
        Row {
            capture: Some("scratch"),
            ..row(
                "pipelines create",
                &grpc(&["scratch", "--description", "made and deleted"]),
                0,
                Expect::Out("-"),
            )
        },
        row(
            "pipelines create",
            &grpc(&["scratch2", "-o", "json"]),
            0,
            Expect::Json,
        ),
        row(
            "pipelines delete",
            &grpc(&["{scratch}"]),
            0,
            Expect::Out("deleted"),
        ),
        row(
            "connectors seek",
            &grpc(&["verbs:src", "--position", "7"]),
            0,
            Expect::Out("Moved (event"),
        ),
        row(
            "connectors reset",
            &grpc(&["verbs:src", "-o", "json"]),
            0,
            Expect::Json,
        ),
        row(
            "connectors reset",
            &grpc(&["verbs:src"]),
            0,
            Expect::Out("Unchanged"),
        ),
        row(
            "pipelines start",
            &grpc(&["verbs"]),
            0,
            Expect::Out("pipeline verbs: running"),
        ),
    ]);
    // Streams and live numbers, while the pipeline runs.
    for (args, expect) in [
        (vec!["verbs:src", "--count", "2"], Expect::Out("create")),
        (
            vec!["verbs:src", "--count", "2", "--json"],
            Expect::JsonLines,
        ),
        (
            vec!["verbs:src:tag", "--count", "2", "-o", "json"],
            Expect::JsonLines,
        ),
        (vec!["verbs", "--count", "2", "-o", "yaml"], Expect::Yaml),
    ] {
        rows.push(row("pipelines inspect", &grpc(&args), 0, expect));
    }
    rows.extend(formats(
        "top",
        &["--once", "--interval", "200ms", "--http.address", "{http}"],
        "PENDING",
        false,
        false,
    ));
    rows.extend([row(
        "pipelines stop",
        &grpc(&["verbs"]),
        0,
        Expect::Out("pipeline verbs: stop requested"),
    )]);
    rows
}

/// The rows once the pipeline stopped: nothing changes the log any more.
fn stopped_rows() -> Vec<Row> {
    let grpc = |args: &[&'static str]| -> Vec<&'static str> {
        args.iter()
            .copied()
            .chain(["--grpc.address", "{grpc}"])
            .collect()
    };
    let mut rows = vec![];
    rows.extend([
        row(
            "doctor",
            &[
                "--require-server",
                "--check",
                "network.grpc,network.http",
                "--api.grpc.address",
                "{grpc}",
                "--api.http.address",
                "{http}",
            ],
            0,
            Expect::Out("a server answers gRPC at {grpc}"),
        ),
        // Standard input closed before the client's `initialize`: the session fails.
        row("mcp", &grpc(&[]), 1, Expect::Err("initialize")),
        // A second server on the same address: an unfit environment (exit 3).
        row(
            "run",
            &[
                "--db.rocksdb.path",
                "{tmp}/second",
                "--api.grpc.address",
                "{grpc}",
                "--api.http.address",
                "127.0.0.1:0",
            ],
            3,
            Expect::Err("Address already in use"),
        ),
    ]);
    // The event log, read from the data directory the server holds, or over gRPC.
    rows.extend(formats(
        "events ls",
        &["--db.rocksdb.path", "{data}", "--to", "5"],
        "RECORDED AT",
        true,
        true,
    ));
    rows.extend(formats(
        "events tail",
        &grpc(&["-n", "3", "--entity", "verbs"]),
        "pipeline/verbs",
        true,
        true,
    ));
    rows.extend(formats(
        "audit",
        &["verbs", "--db.rocksdb.path", "{data}"],
        "verbs",
        true,
        true,
    ));
    rows.extend([
        row(
            "at",
            &[
                "--time",
                "{now}",
                "pipelines",
                "describe",
                "verbs",
                "--db.rocksdb.path",
                "{data}",
            ],
            0,
            Expect::Json,
        ),
        row(
            "at",
            &[
                "--time",
                "{now}",
                "pipelines",
                "describe",
                "verbs",
                "--db.rocksdb.path",
                "{data}",
                "-o",
                "yaml",
            ],
            0,
            Expect::Yaml,
        ),
        row(
            "replay",
            &[
                "--to",
                "3",
                "--into",
                "{tmp}/replayed",
                "--db.rocksdb.path",
                "{data}",
            ],
            0,
            Expect::Out("{tmp}/replayed"),
        ),
        row(
            "verify",
            &["--db.rocksdb.path", "{tmp}/replayed"],
            0,
            Expect::Out("3 events"),
        ),
        row(
            "verify",
            &["--db.rocksdb.path", "{data}"],
            0,
            Expect::Out("ok"),
        ),
        row(
            "secrets rotate",
            // A replayed directory has the log, not the key file (kept apart from it).
            &["--db.rocksdb.path", "{tmp}/replayed"],
            1,
            Expect::Err("secrets.key does not exist"),
        ),
        row(
            "secrets rotate",
            &["--db.rocksdb.path", "{tmp}/nothing-here"],
            3,
            Expect::Err("nothing-here"),
        ),
    ]);
    rows
}

/// Run a row; its exit code, standard output and standard error.
fn run(row: &Row, vars: &Vars) -> (i32, String, String) {
    let mut argv: Vec<String> = row.verb.split(' ').map(str::to_owned).collect();
    argv.extend(row.args.iter().map(|a| vars.fill(a)));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    culvert(&argv)
}

/// Check a row's outcome; its parsed value for JSON and YAML rows.
fn check(row: &Row, vars: &Vars, code: i32, out: &str, err: &str) -> Option<Value> {
    let what = format!(
        "culvert {} {:?}\n--- stdout\n{out}\n--- stderr\n{err}",
        row.verb, row.args
    );
    assert_eq!(code, row.code, "exit code of {what}");
    match row.expect {
        Expect::Out(text) => {
            assert!(
                out.contains(&vars.fill(text)),
                "{text:?} not printed by {what}"
            );
            None
        }
        Expect::Err(text) => {
            assert!(
                err.contains(&vars.fill(text)),
                "{text:?} not in stderr of {what}"
            );
            None
        }
        Expect::Json => {
            Some(serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {what}")))
        }
        Expect::JsonLines => {
            let lines: Vec<Value> = out
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}: {what}")))
                .collect();
            assert!(!lines.is_empty(), "no JSON lines from {what}");
            assert!(lines.iter().all(Value::is_object), "{what}");
            Some(Value::Array(lines))
        }
        Expect::Yaml => {
            let documents = yaml_rust2::YamlLoader::load_from_str(out)
                .unwrap_or_else(|e| panic!("not YAML ({e}): {what}"));
            assert!(!documents.is_empty(), "no YAML document from {what}");
            let mut values: Vec<Value> = documents.iter().map(yaml_to_json).collect();
            Some(if values.len() == 1 {
                values.remove(0)
            } else {
                Value::Array(values)
            })
        }
    }
}

/// A YAML node as the JSON value it encodes.
fn yaml_to_json(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<u64>()
            .map(Value::from)
            .or_else(|_| r.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(r.clone())),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

/// Run rows in order, checking each; the verbs they covered.
fn run_rows(rows: &[Row], vars: &mut Vars, covered: &mut BTreeSet<String>) {
    let mut values: Vec<Option<Value>> = Vec::new();
    for row in rows {
        let (code, out, err) = run(row, vars);
        let value = check(row, vars, code, &out, &err);
        if let (Some(back), Some(value)) = (row.same_as_json, &value) {
            let json = values[values.len() - back]
                .as_ref()
                .expect("a YAML row follows a JSON row");
            // The stream of JSON lines is an array; one YAML document is the item itself.
            let json = match json {
                Value::Array(items) if items.len() == 1 && !value.is_array() => &items[0],
                other => other,
            };
            assert_eq!(
                value, json,
                "culvert {} {:?}: the YAML holds another value than the JSON",
                row.verb, row.args
            );
        }
        if let Some(name) = row.capture {
            vars.0.push((name.to_owned(), out.trim().to_owned()));
        }
        values.push(value);
        covered.insert(row.verb.to_owned());
    }
}

/// Every verb of the command tree, as `group verb` paths, from `--help`.
fn verbs() -> BTreeSet<String> {
    fn walk(path: Vec<String>, found: &mut BTreeSet<String>) {
        let mut argv: Vec<&str> = path.iter().map(String::as_str).collect();
        argv.push("--help");
        let (code, out, err) = culvert(&argv);
        assert_eq!(code, 0, "culvert {argv:?}: {err}");
        let children: Vec<String> = out
            .lines()
            .skip_while(|l| l.trim() != "Commands:")
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(str::to_owned)
            .collect();
        if children.is_empty() {
            found.insert(path.join(" "));
        }
        for child in children {
            let mut next = path.clone();
            next.push(child);
            walk(next, found);
        }
    }
    let mut found = BTreeSet::new();
    walk(vec![], &mut found);
    found
}

#[test]
fn every_verb_runs_end_to_end() {
    let (tmp, data) = data_dir();
    let dir = tmp.path().to_str().unwrap().to_owned();
    std::fs::write(tmp.path().join("verbs.yaml"), PIPELINE).unwrap();
    std::fs::write(tmp.path().join("nothing.jsonl"), "").unwrap();
    std::fs::write(tmp.path().join("index.json"), r#"{"plugins": []}"#).unwrap();
    std::fs::write(
        tmp.path().join("repair.yaml"),
        PIPELINE.replace("status: stopped", "status: \" Stopped \"  # a typo"),
    )
    .unwrap();
    let mut vars = Vars(vec![
        ("tmp".into(), dir.clone()),
        ("data".into(), data.to_str().unwrap().to_owned()),
    ]);
    let mut covered = BTreeSet::new();
    run_rows(&offline_rows(), &mut vars, &mut covered);

    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    server.wait_for_line("culvert ready");
    vars.0.push(("grpc".into(), grpc));
    vars.0.push(("http".into(), http.clone()));
    run_rows(&server_rows(), &mut vars, &mut covered);
    wait_until("the pipeline stopped", || {
        let reply = request(&http, "GET", "/v1/pipelines/verbs", &[], None);
        reply.json()["state"]["status"] == "STATUS_STOPPED"
    });
    run_rows(&stopped_rows(), &mut vars, &mut covered);

    // `quickstart` runs until interrupted: it must get its demo going.
    let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
    command
        .args(["quickstart", &format!("{dir}/demo")])
        .env("CULVERT_API_GRPC_ADDRESS", "127.0.0.1:0")
        .env("CULVERT_API_HTTP_ADDRESS", "127.0.0.1:0");
    let mut demo = Server::spawn(command);
    demo.wait_for_line("sample record");
    // SIGTERM is passed on to the demo server, which drains: exit 0.
    demo.terminate();
    assert!(demo.wait().success());
    covered.insert("quickstart".to_owned());

    let missing: Vec<String> = verbs().difference(&covered).cloned().collect();
    assert!(
        missing.is_empty(),
        "verbs without a row in tests/cli_verbs.rs: {missing:?}"
    );
}
