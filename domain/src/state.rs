//! The control-plane state, `decide` (command -> events) and `evolve` (event -> state).

use crate::command::{Command, ResealTarget};
use crate::error::{DomainError, EntityKind};
use crate::event::{Event, RecordedEvent};
use crate::ids::{ConnectorId, PipelineId, ProcessorId, Seq};
use crate::model::{
    Connector, ConnectorType, DeadLetterQueue, Pipeline, PipelineStatus, Processor,
    ProcessorParent, Settings, StoppedReason,
};
use crate::schema::Schemas;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Size limits on ids, names and descriptions (Conduit's, from its pipeline and connector
/// services), in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest pipeline id.
    pub pipeline_id: usize,
    /// Longest pipeline name.
    pub pipeline_name: usize,
    /// Longest pipeline description.
    pub pipeline_description: usize,
    /// Longest connector or processor id.
    pub connector_id: usize,
    /// Longest connector name.
    pub connector_name: usize,
    /// Longest plugin reference.
    pub plugin: usize,
}

/// The limits in force.
pub const LIMITS: Limits = Limits {
    pipeline_id: 128,
    pipeline_name: 128,
    pipeline_description: 8192,
    connector_id: 256,
    connector_name: 256,
    plugin: 256,
};

/// The whole control plane: every pipeline, connector and processor, as of `last_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlane {
    pipelines: BTreeMap<PipelineId, Pipeline>,
    connectors: BTreeMap<ConnectorId, Connector>,
    processors: BTreeMap<ProcessorId, Processor>,
    /// The built-in schema registry.
    #[serde(default)]
    schemas: Schemas,
    last_seq: Seq,
    /// Pipeline name -> id; derived from `pipelines`, rebuilt by [`ControlPlane::reindex`].
    #[serde(skip)]
    names: HashMap<String, PipelineId>,
}

/// Fold one event into a state (the functional form of [`ControlPlane::evolve`]).
pub fn evolve(mut state: ControlPlane, event: &RecordedEvent) -> ControlPlane {
    state.evolve(event);
    state
}

impl ControlPlane {
    /// An empty control plane (before the first event).
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number of the last event folded in.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// A pipeline by id.
    pub fn pipeline(&self, id: &PipelineId) -> Option<&Pipeline> {
        self.pipelines.get(id)
    }

    /// A connector by id.
    pub fn connector(&self, id: &ConnectorId) -> Option<&Connector> {
        self.connectors.get(id)
    }

    /// A processor by id.
    pub fn processor(&self, id: &ProcessorId) -> Option<&Processor> {
        self.processors.get(id)
    }

    /// Whether any processor runs on `pipeline`'s records: one of the pipeline's own, or one
    /// attached to any of its connectors. Sources are told, as some make records faster when
    /// nothing reads their fields before a destination writes them.
    pub fn runs_processors(&self, pipeline: &Pipeline) -> bool {
        !pipeline.processor_ids.is_empty()
            || pipeline.connector_ids.iter().any(|id| {
                self.connector(id)
                    .is_some_and(|connector| !connector.processor_ids.is_empty())
            })
    }

    /// A pipeline by its (unique) name.
    pub fn pipeline_by_name(&self, name: &str) -> Option<&Pipeline> {
        self.names.get(name).and_then(|id| self.pipelines.get(id))
    }

    /// All pipelines, ordered by id.
    pub fn pipelines(&self) -> impl Iterator<Item = &Pipeline> {
        self.pipelines.values()
    }

    /// All connectors, ordered by id.
    pub fn connectors(&self) -> impl Iterator<Item = &Connector> {
        self.connectors.values()
    }

    /// All processors, ordered by id.
    pub fn processors(&self) -> impl Iterator<Item = &Processor> {
        self.processors.values()
    }

    /// Rebuild the derived indexes; call after deserialising a snapshot.
    pub fn reindex(&mut self) {
        self.names = self
            .pipelines
            .values()
            .map(|p| (p.name.clone(), p.id.clone()))
            .collect();
        self.schemas.reindex();
    }

    /// The built-in schema registry.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// Check `command` against this state and return the events that carry it out, or the
    /// reason it is refused. Pure: the same state and command always give the same answer.
    pub fn decide(&self, command: &Command) -> Result<Vec<Event>, DomainError> {
        match command {
            Command::Provision {
                pipeline,
                file,
                commands,
            } => self.decide_provision(pipeline, file.as_deref(), commands),
            command => {
                if let Some(p) = self.provisioned_target(command) {
                    return Err(DomainError::ProvisionedByConfig {
                        id: p.id.to_string(),
                        file: p.provisioned_by.clone().unwrap_or_default(),
                    });
                }
                self.decide_one(command)
            }
        }
    }

