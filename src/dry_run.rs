//! `culvert pipelines dry-run PATH`: what a pipeline file's destinations would receive,
//! offline (no server).
//!
//! The file (or directory) is first checked exactly as `pipelines validate` checks it; a
//! file with errors exits 2 with validate's messages. It is then provisioned by the
//! server's own provisioning code into a throw-away in-memory control plane, with the
//! built-in plugins and the standalone ones of the server's plugin directories
//! (`--connectors.path`, `--processors.path`, resolved as `culvert run` resolves them).
//! Each pipeline then runs in-process on the engine, its sources and processors as
//! configured, but **its destinations replaced by capturing sinks**: no destination (nor
//! the dead-letter queue) is opened or written. The run stops once `--records` records
//! from the pipeline's sources went all the way through (a record a processor filters out
//! counts), or at `--timeout`, whichever comes first; the records each destination would
//! have received, after every processor, are then printed as OpenCDC JSON lines (or one
//! JSON array with `--output json`).
//!
//! Sources are never acknowledged, so a source that commits what it read on ack (a Kafka
//! consumer group, a Postgres replication slot) does not move on; positions are kept in
//! memory only. A source still opens as it would in a server (a Postgres source may create
//! its slot and publication).
//!
//! Exit codes: 0 ok (a timeout included: what was captured is printed and the timeout
//! said on stderr); 1 a pipeline failed while running (its error on stderr, after what it
//! captured); 2 a file with errors, or no pipeline to run.

use crate::validate::{Finding, Output as ValidateOutput, ValidateArgs};
use culvert_domain::{ConnectorType, PipelineId, Position, ProcessorId, Record};
use culvert_engine::{DeadLetterNode, DestinationNode, Graph, ProcessorNode, SourceNode};
use culvert_plugins::{Destination, PluginError, Prepare, Side, Source};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How the captured records are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One OpenCDC record (JSON) per line, destination after destination.
    Jsonl,
    /// One JSON array of `{pipeline, destination, plugin, records, deadLetters,
    /// timedOut}`, one object per destination.
    Json,
}

/// `culvert pipelines dry-run`'s arguments.
#[derive(clap::Args, Debug)]
pub struct DryRunArgs {
    /// A pipeline configuration file, or a directory of them (`*.yml`, `*.yaml`).
    pub path: PathBuf,
    /// Stop once this many records from a pipeline's sources went through it.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,
    /// Stop at the latest after this long (a source waiting for new data), printing what
    /// was captured.
    #[arg(long, default_value = "10s", value_parser = crate::duration)]
    pub timeout: Duration,
    /// `jsonl` (default: OpenCDC JSON lines) or `json` (one array, per destination).
    #[arg(long, value_enum, default_value_t = Output::Jsonl)]
    pub output: Output,
    /// Only this pipeline (by id) of the file(s).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// The server's config file (default ./culvert.yaml), read for `connectors.path` and
    /// `processors.path`.
    #[arg(long = "config.path", env = "CULVERT_CONFIG_PATH")]
    pub config_path: Option<PathBuf>,
    /// Standalone connector plugins to load (default: the server's, ./connectors).
    #[arg(long = "connectors.path", env = "CULVERT_CONNECTORS_PATH")]
    pub connectors_path: Option<PathBuf>,
    /// Standalone WASM processors to load (default: the server's, ./processors).
    #[arg(long = "processors.path", env = "CULVERT_PROCESSORS_PATH")]
    pub processors_path: Option<PathBuf>,
}

