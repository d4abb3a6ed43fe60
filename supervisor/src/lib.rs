//! The pipeline supervisor: the engine's subscriber, which runs the pipelines the control
//! plane says should run.
//!
//! It is level-triggered: at start and after every event the read model folds it compares each
//! pipeline's recorded status with the engines it runs, and acts:
//!
//! * `Starting` (a start was requested) and no engine: build the pipeline's connectors and
//!   processors from their plugins and start an engine, then report the pipeline started;
//! * at server start, `Running` or `Recovering` (it ran when the server stopped): start it
//!   again, resuming from the persisted positions;
//! * `Stopping` (a stop was requested): tell the engine to drain (or, forced, cancel it);
//!   when it is done report the pipeline stopped;
//! * an engine that fails after it started is restarted after a delay that grows with each
//!   attempt (reported as recovering), as Conduit's `pipelines.error-recovery.*` settings
//!   say; once no retries are left, or when it fails before it started, the pipeline is
//!   reported degraded with the error.
//!
//! Reports are commands with actor `system`, so they are events like any other, recorded in
//! order by one thread that tries again while a failure may pass; a report that cannot be
//! recorded at all is surfaced as the pipeline's status (degraded, saying what could not be
//! recorded) rather than leaving it `Stopping`. On server shutdown every engine drains, and
//! nothing is reported: the pipelines are still meant to run, and start again with the
//! server.
//!
//! A deleted connector's positions go with its deletion events, in one atomic write (the
//! control-plane writer does it); the supervisor then tells the connector's plugin, with the
//! settings the connector last ran with, which it keeps in memory for that.
//!
//! The state machine is unit-tested here (`tests`) with in-memory stores and scripted
//! plugins, without a server process.

