//! Events: the facts recorded in the log. The log is the source of truth; every read model
//! is a fold of these.

use crate::ids::{ConnectorId, PipelineId, ProcessorId, Seq, StreamId};
use crate::model::{ConnectorType, DeadLetterQueue, ProcessorParent, Settings, StoppedReason};
use crate::schema::SchemaType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A domain event. Serialised adjacently tagged (`{"type": "...", "data": {...}}`); the
/// `migrations` crate owns the schema versions and upcasts older shapes on read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A pipeline was created (stopped).
    PipelineCreated {
        /// Its id.
        id: PipelineId,
        /// Its name.
        name: String,
        /// Its description.
        description: String,
        /// Its DLQ settings.
        dlq: DeadLetterQueue,
    },
    /// A pipeline's name and description changed.
    PipelineUpdated {
        /// The pipeline.
        id: PipelineId,
        /// New name.
        name: String,
        /// New description.
        description: String,
    },
    /// A pipeline's DLQ settings changed.
    PipelineDlqUpdated {
        /// The pipeline.
        id: PipelineId,
        /// New DLQ settings.
        dlq: DeadLetterQueue,
    },
    /// A pipeline is managed by a configuration file from now on: the API may start and stop
    /// it but not change it.
    PipelineProvisioned {
        /// The pipeline.
        id: PipelineId,
        /// The file.
        file: String,
    },
    /// A pipeline was deleted.
    PipelineDeleted {
        /// The pipeline.
        id: PipelineId,
    },
    /// A connector was added to a pipeline.
    PipelineConnectorAdded {
        /// The pipeline.
        id: PipelineId,
        /// The connector.
        connector_id: ConnectorId,
    },
    /// A connector was removed from a pipeline.
    PipelineConnectorRemoved {
        /// The pipeline.
        id: PipelineId,
        /// The connector.
        connector_id: ConnectorId,
    },
    /// A processor was attached to a pipeline.
    PipelineProcessorAdded {
        /// The pipeline.
        id: PipelineId,
        /// The processor.
        processor_id: ProcessorId,
    },
    /// A processor was detached from a pipeline.
    PipelineProcessorRemoved {
        /// The pipeline.
        id: PipelineId,
        /// The processor.
        processor_id: ProcessorId,
    },
    /// A user asked for the pipeline to start.
    PipelineStartRequested {
        /// The pipeline.
        id: PipelineId,
    },
    /// A user asked for the pipeline to stop.
    PipelineStopRequested {
        /// The pipeline.
        id: PipelineId,
        /// Stop without draining.
        force: bool,
    },
    /// The engine reported the pipeline running.
    PipelineStarted {
        /// The pipeline.
        id: PipelineId,
    },
    /// The engine reported the pipeline stopped.
    PipelineStopped {
        /// The pipeline.
        id: PipelineId,
        /// Who stopped it.
        reason: StoppedReason,
    },
    /// The engine reported the pipeline failed; it restarts it after a delay.
    PipelineRecovering {
        /// The pipeline.
        id: PipelineId,
        /// The error it failed with.
        error: String,
        /// Which restart this will be (1 for the first).
        attempt: u32,
    },
    /// The engine reported the pipeline failed.
    PipelineDegraded {
        /// The pipeline.
        id: PipelineId,
        /// The error.
        error: String,
    },
    /// A connector was created.
    ConnectorCreated {
        /// Its id.
        id: ConnectorId,
        /// Its pipeline.
        pipeline_id: PipelineId,
        /// Source or destination.
        connector_type: ConnectorType,
        /// Plugin reference.
        plugin: String,
        /// Display name.
        name: String,
        /// Settings.
        settings: Settings,
    },
    /// A connector's name, settings or plugin changed.
    ConnectorUpdated {
        /// The connector.
        id: ConnectorId,
        /// New name.
        name: String,
        /// New settings.
        settings: Settings,
        /// Plugin reference (unchanged unless the update named one).
        plugin: String,
    },
    /// A connector was deleted.
    ConnectorDeleted {
        /// The connector.
        id: ConnectorId,
    },
    /// A processor was attached to a connector.
    ConnectorProcessorAdded {
        /// The connector.
        id: ConnectorId,
        /// The processor.
        processor_id: ProcessorId,
    },
    /// A processor was detached from a connector.
    ConnectorProcessorRemoved {
        /// The connector.
        id: ConnectorId,
        /// The processor.
        processor_id: ProcessorId,
    },
    /// A processor was created.
    ProcessorCreated {
        /// Its id.
        id: ProcessorId,
        /// What it is attached to.
        parent: ProcessorParent,
        /// Plugin reference.
        plugin: String,
        /// Settings.
        settings: Settings,
        /// Condition template.
        condition: String,
        /// Worker count (>= 1).
        workers: u32,
    },
    /// A processor's settings, workers or plugin changed.
    ProcessorUpdated {
        /// The processor.
        id: ProcessorId,
        /// Plugin reference.
        plugin: String,
        /// New settings.
        settings: Settings,
        /// Worker count (>= 1).
        workers: u32,
    },
    /// A processor was deleted.
    ProcessorDeleted {
        /// The processor.
        id: ProcessorId,
    },
    /// A connector's settings were sealed again with a new secrets key; they hold the same
    /// values.
    ConnectorSecretsResealed {
        /// The connector.
        id: ConnectorId,
        /// The settings as stored now.
        settings: Settings,
    },
    /// A processor's settings were sealed again with a new secrets key; they hold the same
    /// values.
    ProcessorSecretsResealed {
        /// The processor.
        id: ProcessorId,
        /// The settings as stored now.
        settings: Settings,
    },
    /// A pipeline's dead-letter-queue settings were sealed again with a new secrets key; they
    /// hold the same values.
    PipelineDlqSecretsResealed {
        /// The pipeline.
        id: PipelineId,
        /// The settings as stored now.
        settings: Settings,
    },
    /// A source connector's position was moved by a user (set, seek or reset) while its
    /// pipeline was stopped; its next run resumes after `new` (from the start when absent).
    SourcePositionSet {
        /// The source connector.
        id: ConnectorId,
        /// The position before.
        old: Option<crate::opencdc::Position>,
        /// The position now.
        new: Option<crate::opencdc::Position>,
        /// How it was chosen: `set`, `reset` or `checkpoint:<time>`.
        how: String,
    },
    /// Dead letters of a pipeline were queued for re-injection by a user: the running
    /// pipeline (or its next run) sends each through the pipeline again from where it
    /// failed, once, and the letter goes when every destination has it.
    DeadLettersReinjected {
        /// The pipeline.
        id: PipelineId,
        /// The letters' numbers within the pipeline, ascending.
        letters: Vec<u64>,
    },
    /// A schema was registered in the built-in schema registry (by a connector, a
    /// processor or a user).
    SchemaRegistered {
        /// The subject it was registered under.
        subject: String,
        /// Its version under the subject (from 1).
        version: u32,
        /// Its global id (from 1; the same text has the same id under every subject).
        id: u32,
        /// Its type.
        schema_type: SchemaType,
        /// Its text.
        schema: String,
    },
}