/// How long a pipeline may take to stop once told to, before it is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Run `pipelines dry-run`.
pub fn run(args: DryRunArgs) -> ExitCode {
    match dry_run(args) {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// The exit code, or a failure with its code and message.
fn dry_run(args: DryRunArgs) -> Result<u8, (u8, String)> {
    // The file as `pipelines validate` sees it: its errors, with its messages, stop here.
    let findings = crate::validate::findings(std::slice::from_ref(&args.path))?;
    if findings.iter().any(|f| f.severity == "error") {
        let validate = ValidateArgs {
            paths: vec![args.path.clone()],
            output: match args.output {
                Output::Json => ValidateOutput::Json,
                Output::Jsonl => ValidateOutput::Text,
            },
            quiet: true,
        };
        crate::validate::validate(&validate)?;
        return Err((2, "the pipeline configuration has errors".to_owned()));
    }
    for finding in &findings {
        eprintln!("{}", line(finding));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| (1, format!("starting the async runtime: {e}")))?;
    let outcome = runtime.block_on(run_pipelines(&args));
    // A plugin that does not stop must not keep the process alive.
    runtime.shutdown_timeout(STOP_GRACE);
    let runs = outcome?;
    print(&runs, args.output);
    let mut code = 0;
    for run in &runs {
        let captured: usize = run.destinations.iter().map(|d| d.records.len()).sum();
        for destination in &run.destinations {
            eprintln!(
                "pipeline {}: destination {} ({}) would receive {} record(s) (dry run: not written)",
                run.pipeline,
                destination.id,
                destination.plugin,
                destination.records.len()
            );
        }
        if run.dead_letters > 0 {
            eprintln!(
                "pipeline {}: {} record(s) would go to the dead-letter queue",
                run.pipeline, run.dead_letters
            );
        }
        match &run.end {
            End::Done => {}
            End::TimedOut => eprintln!(
                "pipeline {}: timed out after {:?} with {} of {} record(s) from its sources \
                 through ({captured} captured); printed what was captured",
                run.pipeline, args.timeout, run.through, args.records
            ),
            End::Failed(error) => {
                eprintln!("error: pipeline {}: {error}", run.pipeline);
                code = 1;
            }
        }
    }
    Ok(code)
}

/// A finding as `pipelines validate` prints it.
fn line(finding: &Finding) -> String {
    let field = if finding.field.is_empty() {
        String::new()
    } else {
        format!("{}: ", finding.field)
    };
    format!(
        "{}:{}:{}: {}: {field}{}",
        finding.file, finding.line, finding.column, finding.severity, finding.message
    )
}

/// How a pipeline's run ended.
enum End {
    /// Its records went through.
    Done,
    /// The timeout came first.
    TimedOut,
    /// It failed (or did not stop in time).
    Failed(String),
}

/// One pipeline's dry run.
struct Run {
    pipeline: String,
    destinations: Vec<Captured>,
    dead_letters: usize,
    /// Records from its sources that went all the way through.
    through: u64,
    end: End,
}

/// What one destination would have received.
struct Captured {
    id: String,
    plugin: String,
    records: Vec<Record>,
}

/// Provision the file into an in-memory control plane and run its pipelines.
async fn run_pipelines(args: &DryRunArgs) -> Result<Vec<Run>, (u8, String)> {
    use culvert_projections::{ProjectionOptions, Projections};
    let log: Arc<dyn culvert_store::EventLog> = Arc::new(culvert_store::MemoryStore::new());
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default())
        .map_err(|e| (1, format!("opening an in-memory control plane: {e}")))?;
    let writer = culvert_commands::ControlPlaneWriter::new(log, Arc::new(projections));
    let schemas: Arc<dyn culvert_plugins::schema::SchemaRegistry> = Arc::new(
        crate::schemas::LogRegistry(culvert_commands::SchemaOrchestrator::new(writer.clone())),
    );
    culvert_hosts::connutils::install_registry(schemas.clone());
    let dirs = crate::plugin_install::PluginDirs {
        path: None,
        config_path: args.config_path.clone(),
        connectors_path: args.connectors_path.clone(),
        processors_path: args.processors_path.clone(),
    };
    let dir = |kind| dirs.dir(kind).map_err(|f| (f.0, f.1));
    let mut connectors = culvert_connectors::registry_with_schemas(schemas.clone());
    let (standalone, _skipped) = Box::pin(culvert_hosts::standalone::discover(&dir(
        crate::plugin_install::Kind::Connector,
    )?))
    .await;
    for plugin in standalone {
        connectors.add_standalone(Arc::new(plugin));
    }
    let mut processors = culvert_processors::registry_with_schemas(schemas);
    let (wasm, _skipped) = Box::pin(culvert_hosts::wasm::discover(
        &dir(crate::plugin_install::Kind::Processor)?,
        culvert_hosts::wasm::Limits::default(),
        culvert_hosts::egress::Policy::deny_all(),
    ))
    .await;
    for plugin in wasm {
        processors.add_standalone(Arc::new(plugin));
    }
    let connectors = Arc::new(connectors);
    let processors = Arc::new(processors);
    let provisioner = culvert_provisioning::Provisioner::new(
        writer.clone(),
        connectors.clone(),
        processors.clone(),
    );
    let report = provisioner
        .provision(&args.path, &|name| std::env::var(name).ok())
        .map_err(|e| (2, e.to_string()))?;
    let errors: Vec<String> = report
        .errors()
        .map(|p| {
            line(&Finding {
                file: p.file.clone(),
                line: p.at.line,
                column: p.at.column,
                severity: "error",
                field: p.path.clone(),
                message: p.message.clone(),
                suggestion: None,
            })
        })
        .collect();
    if !errors.is_empty() {
        for error in &errors {
            println!("{error}");
        }
        return Err((
            2,
            format!("{} error(s) provisioning the pipelines", errors.len()),
        ));
    }
    // Every pipeline's graph, with capturing destinations.
    let mut prepared = Vec::new();
    {
        let state = writer.projections().read();
        let mut ids: Vec<&PipelineId> = state.pipelines().map(|p| &p.id).collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        if let Some(wanted) = &args.pipeline {
            if !ids.iter().any(|id| id.as_str() == wanted) {
                let all: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
                return Err((
                    2,
                    format!(
                        "no pipeline {wanted:?} in {}; it has: {}",
                        args.path.display(),
                        all.join(", ")
                    ),
                ));
            }
            ids.retain(|id| id.as_str() == wanted);
        }
        if ids.is_empty() {
            return Err((
                2,
                format!("{} holds no pipeline to run", args.path.display()),
            ));
        }
        for id in ids {
            prepared.push(graph(&state, id, &connectors, &processors, args.records)?);
        }
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, pipeline) in prepared.into_iter().enumerate() {
        tasks.spawn(async move { (index, pipeline.run(deadline).await) });
    }
    let mut runs: Vec<(usize, Run)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let run = joined.map_err(|e| (1, format!("a dry run failed: {e}")))?;
        runs.push(run);
    }
    runs.sort_by_key(|(index, _)| *index);
    Ok(runs.into_iter().map(|(_, run)| run).collect())
}

