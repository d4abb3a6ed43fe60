//! The write path of the control plane.
//!
//! The orchestrators — [`PipelineOrchestrator`], [`ConnectorOrchestrator`],
//! [`ProcessorOrchestrator`], and [`SchemaOrchestrator`] for the built-in schema registry —
//! turn a request into a domain [`Command`], let the domain
//! decide it against the current read model, and append the resulting events to the log in
//! one atomic batch, with the stream versions the decision was based on as expectations.
//! One user operation that touches several entities (creating a connector adds it to its
//! pipeline; deleting a processor detaches it from its parent) is one batch: nothing of a
//! failed operation is ever visible. Every event records the actor, correlation id and
//! causation id of its [`Context`]; the store adds the time.
//!
//! Writes are serialised in-process (one decide-append-apply at a time), so the read model a
//! command was decided on is the one its events are applied to, and a command returns the
//! entity as of its own write. Callers that want optimistic concurrency pass the version
//! they read; a stale one fails with [`CommandError::Conflict`].
//!
//! Calls block on the store's fsync: async callers run them on a blocking thread.

use culvert_domain::{
    Command, Connector, ConnectorId, ConnectorType, ControlPlane, DeadLetterQueue, DomainError,
    Pipeline, PipelineId, Processor, ProcessorId, ProcessorParent, RecordedEvent, RegisteredSchema,
    SchemaType, Seq, Settings, StoppedReason, StreamId,
};
use culvert_migrations::{encode, Provenance};
use culvert_projections::{ProjectionError, Projections};
use culvert_store::{AppendRequest, EventLog, ExpectedVersion, PositionWrite, StoreError};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

/// Who is acting, and which operation the events belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `token:<name>` or `cert:<subject>` (an authenticated API caller), `user:<name>` or
    /// `api` (API without authentication), `system` (the engine), `provisioning:<file>`, ...
    pub actor: String,
    /// Groups the events of one operation; a fresh UUID by default.
    pub correlation_id: String,
    /// The request or event that caused the operation.
    pub causation_id: Option<String>,
    /// Why, in the actor's words (the API's `culvert-reason`); recorded beside the actor,
    /// never instead of it.
    pub reason: Option<String>,
}

impl Context {
    /// A new operation by `actor` with a fresh correlation id.
    pub fn new(actor: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            causation_id: None,
            reason: None,
        }
    }

    /// The same context, with the actor's reason (if any).
    pub fn with_reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }

    /// The engine acting on its own (actor `system`).
    pub fn system() -> Self {
        Self::new("system")
    }

    /// The same context, caused by `cause`.
    pub fn caused_by(mut self, cause: impl Into<String>) -> Self {
        self.causation_id = Some(cause.into());
        self
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            actor: self.actor.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// Why a command did not happen. In every case nothing was written.
#[derive(Debug, Error)]
pub enum CommandError {
    /// The domain refused the command (bad input, missing entity, wrong state).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The entity changed since the version the caller (or the decision) was based on.
    #[error("{stream} was changed concurrently: expected {expected}, it is at version {actual}")]
    Conflict {
        /// The stream that moved.
        stream: StreamId,
        /// The version expected.
        expected: ExpectedVersion,
        /// Its actual version.
        actual: u64,
    },
    /// The store failed.
    #[error("event log: {0}")]
    Store(StoreError),
    /// The read model could not be brought up to date.
    #[error("read model: {0}")]
    Projection(#[from] ProjectionError),
    /// The events were appended (durably, up to `last`) but the read model could not fold
    /// them; reads lag until it catches up. Do not retry the command: it happened.
    #[error("the change was recorded (up to seq {last}) but the read model lags: {source}")]
    AppliedButUnread {
        /// The sequence of the last appended event.
        last: Seq,
        /// Why the read model could not fold it.
        source: ProjectionError,
    },
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => Self::Conflict {
                stream,
                expected,
                actual,
            },
            other => Self::Store(other),
        }
    }
}

