//! Shared by the projection tests: a RocksDB log in a temporary directory, commands run the
//! way the server runs them (decide on the live state, append, fold the batch into the live
//! projection, snapshot when due), and a generator of realistic control-plane commands.

#![allow(dead_code)]

use culvert_domain::{
    Command, ConnectorId, ConnectorType, ControlPlane, DeadLetterQueue, EventMeta, PipelineId,
    PipelineStatus, ProcessorId, ProcessorParent, RecordedEvent, SchemaType, Settings,
    StoppedReason,
};
use culvert_migrations::{encode, Provenance};
use culvert_projections::Projections;
use culvert_store::{AppendRequest, EventLog, RocksStore, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// A store as the server opens it, but without fsync (the tests do not lose power).
pub fn open_store(path: &Path) -> RocksStore {
    let options = StoreOptions {
        fsync: false,
        positions_fsync: false,
        ..StoreOptions::default()
    };
    RocksStore::open(path, options, &culvert_migrations::layout()).expect("open the store")
}

/// The read model as bytes (the snapshot encoding).
pub fn bytes(state: &ControlPlane) -> Vec<u8> {
    serde_json::to_vec(state).expect("a control plane serialises")
}

/// Decide `command` on the live state, append its events as one batch and fold them into
/// `projections`, then snapshot if due: what the command layer does. `None` when the domain
/// refuses the command; the events appended otherwise (none for a no-op).
pub fn execute(
    log: &RocksStore,
    projections: &Projections,
    command: &Command,
    operation: u64,
) -> Option<Vec<RecordedEvent>> {
    let recorded = append(log, projections, command, operation)?;
    projections.apply(&recorded).expect("fold the batch");
    projections.snapshot_if_due(log).expect("snapshot");
    Some(recorded)
}

/// Decide and append `command` (no folding): the batch as the projection will be handed it.
pub fn append(
    log: &RocksStore,
    projections: &Projections,
    command: &Command,
    operation: u64,
) -> Option<Vec<RecordedEvent>> {
    let events = projections.read().decide(command).ok()?;
    if events.is_empty() {
        return Some(Vec::new());
    }
    let provenance = Provenance {
        actor: "user:rebuild-test".into(),
        correlation_id: format!("op-{operation}"),
        causation_id: None,
        reason: operation
            .is_multiple_of(7)
            .then(|| format!("reason {operation}")),
    };
    let stored = log
        .append(AppendRequest {
            events: events.iter().map(|e| encode(e, &provenance)).collect(),
            ..AppendRequest::default()
        })
        .expect("append");
    Some(
        stored
            .into_iter()
            .zip(events)
            .map(|(s, event)| RecordedEvent {
                seq: s.seq,
                stream_version: s.stream_version,
                meta: EventMeta {
                    actor: s.actor,
                    correlation_id: s.correlation_id,
                    causation_id: s.causation_id,
                    reason: s.reason,
                    recorded_at: s.recorded_at,
                },
                event,
            })
            .collect(),
    )
}

/// Realistic control-plane traffic: pipelines, connectors and processors created, renamed,
/// reconfigured, started and stopped, and deleted (children first, as a user must), with
/// the live population kept around `target_pipelines` pipelines.
pub struct Workload {
    rng: StdRng,
    next: u64,
    target_pipelines: usize,
}

impl Workload {
    /// A workload from `seed`.
    pub fn new(seed: u64, target_pipelines: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            next: 0,
            target_pipelines,
        }
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn settings(&mut self, n: u64) -> Settings {
        let mut settings = Settings::new();
        for key in ["format.type", "rate", "recordCount", "path", "batch.size"] {
            if self.rng.gen_bool(0.6) {
                settings.insert(key.to_owned(), format!("{key}-{}", n % 97));
            }
        }
        settings
    }

    /// The next command for `state` (the domain may still refuse it, e.g. an edit of a
    /// running pipeline).
    pub fn next_command(&mut self, state: &ControlPlane) -> Command {
        let n = self.fresh();
        let pipelines = state.pipelines().count();
        let pick = |rng: &mut StdRng, count: usize| rng.gen_range(0..count.max(1));
        let pipeline = |rng: &mut StdRng| {
            let count = state.pipelines().count();
            state
                .pipelines()
                .nth(pick(rng, count))
                .map(|p| p.id.clone())
        };
        let connector = |rng: &mut StdRng| {
            let count = state.connectors().count();
            state
                .connectors()
                .nth(pick(rng, count))
                .map(|c| c.id.clone())
        };
        let processor = |rng: &mut StdRng| {
            let count = state.processors().count();
            state
                .processors()
                .nth(pick(rng, count))
                .map(|p| p.id.clone())
        };
        let create_pipeline = Command::CreatePipeline {
            id: PipelineId(format!("pipeline-{n}")),
            name: format!("orders-{n}"),
            description: format!("moves orders, take {n}"),
        };
        if pipelines < self.target_pipelines / 2 {
            return create_pipeline;
        }
        let roll = self.rng.gen_range(0..100);
        let command = match roll {
            0..=5 if pipelines < self.target_pipelines * 2 => Some(create_pipeline),
            6..=17 => pipeline(&mut self.rng).map(|id| Command::UpdatePipeline {
                id,
                name: format!("renamed-{n}"),
                description: format!("renamed at {n}"),
            }),
            18..=20 => {
                let window = self.rng.gen_range(1..10);
                pipeline(&mut self.rng).map(|id| Command::UpdatePipelineDlq {
                    id,
                    dlq: DeadLetterQueue {
                        window_size: window,
                        window_nack_threshold: window / 2,
                        ..DeadLetterQueue::default()
                    },
                })
            }
            21..=32 if state.connectors().count() < self.target_pipelines * 4 => {
                let source = self.rng.gen_bool(0.5);
                let settings = self.settings(n);
                pipeline(&mut self.rng).map(|pipeline_id| Command::CreateConnector {
                    id: ConnectorId(format!("connector-{n}")),
                    pipeline_id,
                    connector_type: if source {
                        ConnectorType::Source
                    } else {
                        ConnectorType::Destination
                    },
                    plugin: if source {
                        "builtin:generator".into()
                    } else {
                        "builtin:file".into()
                    },
                    name: format!("connector {n}"),
                    settings,
                })
            }
            33..=49 => {
                let settings = self.settings(n);
                let plugin = self.rng.gen_bool(0.1).then(|| "builtin:log".to_owned());
                connector(&mut self.rng).map(|id| Command::UpdateConnector {
                    id,
                    name: format!("connector renamed {n}"),
                    settings,
                    plugin,
                })
            }
            50..=59 => {
                let on_connector = self.rng.gen_bool(0.5);
                let settings = self.settings(n);
                let workers = self.rng.gen_range(1..4);
                let parent = if on_connector {
                    connector(&mut self.rng).map(ProcessorParent::Connector)
                } else {
                    pipeline(&mut self.rng).map(ProcessorParent::Pipeline)
                };
                parent.map(|parent| Command::CreateProcessor {
                    id: ProcessorId(format!("processor-{n}")),
                    parent,
                    plugin: "builtin:field.set".into(),
                    settings,
                    condition: if n.is_multiple_of(3) {
                        "{{ eq .Metadata.kind \"order\" }}".into()
                    } else {
                        String::new()
                    },
                    workers,
                })
            }
            60..=69 => {
                let settings = self.settings(n);
                let workers = self.rng.gen_range(1..4);
                processor(&mut self.rng).map(|id| Command::UpdateProcessor {
                    id,
                    settings,
                    workers,
                    plugin: None,
                })
            }
            70..=75 => processor(&mut self.rng).map(|id| Command::DeleteProcessor { id }),
            76..=81 => connector(&mut self.rng).map(|id| {
                // Children first, as the API insists.
                match state.connector(&id).and_then(|c| c.processor_ids.first()) {
                    Some(child) => Command::DeleteProcessor { id: child.clone() },
                    None => Command::DeleteConnector { id },
                }
            }),
            82..=87 if pipelines > self.target_pipelines / 2 => pipeline(&mut self.rng).map(|id| {
                let p = state.pipeline(&id).expect("picked from the state");
                if let Some(child) = p.processor_ids.first() {
                    Command::DeleteProcessor { id: child.clone() }
                } else if let Some(c) = p.connector_ids.first() {
                    match state.connector(c).and_then(|c| c.processor_ids.first()) {
                        Some(child) => Command::DeleteProcessor { id: child.clone() },
                        None => Command::DeleteConnector { id: c.clone() },
                    }
                } else if !matches!(p.status, PipelineStatus::Stopped { .. }) {
                    Command::StopPipeline { id, force: true }
                } else {
                    Command::DeletePipeline { id }
                }
            }),
            88..=90 => pipeline(&mut self.rng).map(|id| Command::StartPipeline { id }),
            91..=92 => pipeline(&mut self.rng).map(|id| Command::ReportPipelineStarted { id }),
            93..=95 => {
                let force = self.rng.gen_bool(0.2);
                pipeline(&mut self.rng).map(|id| Command::StopPipeline { id, force })
            }
            96..=97 => pipeline(&mut self.rng).map(|id| Command::ReportPipelineStopped {
                id,
                reason: StoppedReason::User,
            }),
            98 => pipeline(&mut self.rng).map(|id| Command::ReportPipelineDegraded {
                id,
                error: format!("connection reset ({n})"),
            }),
            _ => Some(Command::RegisterSchema {
                subject: format!("orders-{}", n % 5),
                schema_type: SchemaType::Avro,
                schema: format!(
                    r#"{{"type":"record","name":"order","fields":[{{"name":"f{}","type":"string"}}]}}"#,
                    n % 50
                ),
            }),
        };
        let command = command.unwrap_or(Command::CreatePipeline {
            id: PipelineId(format!("pipeline-{n}")),
            name: format!("orders-{n}"),
            description: String::new(),
        });
        // An edit of a pipeline that is not stopped would be refused: move that pipeline
        // along its lifecycle instead, as the engine and a user would.
        let lifecycle = matches!(
            command,
            Command::StartPipeline { .. }
                | Command::StopPipeline { .. }
                | Command::ReportPipelineStarted { .. }
                | Command::ReportPipelineStopped { .. }
                | Command::ReportPipelineDegraded { .. }
                | Command::RegisterSchema { .. }
                | Command::CreatePipeline { .. }
        );
        let target = pipeline_of(state, &command).and_then(|id| state.pipeline(&id));
        match target {
            Some(p) if !lifecycle => match p.status {
                PipelineStatus::Stopped { .. } => command,
                PipelineStatus::Starting => Command::ReportPipelineStarted { id: p.id.clone() },
                PipelineStatus::Stopping { .. } => Command::ReportPipelineStopped {
                    id: p.id.clone(),
                    reason: StoppedReason::User,
                },
                _ => Command::StopPipeline {
                    id: p.id.clone(),
                    force: false,
                },
            },
            _ => command,
        }
    }
}

/// The pipeline a command changes, if it names one (directly or through its parents).
fn pipeline_of(state: &ControlPlane, command: &Command) -> Option<PipelineId> {
    let of_parent = |parent: &ProcessorParent| match parent {
        ProcessorParent::Pipeline(p) => Some(p.clone()),
        ProcessorParent::Connector(c) => state.connector(c).map(|c| c.pipeline_id.clone()),
    };
    match command {
        Command::UpdatePipeline { id, .. }
        | Command::UpdatePipelineDlq { id, .. }
        | Command::DeletePipeline { id } => Some(id.clone()),
        Command::CreateConnector { pipeline_id, .. } => Some(pipeline_id.clone()),
        Command::UpdateConnector { id, .. } | Command::DeleteConnector { id } => {
            state.connector(id).map(|c| c.pipeline_id.clone())
        }
        Command::CreateProcessor { parent, .. } => of_parent(parent),
        Command::UpdateProcessor { id, .. } | Command::DeleteProcessor { id } => {
            state.processor(id).and_then(|p| of_parent(&p.parent))
        }
        _ => None,
    }
}

/// Run commands from `workload` through [`execute`] until at least `events` events were
/// appended.
/// Returns (events appended, commands refused by the domain).
pub fn run(
    log: &RocksStore,
    projections: &Projections,
    workload: &mut Workload,
    events: u64,
) -> (u64, u64) {
    let (mut appended, mut refused, mut operation) = (0, 0, 0);
    let start = log.head().0;
    while appended < events {
        operation += 1;
        let command = workload.next_command(&projections.read());
        match execute(log, projections, &command, operation) {
            Some(batch) => appended += batch.len() as u64,
            None => refused += 1,
        }
    }
    assert_eq!(log.head().0, start + appended);
    (appended, refused)
}
