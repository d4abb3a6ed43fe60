//! Given/when/then tests of `decide`: given these events, when this command, then exactly
//! these events or this error.

use super::*;
use crate::event::EventMeta;
use crate::model::Settings;
use chrono::{TimeZone, Utc};

/// Folds `events` into a fresh state, numbering them and their stream versions.
fn given(events: Vec<Event>) -> ControlPlane {
    let mut state = ControlPlane::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    for (i, event) in events.into_iter().enumerate() {
        let v = versions.entry(event.stream().0).or_default();
        *v += 1;
        state.evolve(&RecordedEvent {
            seq: Seq(i as u64 + 1),
            stream_version: *v,
            meta: EventMeta {
                actor: "test".into(),
                correlation_id: "c".into(),
                causation_id: None,
                reason: None,
                recorded_at: Utc.timestamp_opt(1_700_000_000 + i as i64, 0).unwrap(),
            },
            event,
        });
    }
    state
}

fn pid(s: &str) -> PipelineId {
    PipelineId(s.into())
}
fn cid(s: &str) -> ConnectorId {
    ConnectorId(s.into())
}
fn prid(s: &str) -> ProcessorId {
    ProcessorId(s.into())
}

fn created(id: &str, name: &str) -> Event {
    Event::PipelineCreated {
        id: pid(id),
        name: name.into(),
        description: String::new(),
        dlq: DeadLetterQueue::default(),
    }
}

fn connector(id: &str, pipeline: &str, t: ConnectorType) -> Vec<Event> {
    vec![
        Event::ConnectorCreated {
            id: cid(id),
            pipeline_id: pid(pipeline),
            connector_type: t,
            plugin: "builtin:generator".into(),
            name: id.into(),
            settings: Settings::new(),
        },
        Event::PipelineConnectorAdded {
            id: pid(pipeline),
            connector_id: cid(id),
        },
    ]
}

/// A pipeline `p` with a source `src` and a destination `dst`.
fn complete_pipeline() -> Vec<Event> {
    let mut events = vec![created("p", "pipe")];
    events.extend(connector("src", "p", ConnectorType::Source));
    events.extend(connector("dst", "p", ConnectorType::Destination));
    events
}

fn running(mut events: Vec<Event>) -> Vec<Event> {
    events.push(Event::PipelineStartRequested { id: pid("p") });
    events.push(Event::PipelineStarted { id: pid("p") });
    events
}

fn code(state: &ControlPlane, command: Command) -> String {
    state.decide(&command).unwrap_err().code()
}

#[test]
fn create_pipeline_emits_created_with_default_dlq() {
    let state = given(vec![]);
    let events = state
        .decide(&Command::CreatePipeline {
            id: pid("p"),
            name: "pipe".into(),
            description: "d".into(),
        })
        .unwrap();
    assert_eq!(
        events,
        vec![Event::PipelineCreated {
            id: pid("p"),
            name: "pipe".into(),
            description: "d".into(),
            dlq: DeadLetterQueue::default(),
        }]
    );
}

#[test]
fn a_dlq_window_must_hold_more_than_its_nack_threshold() {
    let state = given(vec![created("p", "pipe")]);
    let update = |window_size, window_nack_threshold| Command::UpdatePipelineDlq {
        id: pid("p"),
        dlq: DeadLetterQueue {
            window_size,
            window_nack_threshold,
            ..DeadLetterQueue::default()
        },
    };
    assert_eq!(
        code(&state, update(2, 2)),
        "pipeline.invalid_dlq.window_nack_threshold"
    );
    assert_eq!(
        code(&state, update(2, 5)),
        "pipeline.invalid_dlq.window_nack_threshold"
    );
    assert!(state.decide(&update(3, 2)).is_ok());
    // A window of 0 switches the threshold off.
    assert!(state.decide(&update(0, 5)).is_ok());
}

