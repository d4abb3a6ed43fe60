//! Event-log tools. All but `events tail` open a data directory read-only (a server may be
//! running on it) and answer from the log itself; `events tail [-f]` follows a running
//! server's log over gRPC.
//!
//! * `culvert events ls` lists events, filtered by sequence range, time range, entity,
//!   event type and actor: a table, or with `-o json|yaml` (`--json`) one JSON object a
//!   line or one YAML document per event ([`crate::cli::print_item`]); `events tail` too;
//! * `culvert audit <entity-id>` shows every change of a pipeline, connector or processor
//!   with actor, time and a field-level diff;
//! * `culvert at --seq N | --time T pipelines|connectors|processors describe <id>` shows an
//!   entity as it was then;
//! * `culvert replay --to SEQ --into DIR` writes a new data directory holding the log up to
//!   SEQ, on which a server starts in that state;
//! * `culvert verify` checks the log: gapless sequence, every event decodes, every stream's
//!   versions consecutive, times never going back.
//!
//! No output shows a secret: the settings in event data, in entities and in diffs are
//! redacted ([`culvert_api::redact::Redactor`], with the built-in plugins' specifications
//! and the name and value rules; sealed values are `***` too). No key is needed.
//!
//! Exit codes as Conduit's CLI: 0 ok, 1 a problem found or a runtime error, 2 bad usage (an
//! unknown id, a sequence past the end, a time before the first event), 3 the environment
//! (a data directory that does not exist or is not ours).

use crate::cli::{print_item, print_value, Output, OutputError, OutputFormat};
use crate::progress::Progress;
use chrono::{DateTime, Utc};
use culvert_api::redact::{PluginSpecs, Redactor};
use culvert_domain::{ControlPlane, RecordedEvent, Seq, StreamId};
use culvert_projections::history::entity_json;
use culvert_store::{EventLog, RocksStore, StoreOptions, StoredEvent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// How many events are read at a time.
const CHUNK: usize = 4096;

/// What the tools show of settings: the rules only (no key is needed to hide a secret).
fn redactor() -> Redactor {
    Redactor::rules(std::sync::Arc::new(PluginSpecs::builtin()))
}

/// A request that asks the server for settings in their exported form
/// ([`culvert_api::redact::EXPORT_METADATA`]): sealed values as stored, so that an export
/// re-imported into a server with the same key keeps its secrets, and sensitive values
/// stored in clear sealed (never shown in clear).
pub fn export_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        culvert_api::redact::EXPORT_METADATA,
        tonic::metadata::MetadataValue::from_static("sealed"),
    );
    request
}

/// Settings of pipelines about to be exported, checked on this side too: sealed values
/// kept, a sensitive value in clear (from a server that did not seal it) written as `***`.
pub fn protect_export(pipelines: &mut [culvert_provisioning::config::PipelineConfig]) {
    let redactor = redactor();
    culvert_provisioning::export::protect(pipelines, |plugin, settings| {
        redactor.exported(plugin, settings)
    });
}

/// A stored event's data as shown: upcast to the current schema and redacted with the
/// plugins in `state`; an event that does not decode is shown as stored, its settings
/// redacted wherever they are.
fn shown_data(redactor: &Redactor, event: &StoredEvent, state: &ControlPlane) -> Value {
    match culvert_migrations::decode(event) {
        Ok(mut recorded) => {
            redactor.event(&mut recorded.event, Some(state));
            match serde_json::to_value(&recorded.event) {
                Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
        Err(_) => {
            let raw: Value = serde_json::from_str(event.payload.get()).unwrap_or(Value::Null);
            let mut data = match raw {
                Value::Object(mut map) if map.contains_key("data") => {
                    map.remove("data").unwrap_or(Value::Null)
                }
                other => other,
            };
            redactor.json(&mut data);
            data
        }
    }
}

/// The data directory a tool reads.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// The server's data directory (RocksDB), opened read-only.
    #[arg(
        long = "db.rocksdb.path",
        env = "CULVERT_DB_ROCKSDB_PATH",
        default_value = "./data"
    )]
    pub path: PathBuf,
}

/// `culvert events ...`
#[derive(clap::Subcommand, Debug)]
pub enum EventsCommand {
    /// List events of the log, oldest first.
    ///
    /// Example: culvert events ls --entity my-pipeline --since 2026-11-01T00:00:00Z --json
    Ls(LsArgs),
    /// The last events of a running server's log, and with -f every new one as it is
    /// recorded (over gRPC, EventLogService).
    ///
    /// Example: culvert events tail -f --grpc.address 127.0.0.1:8084
    Tail(TailArgs),
}