    /// Settings sealed again: the same keys as stored, allowed in any state (the values do
    /// not change); no event when they are identical.
    fn decide_reseal(
        &self,
        target: &ResealTarget,
        settings: &Settings,
    ) -> Result<Vec<Event>, DomainError> {
        let (entity, stored) = match target {
            ResealTarget::Connector(id) => (
                EntityKind::Connector,
                &self.existing_connector(id)?.settings,
            ),
            ResealTarget::Processor(id) => (
                EntityKind::Processor,
                &self.existing_processor(id)?.settings,
            ),
            ResealTarget::PipelineDlq(id) => (
                EntityKind::Pipeline,
                &self.existing_pipeline(id)?.dlq.settings,
            ),
        };
        if !stored.keys().eq(settings.keys()) {
            return Err(DomainError::InvalidArgument {
                entity,
                field: "settings",
                reason: "sealing again must keep the stored settings' keys".into(),
            });
        }
        if stored == settings {
            return Ok(vec![]);
        }
        Ok(vec![match target {
            ResealTarget::Connector(id) => Event::ConnectorSecretsResealed {
                id: id.clone(),
                settings: settings.clone(),
            },
            ResealTarget::Processor(id) => Event::ProcessorSecretsResealed {
                id: id.clone(),
                settings: settings.clone(),
            },
            ResealTarget::PipelineDlq(id) => Event::PipelineDlqSecretsResealed {
                id: id.clone(),
                settings: settings.clone(),
            },
        }])
    }

    /// A source's position moved: only a source's, only while its pipeline is not running
    /// (the engine owns the position then); no event when nothing changes.
    fn decide_position(
        &self,
        id: &ConnectorId,
        change: &crate::command::PositionChange,
    ) -> Result<Vec<Event>, DomainError> {
        let connector = self.existing_connector(id)?;
        if connector.connector_type != ConnectorType::Source {
            return Err(DomainError::InvalidArgument {
                entity: EntityKind::Connector,
                field: "id",
                reason: format!("connector {id} is a destination; only sources have positions"),
            });
        }
        self.editable_pipeline(&connector.pipeline_id)?;
        if change.how.is_empty() {
            return Err(DomainError::InvalidArgument {
                entity: EntityKind::Connector,
                field: "how",
                reason: "say how the position was chosen".into(),
            });
        }
        if change.old == change.new {
            return Ok(vec![]);
        }
        Ok(vec![Event::SourcePositionSet {
            id: id.clone(),
            old: change.old.clone(),
            new: change.new.clone(),
            how: change.how.clone(),
        }])
    }

    /// The provisioned pipeline a command would change, if any (start and stop requests
    /// and the engine's reports change no configuration and are allowed).
    fn provisioned_target(&self, command: &Command) -> Option<&Pipeline> {
        let pipeline_of_connector =
            |id: &ConnectorId| self.connectors.get(id).map(|c| c.pipeline_id.clone());
        let pipeline_of_parent = |parent: &ProcessorParent| match parent {
            ProcessorParent::Pipeline(id) => Some(id.clone()),
            ProcessorParent::Connector(id) => pipeline_of_connector(id),
        };
        let pipeline = match command {
            Command::UpdatePipeline { id, .. }
            | Command::UpdatePipelineDlq { id, .. }
            | Command::DeletePipeline { id } => Some(id.clone()),
            Command::CreateConnector { pipeline_id, .. } => Some(pipeline_id.clone()),
            Command::UpdateConnector { id, .. } | Command::DeleteConnector { id } => {
                pipeline_of_connector(id)
            }
            Command::CreateProcessor { parent, .. } => pipeline_of_parent(parent),
            Command::UpdateProcessor { id, .. } | Command::DeleteProcessor { id } => self
                .processors
                .get(id)
                .and_then(|p| pipeline_of_parent(&p.parent)),
            _ => None,
        }?;
        self.pipelines
            .get(&pipeline)
            .filter(|p| p.provisioned_by.is_some())
    }

    /// Decide a provisioning batch on a scratch copy of the state, each command against
    /// what the earlier ones leave.
    fn decide_provision(
        &self,
        pipeline: &PipelineId,
        file: Option<&str>,
        commands: &[Command],
    ) -> Result<Vec<Event>, DomainError> {
        if let Some(existing) = self.pipelines.get(pipeline) {
            match (&existing.provisioned_by, file) {
                (None, Some(_)) => {
                    return Err(DomainError::NotProvisioned {
                        id: pipeline.to_string(),
                    })
                }
                (Some(by), None) => {
                    return Err(DomainError::ProvisionedByConfig {
                        id: pipeline.to_string(),
                        file: by.clone(),
                    })
                }
                _ => {}
            }
        }
        let mut scratch = self.scratch_for(pipeline, commands);
        let mut events = Vec::new();
        for command in commands {
            if matches!(command, Command::Provision { .. }) {
                return Err(DomainError::InvalidArgument {
                    entity: EntityKind::Pipeline,
                    field: "commands",
                    reason: "a provisioning batch cannot hold another".into(),
                });
            }
            let decided = scratch.decide_one(command)?;
            for event in &decided {
                scratch.evolve_scratch(event);
            }
            events.extend(decided);
        }
        if let Some(file) = file {
            let marked = scratch
                .pipelines
                .get(pipeline)
                .is_some_and(|p| p.provisioned_by.as_deref() == Some(file));
            if scratch.pipelines.contains_key(pipeline) && !marked {
                events.push(Event::PipelineProvisioned {
                    id: pipeline.clone(),
                    file: file.to_owned(),
                });
            }
        }
        Ok(events)
    }

