//! Prometheus metrics (served at `/metrics`, listed in `docs/metrics.md`).
//!
//! [`Metrics`] is the one registry of a server: created by the binary, handed to the
//! supervisor (which resolves a [`PipelineMetrics`] per pipeline run) and read by the HTTP
//! API through [`Metrics::render`]. Names and labels follow Conduit's
//! (`pkg/foundation/metrics/measure`) where they overlap; ours start with `culvert_`.
//!
//! Hot-path rule: label sets are resolved once, when a pipeline starts; the engine's nodes
//! hold the resulting handles and update them once per batch (a few atomic adds), never a
//! label lookup or a lock per record. Conduit's per-record byte histograms are kept as
//! [`BytesHistogram`]: its buckets are powers of two, so a record's bucket is a shift, and a
//! batch is folded locally before it touches the shared atomics.
//!
//! This module knows nothing of HTTP: [`Metrics::render`] returns the text document.

use culvert_domain::opencdc::{Data, Record};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge as GaugeMetric;

/// The `Content-Type` of [`Metrics::render`]'s document (OpenMetrics text, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Conduit's buckets for durations, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Conduit's buckets for record sizes: 1 KiB, 2 KiB, ... 2 MiB.
pub const BYTES_BUCKETS: usize = 12;

/// Labels of a connector's metrics (Conduit's `conduit_connector_*`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The connector's plugin (`builtin:file`).
    pub plugin: String,
    /// `source` or `destination`.
    #[prometheus(flatten)]
    pub kind: TypeLabel,
    /// The connector's id.
    pub component_id: String,
}

/// The `type` label (a keyword in Rust, so a struct of its own).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TypeLabel(pub String);

impl EncodeLabelSet for TypeLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel as _;
        ("type", self.0.as_str()).encode(encoder.encode_label())
    }
}

/// Labels of a processor's metrics (Conduit's `conduit_processor_execution_duration_seconds`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessorLabels {
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The processor's plugin.
    pub processor: String,
    /// The processor's id.
    pub component_id: String,
}

/// Labels of a pipeline's DLQ metrics (Conduit's `conduit_dlq_*`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DlqLabels {
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The DLQ's plugin.
    pub plugin: String,
}

/// One label set of one value (`status`, `type`, `pipeline_name`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The status.
    pub status: String,
}

/// The `pipeline_name` label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabel {
    /// The pipeline's name.
    pub pipeline_name: String,
}

/// The `version` label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// The server's version, e.g. `v0.1.0`.
    pub version: String,
}

/// The `component_id` label alone (a connector's or processor's id).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    /// The entity's id.
    pub component_id: String,
}

/// The `state` label alone (`in_use`, `free`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The state of the memory counted.
    pub state: String,
}

/// The `part` label alone (what a memory figure counts).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabel {
    /// The part (`memtables`, `table_readers`, `block_cache`).
    pub part: String,
}

/// The `type` label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The type (a connector's side, a processor's plugin).
    #[prometheus(flatten)]
    pub kind: TypeLabel,
}

