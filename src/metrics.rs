//! `/metrics` for `culvert run`: the registry's wiring to the event log, the read model and
//! the plugin registries (docs/metrics.md). The engine updates its own handles; what is
//! derived from the control plane is read here at each scrape.

use culvert_commands::ControlPlaneWriter;
use culvert_domain::{ConnectorType, PipelineStatus, Seq, StoppedReason, StreamId};
use culvert_engine::metrics::{
    KindLabel, PartLabel, PipelineLabel, StateLabel, StatusLabel, TypeLabel,
};
use culvert_engine::Metrics;
use culvert_store::{AppendRequest, EventLog, RocksStore, Snapshot, StoreError, StoredEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The event log, timing each append into `culvert_event_log_append_duration_seconds`.
pub struct TimedLog {
    inner: Arc<dyn EventLog>,
    metrics: Arc<Metrics>,
}

impl TimedLog {
    /// `inner`, timed into `metrics`.
    pub fn new(inner: Arc<dyn EventLog>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl EventLog for TimedLog {
    fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>, StoreError> {
        let began = Instant::now();
        let appended = self.inner.append(request);
        self.metrics
            .append_duration
            .observe(began.elapsed().as_secs_f64());
        appended
    }

    fn read_from(&self, from: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_from(from, limit)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_stream(stream, from_version, limit)
    }

    fn head(&self) -> Seq {
        self.inner.head()
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream)
    }

    fn watch_head(&self) -> watch::Receiver<Seq> {
        self.inner.watch_head()
    }

    fn put_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.put_snapshot(name, snapshot)
    }

    fn get_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.get_snapshot(name)
    }

    fn snapshot_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.snapshot_names(prefix)
    }

    fn delete_snapshot(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete_snapshot(name)
    }
}

/// Conduit's name (lower-cased, as its `conduit_pipelines` label) and number (its
/// `conduit_pipeline_status` value) of a status. Starting counts as running and stopping as
/// stopped by whom asked, as Conduit has no such states.
fn conduit_status(status: &PipelineStatus) -> (&'static str, i64) {
    match status {
        PipelineStatus::Running | PipelineStatus::Starting => ("running", 1),
        PipelineStatus::Stopped {
            reason: StoppedReason::System,
        } => ("systemstopped", 2),
        PipelineStatus::Stopped {
            reason: StoppedReason::User,
        }
        | PipelineStatus::Stopping { .. } => ("userstopped", 3),
        PipelineStatus::Degraded { .. } => ("degraded", 4),
        PipelineStatus::Recovering => ("recovering", 5),
    }
}

const STATUSES: [&str; 5] = [
    "running",
    "systemstopped",
    "userstopped",
    "degraded",
    "recovering",
];

/// Set what is derived from the control plane, the data store's memory (when it is
/// RocksDB) and the allocator's, then render the document.
pub fn render(
    metrics: &Metrics,
    writer: &ControlPlaneWriter,
    store: Option<&RocksStore>,
) -> String {
    if let Some(store) = store {
        match store.memory() {
            Ok(memory) => {
                for (part, bytes) in [
                    ("memtables", memory.memtables),
                    ("table_readers", memory.table_readers),
                    ("block_cache", memory.block_cache),
                ] {
                    metrics
                        .store_memory
                        .get_or_create(&PartLabel {
                            part: part.to_owned(),
                        })
                        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                }
            }
            Err(error) => tracing::debug!(%error, "the store's memory figures could not be read"),
        }
    }
    metrics
        .allocator_committed
        .set(i64::try_from(crate::allocator::committed_bytes()).unwrap_or(i64::MAX));
    if let Some((in_use, free)) = crate::allocator::c_heap_bytes() {
        for (state, bytes) in [("in_use", in_use), ("free", free)] {
            metrics
                .c_heap
                .get_or_create(&StateLabel {
                    state: state.to_owned(),
                })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
    let head = writer.log().head().0;
    {
        let state = writer.projections().read();
        let folded = state.last_seq().0;
        metrics
            .event_log_last_seq
            .set(i64::try_from(head).unwrap_or(i64::MAX));
        metrics
            .projection_lag
            .set(i64::try_from(head.saturating_sub(folded)).unwrap_or(i64::MAX));
        let mut by_status: HashMap<&str, i64> = STATUSES.iter().map(|s| (*s, 0)).collect();
        metrics.pipeline_status.clear();
        for pipeline in state.pipelines() {
            let (name, number) = conduit_status(&pipeline.status);
            *by_status.entry(name).or_default() += 1;
            metrics
                .pipeline_status
                .get_or_create(&PipelineLabel {
                    pipeline_name: pipeline.name.clone(),
                })
                .set(number);
        }
        for (status, count) in by_status {
            metrics
                .pipelines
                .get_or_create(&StatusLabel {
                    status: status.to_owned(),
                })
                .set(count);
        }
        let mut by_type: HashMap<String, i64> = [("source", 0), ("destination", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for connector in state.connectors() {
            let kind = match connector.connector_type {
                ConnectorType::Source => "source",
                ConnectorType::Destination => "destination",
            };
            *by_type.entry(kind.to_owned()).or_default() += 1;
        }
        set_by_type(&metrics.connectors, by_type);
        let mut by_plugin: HashMap<String, i64> = HashMap::new();
        for processor in state.processors() {
            *by_plugin.entry(processor.plugin.clone()).or_default() += 1;
        }
        set_by_type(&metrics.processors, by_plugin);
    }
    metrics.render()
}

fn set_by_type(
    family: &prometheus_family::Family<KindLabel, prometheus_family::Gauge>,
    counts: HashMap<String, i64>,
) {
    family.clear();
    for (kind, count) in counts {
        family
            .get_or_create(&KindLabel {
                kind: TypeLabel(kind),
            })
            .set(count);
    }
}

/// The registry's metric types, as the engine re-exports them.
mod prometheus_family {
    pub use culvert_engine::metrics::{Family, GaugeMetric as Gauge};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_conduits() {
        assert_eq!(conduit_status(&PipelineStatus::Running), ("running", 1));
        assert_eq!(
            conduit_status(&PipelineStatus::Stopped {
                reason: StoppedReason::User
            }),
            ("userstopped", 3)
        );
        assert_eq!(
            conduit_status(&PipelineStatus::Degraded { error: "x".into() }),
            ("degraded", 4)
        );
        for status in STATUSES {
            assert!(status.chars().all(|c| c.is_ascii_lowercase()));
        }
    }
}