    /// A copy of the part of the state a provisioning batch can touch: the pipeline with its
    /// connectors and processors, every entity a command names, and the whole name index
    /// (names are unique across pipelines). Copying only that keeps a batch's cost
    /// independent of how many other pipelines exist.
    fn scratch_for(&self, pipeline: &PipelineId, commands: &[Command]) -> ControlPlane {
        let mut scratch = ControlPlane {
            last_seq: self.last_seq,
            names: self.names.clone(),
            ..ControlPlane::default()
        };
        let mut pipelines = vec![pipeline.clone()];
        let mut connectors = Vec::new();
        let mut processors = Vec::new();
        for command in commands {
            match command {
                Command::CreatePipeline { id, .. }
                | Command::UpdatePipeline { id, .. }
                | Command::UpdatePipelineDlq { id, .. }
                | Command::DeletePipeline { id }
                | Command::StartPipeline { id }
                | Command::StopPipeline { id, .. }
                | Command::ReportPipelineStarted { id }
                | Command::ReportPipelineStopped { id, .. }
                | Command::ReportPipelineRecovering { id, .. }
                | Command::ReportPipelineDegraded { id, .. } => pipelines.push(id.clone()),
                Command::CreateConnector {
                    id, pipeline_id, ..
                } => {
                    connectors.push(id.clone());
                    pipelines.push(pipeline_id.clone());
                }
                Command::UpdateConnector { id, .. } | Command::DeleteConnector { id } => {
                    connectors.push(id.clone())
                }
                Command::CreateProcessor { id, parent, .. } => {
                    processors.push(id.clone());
                    match parent {
                        ProcessorParent::Pipeline(p) => pipelines.push(p.clone()),
                        ProcessorParent::Connector(c) => connectors.push(c.clone()),
                    }
                }
                Command::UpdateProcessor { id, .. } | Command::DeleteProcessor { id } => {
                    processors.push(id.clone())
                }
                Command::SetSourcePosition { id, .. } => connectors.push(id.clone()),
                Command::ReinjectDeadLetters { id, .. } => pipelines.push(id.clone()),
                Command::ResealSecrets { target, .. } => match target {
                    ResealTarget::Connector(id) => connectors.push(id.clone()),
                    ResealTarget::Processor(id) => processors.push(id.clone()),
                    ResealTarget::PipelineDlq(id) => pipelines.push(id.clone()),
                },
                Command::Provision { .. } | Command::RegisterSchema { .. } => {}
            }
        }
        for id in &pipelines {
            if let Some(p) = self.pipelines.get(id) {
                connectors.extend(p.connector_ids.iter().cloned());
                processors.extend(p.processor_ids.iter().cloned());
                scratch.pipelines.insert(id.clone(), p.clone());
            }
        }
        // Each copied entity comes with its parents (decisions look at them).
        let copy_pipeline = |scratch: &mut ControlPlane, id: &PipelineId| {
            if let Some(p) = self.pipelines.get(id) {
                scratch
                    .pipelines
                    .entry(id.clone())
                    .or_insert_with(|| p.clone());
            }
        };
        let copy_connector = |scratch: &mut ControlPlane, id: &ConnectorId| {
            if let Some(c) = self.connectors.get(id) {
                copy_pipeline(scratch, &c.pipeline_id);
                scratch
                    .connectors
                    .entry(id.clone())
                    .or_insert_with(|| c.clone());
            }
        };
        for id in &connectors {
            if let Some(c) = self.connectors.get(id) {
                processors.extend(c.processor_ids.iter().cloned());
            }
            copy_connector(&mut scratch, id);
        }
        for id in &processors {
            if let Some(p) = self.processors.get(id) {
                match &p.parent {
                    ProcessorParent::Pipeline(parent) => copy_pipeline(&mut scratch, parent),
                    ProcessorParent::Connector(parent) => copy_connector(&mut scratch, parent),
                }
                scratch.processors.insert(id.clone(), p.clone());
            }
        }
        scratch
    }

    /// Fold an event decided but not yet recorded (for deciding the next one).
    fn evolve_scratch(&mut self, event: &Event) {
        let version = match event.stream().as_str().split_once('/') {
            Some(("pipeline", id)) => self
                .pipelines
                .get(&PipelineId(id.into()))
                .map(|p| p.version),
            Some(("connector", id)) => self
                .connectors
                .get(&ConnectorId(id.into()))
                .map(|c| c.version),
            Some(("processor", id)) => self
                .processors
                .get(&ProcessorId(id.into()))
                .map(|p| p.version),
            _ => None,
        };
        let last = self.last_seq;
        self.evolve(&RecordedEvent {
            seq: Seq(last.0 + 1),
            stream_version: version.unwrap_or(0) + 1,
            meta: crate::event::EventMeta {
                actor: String::new(),
                correlation_id: String::new(),
                causation_id: None,
                reason: None,
                recorded_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            },
            event: event.clone(),
        });
    }