/// A pipeline ready to run: its graph and where its records are captured.
struct Prepared {
    id: String,
    graph: Graph,
    tracker: Arc<Tracker>,
    done: watch::Receiver<bool>,
    /// Each destination's id, plugin and captured records.
    destinations: Vec<(String, String, Records)>,
    dead_letters: Records,
}

/// Records a capturing sink keeps.
type Records = Arc<Mutex<Vec<Record>>>;

/// The pipeline's sources (each counting what it lets through) and processors as
/// configured, its destinations and DLQ capturing sinks.
fn graph(
    state: &culvert_domain::ControlPlane,
    id: &PipelineId,
    connectors: &culvert_plugins::Registry,
    processors: &culvert_processors::ProcessorRegistry,
    limit: u64,
) -> Result<Prepared, (u8, String)> {
    let failed = |what: String| (2, format!("pipeline {id}: {what}"));
    let pipeline = state
        .pipeline(id)
        .ok_or_else(|| failed("not found after provisioning".to_owned()))?;
    let nodes = |ids: &[ProcessorId]| -> Result<Vec<ProcessorNode>, (u8, String)> {
        ids.iter()
            .map(|processor_id| {
                let processor = state
                    .processor(processor_id)
                    .ok_or_else(|| failed(format!("processor {processor_id} not found")))?;
                let mut instance = processors
                    .configure(&processor.plugin, &processor.settings, &processor.condition)
                    .map_err(|e| failed(format!("processor {processor_id}: {e}")))?;
                instance.identify(processor_id.as_str());
                Ok(ProcessorNode {
                    id: processor_id.to_string(),
                    processor: instance,
                    inline: processors.is_builtin(&processor.plugin),
                })
            })
            .collect()
    };
    let (done_tx, done) = watch::channel(false);
    let tracker = Arc::new(Tracker {
        limit,
        taken: AtomicU64::new(0),
        through: AtomicU64::new(0),
        done: done_tx,
    });
    let dead_letters = Arc::new(Mutex::new(Vec::new()));
    let mut graph = Graph {
        sources: Vec::new(),
        processors: nodes(&pipeline.processor_ids)?,
        destinations: Vec::new(),
        dlq: Some(DeadLetterNode {
            destination: Box::new(Capture(dead_letters.clone())),
            window_size: pipeline.dlq.window_size,
            window_nack_threshold: pipeline.dlq.window_nack_threshold,
            letters: None,
        }),
    };
    let records_processed = state.runs_processors(pipeline);
    let mut destinations = Vec::new();
    for connector_id in &pipeline.connector_ids {
        let connector = state
            .connector(connector_id)
            .ok_or_else(|| failed(format!("connector {connector_id} not found")))?;
        let connector_processors = nodes(&connector.processor_ids)?;
        match connector.connector_type {
            ConnectorType::Source => {
                let context =
                    |e: &dyn std::fmt::Display| failed(format!("connector {connector_id}: {e}"));
                let settings = connectors
                    .validate(&connector.plugin, Side::Source, &connector.settings)
                    .map_err(|e| context(&e))?;
                let mut source = connectors
                    .lookup(&connector.plugin)
                    .map_err(|e| context(&e))?
                    .new_source(&settings)
                    .map_err(|e| context(&e))?;
                // No lifecycle event: a dry run is not the connector's first run.
                source.prepare(Prepare {
                    connector_id: connector_id.to_string(),
                    lifecycle: None,
                    records_processed,
                });
                graph.sources.push(SourceNode {
                    id: connector_id.to_string(),
                    source: Box::new(Counted {
                        inner: source,
                        tracker: tracker.clone(),
                        passed: VecDeque::new(),
                    }),
                    processors: connector_processors,
                });
            }
            ConnectorType::Destination => {
                let records = Arc::new(Mutex::new(Vec::new()));
                destinations.push((
                    connector_id.to_string(),
                    connector.plugin.clone(),
                    records.clone(),
                ));
                graph.destinations.push(DestinationNode {
                    id: connector_id.to_string(),
                    destination: Box::new(Capture(records)),
                    processors: connector_processors,
                });
            }
        }
    }
    Ok(Prepared {
        id: id.to_string(),
        graph,
        tracker,
        done,
        destinations,
        dead_letters,
    })
}

