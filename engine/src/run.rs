//! Running one pipeline: sources, the pipeline's processors and fan-out, destinations and
//! the acker as tokio tasks joined by bounded channels.
//!
//! ```text
//! source 0 ─> [its processors] ─┐                                     ┌─> [processors] destination 0 ─┐
//! source 1 ─> [its processors] ─┴─> [pipeline processors] fan-out ───┼─> [processors] destination 1 ─┼─> acker
//!                                                                     └─> ...                        ─┘
//! ```
//!
//! * Each source has two tasks. The first reads batches (each only once the second has
//!   room for it, so at most one batch waits between them) and, between reads, acks to the
//!   source the newest position the acker released. A read is never raced against acks, so
//!   no read is dropped half-way while the pipeline runs (see
//!   `docs/adr/20261201-reads-are-not-cancelled.md`). The second finishes each batch beside
//!   the next read, in order: it runs the work the source detached from its reads
//!   (`Source::detach_stage`: the connector SDK's schema extraction for the built-ins),
//!   stamps each record as Conduit's engine does (`opencdc.readAt` and
//!   `conduit.source.connector.id` where the source left them empty), registers every
//!   record with its source's [`Acker`] (before any destination can see it), and sends the
//!   batch on.
//! * A source's processors run in a task of their own, beside the source's reads. The
//!   pipeline's processors and the fan-out run in whichever task feeds them (a source's,
//!   or its processors'), one batch at a time under a lock, when they are all built in: a
//!   hand-off costs more than their work. With a standalone (WASM) processor among them
//!   they run in a fan-in task every feeder sends to. A destination's processors run in
//!   that destination's task before it writes. Each processor sees the records of a batch
//!   in order, and each source's batches in order; a record a processor drops is reported
//!   to the acker as done (for every destination, or for the one destination whose
//!   processor dropped it), so it is acked and never lost; a record a processor fails goes
//!   to the DLQ, or stops the pipeline with that error (Conduit's default dead-letter
//!   policy: the first nack stops the pipeline).
//! * The fan-out sends each batch (shared, not copied) to every destination; each
//!   destination submits it (`Destination::submit`) and reports the batch's tickets as
//!   written when its receipt completes, in order. Up to `SUBMITTED` (two) batches are under
//!   way per destination, so one that waits on a remote system (the Kafka destination,
//!   for the brokers' acknowledgements) is handed the next batch meanwhile; nothing is
//!   reported written, so nothing is acked, before its receipt completes.
//! * The acker persists the newest position whose record and every earlier one every
//!   destination has written, then tells the source: a restart resumes from there. Saves
//!   run on a blocking thread, one at a time, and start at most once per
//!   `Options::position_save_interval` (10 ms) while the pipeline runs; positions released
//!   meanwhile are batched into the next (only the newest per source is saved). A stop
//!   saves what is left at once.
//! * Stop drains: sources stop reading, every node finishes what it holds and closes its
//!   output, the last acks flow, sources tear down. An error in any node cancels every
//!   node at once without draining and is returned.

use crate::acker::{AckError, Acker, Ticket};
use crate::dlq::{DeadLetterNode, DeadLetters, LetterBox, Nack, Origin};
use crate::metrics::{ConnectorMetrics, PipelineMetrics};
use culvert_domain::dead_letter::{DeadLetter, Stage};
use culvert_domain::{Position, Record};
use culvert_plugins::processor::{Outcome, Processor};
use culvert_plugins::{Destination, ErrorKind, PluginError, Receipt, Refusals, Source, SUBMITTED};
use prometheus_client::metrics::histogram::Histogram;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::inspect::{Closed, Inspectors, Side};

/// Where positions are persisted (the store's position store, in production).
pub trait Positions: Send + Sync {
    /// The last persisted position of a source connector.
    fn load(&self, connector: &str) -> Result<Option<Position>, String>;
    /// Persist a source connector's position (durably, before the source is told).
    fn save(&self, connector: &str, position: &Position) -> Result<(), String>;
}

/// A source connector of a running pipeline.
pub struct SourceNode {
    /// The connector's id (the key of its position).
    pub id: String,
    /// The plugin instance.
    pub source: Box<dyn Source>,
    /// The processors attached to the connector, in order.
    pub processors: Vec<ProcessorNode>,
}

/// A destination connector of a running pipeline.
pub struct DestinationNode {
    /// The connector's id.
    pub id: String,
    /// The plugin instance.
    pub destination: Box<dyn Destination>,
    /// The processors attached to the connector, in order.
    pub processors: Vec<ProcessorNode>,
}

/// A configured processor of a running pipeline.
pub struct ProcessorNode {
    /// The processor's id.
    pub id: String,
    /// The instance.
    pub processor: Box<dyn Processor>,
    /// Whether, as one of the pipeline's processors, it may run in the task that feeds it
    /// (a built-in: little work per record, so a hand-off between tasks would cost more
    /// than the work) rather than in a task of its own (a standalone WASM processor). The
    /// pipeline's processors run inline only if all of them may. A source's processors
    /// always have a task of their own: the stage beside the source's reads.
    pub inline: bool,
}

/// What runs: the connectors and the pipeline's own processors.
pub struct Graph {
    /// The sources, each with its processors.
    pub sources: Vec<SourceNode>,
    /// The processors between the sources (and their processors) and the fan-out, in order.
    pub processors: Vec<ProcessorNode>,
    /// The destinations, each with its processors.
    pub destinations: Vec<DestinationNode>,
    /// Where records processors fail go (`None`: the first failure stops the pipeline).
    pub dlq: Option<DeadLetterNode>,
}

/// Engine settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Most records a source read returns in one batch.
    pub batch_size: usize,
    /// Batches a channel holds before its sender waits (backpressure).
    pub channel_capacity: usize,
    /// The least time from the start of one position save to the start of the next, per
    /// pipeline (the first save after a quiet spell starts at once). Each save is a durable
    /// write (an fsync in production): under a steady flow, positions released meanwhile
    /// wait and go in one save (the newest per source), so a busy pipeline pays for a
    /// bounded number of saves a second, not one per batch. Sources hear of their positions
    /// up to this much later; a stop saves what is left without waiting.
    pub position_save_interval: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        // Records in flight stay few (and memory and latency low): a batch on each channel
        // slot and in each node. Measured in benches/pipeline.rs and benches/vs-conduit:
        // since a source's reads have a task of their own (a batch waiting between them),
        // one batch per channel moves as many records as two did, with less memory
        // (BENCHMARKS.md, "A source in two tasks").
        Self {
            batch_size: 512,
            channel_capacity: 1,
            // At most 100 saves a second: a source's acks lag its destinations' writes by
            // up to 10 ms more (BENCHMARKS.md, "Position saves paced").
            position_save_interval: std::time::Duration::from_millis(10),
        }
    }
}

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A connector failed.
    #[error("{node}: {source}")]
    Plugin {
        /// Which node (`source <id>`, `destination <id>`).
        node: String,
        /// The plugin's error.
        #[source]
        source: PluginError,
    },
    /// A processor failed a record.
    #[error("processor {processor}: record at position {position:?}: {message}")]
    Processor {
        /// The processor's id.
        processor: String,
        /// The record's position, lossily as text.
        position: String,
        /// The processor's error.
        message: String,
    },
    /// Persisting or loading a position failed.
    #[error("positions of {connector}: {reason}")]
    Positions {
        /// The source connector.
        connector: String,
        /// What failed.
        reason: String,
    },
    /// The ack bookkeeping found a bug.
    #[error("acker: {0}")]
    Ack(#[from] AckError),
    /// The pipeline has no source or no destination.
    #[error("a pipeline needs at least one source and one destination")]
    Incomplete,
    /// A node task panicked or was lost.
    #[error("a pipeline node failed: {0}")]
    Task(String),
}