#[test]
fn pipeline_names_are_validated_and_unique() {
    let state = given(vec![created("p", "pipe")]);
    let create = |id: &str, name: &str| Command::CreatePipeline {
        id: pid(id),
        name: name.into(),
        description: String::new(),
    };
    assert_eq!(code(&state, create("q", "")), "pipeline.invalid_name");
    assert_eq!(code(&state, create("q", "  ")), "pipeline.invalid_name");
    assert_eq!(
        code(&state, create("q", &"n".repeat(129))),
        "pipeline.invalid_name"
    );
    assert!(state.decide(&create("q", &"n".repeat(128))).is_ok());
    assert_eq!(code(&state, create("q", "pipe")), "pipeline.name_exists");
    assert_eq!(code(&state, create("p", "other")), "pipeline.id_exists");
    assert_eq!(code(&state, create("", "other")), "pipeline.invalid_id");
    assert_eq!(code(&state, create("a/b", "other")), "pipeline.invalid_id");
    assert_eq!(
        code(&state, create(&"i".repeat(129), "other")),
        "pipeline.invalid_id"
    );
    let long_description = Command::CreatePipeline {
        id: pid("q"),
        name: "q".into(),
        description: "d".repeat(8193),
    };
    assert_eq!(
        code(&state, long_description),
        "pipeline.invalid_description"
    );
}

#[test]
fn rename_keeps_uniqueness_and_frees_the_old_name() {
    let state = given(vec![
        created("p", "pipe"),
        created("q", "other"),
        Event::PipelineUpdated {
            id: pid("p"),
            name: "renamed".into(),
            description: String::new(),
        },
    ]);
    let update = |id: &str, name: &str| Command::UpdatePipeline {
        id: pid(id),
        name: name.into(),
        description: String::new(),
    };
    assert_eq!(code(&state, update("q", "renamed")), "pipeline.name_exists");
    assert!(state.decide(&update("q", "pipe")).is_ok());
    // Keeping one's own name is not a conflict, and an unchanged update emits nothing.
    assert_eq!(state.decide(&update("p", "renamed")).unwrap(), vec![]);
    assert_eq!(code(&state, update("x", "y")), "pipeline.not_found");
}

#[test]
fn create_connector_adds_it_to_its_pipeline_in_one_decision() {
    let state = given(vec![created("p", "pipe")]);
    let events = state
        .decide(&Command::CreateConnector {
            id: cid("c"),
            pipeline_id: pid("p"),
            connector_type: ConnectorType::Source,
            plugin: "builtin:generator".into(),
            name: "c".into(),
            settings: Settings::new(),
        })
        .unwrap();
    assert_eq!(events, connector("c", "p", ConnectorType::Source));
}

#[test]
fn connector_references_and_fields_are_checked() {
    let state = given(vec![created("p", "pipe")]);
    let create = |pipeline: &str, plugin: &str, name: &str| Command::CreateConnector {
        id: cid("c"),
        pipeline_id: pid(pipeline),
        connector_type: ConnectorType::Source,
        plugin: plugin.into(),
        name: name.into(),
        settings: Settings::new(),
    };
    assert_eq!(
        code(&state, create("nope", "builtin:log", "c")),
        "pipeline.not_found"
    );
    assert_eq!(
        code(&state, create("p", "", "c")),
        "connector.invalid_plugin"
    );
    assert_eq!(
        code(&state, create("p", "builtin:log", "")),
        "connector.invalid_name"
    );
    assert_eq!(
        code(&state, create("p", "builtin:log", &"n".repeat(257))),
        "connector.invalid_name"
    );
}