use culvert_commands::{Context, ControlPlaneWriter, PipelineOrchestrator};
use culvert_domain::dead_letter::DeadLetter;
use culvert_domain::ProcessorId;
use culvert_domain::{ConnectorType, PipelineId, PipelineStatus, Position, StoppedReason};
use culvert_engine::{
    DeadLetterNode, DestinationNode, Graph, Options, PipelineMetrics, Positions, ProcessorNode,
    SourceNode,
};
use culvert_plugins::{ErrorKind, Lifecycle, Prepare, Registry, Settings, Side};
use culvert_processors::{Parallel, ProcessorRegistry};
use culvert_store::{DeadLetterStore, LetterLimits, PositionStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use culvert_store::{checkpoints, POSITION_SLOT};

/// The slot under which the settings a connector last started with are kept (JSON), to
/// tell its plugin of changes (Conduit's lifecycle events and `LastActiveConfig`).
const LAST_ACTIVE_SLOT: &str = "last-active-settings";

/// The store's position store, as the engine sees it.
/// Also keeps sampled checkpoints of each source's position (see
/// `culvert_store::checkpoints`): the first save of a source after the server starts, then
/// at most one every `CHECKPOINT_EVERY`.
struct StorePositions {
    store: Arc<dyn PositionStore>,
    /// When each source's last checkpoint was taken.
    checkpointed: Mutex<HashMap<String, std::time::Instant>>,
}

impl StorePositions {
    fn new(store: Arc<dyn PositionStore>) -> Self {
        Self {
            store,
            checkpointed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `connector`'s position is due for a checkpoint (and, if so, noted as taken).
    fn checkpoint_due(&self, connector: &str) -> bool {
        let mut taken = self.checkpointed.lock().expect("checkpoint lock");
        let now = std::time::Instant::now();
        match taken.get(connector) {
            Some(last) if now.duration_since(*last) < checkpoints::CHECKPOINT_EVERY => false,
            _ => {
                // An entry older than the interval means the same as none: drop those, so
                // sources deleted long ago do not stay in the map for the server's life.
                taken.retain(|_, last| now.duration_since(*last) < checkpoints::CHECKPOINT_EVERY);
                taken.insert(connector.to_owned(), now);
                true
            }
        }
    }
}

impl Positions for StorePositions {
    fn load(&self, connector: &str) -> Result<Option<Position>, String> {
        self.store
            .get(connector, POSITION_SLOT)
            .map(|v| v.map(Position))
            .map_err(|e| e.to_string())
    }

    fn save(&self, connector: &str, position: &Position) -> Result<(), String> {
        self.store
            .put(connector, POSITION_SLOT, &position.0)
            .map_err(|e| e.to_string())?;
        if self.checkpoint_due(connector) {
            let checkpoint = checkpoints::Checkpoint {
                at: chrono::Utc::now(),
                position: position.clone(),
            };
            // A lost checkpoint costs only a seek target; the position itself is saved.
            if let Err(error) = checkpoints::record(self.store.as_ref(), connector, checkpoint) {
                tracing::warn!(connector, %error, "could not keep a position checkpoint");
            }
        }
        Ok(())
    }
}

/// One pipeline's dead letters in the store's dead-letter column family, as the engine
/// sees them.
struct StoreLetters {
    store: Arc<dyn DeadLetterStore>,
    pipeline: String,
    limits: LetterLimits,
    /// Letters dropped for the limits since the last warning, and when that was: a full
    /// store drops one letter per new one, so the warning says it once a minute at most.
    dropped: Mutex<(u64, Option<std::time::Instant>)>,
}

/// How often, at most, the "dead letters dropped" warning is logged per pipeline.
const DROPPED_LETTERS_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl culvert_engine::dlq::LetterBox for StoreLetters {
    fn keep_all(&self, letters: &[DeadLetter]) -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = letters.iter().map(DeadLetter::encode).collect();
        let kept = self
            .store
            .keep_letters(&self.pipeline, chrono::Utc::now(), &payloads, &self.limits)
            .map_err(|e| e.to_string())?;
        if kept.dropped > 0 {
            let mut dropped = self.dropped.lock().expect("lock");
            dropped.0 += kept.dropped;
            if dropped
                .1
                .is_none_or(|at| at.elapsed() >= DROPPED_LETTERS_WARNING_EVERY)
            {
                tracing::warn!(
                    pipeline = %self.pipeline,
                    dropped = dropped.0,
                    max_letters = self.limits.max_letters,
                    max_age_seconds = self.limits.max_age.as_secs(),
                    "the oldest dead letters were dropped to stay within the limits \
                     (--dlq.store.max-letters, --dlq.store.max-age); said at most once a minute"
                );
                *dropped = (0, Some(std::time::Instant::now()));
            }
        }
        Ok(())
    }

    fn queued(&self, after: u64, limit: usize) -> Result<Vec<(u64, DeadLetter)>, String> {
        let queued = self
            .store
            .queued_letters(&self.pipeline, after, limit)
            .map_err(|e| e.to_string())?;
        queued
            .into_iter()
            .map(|stored| {
                DeadLetter::decode(&stored.payload)
                    .map(|letter| (stored.seq, letter))
                    .map_err(|e| format!("dead letter {} does not decode: {e}", stored.seq))
            })
            .collect()
    }

    fn delivered(&self, through: u64) -> Result<(), String> {
        let gone = self
            .store
            .letters_delivered(&self.pipeline, through)
            .map_err(|e| e.to_string())?;
        tracing::info!(pipeline = %self.pipeline, through, delivered = gone, "re-injected dead letters delivered");
        Ok(())
    }
}

struct Engine {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Whether a user asked for the stop (then it is reported when the engine ends).
    stop_requested: Arc<Mutex<bool>>,
    /// Set when a forced stop aborts the task: from then on the task reports nothing (the
    /// stop reports itself). Held while the task reports, so a report is either in the
    /// queue before the forced stop's or never sent.
    aborted: Arc<Mutex<bool>>,
    /// The pipeline's stream version when this engine was started.
    version: u64,
    /// Set by the task itself once its run is over and its outcome reported, just before
    /// it wakes the reconciler. (`task.is_finished()` is not enough: the woken reconciler
    /// can look before the task has returned, keep the engine, and wait for a wake that
    /// never comes — a start asked for meanwhile would then never be acted on.)
    ended: Arc<std::sync::atomic::AtomicBool>,
}

/// How failed pipelines are restarted (Conduit's `pipelines.error-recovery.*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recovery {
    /// The delay before the first restart.
    pub min_delay: std::time::Duration,
    /// The longest delay between restarts.
    pub max_delay: std::time::Duration,
    /// Each delay is the previous one times this.
    pub backoff_factor: f64,
    /// Restarts allowed before the pipeline is left degraded (-1: no limit).
    pub max_retries: i64,
    /// A run this long without failing resets the count of restarts.
    pub window: std::time::Duration,
}

impl Recovery {
    /// Conduit's defaults: 1 s, 10 m, x2, no limit, 5 m (the flags' defaults too).
    #[cfg(test)]
    fn conduit_defaults() -> Self {
        Self {
            min_delay: std::time::Duration::from_secs(1),
            max_delay: std::time::Duration::from_secs(600),
            backoff_factor: 2.0,
            max_retries: -1,
            window: std::time::Duration::from_secs(300),
        }
    }

    /// Whether one more restart is allowed after `done` of them.
    fn retry_allowed(&self, done: u32) -> bool {
        self.max_retries < 0 || i64::from(done) < self.max_retries
    }

    /// The delay before restart number `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        let factor = self.backoff_factor.powi(attempt.saturating_sub(1) as i32);
        let delay = self.min_delay.as_secs_f64() * factor;
        if !delay.is_finite() || delay >= self.max_delay.as_secs_f64() {
            self.max_delay
        } else {
            std::time::Duration::from_secs_f64(delay)
        }
    }
}