/// The shared core of the orchestrators: the log, the read model and the writer lock.
pub struct ControlPlaneWriter {
    log: Arc<dyn EventLog>,
    projections: Arc<Projections>,
    /// Whether the log's database also holds the connectors' positions (and the pipelines'
    /// dead letters, cleared likewise with a pipeline's creation or deletion): then a created or
    /// deleted connector's positions are cleared in the creation's or deletion's own atomic
    /// write.
    clears_positions: bool,
    /// When set, sensitive settings are sealed before they are written (see
    /// [`ControlPlaneWriter::with_secrets`]).
    secrets: Option<culvert_secrets::Secrets>,
    write: Mutex<()>,
}

impl ControlPlaneWriter {
    /// A writer over `log` whose read model is `projections` (already caught up).
    pub fn new(log: Arc<dyn EventLog>, projections: Arc<Projections>) -> Arc<Self> {
        Arc::new(Self {
            log,
            projections,
            clears_positions: false,
            secrets: None,
            write: Mutex::new(()),
        })
    }

    /// The same, for a log whose database also holds the connectors' positions (the
    /// store's `PositionStore`): a connector created with an id that ran before (deleted and
    /// created again, say by a configuration file) has its predecessor's positions and
    /// state removed in the same atomic write as its creation, so it never resumes from
    /// them, whatever the crash point; a deleted connector's positions and state go in the
    /// deletion's write.
    pub fn with_positions(log: Arc<dyn EventLog>, projections: Arc<Projections>) -> Arc<Self> {
        Arc::new(Self {
            log,
            projections,
            clears_positions: true,
            secrets: None,
            write: Mutex::new(()),
        })
    }

    /// The same, sealing sensitive settings with `secrets` before they are written: every
    /// command that carries settings (connector and processor creation and update, DLQ
    /// update, and those inside a provisioning batch) has its sensitive values replaced by
    /// their sealed form, so the events, the read model and its snapshots never hold them
    /// in clear. See [`culvert_secrets::Secrets::seal_settings`] for `***` and unchanged
    /// values.
    pub fn with_secrets(
        log: Arc<dyn EventLog>,
        projections: Arc<Projections>,
        positions: bool,
        secrets: culvert_secrets::Secrets,
    ) -> Arc<Self> {
        Arc::new(Self {
            log,
            projections,
            clears_positions: positions,
            secrets: Some(secrets),
            write: Mutex::new(()),
        })
    }

    /// The secrets settings are sealed with, if any.
    pub fn secrets(&self) -> Option<&culvert_secrets::Secrets> {
        self.secrets.as_ref()
    }

    /// The read model.
    pub fn projections(&self) -> &Arc<Projections> {
        &self.projections
    }

