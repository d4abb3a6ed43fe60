//! The write path against a real RocksDB store: invariants refused with nothing written,
//! multi-entity operations all-or-nothing under injected failures, optimistic concurrency,
//! provenance on every event, and a restart that rebuilds the same state.

use super::*;
use culvert_domain::{EntityKind, PipelineStatus};
use culvert_migrations::{decode, layout};
use culvert_projections::ProjectionOptions;
use culvert_store::{PositionStore, RocksStore, StoreOptions};

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    log: Arc<dyn EventLog>,
    writer: Arc<ControlPlaneWriter>,
    pipelines: PipelineOrchestrator,
    connectors: ConnectorOrchestrator,
    processors: ProcessorOrchestrator,
}

fn open(path: &std::path::Path) -> (Arc<dyn EventLog>, Arc<ControlPlaneWriter>) {
    let options = StoreOptions {
        fsync: false,
        ..StoreOptions::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(RocksStore::open(path, options, &layout()).unwrap());
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::new(log.clone(), Arc::new(projections));
    (log, writer)
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (log, writer) = open(&path);
    Harness {
        _dir: dir,
        path,
        log,
        pipelines: PipelineOrchestrator::new(writer.clone()),
        connectors: ConnectorOrchestrator::new(writer.clone()),
        processors: ProcessorOrchestrator::new(writer.clone()),
        writer,
    }
}

fn ctx() -> Context {
    Context::new("user:test")
}

impl Harness {
    /// A pipeline with a source and a destination; returns (pipeline, source, destination).
    fn complete(&self, name: &str) -> (Pipeline, Connector, Connector) {
        let p = self.pipelines.create(&ctx(), name, "").unwrap();
        let src = self
            .connectors
            .create(
                &ctx(),
                &p.id,
                ConnectorType::Source,
                "builtin:generator",
                "src",
                Settings::new(),
            )
            .unwrap();
        let dst = self
            .connectors
            .create(
                &ctx(),
                &p.id,
                ConnectorType::Destination,
                "builtin:log",
                "dst",
                Settings::new(),
            )
            .unwrap();
        (self.pipelines.get(&p.id).unwrap(), src, dst)
    }

    fn domain_code(&self, result: Result<impl std::fmt::Debug, CommandError>) -> String {
        let head = self.log.head();
        let code = match result {
            Err(CommandError::Domain(e)) => e.code(),
            other => panic!("expected a domain error, got {other:?}"),
        };
        assert_eq!(self.log.head(), head);
        code
    }
}

#[test]
fn every_invariant_is_refused_and_writes_nothing() {
    let h = harness();
    let (p, src, _dst) = h.complete("pipe");
    let head = h.log.head();
    let c = ctx();
    let cases: Vec<(String, &str)> = vec![
        (
            h.domain_code(h.pipelines.create(&c, "", "")),
            "pipeline.invalid_name",
        ),
        (
            h.domain_code(h.pipelines.create(&c, &"x".repeat(129), "")),
            "pipeline.invalid_name",
        ),
        (
            h.domain_code(h.pipelines.create(&c, "pipe", "")),
            "pipeline.name_exists",
        ),
        (
            h.domain_code(h.pipelines.delete(&c, &p.id)),
            "pipeline.has_connectors",
        ),
        (
            h.domain_code(h.pipelines.stop(&c, &p.id, false)),
            "pipeline.not_running",
        ),
        (
            h.domain_code(h.connectors.create(
                &c,
                &PipelineId("missing".into()),
                ConnectorType::Source,
                "builtin:generator",
                "s",
                Settings::new(),
            )),
            "pipeline.not_found",
        ),
        (
            h.domain_code(h.processors.create(
                &c,
                ProcessorParent::Connector(ConnectorId("missing".into())),
                "field.set",
                Settings::new(),
                "",
                1,
            )),
            "connector.not_found",
        ),
        (
            h.domain_code(h.processors.create(
                &c,
                ProcessorParent::Pipeline(p.id.clone()),
                "field.set",
                Settings::new(),
                "",
                -2,
            )),
            "processor.invalid_workers",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    let lonely = h.pipelines.create(&c, "lonely", "").unwrap();
    assert_eq!(
        h.domain_code(h.pipelines.start(&c, &lonely.id)),
        "pipeline.incomplete"
    );
    let proc_on_src = h
        .processors
        .create(
            &c,
            ProcessorParent::Connector(src.id.clone()),
            "field.set",
            Settings::new(),
            "",
            0,
        )
        .unwrap();
    assert_eq!(proc_on_src.workers, 1);
    assert_eq!(
        h.domain_code(h.connectors.delete(&c, &src.id)),
        "connector.has_processors"
    );
    // Running: no edits anywhere in the pipeline, no delete, no second start.
    h.pipelines.start(&c, &p.id).unwrap();
    h.pipelines
        .report_started(&Context::system(), &p.id)
        .unwrap();
    let running = h.log.head();
    for code in [
        h.domain_code(h.pipelines.update(&c, &p.id, "new", "", None)),
        h.domain_code(h.pipelines.delete(&c, &p.id)),
        h.domain_code(h.pipelines.start(&c, &p.id)),
        h.domain_code(
            h.connectors
                .update(&c, &src.id, "n", Settings::new(), None, None),
        ),
        h.domain_code(h.processors.delete(&c, &proc_on_src.id)),
    ] {
        assert_eq!(code, "pipeline.running");
    }
    assert_eq!(h.log.head(), running);
    assert!(head < running);
}

#[test]
fn concurrent_updates_with_the_same_expected_version_exactly_one_wins() {
    let h = harness();
    let p = h.pipelines.create(&ctx(), "pipe", "").unwrap();
    for round in 0..10 {
        let version = h.pipelines.get(&p.id).unwrap().version;
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let pipelines = h.pipelines.clone();
                let barrier = barrier.clone();
                let id = p.id.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    pipelines.update(&ctx(), &id, &format!("r{round}-{i}"), "", Some(version))
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}"
        );
        let loser = results.into_iter().find_map(Result::err).unwrap();
        match loser {
            CommandError::Conflict { actual, .. } => assert_eq!(actual, version + 1),
            other => panic!("expected a conflict, got {other}"),
        }
    }
}

#[test]
fn events_record_actor_correlation_causation_and_time() {
    let h = harness();
    let c = Context::new("user:ann").caused_by("request-7");
    let p = h.pipelines.create(&c, "pipe", "").unwrap();
    h.connectors
        .create(
            &c,
            &p.id,
            ConnectorType::Source,
            "builtin:generator",
            "s",
            Settings::new(),
        )
        .unwrap();
    let events = h.log.read_from(Seq(1), 10).unwrap();
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e.actor, "user:ann");
        assert_eq!(e.correlation_id, c.correlation_id);
        assert_eq!(e.causation_id.as_deref(), Some("request-7"));
    }
    assert!(events
        .windows(2)
        .all(|w| w[0].recorded_at <= w[1].recorded_at));
    // The connector and its addition to the pipeline were one append: the same time.
    assert_eq!(events[1].recorded_at, events[2].recorded_at);
    let decoded = decode(&events[2]).unwrap();
    assert_eq!(decoded.event.event_type(), "PipelineConnectorAdded");
    assert_eq!(p.created_at, events[0].recorded_at);
}