/// Every metric of a server, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `conduit_info{version}`: 1, labelled with the server's version.
    pub info: Family<VersionLabel, Gauge>,
    /// `conduit_pipelines{status}`: pipelines by status (set from the read model).
    pub pipelines: Family<StatusLabel, Gauge>,
    /// `conduit_pipeline_status{pipeline_name}`: a pipeline's api.v1 status number.
    pub pipeline_status: Family<PipelineLabel, Gauge>,
    /// `pipeline_recovering_count{pipeline_name}`: times a pipeline began recovering.
    pub pipeline_recovering: Family<PipelineLabel, Counter>,
    /// `conduit_pipeline_execution_duration_seconds{pipeline_name}`: from a batch's read
    /// until every record of it is done (before its position is saved).
    pub pipeline_duration: Family<PipelineLabel, Histogram, fn() -> Histogram>,
    /// `conduit_connectors{type}`: connectors by type.
    pub connectors: Family<KindLabel, Gauge>,
    /// `conduit_processors{type}`: processors by plugin.
    pub processors: Family<KindLabel, Gauge>,
    /// `conduit_connector_bytes{pipeline_name,plugin,type,component_id}`: record sizes.
    pub connector_bytes: Family<ConnectorLabels, BytesHistogram>,
    /// `conduit_connector_execution_duration_seconds{...}`: time per read or write call.
    pub connector_duration: Family<ConnectorLabels, Histogram, fn() -> Histogram>,
    /// `conduit_processor_execution_duration_seconds{pipeline_name,processor,component_id}`.
    pub processor_duration: Family<ProcessorLabels, Histogram, fn() -> Histogram>,
    /// `conduit_dlq_bytes{pipeline_name,plugin}`: sizes of records sent to the DLQ.
    pub dlq_bytes: Family<DlqLabels, BytesHistogram>,
    /// `conduit_dlq_execution_duration_seconds{pipeline_name,plugin}`: time of one DLQ write.
    pub dlq_duration: Family<DlqLabels, Histogram, fn() -> Histogram>,
    /// `culvert_connector_plugins`: connector plugins available.
    pub connector_plugins: Gauge,
    /// `culvert_processor_plugins`: processor plugins available.
    pub processor_plugins: Gauge,
    /// `culvert_event_log_last_seq`: the event log's head.
    pub event_log_last_seq: Gauge,
    /// `culvert_projection_lag_events`: the log's head minus the read model's sequence.
    pub projection_lag: Gauge,
    /// `culvert_event_log_append_duration_seconds`: time of one append (a batch).
    pub append_duration: Histogram,
    /// `culvert_positions_saved_total{pipeline_name}`: source positions persisted.
    pub positions_saved: Family<PipelineLabel, Counter>,
    /// `culvert_position_saved_timestamp_seconds{pipeline_name}`: when a position was last
    /// persisted (Unix seconds); its age is how long the pipeline has acked nothing.
    pub position_saved_at: Family<PipelineLabel, Gauge<f64, AtomicU64>>,
    /// `culvert_acks_pending{pipeline_name}`: records read and not yet acked.
    pub acks_pending: Family<PipelineLabel, Gauge>,
    /// `culvert_store_memory_bytes{part}`: what the data store (RocksDB) holds in memory,
    /// by part; set at each scrape.
    pub store_memory: Family<PartLabel, Gauge>,
    /// `culvert_allocator_committed_bytes`: memory the allocator has committed (in use or
    /// cached for reuse); set at each scrape.
    pub allocator_committed: Gauge,
    /// `culvert_c_heap_bytes{state}`: the C allocator's heap (`in_use`, `free` but kept),
    /// which RocksDB allocates from; set at each scrape.
    pub c_heap: Family<StateLabel, Gauge>,
    /// `conduit_inspector_sessions{component_id}`: open stream-inspector sessions.
    pub inspector_sessions: Family<ComponentLabel, Gauge>,
    /// `conduit_inspector_dropped_records_total{component_id}`: records an inspector
    /// session lost because its buffer was full.
    pub inspector_dropped: Family<ComponentLabel, Counter>,
    /// The label sets each pipeline's runs created in the families labelled by more than
    /// the pipeline's name, so [`Metrics::retain`] can remove them when it is deleted.
    series: Mutex<HashMap<String, PipelineSeries>>,
    /// The entities with inspector series (see [`Metrics::retain`]).
    pub(crate) inspected: Arc<Mutex<HashSet<String>>>,
}