/// Runs pipelines as the control plane asks.
pub struct Supervisor {
    recovery: Recovery,
    writer: Arc<ControlPlaneWriter>,
    registry: Arc<Registry>,
    processor_registry: Arc<ProcessorRegistry>,
    positions: Arc<dyn Positions>,
    store: Arc<dyn PositionStore>,
    /// The connectors seen at the last reconcile (id -> plugin and side), to notice
    /// deletions and tell their plugins.
    connectors: Mutex<HashMap<String, (String, Side)>>,
    /// The settings each present connector last started with (the copy of its
    /// `LAST_ACTIVE_SLOT`), kept to tell its plugin when it is deleted: the deletion's own
    /// write removes the slot.
    last_active: Mutex<HashMap<String, Settings>>,
    engines: Mutex<HashMap<PipelineId, Engine>>,
    /// Raised when an engine task ends, so the next reconcile sees it gone.
    wake: Arc<tokio::sync::Notify>,
    shutting_down: Arc<Mutex<bool>>,
    /// Outcomes are recorded one after another, in the order they happened, by one thread.
    reports: Mutex<Option<std::sync::mpsc::Sender<Report>>>,
    /// The thread that records them; joined at shutdown, since it holds the control plane
    /// (and so the database) until it ends.
    report_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Where running pipelines count what they move (`/metrics`), if anywhere.
    metrics: std::sync::OnceLock<Arc<culvert_engine::Metrics>>,
    /// The stream inspector's sessions, fed by running pipelines, if any.
    inspectors: std::sync::OnceLock<Arc<culvert_engine::Inspectors>>,
    /// Where running pipelines keep their dead letters (and read back re-injected ones),
    /// and how many; without it letters go to the DLQ plugin only.
    letters: std::sync::OnceLock<(Arc<dyn DeadLetterStore>, LetterLimits)>,
}

type Apply = Box<
    dyn Fn(&PipelineOrchestrator, &Context) -> Result<(), culvert_commands::CommandError> + Send,
>;

/// An outcome to record: which pipeline, what happened (for messages), and the command.
struct Report {
    pipeline: Option<PipelineId>,
    what: &'static str,
    apply: Apply,
}

/// How recording an outcome is retried: `attempts` tries, with pauses doubling from `pause`
/// up to 5 s.
#[derive(Clone, Copy, Debug)]
pub struct ReportRetry {
    /// Tries in all.
    pub attempts: u32,
    /// The pause after the first failed try.
    pub pause: std::time::Duration,
}

impl Default for ReportRetry {
    /// 10 tries, pauses doubling from 50 ms: about 25 s in all.
    fn default() -> Self {
        Self {
            attempts: 10,
            pause: std::time::Duration::from_millis(50),
        }
    }
}

/// Record one outcome, trying again while the failure may pass (a concurrent change of the
/// pipeline, a store hiccup). A refusal by the domain (the pipeline was deleted meanwhile)
/// is final. When every try failed, the pipeline is reported degraded with what could not
/// be recorded, so its status says so (instead of staying, say, `Stopping`).
fn record(report: &Report, recorder: &PipelineOrchestrator, ctx: &Context, retry: ReportRetry) {
    use culvert_commands::CommandError;
    let mut pause = retry.pause;
    for attempt in 1..=retry.attempts.max(1) {
        let error = match (report.apply)(recorder, ctx) {
            Ok(()) => return,
            Err(error) => error,
        };
        let passing = matches!(
            error,
            CommandError::Conflict { .. } | CommandError::Store(_) | CommandError::Projection(_)
        );
        if passing && attempt < retry.attempts {
            tracing::warn!(%error, attempt, what = report.what, "recording a pipeline's state failed; trying again");
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
            continue;
        }
        tracing::error!(%error, attempt, what = report.what, "recording a pipeline's state failed; giving up");
        if let (true, Some(pipeline)) = (passing, &report.pipeline) {
            let message = format!(
                "culvert could not record that the pipeline {} ({error}); its engine is no \
                 longer running it as recorded",
                report.what
            );
            if let Err(error) = recorder.report_degraded(ctx, pipeline, &message) {
                tracing::error!(%error, pipeline = %pipeline, "the pipeline's status could not be updated either");
            }
        }
        return;
    }
}

/// Connectors whose plugins are told of new settings at this start, with those settings.
type Activations = Vec<(String, Settings)>;