#[test]
fn running_pipeline_cannot_be_edited_nor_its_children() {
    let mut events = running(complete_pipeline());
    events.push(Event::ProcessorCreated {
        id: prid("pr"),
        parent: ProcessorParent::Connector(cid("src")),
        plugin: "field.set".into(),
        settings: Settings::new(),
        condition: String::new(),
        workers: 1,
    });
    let state = given(events);
    let commands = vec![
        Command::UpdatePipeline {
            id: pid("p"),
            name: "x".into(),
            description: String::new(),
        },
        Command::UpdatePipelineDlq {
            id: pid("p"),
            dlq: DeadLetterQueue::default(),
        },
        Command::DeletePipeline { id: pid("p") },
        Command::StartPipeline { id: pid("p") },
        Command::CreateConnector {
            id: cid("c2"),
            pipeline_id: pid("p"),
            connector_type: ConnectorType::Source,
            plugin: "builtin:log".into(),
            name: "c2".into(),
            settings: Settings::new(),
        },
        Command::UpdateConnector {
            id: cid("src"),
            name: "n".into(),
            settings: Settings::new(),
            plugin: None,
        },
        Command::DeleteConnector { id: cid("dst") },
        Command::CreateProcessor {
            id: prid("pr2"),
            parent: ProcessorParent::Pipeline(pid("p")),
            plugin: "field.set".into(),
            settings: Settings::new(),
            condition: String::new(),
            workers: 1,
        },
        Command::UpdateProcessor {
            id: prid("pr"),
            settings: Settings::new(),
            workers: 2,
            plugin: None,
        },
        Command::DeleteProcessor { id: prid("pr") },
    ];
    for command in commands {
        assert_eq!(
            code(&state, command.clone()),
            "pipeline.running",
            "{command:?}"
        );
    }
}

#[test]
fn transitional_states_count_as_running() {
    let mut events = complete_pipeline();
    events.push(Event::PipelineStartRequested { id: pid("p") });
    let starting = given(events.clone());
    assert_eq!(
        code(&starting, Command::DeletePipeline { id: pid("p") }),
        "pipeline.running"
    );
    events.push(Event::PipelineStarted { id: pid("p") });
    events.push(Event::PipelineStopRequested {
        id: pid("p"),
        force: false,
    });
    let stopping = given(events);
    assert_eq!(
        code(&stopping, Command::StartPipeline { id: pid("p") }),
        "pipeline.running"
    );
    // A graceful stop of a stopping pipeline is refused, a forced one is accepted.
    assert_eq!(
        code(
            &stopping,
            Command::StopPipeline {
                id: pid("p"),
                force: false
            }
        ),
        "pipeline.not_running"
    );
    assert!(stopping
        .decide(&Command::StopPipeline {
            id: pid("p"),
            force: true
        })
        .is_ok());
}

#[test]
fn start_needs_a_source_and_a_destination() {
    let mut events = vec![created("p", "pipe")];
    let state = given(events.clone());
    let start = Command::StartPipeline { id: pid("p") };
    assert_eq!(
        state.decide(&start).unwrap_err(),
        DomainError::PipelineIncomplete {
            id: "p".into(),
            missing: "source"
        }
    );
    events.extend(connector("src", "p", ConnectorType::Source));
    let state = given(events.clone());
    assert_eq!(
        state.decide(&start).unwrap_err(),
        DomainError::PipelineIncomplete {
            id: "p".into(),
            missing: "destination"
        }
    );
    events.extend(connector("dst", "p", ConnectorType::Destination));
    let state = given(events);
    assert_eq!(
        state.decide(&start).unwrap(),
        vec![Event::PipelineStartRequested { id: pid("p") }]
    );
}

#[test]
fn stop_requires_a_running_pipeline() {
    let state = given(complete_pipeline());
    let stop = Command::StopPipeline {
        id: pid("p"),
        force: false,
    };
    assert_eq!(code(&state, stop.clone()), "pipeline.not_running");
    let state = given(running(complete_pipeline()));
    assert_eq!(
        state.decide(&stop).unwrap(),
        vec![Event::PipelineStopRequested {
            id: pid("p"),
            force: false
        }]
    );
}

#[test]
fn degraded_pipeline_keeps_its_error_and_can_be_edited_and_restarted() {
    let mut events = running(complete_pipeline());
    events.push(Event::PipelineDegraded {
        id: pid("p"),
        error: "disk full".into(),
    });
    let state = given(events);
    assert_eq!(
        state.pipeline(&pid("p")).unwrap().status,
        PipelineStatus::Degraded {
            error: "disk full".into()
        }
    );
    assert!(state
        .decide(&Command::StartPipeline { id: pid("p") })
        .is_ok());
    assert!(state
        .decide(&Command::UpdatePipeline {
            id: pid("p"),
            name: "n".into(),
            description: String::new()
        })
        .is_ok());
}