#[test]
fn full_lifecycle_then_restart_rebuilds_exactly_the_same_state() {
    let h = harness();
    let (p, src, dst) = h.complete("pipe");
    let on_pipeline = h
        .processors
        .create(
            &ctx(),
            ProcessorParent::Pipeline(p.id.clone()),
            "filter",
            Settings::new(),
            "{{ true }}",
            2,
        )
        .unwrap();
    let on_dst = h
        .processors
        .create(
            &ctx(),
            ProcessorParent::Connector(dst.id.clone()),
            "field.set",
            Settings::new(),
            "",
            1,
        )
        .unwrap();
    h.processors
        .update(
            &ctx(),
            &on_dst.id,
            Settings::from([("field".into(), ".Key".into())]),
            3,
            None,
            None,
        )
        .unwrap();
    let dlq = DeadLetterQueue {
        window_size: 5,
        ..DeadLetterQueue::default()
    };
    assert_eq!(
        h.pipelines
            .update_dlq(&ctx(), &p.id, dlq.clone())
            .unwrap()
            .dlq,
        dlq
    );
    // Created, two connectors, one processor, the DLQ: version 5.
    assert_eq!(h.pipelines.get(&p.id).unwrap().version, 5);
    let updated = h
        .pipelines
        .update(&ctx(), &p.id, "renamed", "desc", Some(5))
        .unwrap();
    assert_eq!(updated.name, "renamed");
    h.pipelines.start(&ctx(), &p.id).unwrap();
    h.pipelines
        .report_started(&Context::system(), &p.id)
        .unwrap();
    h.pipelines.stop(&ctx(), &p.id, false).unwrap();
    h.pipelines
        .report_degraded(&Context::system(), &p.id, "destination: disk full")
        .unwrap();
    let p_now = h.pipelines.get(&p.id).unwrap();
    assert_eq!(
        p_now.status,
        PipelineStatus::Degraded {
            error: "destination: disk full".into()
        }
    );
    h.processors.delete(&ctx(), &on_dst.id).unwrap();
    h.connectors.delete(&ctx(), &dst.id).unwrap();
    assert_eq!(
        h.pipelines.get(&p.id).unwrap().connector_ids,
        vec![src.id.clone()]
    );
    assert_eq!(
        h.pipelines.get(&p.id).unwrap().processor_ids,
        vec![on_pipeline.id.clone()]
    );
    let before = h.writer.projections().read().clone();
    let Harness {
        path,
        _dir,
        log,
        writer,
        pipelines,
        connectors,
        processors,
    } = h;
    // Close the store: every holder of the writer (and so of the log) goes.
    drop((log, writer, pipelines, connectors, processors));
    let (_log, reopened) = open(&path);
    assert_eq!(*reopened.projections().read(), before);
    assert!(matches!(
        PipelineOrchestrator::new(reopened).get(&PipelineId("nope".into())),
        Err(CommandError::Domain(DomainError::NotFound {
            kind: EntityKind::Pipeline,
            ..
        }))
    ));
}

