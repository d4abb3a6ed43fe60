//! What it takes to make the control plane match a configuration file: the commands of one
//! provisioning batch, only for what differs.

use crate::config::{ConnectorConfig, DlqConfig, PipelineConfig, ProcessorConfig};
use culvert_domain::{
    Command, ConnectorId, ConnectorType, ControlPlane, DeadLetterQueue, PipelineId, PipelineStatus,
    ProcessorId, ProcessorParent, StoppedReason,
};

/// The id a connector of a file gets: `<pipeline id>:<connector id>`.
pub fn connector_id(pipeline: &str, connector: &str) -> ConnectorId {
    ConnectorId(format!("{pipeline}:{connector}"))
}

/// The id a processor of a file gets: `<parent id>:<processor id>`.
pub fn processor_id(parent: &str, processor: &str) -> ProcessorId {
    ProcessorId(format!("{parent}:{processor}"))
}

fn dlq(config: &DlqConfig) -> DeadLetterQueue {
    DeadLetterQueue {
        plugin: config.plugin.clone(),
        settings: config.settings.clone(),
        window_size: config.window_size,
        window_nack_threshold: config.window_nack_threshold,
    }
}

/// Whether the pipeline's recorded status means it runs (or is about to).
pub(crate) fn is_running(status: &PipelineStatus) -> bool {
    !matches!(
        status,
        PipelineStatus::Stopped { .. } | PipelineStatus::Degraded { .. }
    )
}

/// The commands that make `state` hold `desired` (empty when it already does). A pipeline
/// that must change while recorded as running is first recorded stopped (nothing runs
/// while the server provisions), and started again at the end if the file says
/// `running`.
pub fn plan(state: &ControlPlane, desired: &PipelineConfig) -> Vec<Command> {
    let id = PipelineId(desired.id.clone());
    let mut changes = Vec::new();
    let existing = state.pipeline(&id);
    match existing {
        None => changes.push(Command::CreatePipeline {
            id: id.clone(),
            name: desired.name.clone(),
            description: desired.description.clone(),
        }),
        Some(p) if p.name != desired.name || p.description != desired.description => {
            changes.push(Command::UpdatePipeline {
                id: id.clone(),
                name: desired.name.clone(),
                description: desired.description.clone(),
            })
        }
        Some(_) => {}
    }
    let want_dlq = dlq(&desired.dlq);
    let have_dlq = existing.map(|p| p.dlq.clone()).unwrap_or_default();
    if want_dlq != have_dlq {
        changes.push(Command::UpdatePipelineDlq {
            id: id.clone(),
            dlq: want_dlq,
        });
    }

    // Connectors: delete what is gone or changed type, update what changed, create what is new.
    let wanted: Vec<(ConnectorId, &ConnectorConfig)> = desired
        .connectors
        .iter()
        .map(|c| (connector_id(&desired.id, &c.id), c))
        .collect();
    let mut deletions = Vec::new();
    if let Some(p) = existing {
        // Pipeline processors first: they may be recreated in a new order.
        let keep_pipeline_processors =
            reusable_processors(state, &p.processor_ids, &desired.id, &desired.processors);
        for processor in &p.processor_ids {
            if !keep_pipeline_processors.contains(processor) {
                deletions.push(Command::DeleteProcessor {
                    id: processor.clone(),
                });
            }
        }
        for connector_id in &p.connector_ids {
            let Some(connector) = state.connector(connector_id) else {
                continue;
            };
            let want = wanted
                .iter()
                .find(|(id, _)| id == connector_id)
                .map(|(_, c)| *c);
            let same_type = want
                .is_some_and(|c| c.source == (connector.connector_type == ConnectorType::Source));
            let keep = if same_type {
                reusable_processors(
                    state,
                    &connector.processor_ids,
                    connector_id.as_str(),
                    &want.expect("same_type implies present").processors,
                )
            } else {
                vec![]
            };
            for processor in &connector.processor_ids {
                if !keep.contains(processor) {
                    deletions.push(Command::DeleteProcessor {
                        id: processor.clone(),
                    });
                }
            }
            if !same_type {
                deletions.push(Command::DeleteConnector {
                    id: connector_id.clone(),
                });
            }
        }
    }
    changes.extend(deletions);

    for (cid, want) in &wanted {
        let have = state
            .connector(cid)
            .filter(|c| c.pipeline_id == id)
            .filter(|c| want.source == (c.connector_type == ConnectorType::Source));
        match have {
            None => changes.push(Command::CreateConnector {
                id: cid.clone(),
                pipeline_id: id.clone(),
                connector_type: if want.source {
                    ConnectorType::Source
                } else {
                    ConnectorType::Destination
                },
                plugin: want.plugin.clone(),
                name: want.name.clone(),
                settings: want.settings.clone(),
            }),
            Some(c)
                if c.name != want.name
                    || c.settings != want.settings
                    || c.plugin != want.plugin =>
            {
                changes.push(Command::UpdateConnector {
                    id: cid.clone(),
                    name: want.name.clone(),
                    settings: want.settings.clone(),
                    plugin: (c.plugin != want.plugin).then(|| want.plugin.clone()),
                })
            }
            Some(_) => {}
        }
        let parent = ProcessorParent::Connector(cid.clone());
        let existing_ids = have.map(|c| c.processor_ids.clone()).unwrap_or_default();
        let keep = if have.is_some() {
            reusable_processors(state, &existing_ids, cid.as_str(), &want.processors)
        } else {
            vec![]
        };
        processor_changes(
            state,
            &parent,
            cid.as_str(),
            &want.processors,
            &keep,
            &mut changes,
        );
    }
    let existing_pipeline_processors = existing
        .map(|p| p.processor_ids.clone())
        .unwrap_or_default();
    let keep = reusable_processors(
        state,
        &existing_pipeline_processors,
        &desired.id,
        &desired.processors,
    );
    processor_changes(
        state,
        &ProcessorParent::Pipeline(id.clone()),
        &desired.id,
        &desired.processors,
        &keep,
        &mut changes,
    );

    // Status: changes need a stopped pipeline; the file's status decides what runs after.
    let running = existing.is_some_and(|p| is_running(&p.status));
    let mut commands = Vec::new();
    if running && (!changes.is_empty() || !desired.running) {
        commands.push(Command::ReportPipelineStopped {
            id: id.clone(),
            reason: if desired.running {
                StoppedReason::System
            } else {
                StoppedReason::User
            },
        });
    }
    let stopped_for_changes = running && !changes.is_empty();
    commands.extend(changes);
    // As Conduit does at every start, a pipeline the file says is running is started
    // (also one that was stopped over the API or degraded before the restart).
    if desired.running && (!running || stopped_for_changes) {
        commands.push(Command::StartPipeline { id });
    }
    commands
}