    /// The event log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Decide `command`, append its events atomically and fold them into the read model.
    /// `expected` is the caller's view of the command's target stream version, if it has
    /// one. Returns the recorded events (empty when the command changes nothing).
    pub fn execute(
        &self,
        context: &Context,
        command: &Command,
        expected: Option<(StreamId, u64)>,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        let _writer = self.write.lock();
        let (events, mut versions) = {
            let state = self.projections.read();
            let sealed;
            let command = match &self.secrets {
                Some(secrets) => {
                    sealed = seal_command(secrets, &state, command)?;
                    &sealed
                }
                None => command,
            };
            let events = state.decide(command)?;
            // A conditional command is refused on a stale version even when it would change
            // nothing: the caller's view is out of date either way.
            if let (true, Some((stream, version))) = (events.is_empty(), &expected) {
                let actual = match version_in(&state, stream) {
                    Some(v) => v,
                    None => self.log.stream_version(stream)?,
                };
                if actual != *version {
                    return Err(CommandError::Conflict {
                        stream: stream.clone(),
                        expected: ExpectedVersion::Exact(*version),
                        actual,
                    });
                }
            }
            let mut versions = BTreeMap::new();
            for event in &events {
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    versions.entry(event.stream())
                {
                    let version = match version_in(&state, slot.key()) {
                        Some(v) => v,
                        None => self.log.stream_version(slot.key())?,
                    };
                    slot.insert(ExpectedVersion::Exact(version));
                }
            }
            (events, versions)
        };
        if events.is_empty() {
            return Ok(vec![]);
        }
        if let Some((stream, version)) = expected {
            versions.insert(stream, ExpectedVersion::Exact(version));
        }
        fail::fail_point!("commands::after_decide", |_| Err(CommandError::Store(
            StoreError::Injected("commands::after_decide".into())
        )));
        // A connector created with an id that ran before starts from nothing: its
        // predecessor's positions and state go in the same atomic write as the creation.
        // A deleted connector's go in the same write as its deletion: no position outlives
        // its connector, whatever the crash point.
        let clear_positions = if self.clears_positions {
            events
                .iter()
                .filter_map(|event| match event {
                    culvert_domain::Event::ConnectorCreated { id, .. }
                    | culvert_domain::Event::ConnectorDeleted { id } => {
                        Some(id.as_str().to_owned())
                    }
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        // A position a user moved is written with its event: recorded and in effect
        // together, or neither.
        let set_positions = events
            .iter()
            .filter_map(|event| match event {
                culvert_domain::Event::SourcePositionSet { id, new, .. } => Some(PositionWrite {
                    connector: id.as_str().to_owned(),
                    slot: culvert_store::POSITION_SLOT.to_owned(),
                    value: new.as_ref().map(|p| p.0.clone()),
                }),
                _ => None,
            })
            .collect();
        // Likewise a pipeline's dead letters: gone with its deletion, none for an id created
        // again; and letters a user re-injects are queued with the event that records it.
        let clear_letters = if self.clears_positions {
            events
                .iter()
                .filter_map(|event| match event {
                    culvert_domain::Event::PipelineCreated { id, .. }
                    | culvert_domain::Event::PipelineDeleted { id } => Some(id.as_str().to_owned()),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let queue_letters = events
            .iter()
            .flat_map(|event| match event {
                culvert_domain::Event::DeadLettersReinjected { id, letters } => letters
                    .iter()
                    .map(|seq| culvert_store::LetterRef {
                        pipeline: id.as_str().to_owned(),
                        seq: *seq,
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let provenance = context.provenance();
        let stored = self.log.append(AppendRequest {
            events: events.iter().map(|e| encode(e, &provenance)).collect(),
            expected: versions.into_iter().collect(),
            clear_positions,
            set_positions,
            clear_letters,
            queue_letters,
        })?;
        let recorded: Vec<RecordedEvent> = stored
            .into_iter()
            .zip(events)
            .map(|(s, event)| RecordedEvent {
                seq: s.seq,
                stream_version: s.stream_version,
                meta: culvert_domain::EventMeta {
                    actor: s.actor,
                    correlation_id: s.correlation_id,
                    causation_id: s.causation_id,
                    reason: s.reason,
                    recorded_at: s.recorded_at,
                },
                event,
            })
            .collect();
        if self.projections.apply(&recorded).is_err() {
            // Someone else appended to the log: fold from the log itself. If even that fails,
            // the events are durable but not yet readable: say so, so that nobody retries a
            // write that already happened.
            if let Err(source) = self.projections.catch_up(self.log.as_ref()) {
                let last = recorded.last().map_or(Seq::ZERO, |e| e.seq);
                return Err(CommandError::AppliedButUnread { last, source });
            }
        }
        if let Err(error) = self.projections.snapshot_if_due(self.log.as_ref()) {
            tracing::warn!(%error, "could not write a control-plane snapshot; will retry");
        }
        tracing::debug!(
            actor = %context.actor,
            correlation_id = %context.correlation_id,
            events = recorded.len(),
            last_seq = recorded.last().map(|e| e.seq.0),
            "command applied"
        );
        Ok(recorded)
    }

    /// The sequence number of the last applied event.
    pub fn head(&self) -> Seq {
        self.projections.read().last_seq()
    }
}

/// `command` with the sensitive values of every settings map it carries sealed, against what
/// `state` stores (so unchanged and `***` values keep their stored form).
fn seal_command(
    secrets: &culvert_secrets::Secrets,
    state: &ControlPlane,
    command: &Command,
) -> Result<Command, CommandError> {
    let seal = |entity: culvert_domain::EntityKind,
                plugin: &str,
                settings: &Settings,
                previous: Option<&Settings>| {
        secrets
            .seal_settings(plugin, settings, previous)
            .map_err(|e| {
                CommandError::Domain(DomainError::InvalidArgument {
                    entity,
                    field: "settings",
                    reason: e.to_string(),
                })
            })
    };
    use culvert_domain::EntityKind;
    let mut command = command.clone();
    match &mut command {
        Command::CreateConnector {
            plugin, settings, ..
        } => *settings = seal(EntityKind::Connector, plugin, settings, None)?,
        Command::UpdateConnector {
            id,
            settings,
            plugin,
            ..
        } => {
            let stored = state.connector(id);
            let plugin = plugin
                .clone()
                .or_else(|| stored.map(|c| c.plugin.clone()))
                .unwrap_or_default();
            *settings = seal(
                EntityKind::Connector,
                &plugin,
                settings,
                stored.map(|c| &c.settings),
            )?;
        }
        Command::CreateProcessor {
            plugin, settings, ..
        } => *settings = seal(EntityKind::Processor, plugin, settings, None)?,
        Command::UpdateProcessor {
            id,
            settings,
            plugin,
            ..
        } => {
            let stored = state.processor(id);
            let plugin = plugin
                .clone()
                .or_else(|| stored.map(|p| p.plugin.clone()))
                .unwrap_or_default();
            *settings = seal(
                EntityKind::Processor,
                &plugin,
                settings,
                stored.map(|p| &p.settings),
            )?;
        }
        Command::UpdatePipelineDlq { id, dlq } => {
            let stored = state
                .pipeline(id)
                .filter(|p| p.dlq.plugin == dlq.plugin)
                .map(|p| &p.dlq.settings);
            dlq.settings = seal(EntityKind::Pipeline, &dlq.plugin, &dlq.settings, stored)?;
        }
        Command::Provision { commands, .. } => {
            for inner in commands.iter_mut() {
                *inner = seal_command(secrets, state, inner)?;
            }
        }
        Command::ResealSecrets { settings, .. } => {
            // Sealed by the rotation itself; only check that every value opens.
            secrets.check_settings(settings).map_err(|e| {
                CommandError::Domain(DomainError::InvalidArgument {
                    entity: EntityKind::Connector,
                    field: "settings",
                    reason: e.to_string(),
                })
            })?;
        }
        _ => {}
    }
    Ok(command)
}

/// The version of the entity behind `stream` in the read model, if it exists.
fn version_in(state: &ControlPlane, stream: &StreamId) -> Option<u64> {
    let (kind, id) = stream.as_str().split_once('/')?;
    match kind {
        "pipeline" => state.pipeline(&PipelineId(id.into())).map(|p| p.version),
        "connector" => state.connector(&ConnectorId(id.into())).map(|c| c.version),
        "processor" => state.processor(&ProcessorId(id.into())).map(|p| p.version),
        _ => None,
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Creates, changes, deletes, starts and stops pipelines.
#[derive(Clone)]
pub struct PipelineOrchestrator {
    writer: Arc<ControlPlaneWriter>,
}

impl PipelineOrchestrator {
    /// An orchestrator on `writer`.
    pub fn new(writer: Arc<ControlPlaneWriter>) -> Self {
        Self { writer }
    }

    fn get(&self, id: &PipelineId) -> Result<Pipeline, CommandError> {
        self.writer
            .projections
            .read()
            .pipeline(id)
            .cloned()
            .ok_or_else(|| not_found(culvert_domain::EntityKind::Pipeline, id.as_str()))
    }

    /// Create a pipeline with a generated id.
    pub fn create(
        &self,
        ctx: &Context,
        name: &str,
        description: &str,
    ) -> Result<Pipeline, CommandError> {
        self.create_with_id(ctx, PipelineId(new_id()), name, description)
    }

    /// Create a pipeline with the given id (configuration files choose their ids).
    pub fn create_with_id(
        &self,
        ctx: &Context,
        id: PipelineId,
        name: &str,
        description: &str,
    ) -> Result<Pipeline, CommandError> {
        let command = Command::CreatePipeline {
            id: id.clone(),
            name: name.to_owned(),
            description: description.to_owned(),
        };
        self.writer.execute(ctx, &command, None)?;
        self.get(&id)
    }

    /// Change name and description; `expected_version` makes it conditional.
    pub fn update(
        &self,
        ctx: &Context,
        id: &PipelineId,
        name: &str,
        description: &str,
        expected_version: Option<u64>,
    ) -> Result<Pipeline, CommandError> {
        let command = Command::UpdatePipeline {
            id: id.clone(),
            name: name.to_owned(),
            description: description.to_owned(),
        };
        let expected = expected_version.map(|v| (StreamId::pipeline(id), v));
        self.writer.execute(ctx, &command, expected)?;
        self.get(id)
    }

    /// Replace the dead-letter-queue settings.
    pub fn update_dlq(
        &self,
        ctx: &Context,
        id: &PipelineId,
        dlq: DeadLetterQueue,
    ) -> Result<Pipeline, CommandError> {
        self.update_dlq_expecting(ctx, id, dlq, None)
    }

    /// [`Self::update_dlq`], only if the pipeline is at `expected_version`.
    pub fn update_dlq_expecting(
        &self,
        ctx: &Context,
        id: &PipelineId,
        dlq: DeadLetterQueue,
        expected_version: Option<u64>,
    ) -> Result<Pipeline, CommandError> {
        let command = Command::UpdatePipelineDlq {
            id: id.clone(),
            dlq,
        };
        let expected = expected_version.map(|v| (StreamId::pipeline(id), v));
        self.writer.execute(ctx, &command, expected)?;
        self.get(id)
    }

    /// Delete a stopped pipeline without connectors or processors.
    pub fn delete(&self, ctx: &Context, id: &PipelineId) -> Result<(), CommandError> {
        self.delete_expecting(ctx, id, None)
    }

    /// [`Self::delete`], only if the pipeline is at `expected_version`.
    pub fn delete_expecting(
        &self,
        ctx: &Context,
        id: &PipelineId,
        expected_version: Option<u64>,
    ) -> Result<(), CommandError> {
        let command = Command::DeletePipeline { id: id.clone() };
        let expected = expected_version.map(|v| (StreamId::pipeline(id), v));
        self.writer.execute(ctx, &command, expected).map(|_| ())
    }

    /// Request a start (the engine acts on the event and reports back).
    pub fn start(&self, ctx: &Context, id: &PipelineId) -> Result<Pipeline, CommandError> {
        self.writer
            .execute(ctx, &Command::StartPipeline { id: id.clone() }, None)?;
        self.get(id)
    }

    /// Request a stop; `force` skips the drain.
    pub fn stop(
        &self,
        ctx: &Context,
        id: &PipelineId,
        force: bool,
    ) -> Result<Pipeline, CommandError> {
        let command = Command::StopPipeline {
            id: id.clone(),
            force,
        };
        self.writer.execute(ctx, &command, None)?;
        self.get(id)
    }

    /// The engine reports the pipeline running.
    pub fn report_started(&self, ctx: &Context, id: &PipelineId) -> Result<(), CommandError> {
        let command = Command::ReportPipelineStarted { id: id.clone() };
        self.writer.execute(ctx, &command, None).map(|_| ())
    }

    /// The engine reports the pipeline stopped.
    pub fn report_stopped(
        &self,
        ctx: &Context,
        id: &PipelineId,
        reason: StoppedReason,
    ) -> Result<(), CommandError> {
        let command = Command::ReportPipelineStopped {
            id: id.clone(),
            reason,
        };
        self.writer.execute(ctx, &command, None).map(|_| ())
    }

    /// The engine reports the pipeline failed with `error` and restarts it after a delay
    /// (`attempt` counts the restarts, from 1).
    pub fn report_recovering(
        &self,
        ctx: &Context,
        id: &PipelineId,
        error: &str,
        attempt: u32,
    ) -> Result<(), CommandError> {
        let command = Command::ReportPipelineRecovering {
            id: id.clone(),
            error: error.to_owned(),
            attempt,
        };
        self.writer.execute(ctx, &command, None).map(|_| ())
    }

    /// The engine reports the pipeline failed with `error`.
    pub fn report_degraded(
        &self,
        ctx: &Context,
        id: &PipelineId,
        error: &str,
    ) -> Result<(), CommandError> {
        let command = Command::ReportPipelineDegraded {
            id: id.clone(),
            error: error.to_owned(),
        };
        self.writer.execute(ctx, &command, None).map(|_| ())
    }
}

/// Creates, changes and deletes connectors.
#[derive(Clone)]
pub struct ConnectorOrchestrator {
    writer: Arc<ControlPlaneWriter>,
}

impl ConnectorOrchestrator {
    /// An orchestrator on `writer`.
    pub fn new(writer: Arc<ControlPlaneWriter>) -> Self {
        Self { writer }
    }

    fn get(&self, id: &ConnectorId) -> Result<Connector, CommandError> {
        self.writer
            .projections
            .read()
            .connector(id)
            .cloned()
            .ok_or_else(|| not_found(culvert_domain::EntityKind::Connector, id.as_str()))
    }

    /// Create a connector in a pipeline (one batch: connector created + added to pipeline).
    pub fn create(
        &self,
        ctx: &Context,
        pipeline_id: &PipelineId,
        connector_type: ConnectorType,
        plugin: &str,
        name: &str,
        settings: Settings,
    ) -> Result<Connector, CommandError> {
        self.create_with_id(
            ctx,
            ConnectorId(new_id()),
            pipeline_id,
            connector_type,
            plugin,
            name,
            settings,
        )
    }

    /// Create a connector with the given id.
    pub fn create_with_id(
        &self,
        ctx: &Context,
        id: ConnectorId,
        pipeline_id: &PipelineId,
        connector_type: ConnectorType,
        plugin: &str,
        name: &str,
        settings: Settings,
    ) -> Result<Connector, CommandError> {
        let command = Command::CreateConnector {
            id: id.clone(),
            pipeline_id: pipeline_id.clone(),
            connector_type,
            plugin: plugin.to_owned(),
            name: name.to_owned(),
            settings,
        };
        self.writer.execute(ctx, &command, None)?;
        self.get(&id)
    }

    /// Change name, settings and optionally the plugin.
    pub fn update(
        &self,
        ctx: &Context,
        id: &ConnectorId,
        name: &str,
        settings: Settings,
        plugin: Option<&str>,
        expected_version: Option<u64>,
    ) -> Result<Connector, CommandError> {
        let command = Command::UpdateConnector {
            id: id.clone(),
            name: name.to_owned(),
            settings,
            plugin: plugin.map(str::to_owned),
        };
        let expected = expected_version.map(|v| (StreamId::connector(id), v));
        self.writer.execute(ctx, &command, expected)?;
        self.get(id)
    }

    /// Delete a connector without processors (one batch: deleted + removed from pipeline).
    pub fn delete(&self, ctx: &Context, id: &ConnectorId) -> Result<(), CommandError> {
        self.delete_expecting(ctx, id, None)
    }

    /// [`Self::delete`], only if the connector is at `expected_version`.
    pub fn delete_expecting(
        &self,
        ctx: &Context,
        id: &ConnectorId,
        expected_version: Option<u64>,
    ) -> Result<(), CommandError> {
        let command = Command::DeleteConnector { id: id.clone() };
        let expected = expected_version.map(|v| (StreamId::connector(id), v));
        self.writer.execute(ctx, &command, expected).map(|_| ())
    }
}

/// Creates, changes and deletes processors.
#[derive(Clone)]
pub struct ProcessorOrchestrator {
    writer: Arc<ControlPlaneWriter>,
}

impl ProcessorOrchestrator {
    /// An orchestrator on `writer`.
    pub fn new(writer: Arc<ControlPlaneWriter>) -> Self {
        Self { writer }
    }

    fn get(&self, id: &ProcessorId) -> Result<Processor, CommandError> {
        self.writer
            .projections
            .read()
            .processor(id)
            .cloned()
            .ok_or_else(|| not_found(culvert_domain::EntityKind::Processor, id.as_str()))
    }

    /// Create a processor on a connector or pipeline (one batch: created + attached).
    pub fn create(
        &self,
        ctx: &Context,
        parent: ProcessorParent,
        plugin: &str,
        settings: Settings,
        condition: &str,
        workers: i32,
    ) -> Result<Processor, CommandError> {
        let id = ProcessorId(new_id());
        let command = Command::CreateProcessor {
            id: id.clone(),
            parent,
            plugin: plugin.to_owned(),
            settings,
            condition: condition.to_owned(),
            workers,
        };
        self.writer.execute(ctx, &command, None)?;
        self.get(&id)
    }

    /// Change settings, workers and optionally the plugin.
    pub fn update(
        &self,
        ctx: &Context,
        id: &ProcessorId,
        settings: Settings,
        workers: i32,
        plugin: Option<&str>,
        expected_version: Option<u64>,
    ) -> Result<Processor, CommandError> {
        let command = Command::UpdateProcessor {
            id: id.clone(),
            settings,
            workers,
            plugin: plugin.map(str::to_owned),
        };
        let expected = expected_version.map(|v| (StreamId::processor(id), v));
        self.writer.execute(ctx, &command, expected)?;
        self.get(id)
    }

    /// Delete a processor (one batch: deleted + detached from its parent).
    pub fn delete(&self, ctx: &Context, id: &ProcessorId) -> Result<(), CommandError> {
        self.delete_expecting(ctx, id, None)
    }

    /// [`Self::delete`], only if the processor is at `expected_version`.
    pub fn delete_expecting(
        &self,
        ctx: &Context,
        id: &ProcessorId,
        expected_version: Option<u64>,
    ) -> Result<(), CommandError> {
        let command = Command::DeleteProcessor { id: id.clone() };
        let expected = expected_version.map(|v| (StreamId::processor(id), v));
        self.writer.execute(ctx, &command, expected).map(|_| ())
    }
}

/// The built-in schema registry's write side: registers schemas as `SchemaRegistered`
/// events (so they survive restarts and replays) and answers from the read model.
#[derive(Clone)]
pub struct SchemaOrchestrator {
    writer: Arc<ControlPlaneWriter>,
}

impl SchemaOrchestrator {
    /// An orchestrator on `writer`.
    pub fn new(writer: Arc<ControlPlaneWriter>) -> Self {
        Self { writer }
    }

    /// Register `schema` under `subject` (the caller has checked it is a schema of its
    /// type) and answer its version and id; a text the subject has already answers the
    /// version it has, and records nothing.
    pub fn register(
        &self,
        ctx: &Context,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
    ) -> Result<RegisteredSchema, CommandError> {
        let command = Command::RegisterSchema {
            subject: subject.to_owned(),
            schema_type,
            schema: schema.to_owned(),
        };
        self.writer.execute(ctx, &command, None)?;
        // Schemas are never removed: the text is under the subject now.
        self.writer
            .projections
            .read()
            .schemas()
            .find(subject, schema_type, schema)
            .ok_or_else(|| not_found(culvert_domain::EntityKind::Schema, subject))
    }

    /// `subject`'s schema at `version`.
    pub fn get(&self, subject: &str, version: u32) -> Option<RegisteredSchema> {
        self.writer
            .projections
            .read()
            .schemas()
            .get(subject, version)
    }

    /// The type and text of the schema with a global id.
    pub fn by_id(&self, id: u32) -> Option<(SchemaType, String)> {
        self.writer
            .projections
            .read()
            .schemas()
            .by_id(id)
            .map(|(kind, text)| (kind, text.to_owned()))
    }

    /// Whether `subject` has any version.
    pub fn has_subject(&self, subject: &str) -> bool {
        self.writer
            .projections
            .read()
            .schemas()
            .has_subject(subject)
    }
}

fn not_found(kind: culvert_domain::EntityKind, id: &str) -> CommandError {
    CommandError::Domain(DomainError::NotFound {
        kind,
        id: id.to_owned(),
    })
}

#[cfg(test)]
mod tests;