#[test]
fn a_deleted_id_can_be_created_again_with_a_continuing_stream() {
    let h = harness();
    let id = PipelineId("fixed-id".into());
    h.pipelines
        .create_with_id(&ctx(), id.clone(), "one", "")
        .unwrap();
    h.pipelines.delete(&ctx(), &id).unwrap();
    let again = h
        .pipelines
        .create_with_id(&ctx(), id.clone(), "two", "")
        .unwrap();
    assert_eq!(again.version, 3);
    assert_eq!(again.name, "two");
}

#[test]
fn creating_a_connector_clears_positions_left_under_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        fsync: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(RocksStore::open(dir.path().join("db"), options, &layout()).unwrap());
    let log: Arc<dyn EventLog> = store.clone();
    let positions: Arc<dyn PositionStore> = store;
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::with_positions(log, Arc::new(projections));
    let pipelines = PipelineOrchestrator::new(writer.clone());
    let connectors = ConnectorOrchestrator::new(writer);
    let p = pipelines.create(&ctx(), "p", "").unwrap();
    // A position left by an earlier connector with the same id (deleted since).
    positions.put("p:src", "position", b"42").unwrap();
    positions.put("other", "position", b"7").unwrap();
    connectors
        .create_with_id(
            &ctx(),
            ConnectorId("p:src".into()),
            &p.id,
            ConnectorType::Source,
            "builtin:generator",
            "src",
            Settings::new(),
        )
        .unwrap();
    assert_eq!(positions.get("p:src", "position").unwrap(), None);
    assert_eq!(
        positions.get("other", "position").unwrap().as_deref(),
        Some(&b"7"[..]),
        "other connectors keep theirs"
    );
}

/// An event log that keeps every append it is asked for, to assert on the batches.
struct Recording {
    inner: Arc<culvert_store::MemoryStore>,
    appends: std::sync::Mutex<Vec<AppendRequest>>,
}

impl EventLog for Recording {
    fn append(
        &self,
        request: AppendRequest,
    ) -> Result<Vec<culvert_store::StoredEvent>, StoreError> {
        self.appends.lock().unwrap().push(request.clone());
        self.inner.append(request)
    }
    fn read_from(
        &self,
        from: culvert_domain::Seq,
        limit: usize,
    ) -> Result<Vec<culvert_store::StoredEvent>, StoreError> {
        self.inner.read_from(from, limit)
    }
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<culvert_store::StoredEvent>, StoreError> {
        self.inner.read_stream(stream, from_version, limit)
    }
    fn head(&self) -> culvert_domain::Seq {
        self.inner.head()
    }
    fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream)
    }
    fn watch_head(&self) -> tokio::sync::watch::Receiver<culvert_domain::Seq> {
        self.inner.watch_head()
    }
    fn put_snapshot(
        &self,
        name: &str,
        snapshot: &culvert_store::Snapshot,
    ) -> Result<(), StoreError> {
        self.inner.put_snapshot(name, snapshot)
    }
    fn get_snapshot(&self, name: &str) -> Result<Option<culvert_store::Snapshot>, StoreError> {
        self.inner.get_snapshot(name)
    }

    fn snapshot_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.snapshot_names(prefix)
    }

    fn delete_snapshot(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete_snapshot(name)
    }
}