impl EngineError {
    /// Whether restarting the pipeline can help (the supervisor retries only transient
    /// failures). A processor that failed a record fails it again when the record comes
    /// again; broken ack bookkeeping and a pipeline without connectors do not mend
    /// themselves.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Plugin { source, .. } => source.kind(),
            Self::Processor { .. } | Self::Ack(_) => ErrorKind::Permanent,
            Self::Incomplete => ErrorKind::Config,
            Self::Positions { .. } | Self::Task(_) => ErrorKind::Transient,
        }
    }
}

/// The tickets of a batch's records, in order: a run while no processor dropped any.
#[derive(Clone, Debug)]
enum Tickets {
    Run { first: Ticket, count: usize },
    List(Vec<Ticket>),
}

impl Tickets {
    fn len(&self) -> usize {
        match self {
            Self::Run { count, .. } => *count,
            Self::List(list) => list.len(),
        }
    }

    fn get(&self, index: usize) -> Ticket {
        match self {
            Self::Run { first, .. } => first + index as Ticket,
            Self::List(list) => list[index],
        }
    }

    fn iter(&self) -> impl Iterator<Item = Ticket> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// A batch of one source's records, owned (before the fan-out).
struct Batch {
    source: usize,
    tickets: Tickets,
    records: Vec<Record>,
    /// Each record's size as the source's metrics measured it (with metrics on), while no
    /// processor has touched the batch: a destination that gets it unchanged counts these
    /// instead of measuring every record again.
    sizes: Option<Arc<[u64]>>,
    /// The processor of the next chain to start at (0 but for re-injected dead letters,
    /// which resume at the processor that failed them).
    start: usize,
}

/// A batch as every destination gets it (shared, not copied).
struct Shared {
    source: usize,
    tickets: Arc<Tickets>,
    records: Arc<Vec<Record>>,
    /// As [`Batch::sizes`].
    sizes: Option<Arc<[u64]>>,
    /// As [`Batch::start`], for the destination's processors.
    start: usize,
}

/// A batch submitted to a destination, not yet written (see `Destination::submit`).
struct Submitted {
    /// Completes when the destination wrote the batch.
    receipt: Receipt,
    source: usize,
    /// Kept for the destination's refusals (to the DLQ) and the metrics.
    records: Arc<Vec<Record>>,
    tickets: Arc<Tickets>,
    /// As [`Batch::sizes`].
    sizes: Option<Arc<[u64]>>,
    /// No destination processor changed the records (so `sizes` still holds).
    unchanged: bool,
    /// When it was submitted (the write's duration runs from here).
    began: Instant,
}

/// What a destination node's wait ended with.
enum Step {
    /// A batch to write.
    Input(Shared),
    /// The input closed: every batch has come (stop drains).
    Closed,
    /// The oldest submitted batch's write ended.
    Written(Result<Refusals, PluginError>),
}

/// The receipt of the oldest submitted batch, polled where it is (so a `select!` that drops
/// this future loses nothing); pending while there is none.
async fn oldest(submitted: &mut VecDeque<Submitted>) -> Result<Refusals, PluginError> {
    match submitted.front_mut() {
        Some(batch) => (&mut batch.receipt).await,
        None => std::future::pending().await,
    }
}

/// Records are done with: a destination wrote them (`Some(destination)`), a destination's
/// processor dropped them (the same), or a source's or the pipeline's processor dropped
/// them (`None`: done for every destination).
struct Done {
    source: usize,
    tickets: Tickets,
    destination: Option<usize>,
}

/// A record a processor failed.
struct Failed {
    ticket: Ticket,
    record: Record,
    processor: String,
    message: String,
}

/// What a chain of processors did to a batch besides the records it kept.
#[derive(Default)]
struct Processed {
    /// Tickets of records dropped (one entry per copy).
    dropped: Vec<Ticket>,
    /// Records failed.
    failed: Vec<Failed>,
}

/// Run `records` through `chain` in order. Dropped and failed records leave `records` and
/// `tickets`; a record split into several is replaced by them, each with its ticket, and
/// `expand` is told of the extra copies before they go on (so the acker expects an ack
/// for each). The dropped records' tickets and the failed records are returned.
async fn process(
    chain: &mut [ProcessorNode],
    timers: &[Option<Histogram>],
    records: &mut Vec<Record>,
    tickets: &mut Tickets,
    outcomes: &mut Vec<Outcome>,
    inspectors: Option<&Inspectors>,
    mut expand: impl FnMut(Ticket, u32) -> Result<(), EngineError>,
) -> Result<Processed, EngineError> {
    let mut dropped = Vec::new();
    let mut failed = Vec::new();
    for (index, node) in chain.iter_mut().enumerate() {
        if records.is_empty() {
            break;
        }
        if let Some(inspectors) = inspectors {
            inspectors.send(&node.id, Side::In, records);
        }
        outcomes.clear();
        outcomes.resize(records.len(), Outcome::Keep);
        let began = Instant::now();
        node.processor
            .process(records, outcomes)
            .await
            .map_err(|source| EngineError::Plugin {
                node: format!("processor {}", node.id),
                source,
            })?;
        if let Some(Some(timer)) = timers.get(index) {
            timer.observe(began.elapsed().as_secs_f64());
        }
        if outcomes.iter().all(|o| *o == Outcome::Keep) {
            if let Some(inspectors) = inspectors {
                inspectors.send(&node.id, Side::Out, records);
            }
            continue;
        }
        let mut kept_tickets = Vec::with_capacity(records.len());
        let mut kept = Vec::with_capacity(records.len());
        for (i, (record, outcome)) in records.drain(..).zip(outcomes.drain(..)).enumerate() {
            let ticket = tickets.get(i);
            match outcome {
                Outcome::Keep => {
                    kept.push(record);
                    kept_tickets.push(ticket);
                }
                Outcome::Drop => dropped.push(ticket),
                Outcome::Fail(message) => failed.push(Failed {
                    ticket,
                    record,
                    processor: node.id.clone(),
                    message,
                }),
                Outcome::Split(copies) => {
                    let Some(extra) = copies.len().checked_sub(1) else {
                        dropped.push(ticket);
                        continue;
                    };
                    if extra > 0 {
                        let extra = u32::try_from(extra).map_err(|_| EngineError::Processor {
                            processor: node.id.clone(),
                            position: String::from_utf8_lossy(&record.position.0).into_owned(),
                            message: format!("split one record into {} records", extra + 1),
                        })?;
                        expand(ticket, extra)?;
                    }
                    for copy in copies {
                        kept.push(copy);
                        kept_tickets.push(ticket);
                    }
                }
            }
        }
        *records = kept;
        *tickets = Tickets::List(kept_tickets);
        if let Some(inspectors) = inspectors {
            inspectors.send(&node.id, Side::Out, records);
        }
    }
    Ok(Processed { dropped, failed })
}

/// A node's processors, with where to report the records they drop.
struct Chain {
    nodes: Vec<ProcessorNode>,
    /// Where in the pipeline the chain is (kept with the letters of records it fails).
    stage: Stage,
    /// Each node's execution-time histogram (empty without metrics).
    timers: Vec<Option<Histogram>>,
    /// The destination whose processors these are (`None`: before the fan-out).
    destination: Option<usize>,
    done_tx: mpsc::Sender<Done>,
    outcomes: Vec<Outcome>,
    /// Where failed records go, if the pipeline has a DLQ that can take them.
    dlq: Option<Arc<tokio::sync::Mutex<DeadLetters>>>,
    /// Every source's acker, told of records a processor splits into several.
    ackers: Arc<[Arc<Mutex<Acker>>]>,
    /// Whether the records through this chain count as handled in the DLQ's window (the
    /// pipeline's chain: every record passes it once).
    acks: bool,
    /// Where inspector sessions get copies of the records in and out of each processor.
    inspectors: Option<Arc<Inspectors>>,
}

impl Chain {
    fn new(
        nodes: Vec<ProcessorNode>,
        destination: Option<usize>,
        done_tx: mpsc::Sender<Done>,
        dlq: Option<Arc<tokio::sync::Mutex<DeadLetters>>>,
        ackers: Arc<[Arc<Mutex<Acker>>]>,
    ) -> Self {
        Self {
            nodes,
            stage: Stage::Pipeline,
            timers: Vec::new(),
            destination,
            done_tx,
            outcomes: Vec::new(),
            dlq,
            ackers,
            acks: false,
            inspectors: None,
        }
    }