/// The existing processors (of one parent, in order) that can stay: those whose id, plugin
/// and condition the file still has, in the same relative order. The others are deleted
/// and created again (a processor's order and condition only change that way).
fn reusable_processors(
    state: &ControlPlane,
    existing: &[ProcessorId],
    parent: &str,
    desired: &[ProcessorConfig],
) -> Vec<ProcessorId> {
    let mut keep = Vec::new();
    let mut next = 0; // position in `desired` that the next kept processor must come after
    for pid in existing {
        let Some(processor) = state.processor(pid) else {
            continue;
        };
        let found = desired[next..]
            .iter()
            .position(|d| processor_id(parent, &d.id) == *pid)
            .map(|i| i + next);
        if let Some(i) = found {
            let d = &desired[i];
            if d.plugin == processor.plugin && d.condition == processor.condition {
                keep.push(pid.clone());
                next = i + 1;
            }
        }
    }
    // Anything desired before a kept processor but not kept itself would be created after
    // it (creation appends): then keep only the processors before the first such gap.
    let mut prefix = Vec::new();
    for d in desired {
        let pid = processor_id(parent, &d.id);
        if keep.contains(&pid) {
            prefix.push(pid);
        } else {
            break;
        }
    }
    prefix
}

fn processor_changes(
    state: &ControlPlane,
    parent: &ProcessorParent,
    parent_id: &str,
    desired: &[ProcessorConfig],
    keep: &[ProcessorId],
    changes: &mut Vec<Command>,
) {
    // The parent's processors that are not kept were deleted above (or never existed);
    // with `keep` a prefix of `desired`, creating the rest in order restores the order.
    for want in desired {
        let pid = processor_id(parent_id, &want.id);
        if keep.contains(&pid) {
            let Some(have) = state.processor(&pid) else {
                continue;
            };
            if have.settings != want.settings || have.workers != want.workers as u32 {
                changes.push(Command::UpdateProcessor {
                    id: pid,
                    settings: want.settings.clone(),
                    workers: want.workers,
                    plugin: None,
                });
            }
        } else {
            changes.push(Command::CreateProcessor {
                id: pid,
                parent: parent.clone(),
                plugin: want.plugin.clone(),
                settings: want.settings.clone(),
                condition: want.condition.clone(),
                workers: want.workers,
            });
        }
    }
}

/// The commands that delete a provisioned pipeline whose file is gone: its processors,
/// connectors and itself (recorded stopped first if it ran).
pub fn plan_deletion(state: &ControlPlane, id: &PipelineId) -> Vec<Command> {
    let Some(p) = state.pipeline(id) else {
        return vec![];
    };
    let mut commands = Vec::new();
    if is_running(&p.status) {
        commands.push(Command::ReportPipelineStopped {
            id: id.clone(),
            reason: StoppedReason::User,
        });
    }
    for processor in &p.processor_ids {
        commands.push(Command::DeleteProcessor {
            id: processor.clone(),
        });
    }
    for connector_id in &p.connector_ids {
        if let Some(c) = state.connector(connector_id) {
            for processor in &c.processor_ids {
                commands.push(Command::DeleteProcessor {
                    id: processor.clone(),
                });
            }
        }
        commands.push(Command::DeleteConnector {
            id: connector_id.clone(),
        });
    }
    commands.push(Command::DeletePipeline { id: id.clone() });
    commands
}
