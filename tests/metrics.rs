//! `/metrics`: a scrape during and after a generator -> file pipeline parses as Prometheus
//! text (a strict parser below), shows Conduit's metrics with Conduit's labels, and the
//! destination's record count equals the lines the file destination wrote once stopped.
//! With authentication on, `/metrics` needs the token like the API (health checks do not).

use crate::harness::{culvert, data_dir, wait_until, Server};
use crate::http_client::{call, request, Reply};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

const RECORDS: u64 = 20_000;

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed document: each family's type, and the samples.
#[derive(Debug, Default)]
struct Document {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Document {
    /// The value of the one sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }
}

/// Parse Prometheus/OpenMetrics text strictly: every line is a `# HELP`, `# TYPE`, `# EOF`
/// (last) or a sample of a declared family (`_total`, `_bucket`, `_sum`, `_count` suffixes
/// as its type allows), with well-formed quoted labels and a float value; no sample
/// repeats; histogram buckets are cumulative and end at `+Inf` equal to `_count`.
fn parse(text: &str) -> Document {
    let mut doc = Document::default();
    let mut seen = HashSet::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "the document ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap();
            let name = parts.next().expect("a metric name");
            assert!(valid_name(name), "bad name in {line:?}");
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let kind = parts.next().expect("a type");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "unknown"
                        ]
                        .contains(&kind),
                        "{line:?}"
                    );
                    assert!(
                        doc.types.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "{name} declared twice"
                    );
                }
                "UNIT" => {}
                other => panic!("unknown keyword {other:?} in {line:?}"),
            }
            continue;
        }
        let sample = parse_sample(line);
        let family = family_of(&doc, &sample.name)
            .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"));
        let kind = &doc.types[&family];
        let suffix = &sample.name[family.len()..];
        let allowed: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        assert!(allowed.contains(&suffix), "{line:?} in a {kind}");
        let key = format!("{}{:?}", sample.name, sample.labels);
        assert!(seen.insert(key), "sample repeated: {line:?}");
        doc.samples.push(sample);
    }
    check_histograms(&doc);
    doc
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The declared family a sample name belongs to (the longest declared prefix).
fn family_of(doc: &Document, name: &str) -> Option<String> {
    doc.types
        .keys()
        .filter(|family| name.starts_with(family.as_str()))
        .max_by_key(|family| family.len())
        .cloned()
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("no value in {line:?}"),
    };
    assert!(valid_name(name), "bad sample name in {line:?}");
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            let (start, c) = chars.next().expect("unterminated labels");
            if c == '}' {
                end = start;
                break;
            }
            let mut key = String::from(c);
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            assert!(valid_name(&key), "bad label name {key:?} in {line:?}");
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value").1 {
                    '"' => break,
                    '\\' => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c} in {line:?}"),
                    },
                    c => value.push(c),
                }
            }
            assert!(
                labels.insert(key.clone(), value).is_none(),
                "label {key} repeated in {line:?}"
            );
            if let Some((_, ',')) = chars.peek() {
                chars.next();
            }
        }
        &body[end + 1..]
    } else {
        rest
    };
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    // A value, optionally followed by a timestamp.
    let value = value.split(' ').next().unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Buckets cumulative, `le` ascending to `+Inf`, and `+Inf` equal to `_count`.
fn check_histograms(doc: &Document) {
    for (family, kind) in &doc.types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for s in doc
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut labels = s.labels.clone();
            let le = labels.remove("le").expect("a bucket has le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("a numeric le")
            };
            series
                .entry(format!("{labels:?}"))
                .or_default()
                .push((le, s.value));
        }
        for (labels, buckets) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family}{labels}: buckets not cumulative: {buckets:?}"
            );
            let (le, inf) = *buckets.last().unwrap();
            assert!(le.is_infinite(), "{family}{labels} ends at +Inf");
            let count = doc
                .samples
                .iter()
                .find(|s| {
                    s.name == format!("{family}_count") && format!("{:?}", s.labels) == labels
                })
                .unwrap_or_else(|| panic!("{family}{labels} has a _count"));
            assert_eq!(count.value, inf, "{family}{labels}: +Inf == _count");
        }
    }
}