impl Event {
    /// The stream (entity) this event belongs to.
    pub fn stream(&self) -> StreamId {
        use Event::*;
        match self {
            PipelineCreated { id, .. }
            | PipelineUpdated { id, .. }
            | PipelineDlqUpdated { id, .. }
            | PipelineProvisioned { id, .. }
            | PipelineDeleted { id }
            | PipelineConnectorAdded { id, .. }
            | PipelineConnectorRemoved { id, .. }
            | PipelineProcessorAdded { id, .. }
            | PipelineProcessorRemoved { id, .. }
            | PipelineStartRequested { id }
            | PipelineStopRequested { id, .. }
            | PipelineStarted { id }
            | PipelineStopped { id, .. }
            | PipelineRecovering { id, .. }
            | PipelineDegraded { id, .. }
            | PipelineDlqSecretsResealed { id, .. }
            | DeadLettersReinjected { id, .. } => StreamId::pipeline(id),
            ConnectorCreated { id, .. }
            | ConnectorUpdated { id, .. }
            | ConnectorDeleted { id }
            | ConnectorProcessorAdded { id, .. }
            | ConnectorProcessorRemoved { id, .. }
            | ConnectorSecretsResealed { id, .. }
            | SourcePositionSet { id, .. } => StreamId::connector(id),
            ProcessorCreated { id, .. }
            | ProcessorUpdated { id, .. }
            | ProcessorDeleted { id }
            | ProcessorSecretsResealed { id, .. } => StreamId::processor(id),
            SchemaRegistered { subject, .. } => StreamId::schema_subject(subject),
        }
    }