/// The multi-label series one pipeline created (see [`Metrics::retain`]).
#[derive(Debug, Default)]
struct PipelineSeries {
    connectors: HashSet<ConnectorLabels>,
    processors: HashSet<ProcessorLabels>,
    dlqs: HashSet<DlqLabels>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered, with the process collector.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let info: Family<VersionLabel, Gauge> = Family::default();
        registry.register(
            "conduit_info",
            "Information about the server (its version in the label; the value is 1).",
            info.clone(),
        );
        info.get_or_create(&VersionLabel {
            version: format!("v{}", env!("CARGO_PKG_VERSION")),
        })
        .set(1);
        let pipelines = Family::default();
        registry.register(
            "conduit_pipelines",
            "Number of pipelines by status.",
            pipelines.clone(),
        );
        let pipeline_status = Family::default();
        registry.register(
            "conduit_pipeline_status",
            "A pipeline's status (the number of api.v1 Pipeline.Status).",
            pipeline_status.clone(),
        );
        let pipeline_recovering = Family::default();
        registry.register(
            "pipeline_recovering_count",
            "Number of times a pipeline began recovering from an error.",
            pipeline_recovering.clone(),
        );
        let pipeline_duration =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "conduit_pipeline_execution_duration_seconds",
            "Amount of time records spend in a pipeline, from their read until every destination handled them (once per batch).",
            pipeline_duration.clone(),
        );
        let connectors = Family::default();
        registry.register(
            "conduit_connectors",
            "Number of connectors by type.",
            connectors.clone(),
        );
        let processors = Family::default();
        registry.register(
            "conduit_processors",
            "Number of processors by type.",
            processors.clone(),
        );
        let connector_bytes = Family::default();
        registry.register(
            "conduit_connector_bytes",
            "Number of bytes a connector processed by pipeline name, plugin, type (source, destination) and component ID.",
            connector_bytes.clone(),
        );
        let connector_duration =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "conduit_connector_execution_duration_seconds",
            "Amount of time spent reading or writing a batch of records per pipeline, plugin, connector type (source, destination) and component ID.",
            connector_duration.clone(),
        );
        let processor_duration =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "conduit_processor_execution_duration_seconds",
            "Amount of time spent on processing a batch of records per pipeline, processor and component ID.",
            processor_duration.clone(),
        );
        let dlq_bytes = Family::default();
        registry.register(
            "conduit_dlq_bytes",
            "Number of bytes a DLQ connector processed per pipeline and plugin.",
            dlq_bytes.clone(),
        );
        let dlq_duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            "conduit_dlq_execution_duration_seconds",
            "Amount of time spent writing a record to the dead-letter queue per pipeline and plugin.",
            dlq_duration.clone(),
        );
        let connector_plugins = Gauge::default();
        registry.register(
            "culvert_connector_plugins",
            "Number of connector plugins available.",
            connector_plugins.clone(),
        );
        let processor_plugins = Gauge::default();
        registry.register(
            "culvert_processor_plugins",
            "Number of processor plugins available.",
            processor_plugins.clone(),
        );
        let event_log_last_seq = Gauge::default();
        registry.register(
            "culvert_event_log_last_seq",
            "Sequence number of the newest event in the event log.",
            event_log_last_seq.clone(),
        );
        let projection_lag = Gauge::default();
        registry.register(
            "culvert_projection_lag_events",
            "Events in the log the read model has not folded yet.",
            projection_lag.clone(),
        );
        let append_duration = duration_histogram();
        registry.register(
            "culvert_event_log_append_duration_seconds",
            "Time to append one batch of events to the event log (durably).",
            append_duration.clone(),
        );
        let positions_saved = Family::default();
        registry.register(
            "culvert_positions_saved",
            "Source positions persisted, per pipeline.",
            positions_saved.clone(),
        );
        let position_saved_at = Family::default();
        registry.register(
            "culvert_position_saved_timestamp_seconds",
            "When a source position of the pipeline was last persisted (Unix time, seconds).",
            position_saved_at.clone(),
        );
        let acks_pending = Family::default();
        registry.register(
            "culvert_acks_pending",
            "Records read from sources and not yet acked, per pipeline.",
            acks_pending.clone(),
        );
        let inspector_sessions = Family::default();
        registry.register(
            "conduit_inspector_sessions",
            "Open stream-inspector sessions, per connector or processor.",
            inspector_sessions.clone(),
        );
        let inspector_dropped = Family::default();
        registry.register(
            "conduit_inspector_dropped_records",
            "Records dropped for an inspector session whose buffer was full.",
            inspector_dropped.clone(),
        );
        let store_memory = Family::default();
        registry.register(
            "culvert_store_memory_bytes",
            "Memory the data store (RocksDB) holds, by part: memtables, table_readers, block_cache.",
            store_memory.clone(),
        );
        let allocator_committed = Gauge::default();
        registry.register(
            "culvert_allocator_committed_bytes",
            "Memory the allocator has committed (in use or kept for reuse).",
            allocator_committed.clone(),
        );
        let c_heap = Family::default();
        registry.register(
            "culvert_c_heap_bytes",
            "The C allocator's heap (RocksDB allocates from it): in_use, and free but kept by its arenas.",
            c_heap.clone(),
        );
        registry.register_collector(Box::new(crate::process::ProcessCollector::new()));
        Self {
            store_memory,
            allocator_committed,
            c_heap,
            info,
            pipeline_recovering,
            pipeline_duration,
            dlq_duration,
            position_saved_at,
            inspector_sessions,
            inspector_dropped,
            registry,
            pipelines,
            pipeline_status,
            connectors,
            processors,
            connector_bytes,
            connector_duration,
            processor_duration,
            dlq_bytes,
            connector_plugins,
            processor_plugins,
            event_log_last_seq,
            projection_lag,
            append_duration,
            positions_saved,
            acks_pending,
            series: Mutex::new(HashMap::new()),
            inspected: Arc::default(),
        }
    }

    /// Remove the series of every pipeline whose name `keep_pipeline` refuses and the
    /// inspector series of every entity whose id `keep_component` refuses.
    ///
    /// Called whenever the control plane changes: a deleted (or renamed) pipeline's series
    /// would otherwise stay in the document, and in memory, for the server's life — a
    /// server that creates and deletes pipelines all day would grow without bound. A run
    /// still holding handles of removed series keeps counting into them unseen; a pipeline
    /// can only be deleted or renamed while it is stopped, so none does.
    pub fn retain(
        &self,
        keep_pipeline: impl Fn(&str) -> bool,
        keep_component: impl Fn(&str) -> bool,
    ) {
        let gone: Vec<(String, PipelineSeries)> = {
            let mut series = self.series.lock().expect("metrics series lock");
            let names: Vec<String> = series
                .keys()
                .filter(|name| !keep_pipeline(name))
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|name| series.remove_entry(&name))
                .collect()
        };
        for (name, series) in gone {
            for labels in &series.connectors {
                self.connector_bytes.remove(labels);
                self.connector_duration.remove(labels);
            }
            for labels in &series.processors {
                self.processor_duration.remove(labels);
            }
            for labels in &series.dlqs {
                self.dlq_bytes.remove(labels);
                self.dlq_duration.remove(labels);
            }
            let label = PipelineLabel {
                pipeline_name: name,
            };
            self.pipeline_recovering.remove(&label);
            self.pipeline_duration.remove(&label);
            self.positions_saved.remove(&label);
            self.position_saved_at.remove(&label);
            self.acks_pending.remove(&label);
            self.pipeline_status.remove(&label);
        }
        let stale: Vec<String> = {
            let mut inspected = self.inspected.lock().expect("metrics series lock");
            let stale: Vec<String> = inspected
                .iter()
                .filter(|id| !keep_component(id))
                .cloned()
                .collect();
            for id in &stale {
                inspected.remove(id);
            }
            stale
        };
        for component_id in stale {
            let label = ComponentLabel { component_id };
            self.inspector_sessions.remove(&label);
            self.inspector_dropped.remove(&label);
        }
    }

    /// The pipelines with series noted, by name.
    #[cfg(test)]
    fn pipelines_with_series(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .series
            .lock()
            .expect("metrics series lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Record that `pipeline_name` has series labelled by its name.
    fn note_pipeline(&self, pipeline_name: &str) {
        let mut series = self.series.lock().expect("metrics series lock");
        if !series.contains_key(pipeline_name) {
            series.insert(pipeline_name.to_owned(), PipelineSeries::default());
        }
    }

    /// Record that `pipeline_name` created `labels` in `pick`'s set.
    fn note<L>(
        &self,
        pipeline_name: &str,
        labels: &L,
        pick: fn(&mut PipelineSeries) -> &mut HashSet<L>,
    ) where
        L: Clone + Eq + std::hash::Hash,
    {
        let mut series = self.series.lock().expect("metrics series lock");
        let entry = series.entry(pipeline_name.to_owned()).or_default();
        let set = pick(entry);
        if !set.contains(labels) {
            set.insert(labels.clone());
        }
    }

    /// The document Prometheus scrapes (OpenMetrics text, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The handles of one run of the pipeline `pipeline_name`.
    pub fn pipeline(self: &Arc<Self>, pipeline_name: &str) -> PipelineMetrics {
        PipelineMetrics {
            metrics: self.clone(),
            pipeline_name: pipeline_name.to_owned(),
            plugins: HashMap::new(),
            dlq_plugin: None,
        }
    }
}

/// What the engine needs to resolve one pipeline run's handles: the pipeline's name and
/// each node's plugin.
#[derive(Clone, Debug)]
pub struct PipelineMetrics {
    metrics: Arc<Metrics>,
    pipeline_name: String,
    plugins: HashMap<String, String>,
    dlq_plugin: Option<String>,
}

impl PipelineMetrics {
    /// Node `id` (a connector or processor) runs `plugin`.
    pub fn plugin(&mut self, id: &str, plugin: &str) {
        self.plugins.insert(id.to_owned(), plugin.to_owned());
    }

    /// The DLQ runs `plugin`.
    pub fn dlq(&mut self, plugin: &str) {
        self.dlq_plugin = Some(plugin.to_owned());
    }

    fn plugin_of(&self, id: &str) -> String {
        self.plugins.get(id).cloned().unwrap_or_default()
    }

    /// A connector's handles (`kind`: `source` or `destination`).
    pub fn connector(&self, id: &str, kind: &str) -> ConnectorMetrics {
        let labels = ConnectorLabels {
            pipeline_name: self.pipeline_name.clone(),
            plugin: self.plugin_of(id),
            kind: TypeLabel(kind.to_owned()),
            component_id: id.to_owned(),
        };
        self.metrics
            .note(&self.pipeline_name, &labels, |s| &mut s.connectors);
        ConnectorMetrics {
            bytes: self.metrics.connector_bytes.get_or_create_owned(&labels),
            duration: self.metrics.connector_duration.get_or_create_owned(&labels),
        }
    }

    /// A processor's execution-time histogram.
    pub fn processor(&self, id: &str) -> Histogram {
        let labels = ProcessorLabels {
            pipeline_name: self.pipeline_name.clone(),
            processor: self.plugin_of(id),
            component_id: id.to_owned(),
        };
        self.metrics
            .note(&self.pipeline_name, &labels, |s| &mut s.processors);
        self.metrics.processor_duration.get_or_create_owned(&labels)
    }

    /// The DLQ's byte histogram.
    pub fn dlq_bytes(&self) -> BytesHistogram {
        self.metrics
            .dlq_bytes
            .get_or_create_owned(&self.dlq_labels())
    }

    /// The DLQ's labels, noted as this pipeline's.
    fn dlq_labels(&self) -> DlqLabels {
        let labels = DlqLabels {
            pipeline_name: self.pipeline_name.clone(),
            plugin: self.dlq_plugin.clone().unwrap_or_default(),
        };
        self.metrics
            .note(&self.pipeline_name, &labels, |s| &mut s.dlqs);
        labels
    }

    /// The pipeline's positions-saved counter.
    pub fn positions_saved(&self) -> Counter {
        self.metrics
            .positions_saved
            .get_or_create_owned(&self.pipeline_label())
    }

    /// The pipeline's recovering counter.
    pub fn recovering(&self) -> Counter {
        self.metrics
            .pipeline_recovering
            .get_or_create_owned(&self.pipeline_label())
    }

    /// The pipeline's read-to-done histogram.
    pub fn duration(&self) -> Histogram {
        self.metrics
            .pipeline_duration
            .get_or_create_owned(&self.pipeline_label())
    }

    /// The DLQ's write-time histogram.
    pub fn dlq_duration(&self) -> Histogram {
        self.metrics
            .dlq_duration
            .get_or_create_owned(&self.dlq_labels())
    }

    /// The gauge holding when the pipeline last persisted a position.
    pub fn position_saved_at(&self) -> Gauge<f64, AtomicU64> {
        self.metrics
            .position_saved_at
            .get_or_create_owned(&self.pipeline_label())
    }

    /// The pipeline's pending-acks gauge.
    pub fn acks_pending(&self) -> Gauge {
        self.metrics
            .acks_pending
            .get_or_create_owned(&self.pipeline_label())
    }

    /// The pipeline's label, its name noted as having series.
    fn pipeline_label(&self) -> PipelineLabel {
        self.metrics.note_pipeline(&self.pipeline_name);
        PipelineLabel {
            pipeline_name: self.pipeline_name.clone(),
        }
    }
}

/// A connector node's handles, resolved when the pipeline starts.
#[derive(Clone, Debug)]
pub struct ConnectorMetrics {
    /// Record sizes (its count: records read or written).
    pub bytes: BytesHistogram,
    /// Time per read or write call.
    pub duration: Histogram,
}

impl ConnectorMetrics {
    /// `records` were read or written in a call that began at `began`.
    pub fn observe(&self, records: &[Record], began: Instant) {
        self.duration.observe(began.elapsed().as_secs_f64());
        self.bytes.observe_records(records);
    }

    /// Records of these `sizes` (each [`record_size`], measured already) were read or
    /// written in a call that began at `began`.
    pub fn observe_sized(&self, sizes: &[u64], began: Instant) {
        self.duration.observe(began.elapsed().as_secs_f64());
        self.bytes.observe_sizes(sizes.iter().copied());
    }
}

/// A histogram of record sizes with Conduit's buckets (1 KiB .. 2 MiB, powers of two),
/// updated a batch at a time: each record's bucket is found by a shift and counted
/// locally; the shared atomics are touched once per bucket per batch.
#[derive(Clone, Debug, Default)]
pub struct BytesHistogram(Arc<BytesInner>);

#[derive(Debug, Default)]
struct BytesInner {
    /// Non-cumulative counts; the last slot is `+Inf`.
    buckets: [AtomicU64; BYTES_BUCKETS + 1],
    count: AtomicU64,
    sum: AtomicU64,
}

impl BytesHistogram {
    /// Which bucket `size` falls in: the first bound `1024 << i` at least `size`.
    fn bucket(size: u64) -> usize {
        if size <= 1024 {
            return 0;
        }
        // ceil(log2(size / 1024)) without floats.
        let index = (64 - ((size - 1) >> 10).leading_zeros()) as usize;
        index.min(BYTES_BUCKETS)
    }

    /// Observe each record's size (as Conduit measures it, [`record_size`]).
    pub fn observe_records(&self, records: &[Record]) {
        self.observe_sizes(records.iter().map(record_size));
    }

    /// Observe each of `sizes`.
    pub fn observe_sizes(&self, sizes: impl IntoIterator<Item = u64>) {
        let mut local = [0u64; BYTES_BUCKETS + 1];
        let (mut count, mut sum) = (0u64, 0u64);
        for size in sizes {
            local[Self::bucket(size)] += 1;
            count += 1;
            sum += size;
        }
        if count == 0 {
            return;
        }
        for (slot, n) in self.0.buckets.iter().zip(local) {
            if n > 0 {
                slot.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.0.sum.fetch_add(sum, Ordering::Relaxed);
        self.0.count.fetch_add(count, Ordering::Relaxed);
    }

    /// Records observed.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for BytesHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BytesHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder takes per-bucket counts and sums them; `f64::MAX` is its `+Inf`.
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BYTES_BUCKETS + 1);
        for (i, slot) in self.0.buckets.iter().enumerate() {
            let n = slot.load(Ordering::Relaxed);
            total += n;
            let bound = if i < BYTES_BUCKETS {
                (1024u64 << i) as f64
            } else {
                f64::MAX
            };
            buckets.push((bound, n));
        }
        // The count is the buckets' total, read together, so `+Inf` == count always.
        let sum = self.0.sum.load(Ordering::Relaxed) as f64;
        encoder.encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A record's size as Conduit counts it: its key and payload (before and after); raw data
/// by its length, structured data by the length of its JSON (estimated without encoding it).
pub fn record_size(record: &Record) -> u64 {
    let data = |d: &Option<Data>| match d {
        None => 0,
        Some(Data::Raw(bytes)) => bytes.len() as u64,
        // Text already written is measured; a map is walked.
        Some(Data::Structured(data)) => match data.json_text() {
            Some(text) => text.len() as u64,
            None => object_size(data),
        },
    };
    data(&record.key) + data(&record.payload.before) + data(&record.payload.after)
}

fn object_size(map: &serde_json::Map<String, serde_json::Value>) -> u64 {
    let commas = map.len().saturating_sub(1) as u64;
    2 + commas
        + map
            .iter()
            .map(|(k, v)| k.len() as u64 + 3 + json_size(v))
            .sum::<u64>()
}

fn json_size(value: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::String(s) => s.len() as u64 + 2,
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.checked_ilog10().unwrap_or(0) as u64 + 1
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs().checked_ilog10().unwrap_or(0) as u64 + 2
            } else {
                n.to_string().len() as u64
            }
        }
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) as u64 + items.iter().map(json_size).sum::<u64>()
        }
        Value::Object(map) => object_size(map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::opencdc::Change;

    fn raw(len: usize) -> Record {
        Record {
            payload: Change {
                before: None,
                after: Some(Data::Raw(vec![b'x'; len])),
            },
            ..Record::default()
        }
    }

    #[test]
    fn buckets_are_conduits_powers_of_two() {
        assert_eq!(BytesHistogram::bucket(0), 0);
        assert_eq!(BytesHistogram::bucket(1024), 0);
        assert_eq!(BytesHistogram::bucket(1025), 1);
        assert_eq!(BytesHistogram::bucket(2048), 1);
        assert_eq!(BytesHistogram::bucket(2049), 2);
        assert_eq!(BytesHistogram::bucket(1024 << 11), 11);
        assert_eq!(BytesHistogram::bucket((1024 << 11) + 1), 12);
        assert_eq!(BytesHistogram::bucket(u64::MAX), 12);
    }

    #[test]
    fn structured_sizes_are_their_json_length() {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"id":12345,"neg":-7,"name":"abc","ok":true,"no":false,"n":null,"f":1.5,"a":[1,"x"],"o":{"k":"v"}}"#,
        )
        .unwrap();
        let exact = serde_json::to_vec(&map).unwrap().len() as u64;
        assert_eq!(object_size(&map), exact);
        let record = Record {
            key: Some(Data::Raw(b"key".to_vec())),
            payload: Change {
                before: Some(Data::Raw(vec![0; 10])),
                after: Some(Data::Structured(map.into())),
            },
            ..Record::default()
        };
        assert_eq!(record_size(&record), 3 + 10 + exact);
    }

    #[test]
    fn the_document_has_conduits_names_and_labels() {
        let metrics = Arc::new(Metrics::new());
        let mut pipeline = metrics.pipeline("demo");
        pipeline.plugin("gen", "builtin:generator");
        pipeline.plugin("file", "builtin:file");
        pipeline.plugin("tag", "field.set");
        pipeline.dlq("builtin:log");
        let source = pipeline.connector("gen", "source");
        let dest = pipeline.connector("file", "destination");
        let batch: Vec<Record> = vec![raw(10), raw(2000), raw(5_000_000)];
        source.observe(&batch, Instant::now());
        dest.observe(&batch[..2], Instant::now());
        pipeline.processor("tag").observe(0.002);
        pipeline.dlq_bytes().observe_records(&batch[..1]);
        pipeline.positions_saved().inc_by(3);
        pipeline.acks_pending().set(7);
        pipeline.recovering().inc();
        pipeline.duration().observe(0.02);
        pipeline.dlq_duration().observe(0.001);
        pipeline.position_saved_at().set(1_700_000_000.5);
        metrics
            .pipelines
            .get_or_create(&StatusLabel {
                status: "running".into(),
            })
            .set(1);
        let text = metrics.render();
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            )
        };
        has("# TYPE conduit_connector_bytes histogram");
        has(
            r#"conduit_connector_bytes_count{pipeline_name="demo",plugin="builtin:generator",type="source",component_id="gen"} 3"#,
        );
        has(
            r#"conduit_connector_bytes_sum{pipeline_name="demo",plugin="builtin:generator",type="source",component_id="gen"} 5002010.0"#,
        );
        has(
            r#"conduit_connector_bytes_bucket{le="1024.0",pipeline_name="demo",plugin="builtin:generator",type="source",component_id="gen"} 1"#,
        );
        has(
            r#"conduit_connector_bytes_bucket{le="2048.0",pipeline_name="demo",plugin="builtin:generator",type="source",component_id="gen"} 2"#,
        );
        has(
            r#"conduit_connector_bytes_bucket{le="+Inf",pipeline_name="demo",plugin="builtin:generator",type="source",component_id="gen"} 3"#,
        );
        has(
            r#"conduit_connector_bytes_count{pipeline_name="demo",plugin="builtin:file",type="destination",component_id="file"} 2"#,
        );
        has(
            r#"conduit_processor_execution_duration_seconds_count{pipeline_name="demo",processor="field.set",component_id="tag"} 1"#,
        );
        has(r#"conduit_dlq_bytes_count{pipeline_name="demo",plugin="builtin:log"} 1"#);
        has(r#"culvert_positions_saved_total{pipeline_name="demo"} 3"#);
        has(r#"culvert_acks_pending{pipeline_name="demo"} 7"#);
        has(r#"conduit_pipelines{status="running"} 1"#);
        has(&format!(
            r#"conduit_info{{version="v{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ));
        has(r#"pipeline_recovering_count_total{pipeline_name="demo"} 1"#);
        has(r#"conduit_pipeline_execution_duration_seconds_count{pipeline_name="demo"} 1"#);
        has(
            r#"conduit_dlq_execution_duration_seconds_count{pipeline_name="demo",plugin="builtin:log"} 1"#,
        );
        has(r#"culvert_position_saved_timestamp_seconds{pipeline_name="demo"} 1700000000.5"#);
        has("# TYPE culvert_event_log_last_seq gauge");
        has("# TYPE process_resident_memory_bytes gauge");
        has("# TYPE process_cpu_seconds counter");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn retain_removes_the_series_of_pipelines_and_entities_that_are_gone() {
        let metrics = Arc::new(Metrics::new());
        let run = |name: &str, suffix: &str| {
            let mut pipeline = metrics.pipeline(name);
            pipeline.plugin(&format!("src-{suffix}"), "builtin:generator");
            pipeline.plugin(&format!("proc-{suffix}"), "field.set");
            pipeline.dlq("builtin:log");
            pipeline
                .connector(&format!("src-{suffix}"), "source")
                .observe(&[raw(3)], Instant::now());
            pipeline.processor(&format!("proc-{suffix}")).observe(0.1);
            pipeline.dlq_bytes().observe_records(&[raw(1)]);
            pipeline.dlq_duration().observe(0.1);
            pipeline.positions_saved().inc();
            pipeline.position_saved_at().set(1.0);
            pipeline.acks_pending().set(1);
            pipeline.recovering().inc();
            pipeline.duration().observe(0.1);
        };
        run("kept", "a");
        run("gone", "b");
        let inspectors = Arc::new(crate::inspect::Inspectors::new(4));
        inspectors.set_metrics(&metrics);
        let kept_session = inspectors.open("src-a", crate::inspect::Side::Connector);
        let gone_session = inspectors.open("src-b", crate::inspect::Side::Connector);
        drop(gone_session);
        assert_eq!(metrics.pipelines_with_series(), ["gone", "kept"]);
        let before = metrics.render();
        assert!(before.contains(r#"pipeline_name="gone""#), "{before}");
        assert!(before.contains(r#"component_id="src-b""#), "{before}");

        metrics.retain(|name| name == "kept", |id| id.ends_with("-a"));

        let after = metrics.render();
        assert_eq!(metrics.pipelines_with_series(), ["kept"]);
        assert!(!after.contains(r#"pipeline_name="gone""#), "{after}");
        assert!(!after.contains(r#"component_id="src-b""#), "{after}");
        assert!(!after.contains(r#"component_id="proc-b""#), "{after}");
        // Everything of the kept pipeline and entity stays, values and all.
        for line in before.lines().filter(|l| {
            !l.starts_with('#')
                && !l.starts_with("process_")
                && (l.contains(r#"pipeline_name="kept""#) || l.contains(r#"component_id="src-a""#))
        }) {
            assert!(
                after.lines().any(|l| l == line),
                "lost {line:?} in\n{after}"
            );
        }
        assert_eq!(
            before
                .lines()
                .filter(|l| l.contains(r#"pipeline_name="kept""#))
                .count(),
            after
                .lines()
                .filter(|l| l.contains(r#"pipeline_name="kept""#))
                .count()
        );
        drop(kept_session);
    }
}