    fn decide_one(&self, command: &Command) -> Result<Vec<Event>, DomainError> {
        match command {
            Command::Provision { .. } => Err(DomainError::InvalidArgument {
                entity: EntityKind::Pipeline,
                field: "commands",
                reason: "a provisioning batch cannot hold another".into(),
            }),
            Command::CreatePipeline {
                id,
                name,
                description,
            } => {
                validate_id(EntityKind::Pipeline, id.as_str(), LIMITS.pipeline_id)?;
                if self.pipelines.contains_key(id) {
                    return Err(DomainError::IdAlreadyExists {
                        kind: EntityKind::Pipeline,
                        id: id.to_string(),
                    });
                }
                self.validate_pipeline_config(None, name, description)?;
                Ok(vec![Event::PipelineCreated {
                    id: id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    dlq: DeadLetterQueue::default(),
                }])
            }
            Command::UpdatePipeline {
                id,
                name,
                description,
            } => {
                let pipeline = self.editable_pipeline(id)?;
                self.validate_pipeline_config(Some(id), name, description)?;
                if pipeline.name == *name && pipeline.description == *description {
                    return Ok(vec![]);
                }
                Ok(vec![Event::PipelineUpdated {
                    id: id.clone(),
                    name: name.clone(),
                    description: description.clone(),
                }])
            }
            Command::UpdatePipelineDlq { id, dlq } => {
                let pipeline = self.editable_pipeline(id)?;
                validate_plugin(EntityKind::Pipeline, "dlq.plugin", &dlq.plugin)?;
                // Conduit's rule: with a window, the nacks it tolerates must fit in it.
                if dlq.window_size > 0 && dlq.window_nack_threshold >= dlq.window_size {
                    return Err(DomainError::InvalidArgument {
                        entity: EntityKind::Pipeline,
                        field: "dlq.window_nack_threshold",
                        reason: format!(
                            "is {}, must be lower than dlq.window_size ({})",
                            dlq.window_nack_threshold, dlq.window_size
                        ),
                    });
                }
                if pipeline.dlq == *dlq {
                    return Ok(vec![]);
                }
                Ok(vec![Event::PipelineDlqUpdated {
                    id: id.clone(),
                    dlq: dlq.clone(),
                }])
            }
            Command::DeletePipeline { id } => {
                let pipeline = self.editable_pipeline(id)?;
                if !pipeline.connector_ids.is_empty() {
                    return Err(DomainError::PipelineHasConnectors {
                        id: id.to_string(),
                        count: pipeline.connector_ids.len(),
                    });
                }
                if !pipeline.processor_ids.is_empty() {
                    return Err(DomainError::PipelineHasProcessors {
                        id: id.to_string(),
                        count: pipeline.processor_ids.len(),
                    });
                }
                Ok(vec![Event::PipelineDeleted { id: id.clone() }])
            }
            Command::StartPipeline { id } => {
                let pipeline = self.editable_pipeline(id)?;
                for (kind, missing) in [
                    (ConnectorType::Source, "source"),
                    (ConnectorType::Destination, "destination"),
                ] {
                    let has = pipeline
                        .connector_ids
                        .iter()
                        .filter_map(|c| self.connectors.get(c))
                        .any(|c| c.connector_type == kind);
                    if !has {
                        return Err(DomainError::PipelineIncomplete {
                            id: id.to_string(),
                            missing,
                        });
                    }
                }
                Ok(vec![Event::PipelineStartRequested { id: id.clone() }])
            }
            Command::StopPipeline { id, force } => {
                let pipeline = self.existing_pipeline(id)?;
                match &pipeline.status {
                    PipelineStatus::Starting
                    | PipelineStatus::Running
                    | PipelineStatus::Recovering => {}
                    // A second, forced stop may interrupt a drain; a second graceful one is
                    // refused like any stop of a pipeline that is not running.
                    PipelineStatus::Stopping { force: false } if *force => {}
                    other => {
                        return Err(DomainError::PipelineNotRunning {
                            id: id.to_string(),
                            status: other.name(),
                        })
                    }
                }
                Ok(vec![Event::PipelineStopRequested {
                    id: id.clone(),
                    force: *force,
                }])
            }
            Command::ReportPipelineStarted { id } => {
                self.existing_pipeline(id)?;
                Ok(vec![Event::PipelineStarted { id: id.clone() }])
            }
            Command::ReportPipelineStopped { id, reason } => {
                self.existing_pipeline(id)?;
                Ok(vec![Event::PipelineStopped {
                    id: id.clone(),
                    reason: *reason,
                }])
            }
            Command::ReportPipelineRecovering { id, error, attempt } => {
                self.existing_pipeline(id)?;
                Ok(vec![Event::PipelineRecovering {
                    id: id.clone(),
                    error: error.clone(),
                    attempt: *attempt,
                }])
            }
            Command::RegisterSchema {
                subject,
                schema_type,
                schema,
            } => self.schemas.decide_register(subject, *schema_type, schema),
            Command::ResealSecrets { target, settings } => self.decide_reseal(target, settings),
            Command::SetSourcePosition { id, change } => self.decide_position(id, change),
            Command::ReinjectDeadLetters { id, letters } => {
                self.existing_pipeline(id)?;
                if letters.is_empty() {
                    return Err(DomainError::InvalidArgument {
                        entity: EntityKind::Pipeline,
                        field: "letters",
                        reason: "name at least one dead letter to re-inject".into(),
                    });
                }
                let mut letters = letters.clone();
                letters.sort_unstable();
                letters.dedup();
                Ok(vec![Event::DeadLettersReinjected {
                    id: id.clone(),
                    letters,
                }])
            }
            Command::ReportPipelineDegraded { id, error } => {
                self.existing_pipeline(id)?;
                Ok(vec![Event::PipelineDegraded {
                    id: id.clone(),
                    error: error.clone(),
                }])
            }
            Command::CreateConnector {
                id,
                pipeline_id,
                connector_type,
                plugin,
                name,
                settings,
            } => {
                validate_id(EntityKind::Connector, id.as_str(), LIMITS.connector_id)?;
                if self.connectors.contains_key(id) {
                    return Err(DomainError::IdAlreadyExists {
                        kind: EntityKind::Connector,
                        id: id.to_string(),
                    });
                }
                self.editable_pipeline(pipeline_id)?;
                validate_plugin(EntityKind::Connector, "plugin", plugin)?;
                validate_connector_name(name)?;
                Ok(vec![
                    Event::ConnectorCreated {
                        id: id.clone(),
                        pipeline_id: pipeline_id.clone(),
                        connector_type: *connector_type,
                        plugin: plugin.clone(),
                        name: name.clone(),
                        settings: settings.clone(),
                    },
                    Event::PipelineConnectorAdded {
                        id: pipeline_id.clone(),
                        connector_id: id.clone(),
                    },
                ])
            }
            Command::UpdateConnector {
                id,
                name,
                settings,
                plugin,
            } => {
                let connector = self.existing_connector(id)?;
                self.editable_pipeline(&connector.pipeline_id)?;
                validate_connector_name(name)?;
                let plugin = plugin.as_ref().unwrap_or(&connector.plugin);
                validate_plugin(EntityKind::Connector, "plugin", plugin)?;
                if connector.name == *name
                    && connector.settings == *settings
                    && connector.plugin == *plugin
                {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ConnectorUpdated {
                    id: id.clone(),
                    name: name.clone(),
                    settings: settings.clone(),
                    plugin: plugin.clone(),
                }])
            }
            Command::DeleteConnector { id } => {
                let connector = self.existing_connector(id)?;
                if !connector.processor_ids.is_empty() {
                    return Err(DomainError::ConnectorHasProcessors {
                        id: id.to_string(),
                        count: connector.processor_ids.len(),
                    });
                }
                self.editable_pipeline(&connector.pipeline_id)?;
                Ok(vec![
                    Event::ConnectorDeleted { id: id.clone() },
                    Event::PipelineConnectorRemoved {
                        id: connector.pipeline_id.clone(),
                        connector_id: id.clone(),
                    },
                ])
            }
            Command::CreateProcessor {
                id,
                parent,
                plugin,
                settings,
                condition,
                workers,
            } => {
                validate_id(EntityKind::Processor, id.as_str(), LIMITS.connector_id)?;
                if self.processors.contains_key(id) {
                    return Err(DomainError::IdAlreadyExists {
                        kind: EntityKind::Processor,
                        id: id.to_string(),
                    });
                }
                self.editable_parent(parent)?;
                validate_plugin(EntityKind::Processor, "plugin", plugin)?;
                let workers = validate_workers(*workers)?;
                let attach = match parent {
                    ProcessorParent::Connector(c) => Event::ConnectorProcessorAdded {
                        id: c.clone(),
                        processor_id: id.clone(),
                    },
                    ProcessorParent::Pipeline(p) => Event::PipelineProcessorAdded {
                        id: p.clone(),
                        processor_id: id.clone(),
                    },
                };
                Ok(vec![
                    Event::ProcessorCreated {
                        id: id.clone(),
                        parent: parent.clone(),
                        plugin: plugin.clone(),
                        settings: settings.clone(),
                        condition: condition.clone(),
                        workers,
                    },
                    attach,
                ])
            }
            Command::UpdateProcessor {
                id,
                settings,
                workers,
                plugin,
            } => {
                let processor = self.existing_processor(id)?;
                self.editable_parent(&processor.parent)?;
                let plugin = plugin.as_ref().unwrap_or(&processor.plugin);
                validate_plugin(EntityKind::Processor, "plugin", plugin)?;
                let workers = validate_workers(*workers)?;
                if processor.settings == *settings
                    && processor.workers == workers
                    && processor.plugin == *plugin
                {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ProcessorUpdated {
                    id: id.clone(),
                    plugin: plugin.clone(),
                    settings: settings.clone(),
                    workers,
                }])
            }
            Command::DeleteProcessor { id } => {
                let processor = self.existing_processor(id)?;
                self.editable_parent(&processor.parent)?;
                let detach = match &processor.parent {
                    ProcessorParent::Connector(c) => Event::ConnectorProcessorRemoved {
                        id: c.clone(),
                        processor_id: id.clone(),
                    },
                    ProcessorParent::Pipeline(p) => Event::PipelineProcessorRemoved {
                        id: p.clone(),
                        processor_id: id.clone(),
                    },
                };
                Ok(vec![Event::ProcessorDeleted { id: id.clone() }, detach])
            }
        }
    }

    /// Fold one recorded event into the state. Events are facts: this never fails. An event
    /// about an entity that does not exist (impossible in a log written through `decide`)
    /// changes nothing but the sequence number.
    pub fn evolve(&mut self, recorded: &RecordedEvent) {
        let at = recorded.meta.recorded_at;
        let version = recorded.stream_version;
        self.last_seq = recorded.seq;
        match &recorded.event {
            Event::PipelineCreated {
                id,
                name,
                description,
                dlq,
            } => {
                self.names.insert(name.clone(), id.clone());
                self.pipelines.insert(
                    id.clone(),
                    Pipeline {
                        id: id.clone(),
                        name: name.clone(),
                        description: description.clone(),
                        status: PipelineStatus::Stopped {
                            reason: StoppedReason::User,
                        },
                        connector_ids: vec![],
                        processor_ids: vec![],
                        dlq: dlq.clone(),
                        provisioned_by: None,
                        created_at: at,
                        updated_at: at,
                        version,
                    },
                );
            }
            Event::PipelineDeleted { id } => {
                if let Some(p) = self.pipelines.remove(id) {
                    self.names.remove(&p.name);
                }
            }
            Event::ConnectorCreated {
                id,
                pipeline_id,
                connector_type,
                plugin,
                name,
                settings,
            } => {
                self.connectors.insert(
                    id.clone(),
                    Connector {
                        id: id.clone(),
                        connector_type: *connector_type,
                        plugin: plugin.clone(),
                        pipeline_id: pipeline_id.clone(),
                        name: name.clone(),
                        settings: settings.clone(),
                        processor_ids: vec![],
                        created_at: at,
                        updated_at: at,
                        version,
                    },
                );
            }
            Event::ConnectorDeleted { id } => {
                self.connectors.remove(id);
            }
            Event::ProcessorCreated {
                id,
                parent,
                plugin,
                settings,
                condition,
                workers,
            } => {
                self.processors.insert(
                    id.clone(),
                    Processor {
                        id: id.clone(),
                        plugin: plugin.clone(),
                        parent: parent.clone(),
                        settings: settings.clone(),
                        condition: condition.clone(),
                        workers: *workers,
                        created_at: at,
                        updated_at: at,
                        version,
                    },
                );
            }
            Event::ProcessorDeleted { id } => {
                self.processors.remove(id);
            }
            Event::SchemaRegistered {
                subject,
                id,
                schema_type,
                schema,
                ..
            } => self
                .schemas
                .evolve_registered(subject, *id, *schema_type, schema),
            Event::PipelineUpdated {
                id,
                name,
                description,
            } => {
                if let Some(p) = self.pipelines.get_mut(id) {
                    if p.name != *name {
                        self.names.remove(&p.name);
                        self.names.insert(name.clone(), id.clone());
                    }
                    p.name = name.clone();
                    p.description = description.clone();
                    touch(&mut p.updated_at, &mut p.version, at, version);
                }
            }
            event => self.evolve_pipeline_or_child(event, at, version),
        }
    }

    fn evolve_pipeline_or_child(
        &mut self,
        event: &Event,
        at: chrono::DateTime<chrono::Utc>,
        version: u64,
    ) {
        match event {
            Event::PipelineDlqUpdated { id, dlq } => {
                self.with_pipeline(id, at, version, |p| p.dlq = dlq.clone())
            }
            Event::PipelineProvisioned { id, file } => {
                self.with_pipeline(id, at, version, |p| p.provisioned_by = Some(file.clone()))
            }
            Event::PipelineConnectorAdded { id, connector_id } => {
                self.with_pipeline(id, at, version, |p| {
                    p.connector_ids.push(connector_id.clone())
                })
            }
            Event::PipelineConnectorRemoved { id, connector_id } => {
                self.with_pipeline(id, at, version, |p| {
                    p.connector_ids.retain(|c| c != connector_id)
                })
            }
            Event::PipelineProcessorAdded { id, processor_id } => {
                self.with_pipeline(id, at, version, |p| {
                    p.processor_ids.push(processor_id.clone())
                })
            }
            Event::PipelineProcessorRemoved { id, processor_id } => {
                self.with_pipeline(id, at, version, |p| {
                    p.processor_ids.retain(|c| c != processor_id)
                })
            }
            Event::PipelineStartRequested { id } => {
                self.with_pipeline(id, at, version, |p| p.status = PipelineStatus::Starting)
            }
            Event::PipelineStopRequested { id, force } => {
                self.with_pipeline(id, at, version, |p| {
                    p.status = PipelineStatus::Stopping { force: *force }
                })
            }
            // A stop request outranks the engine's report that it started or is recovering:
            // that report was on its way when the stop came (the engine reports "started"
            // once every connector opened, which can be after a stop was asked for). Taking
            // it would turn `Stopping` back into `Running` and lose the stop.
            Event::PipelineStarted { id } => self.with_pipeline(id, at, version, |p| {
                if !matches!(p.status, PipelineStatus::Stopping { .. }) {
                    p.status = PipelineStatus::Running;
                }
            }),
            Event::PipelineStopped { id, reason } => self.with_pipeline(id, at, version, |p| {
                p.status = PipelineStatus::Stopped { reason: *reason }
            }),
            Event::PipelineRecovering { id, .. } => self.with_pipeline(id, at, version, |p| {
                if !matches!(p.status, PipelineStatus::Stopping { .. }) {
                    p.status = PipelineStatus::Recovering;
                }
            }),
            Event::PipelineDegraded { id, error } => self.with_pipeline(id, at, version, |p| {
                p.status = PipelineStatus::Degraded {
                    error: error.clone(),
                }
            }),
            Event::ConnectorUpdated {
                id,
                name,
                settings,
                plugin,
            } => self.with_connector(id, at, version, |c| {
                c.name = name.clone();
                c.settings = settings.clone();
                c.plugin = plugin.clone();
            }),
            Event::ConnectorSecretsResealed { id, settings } => {
                self.with_connector(id, at, version, |c| c.settings = settings.clone())
            }
            // The position itself lives in the position store; the connector's version
            // and update time record that it moved.
            Event::SourcePositionSet { id, .. } => self.with_connector(id, at, version, |_| {}),
            // The letters live in the dead-letter store; the pipeline's version and update
            // time record the re-injection.
            Event::DeadLettersReinjected { id, .. } => self.with_pipeline(id, at, version, |_| {}),
            Event::PipelineDlqSecretsResealed { id, settings } => {
                self.with_pipeline(id, at, version, |p| p.dlq.settings = settings.clone())
            }
            Event::ProcessorSecretsResealed { id, settings } => {
                if let Some(p) = self.processors.get_mut(id) {
                    p.settings = settings.clone();
                    touch(&mut p.updated_at, &mut p.version, at, version);
                }
            }
            Event::ConnectorProcessorAdded { id, processor_id } => {
                self.with_connector(id, at, version, |c| {
                    c.processor_ids.push(processor_id.clone())
                })
            }
            Event::ConnectorProcessorRemoved { id, processor_id } => {
                self.with_connector(id, at, version, |c| {
                    c.processor_ids.retain(|p| p != processor_id)
                })
            }
            Event::ProcessorUpdated {
                id,
                plugin,
                settings,
                workers,
            } => {
                if let Some(p) = self.processors.get_mut(id) {
                    p.plugin = plugin.clone();
                    p.settings = settings.clone();
                    p.workers = *workers;
                    touch(&mut p.updated_at, &mut p.version, at, version);
                }
            }
            // Creations, deletions and pipeline updates are handled in `evolve`.
            Event::PipelineCreated { .. }
            | Event::PipelineUpdated { .. }
            | Event::PipelineDeleted { .. }
            | Event::ConnectorCreated { .. }
            | Event::ConnectorDeleted { .. }
            | Event::ProcessorCreated { .. }
            | Event::ProcessorDeleted { .. }
            | Event::SchemaRegistered { .. } => {}
        }
    }

    fn with_pipeline(
        &mut self,
        id: &PipelineId,
        at: chrono::DateTime<chrono::Utc>,
        version: u64,
        f: impl FnOnce(&mut Pipeline),
    ) {
        if let Some(p) = self.pipelines.get_mut(id) {
            f(p);
            touch(&mut p.updated_at, &mut p.version, at, version);
        }
    }

    fn with_connector(
        &mut self,
        id: &ConnectorId,
        at: chrono::DateTime<chrono::Utc>,
        version: u64,
        f: impl FnOnce(&mut Connector),
    ) {
        if let Some(c) = self.connectors.get_mut(id) {
            f(c);
            touch(&mut c.updated_at, &mut c.version, at, version);
        }
    }

    fn existing_pipeline(&self, id: &PipelineId) -> Result<&Pipeline, DomainError> {
        self.pipelines.get(id).ok_or_else(|| DomainError::NotFound {
            kind: EntityKind::Pipeline,
            id: id.to_string(),
        })
    }

    fn existing_connector(&self, id: &ConnectorId) -> Result<&Connector, DomainError> {
        self.connectors
            .get(id)
            .ok_or_else(|| DomainError::NotFound {
                kind: EntityKind::Connector,
                id: id.to_string(),
            })
    }

    fn existing_processor(&self, id: &ProcessorId) -> Result<&Processor, DomainError> {
        self.processors
            .get(id)
            .ok_or_else(|| DomainError::NotFound {
                kind: EntityKind::Processor,
                id: id.to_string(),
            })
    }

    /// The pipeline, if it exists and is not running (invariant: only a pipeline that is
    /// not running can be edited, and so can its connectors and processors).
    fn editable_pipeline(&self, id: &PipelineId) -> Result<&Pipeline, DomainError> {
        let pipeline = self.existing_pipeline(id)?;
        if pipeline.status.is_active() {
            return Err(DomainError::PipelineRunning {
                id: id.to_string(),
                status: pipeline.status.name(),
            });
        }
        Ok(pipeline)
    }

    fn editable_parent(&self, parent: &ProcessorParent) -> Result<(), DomainError> {
        let pipeline_id = match parent {
            ProcessorParent::Pipeline(p) => p,
            ProcessorParent::Connector(c) => &self.existing_connector(c)?.pipeline_id,
        };
        self.editable_pipeline(pipeline_id).map(|_| ())
    }

    fn validate_pipeline_config(
        &self,
        id: Option<&PipelineId>,
        name: &str,
        description: &str,
    ) -> Result<(), DomainError> {
        let invalid = |field, reason: String| DomainError::InvalidArgument {
            entity: EntityKind::Pipeline,
            field,
            reason,
        };
        if name.trim().is_empty() {
            return Err(invalid("name", "must provide a pipeline name".into()));
        }
        if name.len() > LIMITS.pipeline_name {
            return Err(invalid(
                "name",
                format!(
                    "is {} bytes, over the limit of {}",
                    name.len(),
                    LIMITS.pipeline_name
                ),
            ));
        }
        if description.len() > LIMITS.pipeline_description {
            return Err(invalid(
                "description",
                format!(
                    "is {} bytes, over the limit of {}",
                    description.len(),
                    LIMITS.pipeline_description
                ),
            ));
        }
        match self.names.get(name) {
            Some(existing) if Some(existing) != id => Err(DomainError::NameAlreadyExists {
                name: name.to_owned(),
                existing_id: existing.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

fn touch(
    updated_at: &mut chrono::DateTime<chrono::Utc>,
    entity_version: &mut u64,
    at: chrono::DateTime<chrono::Utc>,
    version: u64,
) {
    *updated_at = at;
    *entity_version = version;
}

/// Ids: non-empty, bounded, and only `A-Z a-z 0-9 - _ : .` (Conduit's id pattern).
fn validate_id(entity: EntityKind, id: &str, limit: usize) -> Result<(), DomainError> {
    let invalid = |reason: String| DomainError::InvalidArgument {
        entity,
        field: "id",
        reason,
    };
    if id.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if id.len() > limit {
        return Err(invalid(format!(
            "is {} bytes, over the limit of {limit}",
            id.len()
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')))
    {
        return Err(invalid(format!(
            "contains the invalid character {c:?} (allowed: A-Z a-z 0-9 - _ : .)"
        )));
    }
    Ok(())
}

fn validate_plugin(
    entity: EntityKind,
    field: &'static str,
    plugin: &str,
) -> Result<(), DomainError> {
    let invalid = |reason: String| DomainError::InvalidArgument {
        entity,
        field,
        reason,
    };
    if plugin.trim().is_empty() {
        return Err(invalid("must name a plugin".into()));
    }
    if plugin.len() > LIMITS.plugin {
        return Err(invalid(format!(
            "is {} bytes, over the limit of {}",
            plugin.len(),
            LIMITS.plugin
        )));
    }
    Ok(())
}

fn validate_connector_name(name: &str) -> Result<(), DomainError> {
    let invalid = |reason: String| DomainError::InvalidArgument {
        entity: EntityKind::Connector,
        field: "name",
        reason,
    };
    if name.trim().is_empty() {
        return Err(invalid("must provide a connector name".into()));
    }
    if name.len() > LIMITS.connector_name {
        return Err(invalid(format!(
            "is {} bytes, over the limit of {}",
            name.len(),
            LIMITS.connector_name
        )));
    }
    Ok(())
}

/// Conduit's rule: negative is refused, 0 means the default of 1.
fn validate_workers(workers: i32) -> Result<u32, DomainError> {
    match workers {
        w if w < 0 => Err(DomainError::InvalidArgument {
            entity: EntityKind::Processor,
            field: "workers",
            reason: format!("can't be negative (got {w})"),
        }),
        0 => Ok(1),
        w => Ok(w as u32),
    }
}

#[cfg(test)]
mod tests;