impl Supervisor {
    /// A supervisor over the control plane, with these connector and processor plugins and
    /// positions.
    pub fn new(
        writer: Arc<ControlPlaneWriter>,
        registry: Arc<Registry>,
        processor_registry: Arc<ProcessorRegistry>,
        positions: Arc<dyn PositionStore>,
        recovery: Recovery,
    ) -> Arc<Self> {
        let pipelines = PipelineOrchestrator::new(writer.clone());
        let (reports, queue) = std::sync::mpsc::channel::<Report>();
        let recorder = pipelines;
        let retry = ReportRetry::default();
        let report_thread = std::thread::Builder::new()
            .name("pipeline-reports".into())
            .spawn(move || {
                let ctx = Context::system();
                for report in queue {
                    record(&report, &recorder, &ctx, retry);
                }
            })
            .expect("spawn the report thread");
        Arc::new(Self {
            recovery,
            reports: Mutex::new(Some(reports)),
            report_thread: Mutex::new(Some(report_thread)),
            writer,
            registry,
            processor_registry,
            positions: Arc::new(StorePositions::new(positions.clone())),
            store: positions,
            connectors: Mutex::new(HashMap::new()),
            last_active: Mutex::new(HashMap::new()),
            engines: Mutex::new(HashMap::new()),
            shutting_down: Arc::new(Mutex::new(false)),
            wake: Arc::new(tokio::sync::Notify::new()),
            metrics: std::sync::OnceLock::new(),
            inspectors: std::sync::OnceLock::new(),
            letters: std::sync::OnceLock::new(),
        })
    }