    /// The event's type name, as stored in the envelope (`"PipelineCreated"`, ...).
    pub fn event_type(&self) -> &'static str {
        use Event::*;
        match self {
            PipelineCreated { .. } => "PipelineCreated",
            PipelineUpdated { .. } => "PipelineUpdated",
            PipelineDlqUpdated { .. } => "PipelineDlqUpdated",
            PipelineProvisioned { .. } => "PipelineProvisioned",
            PipelineDeleted { .. } => "PipelineDeleted",
            PipelineConnectorAdded { .. } => "PipelineConnectorAdded",
            PipelineConnectorRemoved { .. } => "PipelineConnectorRemoved",
            PipelineProcessorAdded { .. } => "PipelineProcessorAdded",
            PipelineProcessorRemoved { .. } => "PipelineProcessorRemoved",
            PipelineStartRequested { .. } => "PipelineStartRequested",
            PipelineStopRequested { .. } => "PipelineStopRequested",
            PipelineStarted { .. } => "PipelineStarted",
            PipelineStopped { .. } => "PipelineStopped",
            PipelineRecovering { .. } => "PipelineRecovering",
            PipelineDegraded { .. } => "PipelineDegraded",
            ConnectorCreated { .. } => "ConnectorCreated",
            ConnectorUpdated { .. } => "ConnectorUpdated",
            ConnectorDeleted { .. } => "ConnectorDeleted",
            ConnectorProcessorAdded { .. } => "ConnectorProcessorAdded",
            ConnectorProcessorRemoved { .. } => "ConnectorProcessorRemoved",
            ProcessorCreated { .. } => "ProcessorCreated",
            ProcessorUpdated { .. } => "ProcessorUpdated",
            ProcessorDeleted { .. } => "ProcessorDeleted",
            SchemaRegistered { .. } => "SchemaRegistered",
            ConnectorSecretsResealed { .. } => "ConnectorSecretsResealed",
            ProcessorSecretsResealed { .. } => "ProcessorSecretsResealed",
            PipelineDlqSecretsResealed { .. } => "PipelineDlqSecretsResealed",
            SourcePositionSet { .. } => "SourcePositionSet",
            DeadLettersReinjected { .. } => "DeadLettersReinjected",
        }
    }
}

/// Who did something, why, and when: recorded with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Who issued the command: a user name, `system` for the engine,
    /// `provisioning:<file>` for configuration files.
    pub actor: String,
    /// Groups the events of one user operation (and the engine's reactions to it).
    pub correlation_id: String,
    /// The event or request that caused this one, if any.
    pub causation_id: Option<String>,
    /// Why, in the actor's words (the API's `culvert-reason`), if they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the event was appended (UTC; non-decreasing along the log).
    pub recorded_at: DateTime<Utc>,
}

/// An event as read back from the log: its position, its stream version and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global sequence number.
    pub seq: Seq,
    /// The version of the event's stream after this event (1 for the first).
    pub stream_version: u64,
    /// Who, why, when.
    pub meta: EventMeta,
    /// The event itself.
    pub event: Event,
}