impl Prepared {
    /// Run until `limit` records went through, the deadline, or a failure.
    async fn run(self, deadline: tokio::time::Instant) -> Run {
        let Prepared {
            id,
            graph,
            tracker,
            mut done,
            destinations,
            dead_letters,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let options = culvert_engine::Options {
            batch_size: usize::try_from(tracker.limit)
                .unwrap_or(usize::MAX)
                .min(512),
            ..culvert_engine::Options::default()
        };
        let mut engine = Box::pin(culvert_engine::run(
            graph,
            Arc::new(Memory::default()),
            options,
            stop_rx,
            None,
        ));
        // Each branch only waits: dropping the losers loses nothing (the engine's future
        // is kept pinned and polled to its end below).
        let (mut end, finished) = tokio::select! {
            result = &mut engine => (None, Some(result)),
            _ = done.wait_for(|d| *d) => (Some(End::Done), None),
            _ = tokio::time::sleep_until(deadline) => (Some(End::TimedOut), None),
        };
        let result = match finished {
            Some(result) => Some(result),
            None => {
                let _ = stop_tx.send(true);
                tokio::time::timeout(STOP_GRACE, &mut engine).await.ok()
            }
        };
        match result {
            Some(Ok(())) => {}
            Some(Err(error)) => end = Some(End::Failed(error.to_string())),
            None => {
                end = Some(End::Failed(format!(
                    "it did not stop within {STOP_GRACE:?} of being told to; printed what was \
                     captured"
                )))
            }
        }
        let take = |records: &Arc<Mutex<Vec<Record>>>| {
            std::mem::take(&mut *records.lock().expect("capture lock"))
        };
        Run {
            pipeline: id,
            destinations: destinations
                .iter()
                .map(|(id, plugin, records)| Captured {
                    id: id.clone(),
                    plugin: plugin.clone(),
                    records: take(records),
                })
                .collect(),
            dead_letters: take(&dead_letters).len(),
            through: tracker.through.load(Ordering::SeqCst),
            // The engine ended by itself without an error (every source ran dry).
            end: end.unwrap_or(End::Done),
        }
    }
}

/// How many records a pipeline's sources may still let through, and how many went all
/// the way through (acked: written by every destination, or filtered out, or
/// dead-lettered).
struct Tracker {
    limit: u64,
    taken: AtomicU64,
    through: AtomicU64,
    done: watch::Sender<bool>,
}

impl Tracker {
    fn left(&self) -> u64 {
        self.limit.saturating_sub(self.taken.load(Ordering::SeqCst))
    }

    /// Take up to `wanted` of what is left; how many were granted.
    fn take(&self, wanted: u64) -> u64 {
        let mut granted = 0;
        let _ = self
            .taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                granted = wanted.min(self.limit.saturating_sub(taken));
                Some(taken + granted)
            });
        granted
    }

    fn went_through(&self, count: u64) {
        let through = self.through.fetch_add(count, Ordering::SeqCst) + count;
        if through >= self.limit {
            let _ = self.done.send(true);
        }
    }
}

/// A source that lets through only what its pipeline's [`Tracker`] grants, and counts
/// what is acked. Acks are not passed on: a dry run must not commit anything a source
/// read.
struct Counted {
    inner: Box<dyn Source>,
    tracker: Arc<Tracker>,
    /// Positions let through and not yet acked, in order.
    passed: VecDeque<Position>,
}