#[test]
fn a_recovering_pipeline_counts_as_running_and_can_be_stopped() {
    let state = given(running(complete_pipeline()));
    let report = Command::ReportPipelineRecovering {
        id: pid("p"),
        error: "disk full".into(),
        attempt: 1,
    };
    let events = state.decide(&report).unwrap();
    assert_eq!(
        events,
        vec![Event::PipelineRecovering {
            id: pid("p"),
            error: "disk full".into(),
            attempt: 1
        }]
    );
    let mut history = running(complete_pipeline());
    history.extend(events);
    let state = given(history);
    assert_eq!(
        state.pipeline(&pid("p")).unwrap().status,
        PipelineStatus::Recovering
    );
    assert_eq!(
        code(
            &state,
            Command::UpdatePipeline {
                id: pid("p"),
                name: "n".into(),
                description: String::new()
            }
        ),
        "pipeline.running"
    );
    assert!(state
        .decide(&Command::StopPipeline {
            id: pid("p"),
            force: false
        })
        .is_ok());
}

#[test]
fn pipeline_with_children_cannot_be_deleted() {
    let state = given(complete_pipeline());
    assert_eq!(
        code(&state, Command::DeletePipeline { id: pid("p") }),
        "pipeline.has_connectors"
    );
    let state = given(vec![
        created("p", "pipe"),
        Event::ProcessorCreated {
            id: prid("pr"),
            parent: ProcessorParent::Pipeline(pid("p")),
            plugin: "field.set".into(),
            settings: Settings::new(),
            condition: String::new(),
            workers: 1,
        },
        Event::PipelineProcessorAdded {
            id: pid("p"),
            processor_id: prid("pr"),
        },
    ]);
    assert_eq!(
        code(&state, Command::DeletePipeline { id: pid("p") }),
        "pipeline.has_processors"
    );
}

#[test]
fn connector_with_processors_cannot_be_deleted() {
    let mut events = complete_pipeline();
    events.push(Event::ProcessorCreated {
        id: prid("pr"),
        parent: ProcessorParent::Connector(cid("src")),
        plugin: "field.set".into(),
        settings: Settings::new(),
        condition: String::new(),
        workers: 1,
    });
    events.push(Event::ConnectorProcessorAdded {
        id: cid("src"),
        processor_id: prid("pr"),
    });
    let state = given(events);
    assert_eq!(
        code(&state, Command::DeleteConnector { id: cid("src") }),
        "connector.has_processors"
    );
    // Deleting the destination (no processors) removes it from its pipeline in one decision.
    assert_eq!(
        state
            .decide(&Command::DeleteConnector { id: cid("dst") })
            .unwrap(),
        vec![
            Event::ConnectorDeleted { id: cid("dst") },
            Event::PipelineConnectorRemoved {
                id: pid("p"),
                connector_id: cid("dst")
            }
        ]
    );
}

/// A processor `id` attached to `parent`, with the event that attaches it.
fn processor_on(id: &str, parent: ProcessorParent) -> Vec<Event> {
    let attached = match &parent {
        ProcessorParent::Connector(connector) => Event::ConnectorProcessorAdded {
            id: connector.clone(),
            processor_id: prid(id),
        },
        ProcessorParent::Pipeline(pipeline) => Event::PipelineProcessorAdded {
            id: pipeline.clone(),
            processor_id: prid(id),
        },
    };
    vec![
        Event::ProcessorCreated {
            id: prid(id),
            parent,
            plugin: "field.set".into(),
            settings: Settings::new(),
            condition: String::new(),
            workers: 1,
        },
        attached,
    ]
}