#[test]
fn a_deleted_connectors_positions_go_in_the_batch_of_its_deletion_events() {
    let store = Arc::new(culvert_store::MemoryStore::new());
    let recording = Arc::new(Recording {
        inner: store.clone(),
        appends: std::sync::Mutex::new(Vec::new()),
    });
    let log: Arc<dyn EventLog> = recording.clone();
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::with_positions(log, Arc::new(projections));
    let pipelines = PipelineOrchestrator::new(writer.clone());
    let connectors = ConnectorOrchestrator::new(writer);
    let p = pipelines.create(&ctx(), "p", "").unwrap();
    let id = ConnectorId("p:src".into());
    connectors
        .create_with_id(
            &ctx(),
            id.clone(),
            &p.id,
            ConnectorType::Source,
            "builtin:generator",
            "src",
            Settings::new(),
        )
        .unwrap();
    store.put("p:src", "position", b"42").unwrap();
    store.put("p:src", "last-active-settings", b"{}").unwrap();
    store.put("other", "position", b"7").unwrap();
    recording.appends.lock().unwrap().clear();

    connectors.delete(&ctx(), &id).unwrap();

    // One append: the deletion events and the clearing of the connector's slots, together.
    let appends = recording.appends.lock().unwrap();
    assert_eq!(appends.len(), 1, "{appends:?}");
    let batch = &appends[0];
    let kinds: Vec<&str> = batch.events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(kinds.contains(&"ConnectorDeleted"), "{kinds:?}");
    assert_eq!(batch.clear_positions, vec!["p:src".to_owned()]);
    assert_eq!(store.get("p:src", "position").unwrap(), None);
    assert_eq!(store.get("p:src", "last-active-settings").unwrap(), None);
    assert_eq!(
        store.get("other", "position").unwrap().as_deref(),
        Some(&b"7"[..])
    );
}

#[test]
fn schemas_are_events_and_survive_a_restart_with_their_ids() {
    let h = harness();
    let schemas = SchemaOrchestrator::new(h.writer.clone());
    let a = r#"{"type":"record","name":"a","fields":[]}"#;
    let b = r#"{"type":"record","name":"b","fields":[]}"#;
    let first = schemas.register(&ctx(), "s", SchemaType::Avro, a).unwrap();
    assert_eq!((first.version, first.id), (1, 1));
    let head = h.writer.head();
    let again = schemas.register(&ctx(), "s", SchemaType::Avro, a).unwrap();
    assert_eq!((again.version, again.id), (1, 1));
    assert_eq!(h.writer.head(), head, "the same text again records nothing");
    schemas.register(&ctx(), "s", SchemaType::Avro, b).unwrap();
    let shared = schemas.register(&ctx(), "t", SchemaType::Avro, b).unwrap();
    assert_eq!((shared.version, shared.id), (1, 2));
    let refused = schemas.register(&ctx(), "", SchemaType::Avro, a);
    assert_eq!(h.domain_code(refused), "schema.invalid_subject");

    let events = h
        .log
        .read_stream(&StreamId::schema_subject("s"), 0, 100)
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "SchemaRegistered");
    assert_eq!(events[0].actor, "user:test");

    let Harness {
        path,
        _dir,
        log,
        writer,
        pipelines,
        connectors,
        processors,
    } = h;
    drop((log, writer, pipelines, connectors, processors, schemas));
    let (_, writer) = open(&path);
    let schemas = SchemaOrchestrator::new(writer);
    assert_eq!(schemas.get("s", 2).unwrap().text, b);
    assert_eq!(schemas.by_id(1), Some((SchemaType::Avro, a.to_owned())));
    assert!(schemas.has_subject("t") && !schemas.has_subject("u"));
    let next = schemas
        .register(&ctx(), "u", SchemaType::Avro, r#""string""#)
        .unwrap();
    assert_eq!(next.id, 3, "ids go on from the log after a restart");
}