/// Options of `events tail`.
#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// Keep following: print new events as they are recorded, until interrupted.
    #[arg(short = 'f', long)]
    follow: bool,
    /// How many of the last events to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    lines: u64,
    /// Only events of this pipeline, connector or processor.
    #[arg(long)]
    entity: Option<String>,
    /// A table, one JSON object per line, or one YAML document per event.
    #[command(flatten)]
    output: Output,
    #[command(flatten)]
    server: crate::client::Server,
}

/// `culvert events tail [-f]`
pub fn events_tail(args: TailArgs) -> Result<(), Failure> {
    use culvert_api::pb::culvert::api::v1 as ev;
    use ev::event_log_service_client::EventLogServiceClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(runtime)?;
    let status = |s: tonic::Status| match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unauthenticated => {
            Failure(3, crate::client::status_message(&s))
        }
        tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::OutOfRange => {
            Failure(2, s.message().to_owned())
        }
        _ => Failure(1, s.message().to_owned()),
    };
    let redactor = redactor();
    let format = args.output.format();
    let print = |e: &ev::Event| -> Result<(), Failure> {
        let at = e
            .recorded_at
            .as_ref()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        if format != OutputFormat::Table {
            // The server redacts; so does this side, whatever server answered.
            let data = e
                .data
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok())
                .map_or(Value::Null, |d| redactor.event_data(&e.r#type, d, None));
            let mut line = json!({"seq": e.seq, "recorded_at": at, "actor": e.actor,
                "stream": e.stream, "stream_version": e.stream_version, "type": e.r#type,
                "data": data});
            if !e.reason.is_empty() {
                line["reason"] = json!(e.reason);
            }
            print_item(format, &line)?;
        } else {
            println!(
                "{:>8}  {:<30}  {:<28}  {:<40}  {}{}",
                e.seq,
                at,
                e.actor,
                e.stream,
                e.r#type,
                reason_suffix((!e.reason.is_empty()).then_some(e.reason.as_str()))
            );
        }
        Ok(())
    };
    runtime.block_on(async {
        let channel = crate::client::connect(&args.server)
            .await
            .map_err(|e| Failure(e.code, e.message))?;
        let mut client = EventLogServiceClient::new(channel);
        let entity = args.entity.clone().unwrap_or_default();
        let last = client
            .list_events(ev::ListEventsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .map_err(status)?
            .into_inner()
            .last_seq;
        let from = last.saturating_sub(args.lines.saturating_sub(1)).max(1);
        let mut token = String::new();
        if args.lines > 0 {
            loop {
                let page = client
                    .list_events(ev::ListEventsRequest {
                        from_seq: from,
                        to_seq: last,
                        entity_id: entity.clone(),
                        page_size: 1000,
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                for e in &page.events {
                    print(e)?;
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        if !args.follow {
            return Ok(());
        }
        let mut stream = client
            .watch_events(ev::WatchEventsRequest {
                from_seq: last + 1,
                entity_id: entity,
                r#type: String::new(),
            })
            .await
            .map_err(status)?
            .into_inner();
        while let Some(message) = stream.message().await.map_err(status)? {
            if let Some(e) = message.event {
                print(&e)?;
            }
        }
        Ok(())
    })
}

/// Filters of `events ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    data: DataDir,
    /// From this sequence number on (inclusive).
    #[arg(long)]
    from: Option<u64>,
    /// Up to this sequence number (inclusive).
    #[arg(long)]
    to: Option<u64>,
    /// Recorded at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Recorded at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only events of this pipeline, connector or processor (its id).
    #[arg(long)]
    entity: Option<String>,
    /// Only events of this type (e.g. PipelineUpdated).
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events by this actor (e.g. `api`, `system`, `provisioning:pipelines/a.yaml`).
    #[arg(long)]
    actor: Option<String>,
    /// At most this many events.
    #[arg(long)]
    limit: Option<usize>,
    /// A table, one JSON object per line, or one YAML document per event.
    #[command(flatten)]
    output: Output,
}

/// A failure with its exit code.
pub struct Failure(pub u8, pub String);

impl From<OutputError> for Failure {
    fn from(error: OutputError) -> Self {
        Failure(1, error.0)
    }
}

/// The reason an actor gave, as printed after an event in a table: `  (reason: "...")`.
fn reason_suffix(reason: Option<&str>) -> String {
    reason.map_or_else(String::new, |r| format!("  (reason: {r:?})"))
}

/// Run a tool and turn its result into an exit code.
pub fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure(2, message.into())
}

fn runtime(error: impl std::fmt::Display) -> Failure {
    Failure(1, error.to_string())
}

/// Open a data directory read-only, refusing what is missing or not ours (exit 3).
pub fn open(data: &DataDir) -> Result<RocksStore, Failure> {
    let path = &data.path;
    if !path.exists() {
        return Err(Failure(
            3,
            format!("data directory {} does not exist", path.display()),
        ));
    }
    if !path.join("CURRENT").exists() {
        return Err(Failure(
            3,
            format!(
                "{} is not a culvert data directory (no RocksDB database in it)",
                path.display()
            ),
        ));
    }
    let options = StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    };
    RocksStore::open(path, options, &culvert_migrations::layout())
        .map_err(|e| Failure(3, format!("opening {}: {e}", path.display())))
}

/// Every event from `from`, in chunks, to `visit` (which may stop early with `false`).
fn scan(
    log: &dyn EventLog,
    from: Seq,
    mut visit: impl FnMut(StoredEvent) -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let mut next = from.0.max(1);
    loop {
        let chunk = log.read_from(Seq(next), CHUNK).map_err(runtime)?;
        let Some(last) = chunk.last().map(|e| e.seq.0) else {
            return Ok(());
        };
        for event in chunk {
            if !visit(event)? {
                return Ok(());
            }
        }
        next = last + 1;
    }
}

fn decode(event: &StoredEvent) -> Result<RecordedEvent, Failure> {
    culvert_migrations::decode(event).map_err(runtime)
}

fn time(text: &str, flag: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| usage(format!("{flag} {text:?} is not an RFC 3339 time: {e}")))
}

/// The entity id of a stream (`pipeline/p1` -> `p1`).
fn entity_of(stream: &StreamId) -> &str {
    stream
        .as_str()
        .split_once('/')
        .map_or(stream.as_str(), |(_, id)| id)
}

/// `culvert events ls`
pub fn events_ls(args: LsArgs) -> Result<(), Failure> {
    let store = open(&args.data)?;
    let head = store.head();
    let since = args
        .since
        .as_deref()
        .map(|t| time(t, "--since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| time(t, "--until"))
        .transpose()?;
    if let Some(from) = args.from.filter(|f| *f > head.0) {
        return Err(usage(format!(
            "--from {from} is past the end of the log (last event {})",
            head.0
        )));
    }
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut shown = 0;
    let redactor = redactor();
    // The state so far (from the first event listed): the plugin of events that do not
    // name theirs.
    let mut state = ControlPlane::new();
    let format = args.output.format();
    let structured = format != OutputFormat::Table;
    if !structured {
        println!(
            "{:>8}  {:<24}  {:<28}  {:<40}  TYPE",
            "SEQ", "RECORDED AT", "ACTOR", "STREAM"
        );
    }
    scan(&store, Seq(args.from.unwrap_or(1)), |event| {
        if args.to.is_some_and(|to| event.seq.0 > to) || shown >= limit {
            return Ok(false);
        }
        let keep = since.is_none_or(|t| event.recorded_at >= t)
            && until.is_none_or(|t| event.recorded_at <= t)
            && args
                .entity
                .as_deref()
                .is_none_or(|id| entity_of(&event.stream) == id)
            && args
                .event_type
                .as_deref()
                .is_none_or(|t| event.event_type == t)
            && args.actor.as_deref().is_none_or(|a| event.actor == a);
        let data = (keep && structured).then(|| shown_data(&redactor, &event, &state));
        if structured {
            if let Ok(recorded) = culvert_migrations::decode(&event) {
                state.evolve(&recorded);
            }
        }
        if !keep {
            return Ok(true);
        }
        shown += 1;
        if let Some(data) = data {
            let mut line = json!({
                "seq": event.seq.0,
                "recorded_at": event.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                "actor": event.actor,
                "stream": event.stream.as_str(),
                "stream_version": event.stream_version,
                "type": event.event_type,
                "correlation_id": event.correlation_id,
                "causation_id": event.causation_id,
                "data": data,
            });
            if let Some(reason) = &event.reason {
                line["reason"] = json!(reason);
            }
            print_item(format, &line)?;
        } else {
            println!(
                "{:>8}  {:<24}  {:<28}  {:<40}  {}{}",
                event.seq.0,
                event
                    .recorded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                event.actor,
                event.stream.as_str(),
                event.event_type,
                reason_suffix(event.reason.as_deref())
            );
        }
        Ok(true)
    })
}

/// `culvert audit <entity-id>`
pub fn audit(data: DataDir, id: String, format: OutputFormat) -> Result<(), Failure> {
    let store = open(&data)?;
    let redactor = redactor();
    let mut state = ControlPlane::new();
    let mut changes = 0;
    scan(&store, Seq(1), |stored| {
        let recorded = decode(&stored)?;
        let touches = entity_of(&stored.stream) == id;
        let before = touches.then(|| entity_json(&state, &id)).flatten();

        state.evolve(&recorded);
        if touches {
            changes += 1;
            let after = entity_json(&state, &id);
            let fields: Vec<String> = redactor
                .field_changes(before.as_ref(), after.as_ref())
                .iter()
                .map(ToString::to_string)
                .collect();
            let at = stored
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let mut line = json!({"seq": stored.seq.0, "recorded_at": at,
                "actor": stored.actor, "type": stored.event_type, "changes": fields});
            if let Some(reason) = &stored.reason {
                line["reason"] = json!(reason);
            }
            if !print_item(format, &line)? {
                println!(
                    "#{} {at} {} {}{}",
                    stored.seq.0,
                    stored.actor,
                    stored.event_type,
                    reason_suffix(stored.reason.as_deref())
                );
                for field in fields {
                    println!("    {field}");
                }
            }
        }
        Ok(true)
    })?;
    if changes == 0 {
        return Err(usage(format!(
            "no pipeline, connector or processor {id:?} in the log"
        )));
    }
    Ok(())
}

/// What `at` shows.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Noun {
    /// A pipeline, with its connectors and processors.
    Pipelines,
    /// A connector.
    Connectors,
    /// A processor.
    Processors,
}

/// `culvert at --seq N | --time T <noun> describe <id>`
pub fn at(
    data: DataDir,
    seq: Option<u64>,
    at_time: Option<String>,
    (noun, verb, id): (Noun, String, String),
    format: OutputFormat,
) -> Result<(), Failure> {
    if verb != "describe" {
        return Err(usage(format!("unknown verb {verb:?}: want describe")));
    }
    let store = open(&data)?;
    let head = store.head();
    let limit = match (seq, at_time) {
        (Some(_), Some(_)) => return Err(usage("give --seq or --time, not both")),
        (None, None) => return Err(usage("give --seq N or --time T")),
        (Some(n), None) => {
            if n > head.0 {
                return Err(usage(format!(
                    "sequence {n} is past the end of the log (last event {})",
                    head.0
                )));
            }
            Limit::Seq(n)
        }
        (None, Some(t)) => {
            let t = time(&t, "--time")?;
            let first = store.read_from(Seq(1), 1).map_err(runtime)?;
            match first.first() {
                Some(e) if e.recorded_at > t => {
                    return Err(usage(format!(
                        "--time {} is before the first event ({})",
                        t.to_rfc3339(),
                        e.recorded_at.to_rfc3339()
                    )))
                }
                None => return Err(usage("the log is empty")),
                _ => Limit::Time(t),
            }
        }
    };
    let state = match limit {
        Limit::Seq(n) => culvert_projections::fold_to(&store, Seq(n)),
        Limit::Time(t) => culvert_projections::fold_to_time(&store, t),
    }
    .map_err(runtime)?;
    let as_of = state.last_seq().0;
    let redactor = redactor();
    let described = match noun {
        Noun::Pipelines => {
            let p = state
                .pipeline(&culvert_domain::PipelineId(id.clone()))
                .ok_or_else(|| usage(format!("no pipeline {id:?} as of sequence {as_of}")))?;
            let connectors: Vec<Value> = p
                .connector_ids
                .iter()
                .filter_map(|c| state.connector(c))
                .map(|c| serde_json::to_value(redactor.connector(c)).unwrap_or(Value::Null))
                .collect();
            let mut processors: Vec<Value> = p
                .processor_ids
                .iter()
                .filter_map(|q| state.processor(q))
                .map(|q| serde_json::to_value(redactor.processor(q)).unwrap_or(Value::Null))
                .collect();
            for c in p.connector_ids.iter().filter_map(|c| state.connector(c)) {
                processors.extend(
                    c.processor_ids
                        .iter()
                        .filter_map(|q| state.processor(q))
                        .map(|q| {
                            serde_json::to_value(redactor.processor(q)).unwrap_or(Value::Null)
                        }),
                );
            }
            json!({"as_of_seq": as_of, "pipeline": redactor.pipeline(p), "connectors": connectors,
                   "processors": processors})
        }
        Noun::Connectors => {
            let c = state
                .connector(&culvert_domain::ConnectorId(id.clone()))
                .ok_or_else(|| usage(format!("no connector {id:?} as of sequence {as_of}")))?;
            json!({"as_of_seq": as_of, "connector": redactor.connector(c)})
        }
        Noun::Processors => {
            let p = state
                .processor(&culvert_domain::ProcessorId(id.clone()))
                .ok_or_else(|| usage(format!("no processor {id:?} as of sequence {as_of}")))?;
            json!({"as_of_seq": as_of, "processor": redactor.processor(p)})
        }
    };
    // JSON unless YAML is asked for: the document has no table form.
    let format = match format {
        OutputFormat::Table => OutputFormat::Json,
        other => other,
    };
    print_value(format, &described)?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Limit {
    Seq(u64),
    Time(DateTime<Utc>),
}

/// `culvert replay --to SEQ --into DIR`
pub fn replay(data: DataDir, to: u64, into: PathBuf) -> Result<(), Failure> {
    let store = open(&data)?;
    let head = store.head();
    if to == 0 || to > head.0 {
        return Err(usage(format!(
            "--to {to}: want a sequence number from 1 to {} (the last event)",
            head.0
        )));
    }
    if into.exists()
        && std::fs::read_dir(&into)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(usage(format!(
            "--into {}: the directory exists and is not empty",
            into.display()
        )));
    }
    let target = RocksStore::open(
        &into,
        StoreOptions::default(),
        &culvert_migrations::layout(),
    )
    .map_err(|e| Failure(3, format!("creating {}: {e}", into.display())))?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut copied = 0u64;
    let mut progress = Progress::new("replay", "events", to);
    scan(&store, Seq(1), |event| {
        if event.seq.0 > to {
            return Ok(false);
        }
        chunk.push(event);
        if chunk.len() == CHUNK {
            target.import(&chunk).map_err(runtime)?;
            copied += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
            chunk.clear();
        }
        Ok(true)
    })?;
    target.import(&chunk).map_err(runtime)?;
    copied += chunk.len() as u64;
    progress.advance(chunk.len() as u64);
    progress.finish();
    println!(
        "replayed {copied} events (1..={to}) into {}; start a server on it with \
         --db.rocksdb.path {}",
        into.display(),
        into.display()
    );
    Ok(())
}

/// `culvert verify`
pub fn verify(data: DataDir) -> Result<(), Failure> {
    let store = open(&data)?;
    let head = store.head();
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut expected = 1u64;
    let mut last_time: Option<DateTime<Utc>> = None;
    let problem = |seq: u64, what: String| Failure(1, format!("event {seq}: {what}"));
    let mut progress = Progress::new("verify", "events", head.0);
    while expected <= head.0 {
        let chunk = match store.read_from(Seq(expected), CHUNK) {
            Ok(chunk) => chunk,
            Err(_) => {
                // Find the first event that does not read.
                for seq in expected..expected + CHUNK as u64 {
                    if let Err(e) = store.read_from(Seq(seq), 1) {
                        return Err(problem(seq, format!("cannot be read: {e}")));
                    }
                }
                return Err(problem(expected, "a chunk from here cannot be read".into()));
            }
        };
        if chunk.is_empty() {
            return Err(problem(expected, "missing (the log ends early)".into()));
        }
        for event in &chunk {
            let seq = event.seq.0;
            if seq != expected {
                return Err(problem(
                    expected,
                    format!("missing: the next event is {seq}"),
                ));
            }
            if let Err(e) = culvert_migrations::decode(event) {
                return Err(problem(seq, format!("does not decode: {e}")));
            }
            let version = versions.entry(event.stream.clone()).or_insert(0);
            if event.stream_version != *version + 1 {
                return Err(problem(
                    seq,
                    format!(
                        "stream {} jumps from version {} to {}",
                        event.stream, version, event.stream_version
                    ),
                ));
            }
            *version = event.stream_version;
            if last_time.is_some_and(|t| event.recorded_at < t) {
                return Err(problem(seq, "recorded before the event it follows".into()));
            }
            last_time = Some(event.recorded_at);
            expected += 1;
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    println!(
        "ok: {} events, {} streams, sequence gapless, every event decodes, stream versions consecutive",
        head.0,
        versions.len()
    );
    Ok(())
}