#[test]
fn runs_processors_counts_the_pipelines_and_each_connectors_own() {
    let runs = |events: Vec<Event>| {
        let state = given(events);
        state.runs_processors(state.pipeline(&pid("p")).unwrap())
    };
    assert!(!runs(complete_pipeline()));
    for parent in [
        ProcessorParent::Pipeline(pid("p")),
        ProcessorParent::Connector(cid("src")),
        ProcessorParent::Connector(cid("dst")),
    ] {
        let mut events = complete_pipeline();
        events.extend(processor_on("pr", parent.clone()));
        assert!(
            runs(events),
            "a processor on {parent:?} runs on the records"
        );
    }
    // Another pipeline's processors are not this one's.
    let mut events = complete_pipeline();
    events.push(created("q", "other"));
    events.extend(connector("qsrc", "q", ConnectorType::Source));
    events.extend(processor_on("pr", ProcessorParent::Connector(cid("qsrc"))));
    assert!(!runs(events));
}

#[test]
fn processor_parent_must_exist_and_workers_are_checked() {
    let state = given(complete_pipeline());
    let create = |parent: ProcessorParent, workers: i32| Command::CreateProcessor {
        id: prid("pr"),
        parent,
        plugin: "field.set".into(),
        settings: Settings::new(),
        condition: String::new(),
        workers,
    };
    assert_eq!(
        code(&state, create(ProcessorParent::Connector(cid("nope")), 1)),
        "connector.not_found"
    );
    assert_eq!(
        code(&state, create(ProcessorParent::Pipeline(pid("nope")), 1)),
        "pipeline.not_found"
    );
    assert_eq!(
        code(&state, create(ProcessorParent::Pipeline(pid("p")), -1)),
        "processor.invalid_workers"
    );
    let events = state
        .decide(&create(ProcessorParent::Connector(cid("src")), 0))
        .unwrap();
    assert_eq!(
        events,
        vec![
            Event::ProcessorCreated {
                id: prid("pr"),
                parent: ProcessorParent::Connector(cid("src")),
                plugin: "field.set".into(),
                settings: Settings::new(),
                condition: String::new(),
                workers: 1,
            },
            Event::ConnectorProcessorAdded {
                id: cid("src"),
                processor_id: prid("pr")
            }
        ]
    );
}

#[test]
fn evolve_tracks_versions_times_and_membership() {
    let mut events = complete_pipeline();
    events.push(Event::ConnectorDeleted { id: cid("dst") });
    events.push(Event::PipelineConnectorRemoved {
        id: pid("p"),
        connector_id: cid("dst"),
    });
    let state = given(events);
    let p = state.pipeline(&pid("p")).unwrap();
    assert_eq!(p.connector_ids, vec![cid("src")]);
    assert_eq!(p.version, 4, "created + 2 added + 1 removed");
    assert_eq!(p.created_at, Utc.timestamp_opt(1_700_000_000, 0).unwrap());
    assert_eq!(p.updated_at, Utc.timestamp_opt(1_700_000_006, 0).unwrap());
    assert!(state.connector(&cid("dst")).is_none());
    assert_eq!(state.last_seq(), Seq(7));
    assert_eq!(state.pipeline_by_name("pipe").unwrap().id, pid("p"));
}

#[test]
fn snapshot_roundtrip_rebuilds_the_name_index() {
    let state = given(complete_pipeline());
    let json = serde_json::to_string(&state).unwrap();
    let mut back: ControlPlane = serde_json::from_str(&json).unwrap();
    assert!(back.pipeline_by_name("pipe").is_none());
    back.reindex();
    assert_eq!(back, state);
    assert!(back.pipeline_by_name("pipe").is_some());
}

fn provision(file: Option<&str>, commands: Vec<Command>) -> Command {
    Command::Provision {
        pipeline: pid("p"),
        file: file.map(str::to_owned),
        commands,
    }
}