    /// Name where in the pipeline the chain is.
    fn staged(mut self, stage: Stage) -> Self {
        self.stage = stage;
        self
    }

    /// Copy the records in and out of each processor to `inspectors`' sessions.
    fn inspected(mut self, inspectors: Option<&Arc<Inspectors>>) -> Self {
        self.inspectors = inspectors.cloned();
        self
    }

    /// Time each processor into `metrics`' histograms.
    fn timed(mut self, metrics: Option<&PipelineMetrics>) -> Self {
        if let Some(metrics) = metrics {
            self.timers = self
                .nodes
                .iter()
                .map(|node| Some(metrics.processor(&node.id)))
                .collect();
        }
        self
    }

    /// Run a batch through the processors; the records they dropped, and the ones they
    /// failed that the DLQ took, are reported to the acker as done. A failure the DLQ
    /// refuses (or any, without a DLQ) is the pipeline's error. `Ok(false)`: the acker is
    /// gone (the pipeline was cancelled).
    ///
    /// The batch runs through the processors from `start` on (0 but for re-injected dead
    /// letters).
    async fn apply(
        &mut self,
        source: usize,
        records: &mut Vec<Record>,
        tickets: &mut Tickets,
        start: usize,
    ) -> Result<bool, EngineError> {
        let acker = &self.ackers[source];
        let destination = self.destination;
        let len = self.nodes.len();
        let expand = |ticket, extra| {
            acker
                .lock()
                .expect("acker lock")
                .expand(ticket, destination, extra)
                .map_err(EngineError::from)
        };
        let Processed {
            dropped: mut done,
            failed,
        } = process(
            &mut self.nodes[start.min(len)..],
            self.timers.get(start..).unwrap_or(&[]),
            records,
            tickets,
            &mut self.outcomes,
            self.inspectors.as_deref(),
            expand,
        )
        .await?;
        // Kept and dropped records count as acks in the DLQ's window; failed ones as nacks.
        let handled = records.len() + done.len();
        if let Some(first) = failed.first() {
            let failure = |f: &Failed, message: String| EngineError::Processor {
                processor: f.processor.clone(),
                position: String::from_utf8_lossy(&f.record.position.0).into_owned(),
                message,
            };
            let Some(dlq) = &self.dlq else {
                return Err(failure(first, first.message.clone()));
            };
            // The batch's failures go to the DLQ together: one write, one kept batch.
            let nacks = failed
                .iter()
                .map(|f| Nack {
                    record: &f.record,
                    reason: f.message.clone(),
                    node: format!("processor {}", f.processor),
                    origin: Origin {
                        stage: self.stage.clone(),
                        index: self
                            .nodes
                            .iter()
                            .position(|n| n.id == f.processor)
                            .unwrap_or(start),
                        processor: Some(f.processor.clone()),
                    },
                })
                .collect();
            let nacked = dlq.lock().await.nack_all(nacks).await;
            if let Err((index, error)) = nacked {
                return Err(failure(&failed[index], error.to_string()));
            }
            done.extend(failed.iter().map(|f| f.ticket));
        }
        if let Some(dlq) = self.dlq.as_ref().filter(|_| self.acks) {
            dlq.lock().await.ack(handled);
        }
        if done.is_empty() {
            return Ok(true);
        }
        done.sort_unstable();
        let done = Done {
            source,
            tickets: Tickets::List(done),
            destination: self.destination,
        };
        Ok(self.done_tx.send(done).await.is_ok())
    }
}

impl Chain {
    /// [`Chain::apply`] to a batch, from its `start`.
    async fn apply_batch(&mut self, batch: &mut Batch) -> Result<bool, EngineError> {
        self.apply(
            batch.source,
            &mut batch.records,
            &mut batch.tickets,
            batch.start,
        )
        .await
    }
}

/// Counts the connectors still to open; the last fires `started`.
struct Opened {
    left: std::sync::atomic::AtomicUsize,
    started: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Opened {
    /// One more connector opened.
    fn one(&self) {
        if self.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            if let Some(started) = self.started.lock().expect("started lock").take() {
                let _ = started.send(());
            }
        }
    }
}

/// A finished save of a source's position.
struct Saved {
    source: usize,
    position: Position,
    result: Result<(), String>,
}

/// Mark a report's records done in their source's acker; the newest position this releases
/// (every record up to it handled by every destination), if any.
fn release(
    ackers: &[Arc<Mutex<Acker>>],
    done: &Done,
    destination_count: usize,
    timer: Option<&Histogram>,
) -> Result<Option<Position>, EngineError> {
    let mut acker = ackers[done.source].lock().expect("acker lock");
    let destinations = match done.destination {
        Some(d) => d..d + 1,
        None => 0..destination_count,
    };
    let mut newest = None;
    for ticket in done.tickets.iter() {
        for destination in destinations.clone() {
            if let Some(position) = acker.ack(ticket, destination)? {
                newest = Some(position);
            }
        }
    }
    if let (Some(timer), Some(_)) = (timer, &newest) {
        acker.released_reads(|read_at| timer.observe(read_at.elapsed().as_secs_f64()));
    }
    Ok(newest)
}

/// End the process at once, as a power cut or `kill -9` would: no destructor runs, nothing
/// is flushed. Only reached through a fail point configured in a test build (the `fail`
/// crate's `failpoints` feature; `FAILPOINTS=<point>=return` in the server's environment).
#[allow(
    dead_code,
    reason = "called only from fail points, which compile to nothing outside test builds"
)]
fn crash(point: &str) -> ! {
    eprintln!("fail point {point}: crashing the process");
    std::process::abort()
}

/// Now, as Unix seconds (0 if the clock is before 1970).
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The newest position waiting in `acks` (taken without waiting), and whether the acker has
/// closed the channel (every ack delivered).
fn drain_acks(acks: &mut mpsc::UnboundedReceiver<Position>) -> (Option<Position>, bool) {
    let mut newest = None;
    loop {
        match acks.try_recv() {
            Ok(position) => newest = Some(position),
            Err(mpsc::error::TryRecvError::Empty) => return (newest, false),
            Err(mpsc::error::TryRecvError::Disconnected) => return (newest, true),
        }
    }
}

/// Give every record a source read the metadata Conduit's engine gives it: when it was
/// read (`opencdc.readAt`, unix nanoseconds, one instant per read) and the source connector
/// it came from (`conduit.source.connector.id`); values the source set stay.
fn stamp(records: &mut [Record], connector: &str) {
    use culvert_domain::opencdc::metadata::{key, READ_AT, SOURCE_CONNECTOR_ID};
    use culvert_domain::opencdc::{MetaText, ToCompactString as _};
    let mut now = None;
    let mut connector_text: Option<MetaText> = None;
    for record in records {
        let metadata = &mut record.metadata;
        if metadata.get(READ_AT).is_none_or(str::is_empty) {
            let now = now.get_or_insert_with(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
                    .to_compact_string()
            });
            metadata.insert(key(READ_AT), now.clone());
        }
        if metadata.get(SOURCE_CONNECTOR_ID).is_none_or(str::is_empty) {
            let connector = connector_text.get_or_insert_with(|| MetaText::from(connector));
            metadata.insert(key(SOURCE_CONNECTOR_ID), connector.clone());
        }
    }
}