/// A writer that seals secrets: the settings of connectors, processors and DLQs.
fn sealing(path: &std::path::Path, secrets: &culvert_secrets::Secrets) -> Arc<ControlPlaneWriter> {
    let options = StoreOptions {
        fsync: false,
        ..StoreOptions::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(RocksStore::open(path, options, &layout()).unwrap());
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    ControlPlaneWriter::with_secrets(log, Arc::new(projections), true, secrets.clone())
}

#[test]
fn secrets_are_sealed_in_the_log_and_the_read_model_and_open_to_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let secrets = culvert_secrets::Secrets::ephemeral();
    let writer = sealing(&path, &secrets);
    let pipelines = PipelineOrchestrator::new(writer.clone());
    let connectors = ConnectorOrchestrator::new(writer.clone());
    let p = pipelines.create(&ctx(), "sealed", "").unwrap();
    let settings = Settings::from([
        ("path".to_owned(), "/tmp/out".to_owned()),
        ("password".to_owned(), "Sup3r-S3cret-Value".to_owned()),
    ]);
    let c = connectors
        .create(
            &ctx(),
            &p.id,
            ConnectorType::Destination,
            "standalone:db",
            "dst",
            settings.clone(),
        )
        .unwrap();
    assert!(culvert_secrets::is_sealed(&c.settings["password"]));
    assert_eq!(c.settings["path"], "/tmp/out");
    assert_eq!(secrets.open_settings(&c.settings).unwrap(), settings);
    let head = writer.head();
    // The same settings again, or `***` for the secret: no change is recorded.
    connectors
        .update(&ctx(), &c.id, "dst", settings.clone(), None, None)
        .unwrap();
    let mut redacted = settings.clone();
    redacted.insert("password".into(), culvert_secrets::REDACTED.into());
    connectors
        .update(&ctx(), &c.id, "dst", redacted, None, None)
        .unwrap();
    assert_eq!(writer.head(), head);
    // No event holds the secret's bytes.
    for event in writer.log().read_from(Seq(1), 1000).unwrap() {
        assert!(!event.payload.get().contains("Sup3r-S3cret-Value"));
    }
    drop((connectors, pipelines, writer));

    // After a restart the read model still holds the sealed value; a rotation seals it
    // again, allowed even while the pipeline runs, and history stays as it was.
    let writer = sealing(&path, &secrets);
    let stored = writer
        .projections()
        .read()
        .connector(&c.id)
        .unwrap()
        .clone();
    assert_eq!(stored.settings, c.settings);
    PipelineOrchestrator::new(writer.clone())
        .start(&ctx(), &p.id)
        .unwrap_err(); // no source: cannot start; the reseal below works in any state
    let rotated = secrets.with_ring(secrets.ring().rotated());
    let resealed = rotated
        .reseal_settings(&stored.plugin, &stored.settings)
        .unwrap()
        .unwrap();
    let rotating = {
        let options = StoreOptions {
            fsync: false,
            ..StoreOptions::default()
        };
        drop(writer);
        let log: Arc<dyn EventLog> = Arc::new(RocksStore::open(&path, options, &layout()).unwrap());
        let (projections, _) =
            Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
        ControlPlaneWriter::with_secrets(log, Arc::new(projections), true, rotated.clone())
    };
    let events = rotating
        .execute(
            &ctx(),
            &Command::ResealSecrets {
                target: culvert_domain::ResealTarget::Connector(c.id.clone()),
                settings: resealed.clone(),
            },
            None,
        )
        .unwrap();
    assert_eq!(events.len(), 1);
    let now = rotating
        .projections()
        .read()
        .connector(&c.id)
        .unwrap()
        .clone();
    assert_eq!(now.settings, resealed);
    assert_eq!(rotated.open_settings(&now.settings).unwrap(), settings);

    // A sealed value from a key the ring lacks is refused, naming the setting.
    let mut foreign = settings.clone();
    foreign.insert(
        "password".into(),
        culvert_secrets::KeyRing::generate().seal("password", "x"),
    );
    let error = ConnectorOrchestrator::new(rotating.clone())
        .update(&ctx(), &c.id, "dst", foreign, None, None)
        .unwrap_err();
    assert!(error.to_string().contains("\"password\""), "{error}");
}