#[async_trait::async_trait]
impl Source for Counted {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        self.inner.open(position).await
    }

    /// Cancel-safe as the inner read is: nothing is awaited after it returns.
    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        let left = self.tracker.left();
        if left == 0 {
            // Enough read: idle (briefly, so the engine keeps delivering acks).
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(Vec::new());
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(max);
        let mut records = self.inner.read(want).await?;
        let granted = self.tracker.take(records.len() as u64);
        records.truncate(usize::try_from(granted).unwrap_or(usize::MAX));
        self.passed
            .extend(records.iter().map(|record| record.position.clone()));
        Ok(records)
    }

    async fn ack(&mut self, position: Position) -> Result<(), PluginError> {
        // Cumulative: everything up to the newest record at this position.
        if let Some(index) = self.passed.iter().rposition(|p| *p == position) {
            self.passed.drain(..=index);
            self.tracker.went_through(index as u64 + 1);
        }
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }

    fn prepare(&mut self, context: Prepare) {
        self.inner.prepare(context);
    }
}

/// A destination that keeps what it is sent (in place of the pipeline's real one).
struct Capture(Arc<Mutex<Vec<Record>>>);

#[async_trait::async_trait]
impl Destination for Capture {
    async fn open(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        self.0
            .lock()
            .expect("capture lock")
            .extend_from_slice(records);
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Positions kept in memory for the run only: every source starts from its beginning.
#[derive(Default)]
struct Memory(Mutex<HashMap<String, Position>>);

impl culvert_engine::Positions for Memory {
    fn load(&self, connector: &str) -> Result<Option<Position>, String> {
        Ok(self
            .0
            .lock()
            .expect("positions lock")
            .get(connector)
            .cloned())
    }

    fn save(&self, connector: &str, position: &Position) -> Result<(), String> {
        self.0
            .lock()
            .expect("positions lock")
            .insert(connector.to_owned(), position.clone());
        Ok(())
    }
}

/// Print what every destination would have received.
fn print(runs: &[Run], output: Output) {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match output {
        Output::Jsonl => {
            for run in runs {
                for destination in &run.destinations {
                    for record in &destination.records {
                        let _ = out.write_all(&record.to_json());
                        let _ = out.write_all(b"\n");
                    }
                }
            }
        }
        Output::Json => {
            let all: Vec<serde_json::Value> = runs
                .iter()
                .flat_map(|run| {
                    run.destinations.iter().map(move |d| {
                        serde_json::json!({
                            "pipeline": run.pipeline,
                            "destination": d.id,
                            "plugin": d.plugin,
                            "records": d.records,
                            "deadLetters": run.dead_letters,
                            "timedOut": matches!(run.end, End::TimedOut),
                        })
                    })
                })
                .collect();
            let text = serde_json::to_string_pretty(&all).expect("records serialise");
            let _ = writeln!(out, "{text}");
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_grants_no_more_than_the_limit_and_says_when_done() {
        let (done, mut seen) = watch::channel(false);
        let tracker = Tracker {
            limit: 5,
            taken: AtomicU64::new(0),
            through: AtomicU64::new(0),
            done,
        };
        assert_eq!(tracker.take(3), 3);
        assert_eq!(tracker.take(3), 2);
        assert_eq!(tracker.take(3), 0);
        assert_eq!(tracker.left(), 0);
        tracker.went_through(4);
        assert!(!*seen.borrow_and_update());
        tracker.went_through(1);
        assert!(*seen.borrow_and_update());
    }

    /// The wrapper passes on the inner source's records in order and loses none when the
    /// engine drops a read half-way (the harness drops reads at random await points).
    #[tokio::test]
    async fn a_counted_source_is_cancel_safe() {
        use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
        let count = 5_000u64;
        let expected: Vec<Vec<u8>> = (1..=count).map(|n| n.to_string().into_bytes()).collect();
        let registry = culvert_connectors::registry();
        let settings: culvert_plugins::Settings = [
            ("recordCount", count.to_string()),
            ("rate", "100000".to_owned()),
            ("format.type", "raw".to_owned()),
            ("format.options.id", "int".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let make = || -> Box<dyn Source> {
            let inner = registry
                .lookup("builtin:generator")
                .unwrap()
                .new_source(&settings)
                .unwrap();
            Box::new(Counted {
                inner,
                tracker: Arc::new(Tracker {
                    limit: count,
                    taken: AtomicU64::new(0),
                    through: AtomicU64::new(0),
                    done: watch::channel(false).0,
                }),
                passed: VecDeque::new(),
            })
        };
        let report = check_cancel_safety(
            make,
            &expected,
            |r| r.position.0.clone(),
            &CancelSafety::default(),
        )
        .await
        .unwrap_or_else(|violation| panic!("{violation}"));
        assert!(report.cancelled > 0, "no read was dropped: {report:?}");
    }
}