    /// Count what pipelines started from now on move into `metrics` (set once; later calls
    /// are ignored).
    pub fn set_metrics(&self, metrics: Arc<culvert_engine::Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Feed `inspectors`' sessions from pipelines started from now on, and close the
    /// sessions of deleted connectors and processors (set once; later calls are ignored).
    pub fn set_inspectors(&self, inspectors: Arc<culvert_engine::Inspectors>) {
        let _ = self.inspectors.set(inspectors);
    }

    /// Keep the dead letters of pipelines started from now on in `store`, within `limits`,
    /// and re-inject the ones queued there (set once; later calls are ignored).
    pub fn set_dead_letters(&self, store: Arc<dyn DeadLetterStore>, limits: LetterLimits) {
        let _ = self.letters.set((store, limits));
    }

    /// Act on the log until `shutdown` is raised, then drain every engine.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut head = self.writer.projections().watch_applied();
        self.reconcile(true);
        loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
                changed = head.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.reconcile(false);
                }
                _ = self.wake.notified() => self.reconcile(false),
            }
        }
        *self.shutting_down.lock().expect("lock") = true;
        let engines: Vec<Engine> = self
            .engines
            .lock()
            .expect("lock")
            .drain()
            .map(|(_, e)| e)
            .collect();
        if !engines.is_empty() {
            tracing::info!(pipelines = engines.len(), "draining running pipelines");
        }
        for engine in &engines {
            let _ = engine.stop.send(true);
        }
        for engine in engines {
            let _ = engine.task.await;
        }
        // Record everything reported so far, then let the report thread end (closing its
        // queue) and wait for it: it must not outlive the server's database.
        drop(self.reports.lock().expect("lock").take());
        let thread = self.report_thread.lock().expect("lock").take();
        if let Some(thread) = thread {
            if tokio::task::spawn_blocking(move || thread.join())
                .await
                .is_err()
            {
                tracing::error!("the report thread failed");
            }
        }
    }

    fn reconcile(self: &Arc<Self>, boot: bool) {
        let present: HashMap<String, (String, Side)> = {
            let state = self.writer.projections().read();
            state
                .connectors()
                .map(|c| {
                    let side = match c.connector_type {
                        ConnectorType::Source => Side::Source,
                        ConnectorType::Destination => Side::Destination,
                    };
                    (c.id.to_string(), (c.plugin.clone(), side))
                })
                .collect()
        };
        if let Some(inspectors) = self.inspectors.get().filter(|i| i.active() > 0) {
            // Sessions on entities that no longer exist end (Conduit closes an instance's
            // inspector when it is deleted).
            let state = self.writer.projections().read();
            inspectors.close_where(
                |id| {
                    !present.contains_key(id)
                        && state
                            .processor(&culvert_domain::ProcessorId(id.to_owned()))
                            .is_none()
                },
                culvert_engine::inspect::Closed::Deleted,
            );
        }
        if let Some(metrics) = self.metrics.get() {
            // Deleted (or renamed) pipelines' and deleted entities' series leave /metrics.
            let state = self.writer.projections().read();
            let names: std::collections::HashSet<&str> =
                state.pipelines().map(|p| p.name.as_str()).collect();
            metrics.retain(
                |name| names.contains(name),
                |id| {
                    present.contains_key(id)
                        || state
                            .processor(&culvert_domain::ProcessorId(id.to_owned()))
                            .is_some()
                },
            );
        }
        self.notice_deletions(present, boot);
        let wanted: Vec<(PipelineId, PipelineStatus, u64)> = {
            let state = self.writer.projections().read();
            state
                .pipelines()
                .map(|p| (p.id.clone(), p.status.clone(), p.version))
                .collect()
        };
        let versions: HashMap<&PipelineId, u64> =
            wanted.iter().map(|(id, _, v)| (id, *v)).collect();
        let mut engines = self.engines.lock().expect("lock");
        // An engine that has ended is forgotten once its pipeline has moved on (its outcome
        // is recorded); until then it stays, so a pending report is not raced by a restart.
        engines.retain(|id, e| {
            !e.ended.load(std::sync::atomic::Ordering::Acquire)
                || versions.get(id) == Some(&e.version)
        });
        for (id, status, version) in wanted {
            let has_engine = engines.contains_key(&id);
            match (&status, has_engine) {
                (PipelineStatus::Starting, false) => {
                    let engine = self.start(&id, version);
                    engines.insert(id, engine);
                }
                (PipelineStatus::Running | PipelineStatus::Recovering, false) if boot => {
                    tracing::info!(pipeline = %id, "resuming a pipeline that was running");
                    let engine = self.start(&id, version);
                    engines.insert(id, engine);
                }
                (PipelineStatus::Stopping { force: true }, true) => {
                    // Cancel at once and report here: the aborted task reports nothing, even
                    // if it is mid-poll and its run ends there (dropping the engine closes
                    // its stop channel, which drains it). Removed from the map so later
                    // passes do not cancel and report again.
                    if let Some(engine) = engines.remove(&id) {
                        *engine.aborted.lock().expect("lock") = true;
                        engine.task.abort();
                        self.report(id.clone(), "stopped", move |p, ctx| {
                            p.report_stopped(ctx, &id, StoppedReason::User)
                        });
                    }
                }
                (PipelineStatus::Stopping { force: false }, true) => {
                    // Drain; the task reports the stop when it is done (sending twice is
                    // harmless).
                    if let Some(engine) = engines.get(&id) {
                        *engine.stop_requested.lock().expect("lock") = true;
                        let _ = engine.stop.send(true);
                    }
                }
                (PipelineStatus::Stopping { .. }, false) if boot => {
                    // The server stopped mid-stop: nothing runs it, so it is stopped. (While
                    // running, an engine that ended reports its own stop.)
                    self.report(id.clone(), "stopped", move |p, ctx| {
                        p.report_stopped(ctx, &id, StoppedReason::User)
                    });
                }
                _ => {}
            }
        }
    }

    /// Build the pipeline's nodes and run them in a task that reports the outcome.
    fn start(self: &Arc<Self>, id: &PipelineId, version: u64) -> Engine {
        let (stop, mut stop_rx) = watch::channel(false);
        let stop_requested = Arc::new(Mutex::new(false));
        let aborted = Arc::new(Mutex::new(false));
        let mut first = Some(self.nodes(id));
        let this = self.clone();
        let pipeline = id.clone();
        let requested = stop_requested.clone();
        let silenced = aborted.clone();
        let recovery = self.recovery;
        let wake = self.wake.clone();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let over = ended.clone();
        // Every log line of the run (and of its nodes' spans) carries the pipeline's id.
        let span = tracing::info_span!("pipeline", id = %id);
        let task = tokio::spawn(async move {
            let run = async move {
                // Restarts after a failure, counted; reset after a healthy run of `window`.
                let mut attempt: u32 = 0;
                loop {
                    let nodes = first.take().unwrap_or_else(|| this.nodes(&pipeline));
                    let (graph, activations, metrics) = match nodes {
                        Ok(nodes) => nodes,
                        Err(error) => {
                            tracing::warn!(pipeline = %pipeline, %error, "pipeline cannot start");
                            this.report_unless(&silenced, pipeline.clone(), "failed", move |p, ctx| {
                                p.report_degraded(ctx, &pipeline, &error)
                            });
                            return;
                        }
                    };
                    let recovering_count = metrics.as_ref().map(|m| m.recovering());
                    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
                    let run = culvert_engine::run_observed(
                        graph,
                        this.positions.clone(),
                        Options::default(),
                        stop_rx.clone(),
                        Some(started_tx),
                        metrics,
                        this.inspectors.get().cloned(),
                    );
                    tokio::pin!(run);
                    let mut started_at = None;
                    // Started first: the engine fires `started` before any connector reads
                    // or writes, so a run that ended with it fired had started.
                    let result = tokio::select! {
                        biased;
                        Ok(()) = started_rx => {
                            // Every connector opened: the pipeline runs.
                            tracing::info!(pipeline = %pipeline, "pipeline started");
                            started_at = Some(std::time::Instant::now());
                            this.activated(&activations);
                            let started = pipeline.clone();
                            this.report_unless(&silenced, started.clone(), "started", move |p, ctx| p.report_started(ctx, &started));
                            run.await
                        }
                        result = &mut run => result,
                    };
                    let user_stop = *requested.lock().expect("lock");
                    let shutting_down = *this.shutting_down.lock().expect("lock");
                    let error = match result {
                        Ok(()) if user_stop => {
                            tracing::info!(pipeline = %pipeline, "pipeline stopped");
                            this.report_unless(&silenced, pipeline.clone(), "stopped", move |p, ctx| {
                                p.report_stopped(ctx, &pipeline, StoppedReason::User)
                            });
                            return;
                        }
                        Ok(()) if shutting_down => {
                            tracing::info!(pipeline = %pipeline, "pipeline drained for shutdown");
                            return;
                        }
                        Ok(()) => {
                            this.report_unless(&silenced, pipeline.clone(), "stopped", move |p, ctx| {
                                p.report_stopped(ctx, &pipeline, StoppedReason::System)
                            });
                            return;
                        }
                        Err(error) => error,
                    };
                    let kind = error.kind();
                    let error = error.to_string();
                    // A failure at start is the start's answer; a failure of a running pipeline
                    // is retried with backoff while retries are left.
                    let Some(started_at) = started_at.filter(|_| !user_stop && !shutting_down)
                    else {
                        tracing::warn!(pipeline = %pipeline, %error, "pipeline degraded");
                        this.report_unless(&silenced, pipeline.clone(), "failed", move |p, ctx| {
                            p.report_degraded(ctx, &pipeline, &error)
                        });
                        return;
                    };
                    if kind != ErrorKind::Transient {
                        // Restarting cannot mend it: a human has to.
                        tracing::warn!(pipeline = %pipeline, %error, %kind, "pipeline degraded: not retried");
                        this.report_unless(&silenced, pipeline.clone(), "failed", move |p, ctx| {
                            p.report_degraded(ctx, &pipeline, &error)
                        });
                        return;
                    }
                    if started_at.elapsed() >= recovery.window {
                        attempt = 0;
                    }
                    if !recovery.retry_allowed(attempt) {
                        tracing::warn!(pipeline = %pipeline, %error, attempt, "pipeline degraded: no retries left");
                        this.report_unless(&silenced, pipeline.clone(), "failed", move |p, ctx| {
                            p.report_degraded(ctx, &pipeline, &error)
                        });
                        return;
                    }
                    attempt += 1;
                    let delay = recovery.delay(attempt);
                    tracing::warn!(
                        pipeline = %pipeline,
                        %error,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "pipeline failed; recovering"
                    );
                    if let Some(count) = &recovering_count {
                        count.inc();
                    }
                    let recovering = pipeline.clone();
                    this.report_unless(&silenced, recovering.clone(), "is recovering", move |p, ctx| {
                        p.report_recovering(ctx, &recovering, &error, attempt)
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = async { let _ = stop_rx.wait_for(|s| *s).await; } => {
                            if *requested.lock().expect("lock") {
                                this.report_unless(&silenced, pipeline.clone(), "stopped", move |p, ctx| {
                                    p.report_stopped(ctx, &pipeline, StoppedReason::User)
                                });
                            }
                            return;
                        }
                    }
                }
            };
            run.await;
            // The engine is gone: look again (a start that arrived while it was ending
            // found it still there and did nothing). Marked ended first, so the look this
            // wakes forgets it.
            over.store(true, std::sync::atomic::Ordering::Release);
            wake.notify_one();
        }.instrument(span));
        Engine {
            stop,
            task,
            stop_requested,
            aborted,
            version,
            ended,
        }
    }

    /// The pipeline's connectors and processors as engine nodes, or why they cannot be
    /// made (naming the connector or processor and the setting).
    fn nodes(
        &self,
        id: &PipelineId,
    ) -> Result<(Graph, Activations, Option<PipelineMetrics>), String> {
        let state = self.writer.projections().read();
        let pipeline = state
            .pipeline(id)
            .ok_or_else(|| format!("pipeline {id} not found"))?;
        // Each node's plugin, for the metrics' labels.
        let metrics = self.metrics.get().map(|m| {
            let mut metrics = m.pipeline(&pipeline.name);
            metrics.dlq(&pipeline.dlq.plugin);
            for connector in pipeline
                .connector_ids
                .iter()
                .filter_map(|c| state.connector(c))
            {
                metrics.plugin(connector.id.as_str(), &connector.plugin);
                for processor in connector
                    .processor_ids
                    .iter()
                    .filter_map(|p| state.processor(p))
                {
                    metrics.plugin(processor.id.as_str(), &processor.plugin);
                }
            }
            for processor in pipeline
                .processor_ids
                .iter()
                .filter_map(|p| state.processor(p))
            {
                metrics.plugin(processor.id.as_str(), &processor.plugin);
            }
            metrics
        });
        let processors = |ids: &[ProcessorId]| -> Result<Vec<ProcessorNode>, String> {
            ids.iter()
                .map(|processor_id| {
                    let processor = state
                        .processor(processor_id)
                        .ok_or_else(|| format!("processor {processor_id} not found"))?;
                    let settings = self
                        .open(&processor.settings)
                        .map_err(|e| format!("processor {processor_id}: {e}"))?;
                    // One instance per worker (Conduit's `workers`), each configured alike.
                    let mut instances = (0..processor.workers.max(1))
                        .map(|_| {
                            self.processor_registry
                                .configure(&processor.plugin, &settings, &processor.condition)
                                .map_err(|e| format!("processor {processor_id}: {e}"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut instance = if instances.len() == 1 {
                        instances.remove(0)
                    } else {
                        Box::new(Parallel::new(instances))
                    };
                    instance.identify(processor_id.as_str());
                    Ok(ProcessorNode {
                        id: processor_id.to_string(),
                        processor: instance,
                        inline: self.processor_registry.is_builtin(&processor.plugin),
                    })
                })
                .collect()
        };
        let dlq = &pipeline.dlq;
        let dlq_settings = self
            .open(&dlq.settings)
            .map_err(|e| format!("dead-letter queue: {e}"))?;
        let dlq_settings = self
            .registry
            .validate(&dlq.plugin, Side::Destination, &dlq_settings)
            .map_err(|e| format!("dead-letter queue: {e}"))?;
        let dlq_destination = self
            .registry
            .lookup(&dlq.plugin)
            .map_err(|e| format!("dead-letter queue: {e}"))?
            .new_destination(&dlq_settings)
            .map_err(|e| format!("dead-letter queue: {e}"))?;
        let mut graph = Graph {
            sources: Vec::new(),
            processors: processors(&pipeline.processor_ids)?,
            destinations: Vec::new(),
            dlq: Some(DeadLetterNode {
                destination: dlq_destination,
                window_size: dlq.window_size,
                window_nack_threshold: dlq.window_nack_threshold,
                letters: self.letters.get().map(|(store, limits)| {
                    Arc::new(StoreLetters {
                        store: store.clone(),
                        pipeline: pipeline.id.to_string(),
                        limits: *limits,
                        dropped: Mutex::new((0, None)),
                    }) as Arc<dyn culvert_engine::dlq::LetterBox>
                }),
            }),
        };
        // Whether any processor runs on the records (a source's own, the pipeline's or a
        // destination's): sources are told, as some make records faster for it.
        let records_processed = state.runs_processors(pipeline);
        let mut activations = Vec::new();
        for connector_id in &pipeline.connector_ids {
            let connector = state
                .connector(connector_id)
                .ok_or_else(|| format!("connector {connector_id} not found"))?;
            let side = match connector.connector_type {
                ConnectorType::Source => Side::Source,
                ConnectorType::Destination => Side::Destination,
            };
            let context = |e: &dyn std::fmt::Display| format!("connector {connector_id}: {e}");
            // The plugin gets the settings opened; what is remembered of them (to tell the
            // plugin of changes) stays sealed as stored.
            let open = self.open(&connector.settings).map_err(|e| context(&e))?;
            let settings = self
                .registry
                .validate(&connector.plugin, side, &open)
                .map_err(|e| context(&e))?;
            let plugin = self
                .registry
                .lookup(&connector.plugin)
                .map_err(|e| context(&e))?;
            let connector_processors = processors(&connector.processor_ids)?;
            let last = self
                .last_active(connector_id.as_str())
                .map_err(|e| context(&e))?;
            let last = last
                .map(|last| self.open(&last))
                .transpose()
                .map_err(|e| context(&e))?;
            let lifecycle = Lifecycle::between(last.as_ref(), &open);
            if lifecycle.is_some() {
                activations.push((connector_id.to_string(), connector.settings.clone()));
            }
            let prepare = Prepare {
                connector_id: connector_id.to_string(),
                lifecycle,
                records_processed,
            };
            match side {
                Side::Source => {
                    let mut source = plugin.new_source(&settings).map_err(|e| context(&e))?;
                    source.prepare(prepare);
                    graph.sources.push(SourceNode {
                        id: connector_id.to_string(),
                        source,
                        processors: connector_processors,
                    })
                }
                Side::Destination => {
                    let mut destination =
                        plugin.new_destination(&settings).map_err(|e| context(&e))?;
                    destination.prepare(prepare);
                    graph.destinations.push(DestinationNode {
                        id: connector_id.to_string(),
                        destination,
                        processors: connector_processors,
                    })
                }
            }
        }
        Ok((graph, activations, metrics))
    }

    /// `settings` with their sealed values opened (as stored when the control plane seals
    /// secrets; as they are otherwise).
    fn open(&self, settings: &Settings) -> Result<Settings, String> {
        match self.writer.secrets() {
            Some(secrets) => secrets.open_settings(settings).map_err(|e| e.to_string()),
            None => Ok(settings.clone()),
        }
    }

    /// The settings a connector last started with, if it ever started.
    fn last_active(&self, connector: &str) -> Result<Option<Settings>, String> {
        match self.store.get(connector, LAST_ACTIVE_SLOT) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("its last active settings are unreadable: {e}")),
            Err(e) => Err(format!("reading its last active settings: {e}")),
        }
    }

    /// Remember the settings connectors started with (their plugins were told).
    fn activated(&self, activations: &Activations) {
        for (connector, settings) in activations {
            let json = serde_json::to_vec(settings).expect("settings serialize");
            if let Err(error) = self.store.put(connector, LAST_ACTIVE_SLOT, &json) {
                tracing::warn!(%connector, %error, "could not record the connector's active settings");
            }
            self.last_active
                .lock()
                .expect("lock")
                .insert(connector.clone(), settings.clone());
        }
    }

    /// Tell the plugins of connectors deleted since the last look, if they ever ran. (Their
    /// positions and state went in the deletion's own write.)
    fn notice_deletions(self: &Arc<Self>, present: HashMap<String, (String, Side)>, boot: bool) {
        if boot {
            // The settings each connector last ran with, to hand its plugin at deletion.
            let mut last_active = self.last_active.lock().expect("lock");
            for connector in present.keys() {
                match self.last_active(connector) {
                    Ok(Some(settings)) => {
                        last_active.insert(connector.clone(), settings);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%connector, %error, "its plugin will not be told if it is deleted")
                    }
                }
            }
        }
        let previous = std::mem::replace(&mut *self.connectors.lock().expect("lock"), present);
        if boot {
            return;
        }
        let gone: Vec<(String, (String, Side))> = {
            let now = self.connectors.lock().expect("lock");
            previous
                .into_iter()
                .filter(|(id, _)| !now.contains_key(id))
                .collect()
        };
        for (connector, (plugin, side)) in gone {
            let this = self.clone();
            tokio::spawn(async move { this.deleted(connector, plugin, side).await });
        }
    }

    async fn deleted(self: Arc<Self>, connector: String, plugin: String, side: Side) {
        let last = self.last_active.lock().expect("lock").remove(&connector);
        let last = last.map(|config| self.open(&config));
        if let Some(config) = last {
            let config = match config {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(%connector, %error, "the deleted connector's plugin cannot be told: its settings do not open");
                    return;
                }
            };
            let prepare = Prepare {
                connector_id: connector.clone(),
                lifecycle: None,
                records_processed: false,
            };
            let result = match self.registry.lookup(&plugin) {
                Err(e) => Err(e.to_string()),
                Ok(plugin) => match side {
                    Side::Source => match plugin.new_source(&config) {
                        Ok(mut source) => {
                            source.prepare(prepare);
                            source.on_deleted(config).await.map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    Side::Destination => match plugin.new_destination(&config) {
                        Ok(mut destination) => {
                            destination.prepare(prepare);
                            destination
                                .on_deleted(config)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                },
            };
            match result {
                Ok(()) => tracing::debug!(%connector, "deleted connector's plugin told"),
                Err(error) => {
                    tracing::warn!(%connector, %error, "deleted connector's plugin could not be told")
                }
            }
        }
    }

    /// Record an outcome as the `system` actor, after every earlier one (on the report
    /// thread: it may fsync), trying again while a failure may pass.
    /// [`Supervisor::report`], unless `aborted` is set (a forced stop cancelled the run and
    /// reported for it); the flag is held while the report is queued.
    fn report_unless<F>(
        &self,
        aborted: &Mutex<bool>,
        pipeline: PipelineId,
        what: &'static str,
        f: F,
    ) where
        F: Fn(&PipelineOrchestrator, &Context) -> Result<(), culvert_commands::CommandError>
            + Send
            + 'static,
    {
        let aborted = aborted.lock().expect("lock");
        if *aborted {
            tracing::debug!(pipeline = %pipeline, what, "not reported: the run was aborted");
            return;
        }
        self.report(pipeline, what, f);
    }

    fn report<F>(&self, pipeline: PipelineId, what: &'static str, f: F)
    where
        F: Fn(&PipelineOrchestrator, &Context) -> Result<(), culvert_commands::CommandError>
            + Send
            + 'static,
    {
        let report = Report {
            pipeline: Some(pipeline),
            what,
            apply: Box::new(f),
        };
        let sent = match self.reports.lock().expect("lock").as_ref() {
            Some(queue) => queue.send(report).is_ok(),
            None => false,
        };
        if !sent {
            tracing::error!("the report thread is gone; a pipeline's state was not recorded");
        }
    }
}

#[cfg(test)]
mod tests;