fn scrape(address: &str, token: Option<&str>) -> Reply {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    request(address, "GET", "/metrics", &headers, None)
}

fn metrics(address: &str) -> Document {
    let reply = scrape(address, None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse(&reply.text())
}

fn lines(path: &Path) -> u64 {
    std::fs::read(path)
        .unwrap_or_default()
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

#[test]
fn metrics_count_what_a_pipeline_moved() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "counted"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    let source = call(
        &address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
            "config": {"name": "gen", "settings": {"format.type": "structured",
                "format.options.id": "int", "recordCount": RECORDS.to_string(),
                "rate": "20000"}}}),
        ),
    );
    let source_id = source["id"].as_str().unwrap().to_owned();
    let destination = call(
        &address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:file", "pipelineId": id,
            "config": {"name": "out", "settings": {"path": out.to_str().unwrap()}}}),
        ),
    );
    let destination_id = destination["id"].as_str().unwrap().to_owned();

    let before = metrics(&address);
    assert_eq!(
        before.value("conduit_pipelines", &[("status", "userstopped")]),
        Some(1.0)
    );
    assert_eq!(
        before.value("conduit_connectors", &[("type", "source")]),
        Some(1.0)
    );
    assert!(before.value("culvert_connector_plugins", &[]).unwrap() >= 1.0);
    assert!(before.value("culvert_event_log_last_seq", &[]).unwrap() >= 3.0);
    assert_eq!(
        before.value("culvert_projection_lag_events", &[]),
        Some(0.0)
    );
    assert!(
        before
            .value("culvert_event_log_append_duration_seconds_count", &[])
            .unwrap()
            >= 3.0
    );
    assert!(before.value("process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(before.value("process_open_fds", &[]).unwrap() > 0.0);
    assert!(before.value("process_start_time_seconds", &[]).unwrap() > 1.0e9);
    assert!(before.value("process_cpu_seconds_total", &[]).is_some());
    // The data store's memory by part (events were written: the memtables hold them) and
    // the allocator's committed memory.
    let part = |name| before.value("culvert_store_memory_bytes", &[("part", name)]);
    assert!(part("memtables").unwrap() > 0.0);
    assert!(part("table_readers").is_some());
    assert!(part("block_cache").is_some());
    assert!(
        before
            .value("culvert_allocator_committed_bytes", &[])
            .unwrap()
            > 0.0
    );
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        before.value("conduit_info", &[("version", version.as_str())]),
        Some(1.0)
    );

    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    let written = |doc: &Document| {
        doc.value(
            "conduit_connector_bytes_count",
            &[
                ("pipeline_name", "counted"),
                ("plugin", "builtin:file"),
                ("type", "destination"),
                ("component_id", &destination_id),
            ],
        )
    };
    // While it runs: the pipeline shows as running and records are being counted.
    let mut during = None;
    wait_until("records counted while running", || {
        let doc = metrics(&address);
        let running = doc.value("conduit_pipelines", &[("status", "running")]) == Some(1.0);
        let moving = written(&doc).is_some_and(|n| n > 0.0 && n < RECORDS as f64);
        if running && moving {
            during = Some(doc);
        }
        during.is_some()
    });
    let during = during.expect("scraped mid-run");
    assert_eq!(
        during.value("conduit_pipeline_status", &[("pipeline_name", "counted")]),
        Some(1.0)
    );
    wait_until("every record written", || lines(&out) >= RECORDS);
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    wait_until("stopped", || {
        metrics(&address).value("conduit_pipelines", &[("status", "userstopped")]) == Some(1.0)
    });

    let after = metrics(&address);
    let file_lines = lines(&out);
    assert_eq!(file_lines, RECORDS);
    assert_eq!(
        written(&after),
        Some(file_lines as f64),
        "written == file lines"
    );
    let read = after.value(
        "conduit_connector_bytes_count",
        &[
            ("pipeline_name", "counted"),
            ("plugin", "builtin:generator"),
            ("type", "source"),
            ("component_id", &source_id),
        ],
    );
    assert_eq!(read, Some(RECORDS as f64), "read == generated");
    let bytes = after
        .value(
            "conduit_connector_bytes_sum",
            &[("type", "destination"), ("component_id", &destination_id)],
        )
        .unwrap();
    assert!(bytes >= RECORDS as f64 * 2.0, "bytes counted: {bytes}");
    assert_eq!(
        after
            .value(
                "conduit_connector_execution_duration_seconds_count",
                &[("type", "destination"), ("component_id", &destination_id)],
            )
            .map(|n| n > 0.0),
        Some(true)
    );
    assert!(
        after
            .value(
                "culvert_positions_saved_total",
                &[("pipeline_name", "counted")]
            )
            .unwrap()
            >= 1.0
    );
    // Every batch was timed from its read to done; a saved position has a time.
    let pipeline_batches = after
        .value(
            "conduit_pipeline_execution_duration_seconds_count",
            &[("pipeline_name", "counted")],
        )
        .unwrap();
    assert!(pipeline_batches >= 1.0, "batches timed: {pipeline_batches}");
    let saved_at = after
        .value(
            "culvert_position_saved_timestamp_seconds",
            &[("pipeline_name", "counted")],
        )
        .unwrap();
    assert!(saved_at > 1.0e9, "a Unix time: {saved_at}");
    assert_eq!(
        after.value("culvert_acks_pending", &[("pipeline_name", "counted")]),
        Some(0.0),
        "a drained stop leaves nothing pending"
    );
    assert_eq!(
        after.value("conduit_pipeline_status", &[("pipeline_name", "counted")]),
        Some(3.0)
    );

    // Deleted, the pipeline and its connectors leave the document: nothing names them.
    for connector in [&source_id, &destination_id] {
        call(
            &address,
            "DELETE",
            &format!("/v1/connectors/{connector}"),
            None,
        );
    }
    call(&address, "DELETE", &format!("/v1/pipelines/{id}"), None);
    let names_the_pipeline = |doc: &Document| {
        doc.samples
            .iter()
            .filter(|s| {
                s.labels.get("pipeline_name").map(String::as_str) == Some("counted")
                    || s.labels
                        .get("component_id")
                        .is_some_and(|c| c == &source_id || c == &destination_id)
            })
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    wait_until("the deleted pipeline's series gone", || {
        names_the_pipeline(&metrics(&address)).is_empty()
    });
    let gone = metrics(&address);
    assert_eq!(names_the_pipeline(&gone), Vec::<String>::new());
    assert_eq!(
        gone.value("conduit_pipelines", &[("status", "userstopped")]),
        Some(0.0)
    );
    drop(server);
}

#[test]
fn metrics_need_the_token_when_auth_is_on() {
    let (dir, data) = data_dir();
    let tokens = dir.path().join("tokens");
    let (code, stdout, stderr) = culvert(&[
        "tokens",
        "create",
        "prometheus",
        "--tokens-file",
        tokens.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_owned();
    let mut server = Server::start(&data, &["--api.auth.tokens-file", tokens.to_str().unwrap()]);
    let address = server.http_address();
    assert_eq!(scrape(&address, None).status, 401);
    assert_eq!(scrape(&address, Some("cvt_wrong")).status, 401);
    let reply = scrape(&address, Some(&token));
    assert_eq!(reply.status, 200, "{}", reply.text());
    parse(&reply.text());
    assert_eq!(
        request(&address, "GET", "/healthz", &[], None).status,
        200,
        "health checks stay open"
    );
}