/// Completes once the flag is true or its sender is gone (holding no guard, so it can sit
/// in a `select!` beside awaits).
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// The span a node's task runs in: its kind and id, under the pipeline's span (the
/// supervisor's), so every log line of a node carries both.
fn node_span(kind: &'static str, id: &str) -> tracing::Span {
    tracing::info_span!("node", kind, id = %id)
}

/// Run a pipeline until `stop` turns true or its sender is dropped (graceful: drain) or a
/// node fails (everything is cancelled at once and the error returned). Sources resume from
/// their persisted positions. `started` fires once every connector has opened.
pub async fn run(
    graph: Graph,
    positions: Arc<dyn Positions>,
    options: Options,
    stop: watch::Receiver<bool>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), EngineError> {
    run_with_metrics(graph, positions, options, stop, started, None).await
}

/// As [`run()`], updating `metrics` (records and bytes per connector, processor time, DLQ
/// bytes, positions saved, acks pending). The handles are resolved here, once; the nodes
/// update them once per batch.
pub async fn run_with_metrics(
    graph: Graph,
    positions: Arc<dyn Positions>,
    options: Options,
    stop: watch::Receiver<bool>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
    metrics: Option<PipelineMetrics>,
) -> Result<(), EngineError> {
    run_observed(graph, positions, options, stop, started, metrics, None).await
}

/// As [`run_with_metrics()`], also handing copies of the records each connector and
/// processor handles to `inspectors`' sessions (once per batch; nothing is copied while
/// no session watches the node). When the run ends, every session on its connectors and
/// processors is closed ([`Closed::Stopped`]).
pub async fn run_observed(
    graph: Graph,
    positions: Arc<dyn Positions>,
    options: Options,
    stop: watch::Receiver<bool>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
    metrics: Option<PipelineMetrics>,
    inspectors: Option<Arc<Inspectors>>,
) -> Result<(), EngineError> {
    let inspected: Vec<String> = match &inspectors {
        None => Vec::new(),
        Some(_) => graph
            .sources
            .iter()
            .flat_map(|s| std::iter::once(&s.id).chain(s.processors.iter().map(|p| &p.id)))
            .chain(graph.processors.iter().map(|p| &p.id))
            .chain(
                graph
                    .destinations
                    .iter()
                    .flat_map(|d| std::iter::once(&d.id).chain(d.processors.iter().map(|p| &p.id))),
            )
            .cloned()
            .collect(),
    };
    let result = run_graph(
        graph,
        positions,
        options,
        stop,
        started,
        metrics,
        inspectors.clone(),
    )
    .await;
    if let Some(inspectors) = inspectors {
        inspectors.close_where(|id| inspected.iter().any(|n| n == id), Closed::Stopped);
    }
    result
}