#[test]
fn a_provisioning_batch_decides_in_order_and_marks_the_pipeline() {
    // Another pipeline exists: its name stays taken inside the batch.
    let state = given(vec![created("other", "taken")]);
    let create = Command::CreatePipeline {
        id: pid("p"),
        name: "pipe".into(),
        description: String::new(),
    };
    let add = Command::CreateConnector {
        id: cid("p:src"),
        pipeline_id: pid("p"),
        connector_type: ConnectorType::Source,
        plugin: "builtin:generator".into(),
        name: "src".into(),
        settings: Settings::new(),
    };
    let events = state
        .decide(&provision(
            Some("f.yaml"),
            vec![create.clone(), add.clone()],
        ))
        .unwrap();
    let types: Vec<&str> = events.iter().map(Event::event_type).collect();
    assert_eq!(
        types,
        [
            "PipelineCreated",
            "ConnectorCreated",
            "PipelineConnectorAdded",
            "PipelineProvisioned"
        ]
    );
    // A later command sees what an earlier one did; a failing one fails the whole batch.
    let rename = Command::UpdatePipeline {
        id: pid("p"),
        name: "taken".into(),
        description: String::new(),
    };
    let refused = state
        .decide(&provision(Some("f.yaml"), vec![create.clone(), rename]))
        .unwrap_err();
    assert_eq!(refused.code(), "pipeline.name_exists");
    let nested = provision(Some("f.yaml"), vec![provision(None, vec![])]);
    assert_eq!(code(&state, nested), "pipeline.invalid_commands");
    // Over the API (no file), nothing is marked.
    let events = state.decide(&provision(None, vec![create])).unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn provisioned_pipelines_change_only_through_their_batches() {
    let mut events = complete_pipeline();
    events.push(Event::PipelineProvisioned {
        id: pid("p"),
        file: "f.yaml".into(),
    });
    let state = given(events);
    let rename = Command::UpdatePipeline {
        id: pid("p"),
        name: "new".into(),
        description: String::new(),
    };
    assert_eq!(
        code(&state, rename.clone()),
        "pipeline.provisioned_by_config"
    );
    assert_eq!(
        code(&state, Command::DeleteConnector { id: cid("src") }),
        "pipeline.provisioned_by_config"
    );
    assert_eq!(
        code(
            &state,
            Command::CreateProcessor {
                id: prid("x"),
                parent: ProcessorParent::Connector(cid("src")),
                plugin: "filter".into(),
                settings: Settings::new(),
                condition: String::new(),
                workers: 1,
            }
        ),
        "pipeline.provisioned_by_config"
    );
    // Start and stop are allowed; the file's own batch may change it; an API document may
    // not.
    state
        .decide(&Command::StartPipeline { id: pid("p") })
        .unwrap();
    state
        .decide(&provision(Some("f.yaml"), vec![rename.clone()]))
        .unwrap();
    assert_eq!(
        code(&state, provision(None, vec![rename])),
        "pipeline.provisioned_by_config"
    );
    // A file may not take over a pipeline created over the API.
    let api = given(complete_pipeline());
    assert_eq!(
        code(&api, provision(Some("f.yaml"), vec![])),
        "pipeline.not_provisioned"
    );
}

#[test]
fn resealing_keeps_the_keys_and_is_allowed_while_running() {
    use crate::command::ResealTarget;
    let mut events = complete_pipeline();
    events.push(Event::PipelineStarted { id: pid("p") });
    let state = given(events.clone());
    let c = cid("src");
    let reseal = |settings: Settings| Command::ResealSecrets {
        target: ResealTarget::Connector(c.clone()),
        settings,
    };
    // Identical settings: nothing to record.
    assert_eq!(state.decide(&reseal(Settings::new())).unwrap(), vec![]);
    let other_keys = Settings::from([("token".to_owned(), "sealed-2".to_owned())]);
    assert_eq!(
        state.decide(&reseal(other_keys)).unwrap_err().code(),
        "connector.invalid_settings"
    );
    // Same keys, new sealing: recorded even though the pipeline runs.
    events[1] = Event::ConnectorCreated {
        id: c.clone(),
        pipeline_id: pid("p"),
        connector_type: ConnectorType::Source,
        plugin: "builtin:generator".into(),
        name: "src".into(),
        settings: Settings::from([("password".to_owned(), "sealed-1".to_owned())]),
    };
    let state = given(events.clone());
    let resealed = Settings::from([("password".to_owned(), "sealed-2".to_owned())]);
    let decided = state.decide(&reseal(resealed.clone())).unwrap();
    assert_eq!(
        decided,
        vec![Event::ConnectorSecretsResealed {
            id: c.clone(),
            settings: resealed.clone()
        }]
    );
    events.extend(decided);
    assert_eq!(given(events).connector(&c).unwrap().settings, resealed);
    let missing = Command::ResealSecrets {
        target: ResealTarget::Processor(prid("nope")),
        settings: Settings::new(),
    };
    assert!(state.decide(&missing).is_err());
}

#[test]
fn a_source_position_moves_only_while_stopped_and_only_for_a_source() {
    use crate::command::PositionChange;
    use crate::opencdc::Position;
    let change = |old: Option<&[u8]>, new: Option<&[u8]>| PositionChange {
        old: old.map(|p| Position(p.to_vec())),
        new: new.map(|p| Position(p.to_vec())),
        how: "set".into(),
    };
    let set = |id: &str, change: PositionChange| Command::SetSourcePosition {
        id: cid(id),
        change,
    };
    let stopped = given(complete_pipeline());
    assert_eq!(
        stopped
            .decide(&set("src", change(Some(b"9"), Some(b"3"))))
            .unwrap(),
        vec![Event::SourcePositionSet {
            id: cid("src"),
            old: Some(Position(b"9".to_vec())),
            new: Some(Position(b"3".to_vec())),
            how: "set".into(),
        }]
    );
    // A reset (no new position) is a move too; moving to where it is, nothing.
    assert_eq!(
        stopped
            .decide(&set("src", change(Some(b"9"), None)))
            .unwrap()
            .len(),
        1
    );
    assert!(stopped
        .decide(&set("src", change(Some(b"9"), Some(b"9"))))
        .unwrap()
        .is_empty());
    // Refused: a destination, an unknown connector, a running pipeline, no "how".
    assert_eq!(
        code(&stopped, set("dst", change(None, Some(b"1")))),
        "connector.invalid_id"
    );
    assert_eq!(
        code(&stopped, set("nope", change(None, Some(b"1")))),
        "connector.not_found"
    );
    let running = given(running(complete_pipeline()));
    assert_eq!(
        code(&running, set("src", change(None, Some(b"1")))),
        "pipeline.running"
    );
    let mut silent = change(None, Some(b"1"));
    silent.how.clear();
    assert!(stopped.decide(&set("src", silent)).is_err());
    // Folding the event bumps the connector's version.
    let mut events = complete_pipeline();
    let before = given(events.clone())
        .connector(&cid("src"))
        .unwrap()
        .version;
    events.push(Event::SourcePositionSet {
        id: cid("src"),
        old: None,
        new: Some(Position(b"3".to_vec())),
        how: "set".into(),
    });
    assert_eq!(
        given(events).connector(&cid("src")).unwrap().version,
        before + 1
    );
}

#[test]
fn a_start_report_that_arrives_after_a_stop_request_does_not_undo_it() {
    // The engine resumed at boot reports "started" once every connector opened; a user's
    // stop asked for in between must stand (it was lost when `Started` set `Running`).
    for late in [
        Event::PipelineStarted { id: pid("p") },
        Event::PipelineRecovering {
            id: pid("p"),
            error: "transient".into(),
            attempt: 1,
        },
    ] {
        let mut events = running(complete_pipeline());
        events.push(Event::PipelineStopRequested {
            id: pid("p"),
            force: false,
        });
        events.push(late);
        let state = given(events);
        assert_eq!(
            state.pipeline(&pid("p")).unwrap().status,
            PipelineStatus::Stopping { force: false }
        );
    }
    // Otherwise the reports move the status as before.
    let state = given(running(complete_pipeline()));
    assert_eq!(
        state.pipeline(&pid("p")).unwrap().status,
        PipelineStatus::Running
    );
}
