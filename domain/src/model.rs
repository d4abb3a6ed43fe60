//! The three entities of the control plane and their value types.

use crate::ids::{ConnectorId, PipelineId, ProcessorId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Plugin settings: a string map, as in Conduit (`map<string,string>`). Ordered so that
/// events, snapshots and diffs are deterministic.
pub type Settings = BTreeMap<String, String>;

/// Why a pipeline is stopped (Conduit's `Pipeline.State.StoppedReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoppedReason {
    /// Stopped by a user (or never started).
    #[default]
    User,
    /// Stopped by the system, e.g. on server shutdown; such a pipeline is started again when
    /// the server starts.
    System,
}

/// The lifecycle status of a pipeline.
///
/// `Starting` and `Stopping` are the transitional states between a user's request and the
/// engine's report; for the invariants they count as running (no edits, no delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PipelineStatus {
    /// Not running.
    Stopped {
        /// Who stopped it.
        reason: StoppedReason,
    },
    /// A start was requested; the engine has not reported yet.
    Starting,
    /// The engine reported the pipeline running.
    Running,
    /// A stop was requested; the engine is draining the pipeline.
    Stopping {
        /// Whether the stop was forced (no drain).
        force: bool,
    },
    /// The pipeline failed; `error` says why. It can be edited and started again.
    Degraded {
        /// The error that stopped the pipeline.
        error: String,
    },
    /// The engine is restarting the pipeline after an error.
    Recovering,
}

impl PipelineStatus {
    /// True while the engine owns the pipeline (starting, running, stopping or recovering):
    /// such a pipeline cannot be edited or deleted.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Stopping { .. } | Self::Recovering
        )
    }

    /// A short lower-case name of the status, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Stopped { .. } => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping { .. } => "stopping",
            Self::Degraded { .. } => "degraded",
            Self::Recovering => "recovering",
        }
    }
}

/// Dead-letter-queue settings of a pipeline (Conduit's `Pipeline.DLQ`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterQueue {
    /// The destination plugin that receives nacked records.
    pub plugin: String,
    /// The plugin's settings.
    pub settings: Settings,
    /// How many of the last acks/nacks are considered for the nack threshold.
    pub window_size: u64,
    /// How many nacks in the window are tolerated before the pipeline stops.
    pub window_nack_threshold: u64,
}

impl Default for DeadLetterQueue {
    /// Conduit's default (`pipeline.DefaultDLQ`): a `builtin:log` DLQ at level warn with
    /// the message "record delivery failed", window 1, threshold 0, i.e. the first nack
    /// stops the pipeline.
    fn default() -> Self {
        Self {
            plugin: "builtin:log".to_owned(),
            settings: Settings::from([
                ("level".to_owned(), "warn".to_owned()),
                ("message".to_owned(), "record delivery failed".to_owned()),
            ]),
            window_size: 1,
            window_nack_threshold: 0,
        }
    }
}

/// A pipeline: a named set of connectors and processors that the engine runs as one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// The pipeline's id.
    pub id: PipelineId,
    /// Unique, non-empty, at most [`crate::LIMITS`]`.pipeline_name` bytes.
    pub name: String,
    /// Free text, at most [`crate::LIMITS`]`.pipeline_description` bytes.
    pub description: String,
    /// Lifecycle status, with the error when degraded.
    pub status: PipelineStatus,
    /// The pipeline's connectors, in the order they were added.
    pub connector_ids: Vec<ConnectorId>,
    /// The pipeline-level processors, in the order they were added.
    pub processor_ids: Vec<ProcessorId>,
    /// Dead-letter-queue settings.
    pub dlq: DeadLetterQueue,
    /// The configuration file that manages the pipeline (`None`: created over the API).
    #[serde(default)]
    pub provisioned_by: Option<String>,
    /// When the pipeline was created.
    pub created_at: DateTime<Utc>,
    /// When the pipeline last changed.
    pub updated_at: DateTime<Utc>,
    /// The version of the pipeline's stream: the number of events recorded for it.
    pub version: u64,
}

/// Whether a connector reads (source) or writes (destination) records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorType {
    /// Produces records.
    Source,
    /// Consumes records.
    Destination,
}

impl ConnectorType {
    /// `"source"` or `"destination"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Destination => "destination",
        }
    }
}

/// A connector: a source or destination plugin instance belonging to one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    /// The connector's id.
    pub id: ConnectorId,
    /// Source or destination; fixed at creation.
    pub connector_type: ConnectorType,
    /// The plugin reference, e.g. `builtin:generator` or `standalone:pg@v0.3.0`.
    pub plugin: String,
    /// The pipeline the connector belongs to; fixed at creation.
    pub pipeline_id: PipelineId,
    /// Display name, non-empty, at most [`crate::LIMITS`]`.connector_name` bytes.
    pub name: String,
    /// The plugin's settings.
    pub settings: Settings,
    /// Processors attached to this connector, in order.
    pub processor_ids: Vec<ProcessorId>,
    /// When the connector was created.
    pub created_at: DateTime<Utc>,
    /// When the connector last changed.
    pub updated_at: DateTime<Utc>,
    /// The version of the connector's stream.
    pub version: u64,
}

/// What a processor is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum ProcessorParent {
    /// Runs on the records of one connector (after a source, before a destination).
    Connector(ConnectorId),
    /// Runs on every record of the pipeline, between the sources and the destinations.
    Pipeline(PipelineId),
}

/// A processor: a plugin that transforms, filters or routes records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processor {
    /// The processor's id.
    pub id: ProcessorId,
    /// The plugin reference, e.g. `field.set` or `standalone:my-proc@v1`.
    pub plugin: String,
    /// What the processor is attached to; fixed at creation.
    pub parent: ProcessorParent,
    /// The plugin's settings.
    pub settings: Settings,
    /// Conduit's `condition`: a template over the record that must render a boolean; the
    /// processor only runs on records for which it is true. Empty means always.
    pub condition: String,
    /// How many instances process records concurrently (>= 1).
    pub workers: u32,
    /// When the processor was created.
    pub created_at: DateTime<Utc>,
    /// When the processor last changed.
    pub updated_at: DateTime<Utc>,
    /// The version of the processor's stream.
    pub version: u64,
}
