//! Commands: what a user, a configuration file or the engine asks the control plane to do.

use crate::ids::{ConnectorId, PipelineId, ProcessorId};
use crate::model::{ConnectorType, DeadLetterQueue, ProcessorParent, Settings, StoppedReason};
use crate::schema::SchemaType;
use serde::{Deserialize, Serialize};

/// A request to change the control plane. Ids of created entities are chosen by the caller
/// (the orchestrator generates UUIDs), so that [`crate::ControlPlane::decide`] stays pure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a pipeline (stopped, with Conduit's default DLQ).
    CreatePipeline {
        /// Id of the new pipeline.
        id: PipelineId,
        /// Unique name.
        name: String,
        /// Description.
        description: String,
    },
    /// Change a pipeline's name and description.
    UpdatePipeline {
        /// The pipeline.
        id: PipelineId,
        /// New name.
        name: String,
        /// New description.
        description: String,
    },
    /// Replace a pipeline's dead-letter-queue settings.
    UpdatePipelineDlq {
        /// The pipeline.
        id: PipelineId,
        /// New DLQ settings.
        dlq: DeadLetterQueue,
    },
    /// Delete a pipeline that has no connectors or processors and is not running.
    DeletePipeline {
        /// The pipeline.
        id: PipelineId,
    },
    /// Ask the engine to start a pipeline.
    StartPipeline {
        /// The pipeline.
        id: PipelineId,
    },
    /// Ask the engine to stop a pipeline (drain, or at once when `force`).
    StopPipeline {
        /// The pipeline.
        id: PipelineId,
        /// Stop without draining.
        force: bool,
    },
    /// The engine reports a pipeline running.
    ReportPipelineStarted {
        /// The pipeline.
        id: PipelineId,
    },
    /// The engine reports a pipeline stopped.
    ReportPipelineStopped {
        /// The pipeline.
        id: PipelineId,
        /// Who stopped it.
        reason: StoppedReason,
    },
    /// The engine reports a pipeline failed and will be restarted after a delay.
    ReportPipelineRecovering {
        /// The pipeline.
        id: PipelineId,
        /// The error it failed with.
        error: String,
        /// Which restart this will be (1 for the first).
        attempt: u32,
    },
    /// The engine reports a pipeline failed.
    ReportPipelineDegraded {
        /// The pipeline.
        id: PipelineId,
        /// The error.
        error: String,
    },
    /// Create a connector in a pipeline.
    CreateConnector {
        /// Id of the new connector.
        id: ConnectorId,
        /// The pipeline to add it to.
        pipeline_id: PipelineId,
        /// Source or destination.
        connector_type: ConnectorType,
        /// Plugin reference.
        plugin: String,
        /// Display name.
        name: String,
        /// Plugin settings.
        settings: Settings,
    },
    /// Change a connector's name, settings and (optionally) plugin.
    UpdateConnector {
        /// The connector.
        id: ConnectorId,
        /// New name.
        name: String,
        /// New settings (replace the old ones).
        settings: Settings,
        /// New plugin reference; `None` keeps the current one.
        plugin: Option<String>,
    },
    /// Delete a connector that has no processors; it is removed from its pipeline.
    DeleteConnector {
        /// The connector.
        id: ConnectorId,
    },
    /// Create a processor on a connector or a pipeline.
    CreateProcessor {
        /// Id of the new processor.
        id: ProcessorId,
        /// What it is attached to.
        parent: ProcessorParent,
        /// Plugin reference.
        plugin: String,
        /// Plugin settings.
        settings: Settings,
        /// Condition template (empty = always).
        condition: String,
        /// Worker count; 0 means the default (1), negative is refused.
        workers: i32,
    },
    /// Change a processor's settings, workers and (optionally) plugin.
    UpdateProcessor {
        /// The processor.
        id: ProcessorId,
        /// New settings.
        settings: Settings,
        /// Worker count; 0 means the default (1), negative is refused.
        workers: i32,
        /// New plugin reference; `None` keeps the current one.
        plugin: Option<String>,
    },
    /// Delete a processor; it is removed from its parent.
    DeleteProcessor {
        /// The processor.
        id: ProcessorId,
    },
    /// Register a schema in the built-in schema registry (the caller has checked that the
    /// text is a schema of its type). Registering a text a subject has already is no change.
    RegisterSchema {
        /// The subject.
        subject: String,
        /// The schema's type.
        schema_type: SchemaType,
        /// The schema text.
        schema: String,
    },
    /// Store a connector's, processor's or DLQ's settings sealed again after a secrets key
    /// rotation. What they hold does not change (the caller checks that they open to the
    /// same values), so it is allowed on running and provisioned pipelines; the keys must be
    /// the ones stored.
    ResealSecrets {
        /// Whose settings.
        target: ResealTarget,
        /// The settings, sealed with the current key.
        settings: Settings,
    },
    /// Move a source connector's position (set, seek or reset), only while its pipeline is
    /// not running: the next start resumes after the new position. Recorded as an event and
    /// written to the position store in the same atomic write.
    SetSourcePosition {
        /// The source connector.
        id: ConnectorId,
        /// From where to where.
        change: PositionChange,
    },
    /// Queue dead letters of a pipeline for re-injection (the caller checked that each is
    /// kept). Allowed whatever the pipeline's state, provisioned pipelines too: it changes
    /// no configuration; a running pipeline picks them up, a stopped one on its next run.
    ReinjectDeadLetters {
        /// The pipeline.
        id: PipelineId,
        /// The letters' numbers.
        letters: Vec<u64>,
    },
    /// Bring a pipeline in line with a configuration document: `commands` (creations,
    /// updates and deletions of the pipeline and its connectors and processors) decided in
    /// order, each against the state the previous ones leave, and recorded as one batch.
    ///
    /// With a `file`, the document is a configuration file: only here may a pipeline
    /// provisioned by a file change, the pipeline is marked as provisioned by `file` (unless
    /// the batch deletes it), and a pipeline created over the API is refused. Without one,
    /// the document came over the API (ApplyPipeline): the pipeline stays API-managed, and
    /// one provisioned by a file is refused.
    Provision {
        /// The pipeline the document describes.
        pipeline: PipelineId,
        /// The configuration file (as the actor names it), if the document is one.
        file: Option<String>,
        /// What to do, in order.
        commands: Vec<Command>,
    },
}

/// Where a [`Command::SetSourcePosition`] moves a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionChange {
    /// The position stored before (read by the caller while the pipeline is stopped; the
    /// audit's "old").
    pub old: Option<crate::opencdc::Position>,
    /// The position to resume after; `None`: from the start (a reset).
    pub new: Option<crate::opencdc::Position>,
    /// How the new position was chosen, for the audit: `set`, `reset` or
    /// `checkpoint:<time>`.
    pub how: String,
}

/// Whose settings a [`Command::ResealSecrets`] stores again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResealTarget {
    /// A connector's settings.
    Connector(ConnectorId),
    /// A processor's settings.
    Processor(ProcessorId),
    /// A pipeline's dead-letter-queue settings.
    PipelineDlq(PipelineId),
}