async fn run_graph(
    graph: Graph,
    positions: Arc<dyn Positions>,
    options: Options,
    stop: watch::Receiver<bool>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
    metrics: Option<PipelineMetrics>,
    inspectors: Option<Arc<Inspectors>>,
) -> Result<(), EngineError> {
    let Graph {
        sources,
        processors: pipeline_processors,
        destinations,
        dlq,
    } = graph;
    if sources.is_empty() || destinations.is_empty() {
        return Err(EngineError::Incomplete);
    }
    let (mut sources, mut pipeline_processors, mut destinations) =
        (sources, pipeline_processors, destinations);
    // Processors open first (a standalone one starts its module here): one that cannot
    // keeps the pipeline from starting.
    for node in sources
        .iter_mut()
        .flat_map(|s| s.processors.iter_mut())
        .chain(pipeline_processors.iter_mut())
        .chain(
            destinations
                .iter_mut()
                .flat_map(|d| d.processors.iter_mut()),
        )
    {
        node.processor
            .open()
            .await
            .map_err(|source| EngineError::Plugin {
                node: format!("processor {}", node.id),
                source,
            })?;
    }
    // Where every record comes back in when it is re-injected from the dead letters.
    let routes = Routes {
        sources: sources
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.processors.iter().map(|p| p.id.clone()).collect(),
                )
            })
            .collect(),
        pipeline: pipeline_processors.iter().map(|p| p.id.clone()).collect(),
        destinations: destinations
            .iter()
            .map(|d| {
                (
                    d.id.clone(),
                    d.processors.iter().map(|p| p.id.clone()).collect(),
                )
            })
            .collect(),
    };
    let mut letter_box: Option<Arc<dyn LetterBox>> = None;
    // The DLQ opens first: a pipeline whose DLQ cannot open does not start.
    let dlq = match dlq {
        None => None,
        Some(node) => {
            let mut letters = DeadLetters::new(node);
            letters.bytes = metrics.as_ref().map(PipelineMetrics::dlq_bytes);
            letters.duration = metrics.as_ref().map(PipelineMetrics::dlq_duration);
            letters.open().await.map_err(|source| EngineError::Plugin {
                node: "dead-letter queue".into(),
                source,
            })?;
            letter_box = letters.letter_box();
            Some(Arc::new(tokio::sync::Mutex::new(letters)))
        }
    };
    // Every node says when it has opened its connector; the last one to do so fires
    // `started` itself, before it reads or writes anything, so a failure right after the
    // start is always seen as a failure of a started pipeline.
    let opened = Arc::new(Opened {
        left: std::sync::atomic::AtomicUsize::new(sources.len() + destinations.len()),
        started: Mutex::new(started),
    });
    let capacity = options.channel_capacity.max(1);
    // With a letter box, re-injected dead letters come in as one more source (the last),
    // with an acker of its own: their acks remove the letters instead of moving a position.
    let replay_index = letter_box.as_ref().map(|_| sources.len());
    let ackers: Arc<[Arc<Mutex<Acker>>]> = (0..sources.len() + usize::from(replay_index.is_some()))
        .map(|_| Arc::new(Mutex::new(Acker::new())))
        .collect();
    let mut source_ids: Vec<String> = sources.iter().map(|s| s.id.clone()).collect();
    if replay_index.is_some() {
        source_ids.push(REPLAY_NAME.to_owned());
    }
    // Each source's processors' input, for re-injected dead letters (`None`: it has none).
    let mut processor_inputs: Vec<Option<mpsc::Sender<Batch>>> = Vec::new();
    let destination_count = destinations.len();
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(capacity);
    // `cancel` stops every node at once (an error somewhere); `stop` only stops sources.
    let (cancel_tx, cancel) = watch::channel(false);
    let mut tasks: JoinSet<Result<(), EngineError>> = JoinSet::new();

    // The pipeline's processors and the fan-out to every destination's channel. Run by
    // whatever feeds them when every pipeline processor is built in (no hand-off), else by
    // the fan-in task, whose channel every feeder sends to.
    let (dest_txs, dest_rxs): (Vec<_>, Vec<_>) = (0..destination_count)
        .map(|_| mpsc::channel::<Shared>(capacity))
        .unzip();
    let pipeline_inline = pipeline_processors.iter().all(|p| p.inline);
    let fanout = {
        let mut chain = Chain::new(
            pipeline_processors,
            None,
            done_tx.clone(),
            dlq.clone(),
            ackers.clone(),
        )
        .timed(metrics.as_ref())
        .inspected(inspectors.as_ref());
        chain.acks = true;
        Arc::new(Fanout {
            chain: tokio::sync::Mutex::new(chain),
            destinations: dest_txs.clone(),
        })
    };
    let (onward, fan_in) = if pipeline_inline {
        (Onward::Fanout(fanout.clone()), None)
    } else {
        let (tx, rx) = mpsc::channel::<Batch>(capacity);
        (Onward::Task(tx), Some(rx))
    };

    // Sources, each followed by its processors' task if it has any.
    let mut ack_txs = Vec::new();
    for (index, mut node) in sources.into_iter().enumerate() {
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Position>();
        ack_txs.push(ack_tx);
        let acker = ackers[index].clone();
        let feed = if node.processors.is_empty() {
            processor_inputs.push(None);
            onward.clone()
        } else {
            let (tx, rx) = mpsc::channel::<Batch>(capacity);
            processor_inputs.push(Some(tx.clone()));
            let chain = Chain::new(
                std::mem::take(&mut node.processors),
                None,
                done_tx.clone(),
                dlq.clone(),
                ackers.clone(),
            )
            .staged(Stage::Source {
                connector: node.id.clone(),
            })
            .timed(metrics.as_ref())
            .inspected(inspectors.as_ref());
            tasks.spawn(
                source_processors(chain, rx, onward.clone(), cancel.clone())
                    .instrument(node_span("source-processors", &node.id)),
            );
            Onward::Task(tx)
        };
        let opened = opened.clone();
        let positions = positions.clone();
        let mut stop = stop.clone();
        let mut cancel = cancel.clone();
        let batch_size = options.batch_size.max(1);
        // What follows each read (the source's detached stage, stamping, tracking, sending
        // on) runs in a task of its own, beside the next read: one batch waits between them.
        let (read_tx, read_rx) = mpsc::channel::<Read>(1);
        let finish = Finish {
            stage: node.source.detach_stage(),
            id: node.id.clone(),
            index,
            acker,
            destination_count,
            counted: metrics.as_ref().map(|m| m.connector(&node.id, "source")),
            // Batches' read times feed the pipeline-duration histogram (only with metrics
            // on).
            timed_reads: metrics.is_some(),
            inspect: inspectors.clone(),
        };
        tasks.spawn(
            finish
                .run(read_rx, feed, cancel.clone())
                .instrument(node_span("source-finish", &node.id)),
        );
        let span = node_span("source", &node.id);
        tasks.spawn(
            async move {
                let name = format!("source {}", node.id);
                let fail = |source| EngineError::Plugin {
                    node: name.clone(),
                    source,
                };
                let start = positions
                    .load(&node.id)
                    .map_err(|reason| EngineError::Positions {
                        connector: node.id.clone(),
                        reason,
                    })?;
                node.source.open(start).await.map_err(fail)?;
                opened.one();
                let mut feed = Some(read_tx);
                loop {
                    // Acks first: every position released since the last read (cumulative, so
                    // the newest says it all). `None` from the acker: every ack is delivered.
                    let (newest, acker_done) = drain_acks(&mut ack_rx);
                    if let Some(position) = newest {
                        node.source.ack(position).await.map_err(fail)?;
                    }
                    if acker_done {
                        break;
                    }
                    let Some(sender) = feed.as_ref() else {
                        // Stopping: no more reads; wait for the last acks. Cancel-safety: `recv`
                        // takes a position only when it completes.
                        tokio::select! {
                            biased;
                            _ = raised(&mut cancel) => return Ok(()),
                            position = ack_rx.recv() => match position {
                                Some(position) => node.source.ack(position).await.map_err(fail)?,
                                None => break,
                            },
                        }
                        continue;
                    };
                    // The read is raced only against a stop or a cancel, never against acks:
                    // while the pipeline runs no read is dropped half-way, whatever the source
                    // (acks wait for it; `read` returns within about IDLE_READ when idle). On
                    // stop or cancel the source is torn down after the drain, and a restart
                    // resumes from the last persisted position, so a dropped read loses
                    // nothing that was acked; sources are cancel-safe on top of that
                    // (`culvert_plugins::testing`).
                    //
                    // Room for the batch first, so that no batch waits read in this task
                    // (records in flight, so memory, stay as few as a batch ahead).
                    let stopped = {
                        // Cancel-safety: a dropped `reserve` has taken nothing (tokio's
                        // `Sender::reserve` is cancel-safe); a dropped read is the source's
                        // (cancel-safe by its contract, see above) and its unused permit goes
                        // back. Covered by `a_stop_with_a_detached_stage_drains_...` and
                        // `reads_are_never_dropped_half_way_while_acks_flow` (tests/run.rs).
                        let room = tokio::select! {
                            biased;
                            _ = raised(&mut cancel) => return Ok(()),
                            _ = raised(&mut stop) => None,
                            room = sender.reserve() => match room {
                                Ok(room) => Some(room),
                                Err(_) => return Ok(()), // the next task is gone: cancelled
                            },
                        };
                        match room {
                            None => true,
                            Some(room) => {
                                let began = Instant::now();
                                tokio::select! {
                                    biased;
                                    _ = raised(&mut cancel) => return Ok(()),
                                    _ = raised(&mut stop) => true,
                                    read = node.source.read(batch_size) => {
                                        let records = read.map_err(fail)?;
                                        // A batch the next task never takes was never tracked, so
                                        // never acked: a restart reads it again.
                                        if !records.is_empty() {
                                            let took = began.elapsed();
                                            room.send(Read { records, took });
                                        }
                                        false
                                    }
                                }
                            }
                        }
                    };
                    if stopped {
                        // Stop reading; closing our output lets the rest drain.
                        feed = None;
                    }
                }
                node.source.teardown().await.map_err(fail)
            }
            .instrument(span),
        );
    }

    // Destinations, each running its processors before writing.
    for (index, (mut node, mut rx)) in destinations.into_iter().zip(dest_rxs).enumerate() {
        let done_tx = done_tx.clone();
        let node_dlq = dlq.clone();
        let refused_dlq = dlq.clone();
        let ackers = ackers.clone();
        let opened = opened.clone();
        let mut cancel = cancel.clone();
        let counted: Option<ConnectorMetrics> = metrics
            .as_ref()
            .map(|m| m.connector(&node.id, "destination"));
        let timed = metrics.clone();
        let span = node_span("destination", &node.id);
        let inspect = inspectors.clone();
        tasks.spawn(
            async move {
                let name = format!("destination {}", node.id);
                let fail = |source| EngineError::Plugin {
                    node: name.clone(),
                    source,
                };
                node.destination.open().await.map_err(fail)?;
                opened.one();
                let mut chain = Chain::new(
                    std::mem::take(&mut node.processors),
                    Some(index),
                    done_tx.clone(),
                    node_dlq,
                    ackers.clone(),
                )
                .staged(Stage::Destination {
                    connector: node.id.clone(),
                })
                .timed(timed.as_ref())
                .inspected(inspect.as_ref());
                // Batches submitted to the destination and not yet written, oldest first
                // (at most `SUBMITTED`): one is written while the next is prepared.
                let mut submitted: VecDeque<Submitted> = VecDeque::new();
                let mut input_open = true;
                loop {
                    if !input_open && submitted.is_empty() {
                        break;
                    }
                    // Cancel-safety: `recv` takes a batch only when it completes, a receipt is
                    // polled in place and taken off the queue only when it completed, and
                    // `gone` is cancel-safe (the destination trait's contract). The oldest
                    // receipt goes before new input, so written batches are reported as soon
                    // as they are.
                    let event = tokio::select! {
                        biased;
                        _ = raised(&mut cancel) => return Ok(()),
                        refused = oldest(&mut submitted), if !submitted.is_empty() => {
                            Step::Written(refused)
                        }
                        batch = rx.recv(), if input_open && submitted.len() < SUBMITTED => {
                            match batch {
                                Some(batch) => Step::Input(batch),
                                None => Step::Closed,
                            }
                        }
                        // An idle destination that can no longer write fails the pipeline
                        // now, not at its next write.
                        error = node.destination.gone() => return Err(fail(error)),
                    };
                    let batch = match event {
                        Step::Closed => {
                            input_open = false;
                            continue;
                        }
                        Step::Input(batch) => batch,
                        Step::Written(refused) => {
                            let done = submitted.pop_front().expect("a receipt completed");
                            let refused = refused.map_err(fail)?;
                            if let Some(counted) = &counted {
                                // Counted as written: the records the destination took.
                                match (&done.sizes, refused.is_empty()) {
                                    // What the source measured, when nothing changed the
                                    // records.
                                    (Some(sizes), true) if done.unchanged => {
                                        counted.observe_sized(sizes, done.began)
                                    }
                                    (_, true) => counted.observe(&done.records, done.began),
                                    (_, false) => {
                                        let written: Vec<Record> = done
                                            .records
                                            .iter()
                                            .enumerate()
                                            .filter(|(i, _)| !refused.iter().any(|(r, _)| r == i))
                                            .map(|(_, r)| r.clone())
                                            .collect();
                                        counted.observe(&written, done.began);
                                    }
                                }
                            }
                            // Records the destination refused go to the DLQ (then they count
                            // as handled); without one that takes them, the pipeline stops.
                            if let Some((first, first_error)) = refused.first() {
                                let records = &done.records;
                                let refusal = |index: usize, message: String| EngineError::Plugin {
                                    node: name.clone(),
                                    source: PluginError::Other(format!(
                                        "record at position {:?}: {message}",
                                        String::from_utf8_lossy(&records[index].position.0)
                                    )),
                                };
                                let Some(dlq) = &refused_dlq else {
                                    return Err(refusal(*first, first_error.clone()));
                                };
                                let nacks = refused
                                    .iter()
                                    .map(|(index, error)| Nack {
                                        record: &records[*index],
                                        reason: error.clone(),
                                        node: name.clone(),
                                        origin: Origin {
                                            stage: Stage::Destination {
                                                connector: node.id.clone(),
                                            },
                                            processor: None,
                                            index: chain.nodes.len(),
                                        },
                                    })
                                    .collect();
                                let nacked = dlq.lock().await.nack_all(nacks).await;
                                nacked.map_err(|(at, e)| refusal(refused[at].0, e.to_string()))?;
                            }
                            // Reliability tests crash here: written, not yet reported (so never
                            // acked).
                            fail::fail_point!(
                                "engine::destination::after_write_before_ack",
                                |_| { crash("engine::destination::after_write_before_ack") }
                            );
                            let written = Done {
                                source: done.source,
                                tickets: Arc::try_unwrap(done.tickets)
                                    .unwrap_or_else(|shared| (*shared).clone()),
                                destination: Some(index),
                            };
                            if done_tx.send(written).await.is_err() {
                                return Ok(());
                            }
                            continue;
                        }
                    };
                    let unchanged = batch.start >= chain.nodes.len();
                    let (records, tickets) = if unchanged {
                        (batch.records, batch.tickets)
                    } else {
                        // Our own copy to change (no copy when we are the only destination).
                        let mut records = Arc::try_unwrap(batch.records)
                            .unwrap_or_else(|shared| (*shared).clone());
                        let mut tickets = Arc::try_unwrap(batch.tickets)
                            .unwrap_or_else(|shared| (*shared).clone());
                        if !chain
                            .apply(batch.source, &mut records, &mut tickets, batch.start)
                            .await?
                        {
                            return Ok(());
                        }
                        (Arc::new(records), Arc::new(tickets))
                    };
                    if records.is_empty() {
                        continue;
                    }
                    if let Some(inspect) = &inspect {
                        inspect.send(&node.id, Side::Connector, &records);
                    }
                    // A write dropped by a cancel is never reported as written, so none of its
                    // records is acked: a restart sends them again.
                    let began = Instant::now();
                    let receipt = tokio::select! {
                        biased;
                        _ = raised(&mut cancel) => return Ok(()),
                        receipt = node.destination.submit(&records) => receipt.map_err(fail)?,
                    };
                    submitted.push_back(Submitted {
                        receipt,
                        source: batch.source,
                        records,
                        tickets,
                        sizes: batch.sizes,
                        unchanged,
                        began,
                    });
                }
                node.destination.teardown().await.map_err(fail)
            }
            .instrument(span),
        );
    }

    // Re-injected dead letters, from where each failed.
    if let (Some(letters), Some(index)) = (letter_box.clone(), replay_index) {
        let replay = Replay {
            letters,
            routes,
            index,
            acker: ackers[index].clone(),
            destination_count,
            processor_inputs: std::mem::take(&mut processor_inputs),
            fan_in: onward.clone(),
            destinations: dest_txs.clone(),
            done_tx: done_tx.clone(),
        };
        tasks.spawn(
            replay
                .run(stop.clone(), cancel.clone())
                .instrument(node_span("replay", "dead-letters")),
        );
        // Re-injected letters have no source position: they are not acked to a source.
        let (ack_tx, _) = mpsc::unbounded_channel::<Position>();
        ack_txs.push(ack_tx);
    }
    drop(processor_inputs);
    drop(onward);
    drop(dest_txs);

    // The fan-in, when the pipeline's processors are not all built in: one task runs them
    // and the fan-out for every feeder.
    if let Some(mut batch_rx) = fan_in {
        let mut cancel = cancel.clone();
        let fanout = fanout.clone();
        let span = node_span("processors", "pipeline");
        tasks.spawn(
            async move {
                loop {
                    // Cancel-safety: the raced futures are a flag wait, which takes
                    // nothing, and `recv`, which takes a batch only when it completes; a
                    // dropped `recv` leaves every batch in the channel (and a cancel acks
                    // none of them: a restart reads them again). Test:
                    // `a_destination_error_also_stops_the_fan_in_task`.
                    let batch = tokio::select! {
                        biased;
                        _ = raised(&mut cancel) => return Ok(()),
                        batch = batch_rx.recv() => match batch {
                            Some(batch) => batch,
                            None => return Ok(()), // every source stopped: close the outputs
                        },
                    };
                    if !fanout.forward(batch).await? {
                        return Ok(());
                    }
                }
            }
            .instrument(span),
        );
    }
    // The feeders hold the fan-out now: when the last one ends, the destinations' channels
    // close and they drain.
    drop(fanout);
    drop(done_tx);

    // The acker: persist released positions off the runtime, then tell the source.
    //
    // A save (a RocksDB put with fsync, in production) runs on a blocking thread, never on
    // a runtime worker. One save is in flight at a time; positions released meanwhile are
    // kept per source and only the newest is saved next (saves that arrive together are
    // batched). Saves start at most once per `position_save_interval` while the pipeline
    // runs; once every report is in (a stop), at once. invariant: a position is persisted
    // before its source is told (2).
    {
        let interval = options.position_save_interval;
        let mut cancel = cancel.clone();
        let saved_count = metrics.as_ref().map(PipelineMetrics::positions_saved);
        let saved_at = metrics.as_ref().map(PipelineMetrics::position_saved_at);
        let timer = metrics.as_ref().map(PipelineMetrics::duration);
        let pending = metrics.as_ref().map(PipelineMetrics::acks_pending);
        let span = node_span("acker", "pipeline");
        tasks.spawn(async move {
            let mut unsaved: Vec<Option<Position>> = vec![None; source_ids.len()];
            let mut saving: Option<tokio::task::JoinHandle<Saved>> = None;
            // Round-robin over sources, so a busy one cannot starve another's saves.
            let mut next_source = 0;
            let mut reports_closed = false;
            // When the last save started.
            let mut last_save: Option<tokio::time::Instant> = None;
            loop {
                // When the next save may start, while released positions wait for it.
                let mut save_at = None;
                if saving.is_none() {
                    let turn = last_save
                        .filter(|_| !reports_closed)
                        .map(|at| at + interval);
                    let count = unsaved.len();
                    let pending = (0..count)
                        .map(|k| (next_source + k) % count)
                        .find(|index| unsaved[*index].is_some());
                    match pending {
                        // Not its turn yet: released positions gather for one save.
                        Some(_) if turn.is_some_and(|at| at > tokio::time::Instant::now()) => {
                            save_at = turn;
                        }
                        Some(index) => {
                            last_save = Some(tokio::time::Instant::now());
                            next_source = (index + 1) % count;
                            let position = unsaved[index].take().expect("found above");
                            let positions = positions.clone();
                            let connector = source_ids[index].clone();
                            let letters = letter_box.clone().filter(|_| Some(index) == replay_index);
                            saving = Some(tokio::task::spawn_blocking(move || {
                                // Reliability tests crash here (every destination has the
                                // records, the position is not saved yet), or delay the
                                // save to hold this window open (`sleep(ms)`).
                                fail::fail_point!("engine::acker::after_release_before_persist", |_| {
                                    crash("engine::acker::after_release_before_persist")
                                });
                                // A re-injected letter's "position" is its number: every
                                // destination has the letters up to it, so they go.
                                let result = match letters {
                                    Some(letters) => letters.delivered(letter_number(&position)),
                                    None => positions.save(&connector, &position),
                                };
                                Saved {
                                    source: index,
                                    position,
                                    result,
                                }
                            }));
                        }
                        // Every destination is done and every position saved and told:
                        // dropping the ack channels tells the sources so.
                        None if reports_closed => return Ok(()),
                        None => {}
                    }
                }
                tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    // Cancel-safety: a `JoinHandle` can be polled again after a drop of
                    // this future; the handle stays in `saving`.
                    saved = async { saving.as_mut().expect("checked").await }, if saving.is_some() => {
                        saving = None;
                        let saved = saved.map_err(|e| EngineError::Task(e.to_string()))?;
                        saved.result.map_err(|reason| EngineError::Positions {
                            connector: source_ids[saved.source].clone(),
                            reason,
                        })?;
                        if let Some(counter) = &saved_count {
                            counter.inc();
                        }
                        if let Some(saved_at) = &saved_at {
                            saved_at.set(unix_seconds());
                        }
                        // Reliability tests crash here: the position is saved, the source
                        // not told yet (a source that drops upstream data on ack must still
                        // have it).
                        fail::fail_point!("engine::acker::after_persist_before_source_ack", |_| {
                            crash("engine::acker::after_persist_before_source_ack")
                        });
                        // The source may already be gone (cancelled); nothing to tell then.
                        let _ = ack_txs[saved.source].send(saved.position);
                    }
                    // Cancel-safety: `recv` takes a report only when it completes.
                    done = done_rx.recv(), if !reports_closed => match done {
                        Some(done) => {
                            if let Some(position) = release(&ackers, &done, destination_count, timer.as_ref())? {
                                unsaved[done.source] = Some(position);
                            }
                            if let Some(pending) = &pending {
                                let in_flight: usize = ackers
                                    .iter()
                                    .map(|a| a.lock().expect("acker lock").in_flight())
                                    .sum();
                                pending.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
                            }
                        }
                        None => reports_closed = true,
                    },
                    // Cancel-safety: a sleep takes nothing; the next turn is worked out anew.
                    _ = tokio::time::sleep_until(save_at.unwrap_or_else(tokio::time::Instant::now)), if save_at.is_some() => {}
                }
            }
        }.instrument(span));
    }

    // Wait for every node: the first error cancels everything; a stop drains.
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let error = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            Err(join) => EngineError::Task(join.to_string()),
        };
        if first_error.is_none() {
            first_error = Some(error);
            let _ = cancel_tx.send(true);
        }
    }
    if let Some(dlq) = dlq {
        if let Err(source) = dlq.lock().await.teardown().await {
            first_error.get_or_insert(EngineError::Plugin {
                node: "dead-letter queue".into(),
                source,
            });
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A source's processors, in a task of their own: between the source and the pipeline's
/// processors.
async fn source_processors(
    mut chain: Chain,
    mut input: mpsc::Receiver<Batch>,
    output: Onward,
    mut cancel: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    loop {
        // Cancel-safety: `recv` takes a batch only when it completes.
        let mut batch = tokio::select! {
            biased;
            _ = raised(&mut cancel) => return Ok(()),
            batch = input.recv() => match batch {
                Some(batch) => batch,
                None => return Ok(()), // the source stopped: close our output
            },
        };
        batch.sizes = None; // processors may change the records
        if !chain.apply_batch(&mut batch).await? {
            return Ok(());
        }
        batch.start = 0; // the pipeline's processors from their first
        if !batch.records.is_empty() && !output.send(batch).await? {
            return Ok(());
        }
    }
}

/// A batch a source read, on its way to the task that finishes it ([`Finish`]).
struct Read {
    records: Vec<Record>,
    /// How long the read took (the source's metrics time a batch from the read's start to
    /// the end of its finishing, leaving out its wait between the tasks).
    took: std::time::Duration,
}

/// What follows each read of a source, in a task beside its reads: the source's detached
/// stage (`Source::detach_stage`), the engine's metadata (`stamp`), the source's metrics,
/// tracking every record with the source's acker (before any destination can see it), and
/// sending the batch on. Batches are finished one at a time, in the order read.
struct Finish {
    stage: Option<Box<dyn culvert_plugins::ReadStage>>,
    id: String,
    index: usize,
    acker: Arc<Mutex<Acker>>,
    destination_count: usize,
    counted: Option<ConnectorMetrics>,
    timed_reads: bool,
    inspect: Option<Arc<Inspectors>>,
}

impl Finish {
    /// Finish every batch `input` brings, until it closes (the source stopped reading: our
    /// output closes too) or the pipeline is cancelled.
    async fn run(
        mut self,
        mut input: mpsc::Receiver<Read>,
        output: Onward,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        loop {
            // Cancel-safety: `recv` takes a batch only when it completes.
            let Read { mut records, took } = tokio::select! {
                biased;
                _ = raised(&mut cancel) => return Ok(()),
                read = input.recv() => match read {
                    Some(read) => read,
                    None => return Ok(()),
                },
            };
            let began = Instant::now()
                .checked_sub(took)
                .unwrap_or_else(Instant::now);
            if let Some(stage) = &mut self.stage {
                stage
                    .apply(&mut records)
                    .map_err(|source| EngineError::Plugin {
                        node: format!("source {}", self.id),
                        source,
                    })?;
            }
            if records.is_empty() {
                continue;
            }
            stamp(&mut records, &self.id);
            if let Some(inspect) = &self.inspect {
                inspect.send(&self.id, Side::Connector, &records);
            }
            let sizes = self.counted.as_ref().map(|counted| {
                let sizes: Arc<[u64]> = records.iter().map(crate::metrics::record_size).collect();
                counted.observe_sized(&sizes, began);
                sizes
            });
            let first = {
                let mut acker = self.acker.lock().expect("acker lock");
                // Non-empty (checked above). Only the batch's last position is kept: it
                // acknowledges every record before it.
                let last = records.last().expect("a batch").position.clone();
                let (first, _) = acker.track_run(records.len(), last, self.destination_count)?;
                if self.timed_reads {
                    acker.mark_read(Instant::now());
                }
                first
            };
            let tickets = Tickets::Run {
                first,
                count: records.len(),
            };
            let batch = Batch {
                source: self.index,
                tickets,
                records,
                sizes,
                start: 0,
            };
            if !output.send(batch).await? {
                return Ok(()); // downstream is gone: cancelled
            }
        }
    }
}

/// The pipeline's processors and the fan-out to every destination.
struct Fanout {
    /// The pipeline's processors (locked by one feeder at a time: they see one batch after
    /// another, and each source's in its order).
    chain: tokio::sync::Mutex<Chain>,
    /// Each destination's input.
    destinations: Vec<mpsc::Sender<Shared>>,
}

impl Fanout {
    /// Run `batch` through the pipeline's processors (from `batch.start`) and send what
    /// they keep, shared, to every destination. `Ok(false)`: downstream is gone (cancelled).
    async fn forward(&self, mut batch: Batch) -> Result<bool, EngineError> {
        let processors = {
            let mut chain = self.chain.lock().await;
            if !chain.apply_batch(&mut batch).await? {
                return Ok(false);
            }
            chain.nodes.len()
        };
        if batch.records.is_empty() {
            return Ok(true);
        }
        if batch.start < processors {
            batch.sizes = None; // processors may have changed the records
        }
        let records = Arc::new(batch.records);
        let tickets = Arc::new(batch.tickets);
        for tx in &self.destinations {
            let copy = Shared {
                source: batch.source,
                tickets: tickets.clone(),
                records: records.clone(),
                sizes: batch.sizes.clone(),
                start: 0,
            };
            if tx.send(copy).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Where a batch goes after its source (and the source's processors).
#[derive(Clone)]
enum Onward {
    /// The fan-in task's channel.
    Task(mpsc::Sender<Batch>),
    /// The fan-out, run by the sender.
    Fanout(Arc<Fanout>),
}

impl Onward {
    /// Send `batch` on; `Ok(false)`: downstream is gone (cancelled).
    async fn send(&self, batch: Batch) -> Result<bool, EngineError> {
        match self {
            Self::Task(tx) => Ok(tx.send(batch).await.is_ok()),
            Self::Fanout(fanout) => fanout.forward(batch).await,
        }
    }
}

/// The name the re-injected dead letters go by as a source (in errors and logs).
const REPLAY_NAME: &str = "dead letters";

/// How often a running pipeline looks for dead letters queued for re-injection.
const REPLAY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Most letters re-injected in one go.
const REPLAY_BATCH: usize = 256;

/// A re-injected letter's number, from the position it is tracked under.
fn letter_number(position: &Position) -> u64 {
    position
        .0
        .as_slice()
        .try_into()
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// The graph's connectors and processors by id, to find where a dead letter resumes.
struct Routes {
    /// Each source's id and its processors' ids.
    sources: Vec<(String, Vec<String>)>,
    /// The pipeline's processors' ids.
    pipeline: Vec<String>,
    /// Each destination's id and its processors' ids.
    destinations: Vec<(String, Vec<String>)>,
}

/// Where a re-injected letter goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A source's processors (source index, processor index).
    Source(usize, usize),
    /// The fan-in, into the pipeline's processors from this index.
    FanIn(usize),
    /// One destination's processors from this index (then its write), and no other
    /// destination.
    Destination(usize, usize),
}

impl Routes {
    /// Where `letter` resumes: at the processor that failed it, in the same place in the
    /// pipeline. If that processor is gone (a user removed it), at the one now in its
    /// place; if the failing source is gone or has no processors left, at the fan-in; if
    /// the destination that failed it is gone, at the fan-out (every destination).
    fn entry(&self, letter: &DeadLetter) -> Entry {
        let place = |chain: &[String]| {
            letter
                .processor
                .as_ref()
                .and_then(|p| chain.iter().position(|id| id == p))
                .unwrap_or(letter.index)
                .min(chain.len())
        };
        match &letter.stage {
            Stage::Source { connector } => {
                match self.sources.iter().position(|(id, _)| id == connector) {
                    Some(s) if place(&self.sources[s].1) < self.sources[s].1.len() => {
                        Entry::Source(s, place(&self.sources[s].1))
                    }
                    _ => Entry::FanIn(0),
                }
            }
            Stage::Pipeline => Entry::FanIn(place(&self.pipeline)),
            Stage::Destination { connector } => {
                match self.destinations.iter().position(|(id, _)| id == connector) {
                    Some(d) => Entry::Destination(d, place(&self.destinations[d].1)),
                    None => Entry::FanIn(self.pipeline.len()),
                }
            }
        }
    }
}

/// The task that re-injects queued dead letters into a running pipeline.
struct Replay {
    letters: Arc<dyn LetterBox>,
    routes: Routes,
    /// Its index as a source.
    index: usize,
    acker: Arc<Mutex<Acker>>,
    destination_count: usize,
    /// Each source's processors' input, for sources with processors.
    processor_inputs: Vec<Option<mpsc::Sender<Batch>>>,
    /// The pipeline's processors.
    fan_in: Onward,
    destinations: Vec<mpsc::Sender<Shared>>,
    done_tx: mpsc::Sender<Done>,
}

impl Replay {
    /// Send queued letters in (each once per run: the acker removes them when every
    /// destination has them; after a crash they are still queued and come again), until
    /// a stop or a cancel.
    async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        let mut after = 0;
        loop {
            if *stop.borrow() || *cancel.borrow() {
                return Ok(());
            }
            let letters = self.letters.clone();
            let queued = tokio::task::spawn_blocking(move || letters.queued(after, REPLAY_BATCH))
                .await
                .map_err(|e| EngineError::Task(e.to_string()))?
                .map_err(|reason| EngineError::Positions {
                    connector: REPLAY_NAME.to_owned(),
                    reason,
                })?;
            if queued.is_empty() {
                // Nothing queued: look again after a while. Cancel-safety: the raced
                // futures are a flag wait and a timer, which take nothing; the letters are
                // read only above, outside the select (the engine test
                // `dead_letters_are_kept_and_reinjected_once_from_where_they_failed` stops
                // a pipeline whose replay waits here).
                tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    _ = raised(&mut stop) => return Ok(()),
                    _ = tokio::time::sleep(REPLAY_POLL) => continue,
                }
            }
            for (number, letter) in queued {
                after = number;
                if !self.send(number, letter).await? {
                    return Ok(()); // downstream is gone: cancelled
                }
            }
        }
    }

    /// Track one letter and send it where it resumes; `Ok(false)` if that node is gone.
    async fn send(&self, number: u64, letter: DeadLetter) -> Result<bool, EngineError> {
        let entry = self.routes.entry(&letter);
        let position = Position(number.to_be_bytes().to_vec());
        let (first, _) = self
            .acker
            .lock()
            .expect("acker lock")
            .track(position, self.destination_count)?;
        let tickets = Tickets::Run { first, count: 1 };
        let records = vec![letter.record];
        let batch = |start| Batch {
            source: self.index,
            tickets: tickets.clone(),
            records: records.clone(),
            sizes: None,
            start,
        };
        tracing::info!(letter = number, ?entry, "re-injecting a dead letter");
        match entry {
            Entry::Source(source, start) => {
                let Some(input) = &self.processor_inputs[source] else {
                    return self.fan_in.send(batch(0)).await;
                };
                Ok(input.send(batch(start)).await.is_ok())
            }
            Entry::FanIn(start) => self.fan_in.send(batch(start)).await,
            Entry::Destination(destination, start) => {
                // The other destinations wrote it before it failed here.
                for other in (0..self.destination_count).filter(|d| *d != destination) {
                    let done = Done {
                        source: self.index,
                        tickets: tickets.clone(),
                        destination: Some(other),
                    };
                    if self.done_tx.send(done).await.is_err() {
                        return Ok(false);
                    }
                }
                let shared = Shared {
                    source: self.index,
                    tickets: Arc::new(tickets.clone()),
                    records: Arc::new(records),
                    sizes: None,
                    start,
                };
                Ok(self.destinations[destination].send(shared).await.is_ok())
            }
        }
    }
}
