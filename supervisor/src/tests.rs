//! The supervisor's state machine, driven through the control plane as the API drives it,
//! with in-memory stores and a scripted connector plugin: start, stop, degrade, recover,
//! retries running out, restart at boot, deletion. No server process is spawned.

use super::*;
use async_trait::async_trait;
use culvert_commands::{CommandError, ConnectorOrchestrator};
use culvert_domain::{ConnectorId, Record};
use culvert_plugins::spec::{InvalidSettings, Parameter, ParameterType, SettingError};
use culvert_plugins::{ConnectorPlugin, Destination, PluginError, Source, Specification};
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::MemoryStore;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a test waits for a state before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// What the scripted source does, shared by every instance the plugin makes.
#[derive(Default)]
struct Script {
    /// Refuse to open with this (a configuration error).
    refuse_open: Mutex<Option<String>>,
    /// Failures to return from `read`, one per read, in order, once open.
    failures: Mutex<VecDeque<PluginError>>,
    /// Fail every read once open (a failure no restart mends) with a transient error.
    always_fail: Mutex<bool>,
    /// Instances opened, and the position each was opened at.
    opened: Mutex<Vec<Option<Position>>>,
    /// Instances torn down.
    torn_down: AtomicU32,
    /// Records read so far (over every instance).
    read: AtomicU32,
    /// The settings `on_deleted` was called with.
    deleted: Mutex<Vec<Settings>>,
}

struct Scripted {
    spec: Specification,
    script: Arc<Script>,
}

impl Scripted {
    fn plugin(script: Arc<Script>) -> Arc<dyn ConnectorPlugin> {
        Arc::new(Self {
            spec: Specification {
                name: "scripted",
                summary: "a source the test steers",
                description: "",
                version: "v0.1.0",
                author: "test",
                source: Some(vec![Parameter::new(
                    "table",
                    ParameterType::String,
                    "what to read",
                )]),
                destination: None,
                standalone: false,
            },
            script,
        })
    }
}

impl ConnectorPlugin for Scripted {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, _settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        Ok(Box::new(ScriptedSource {
            script: self.script.clone(),
            next: 0,
        }))
    }

    fn new_destination(&self, _settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        Err(PluginError::Other("no destination".into()))
    }
}

struct ScriptedSource {
    script: Arc<Script>,
    next: u64,
}

#[async_trait]
impl Source for ScriptedSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        self.script.opened.lock().unwrap().push(position.clone());
        if let Some(problem) = self.script.refuse_open.lock().unwrap().clone() {
            return Err(PluginError::InvalidSettings(InvalidSettings(vec![
                SettingError {
                    key: "url".into(),
                    problem,
                },
            ])));
        }
        self.next = position
            .map(|p| String::from_utf8_lossy(&p.0).parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        if *self.script.always_fail.lock().unwrap() {
            return Err(PluginError::Other("the network is down".into()));
        }
        if let Some(failure) = self.script.failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        // A few records a read, paced so a test sees the pipeline run.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let records = (0..max.min(4))
            .map(|_| {
                self.next += 1;
                Record {
                    position: Position(self.next.to_string().into_bytes()),
                    ..Record::default()
                }
            })
            .collect::<Vec<_>>();
        self.script
            .read
            .fetch_add(records.len() as u32, Ordering::SeqCst);
        Ok(records)
    }

    async fn ack(&mut self, _position: Position) -> Result<(), PluginError> {
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.script.torn_down.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_deleted(&mut self, config: Settings) -> Result<(), PluginError> {
        self.script.deleted.lock().unwrap().push(config);
        Ok(())
    }
}

/// A control plane on an in-memory store, with a pipeline `p` of a scripted source `src`
/// and a log destination `dst`, and a supervisor that can be started and shut down.
struct Harness {
    store: Arc<MemoryStore>,
    writer: Arc<ControlPlaneWriter>,
    pipelines: PipelineOrchestrator,
    connectors: ConnectorOrchestrator,
    script: Arc<Script>,
    id: PipelineId,
    recovery: Recovery,
}

/// A supervisor running in its task.
struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn user() -> Context {
    Context::new("user:test")
}

fn fast_recovery(max_retries: i64) -> Recovery {
    Recovery {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        backoff_factor: 2.0,
        max_retries,
        window: Duration::from_secs(300),
    }
}

impl Harness {
    fn new(recovery: Recovery) -> Self {
        let store = Arc::new(MemoryStore::new());
        Self::on(store, Arc::new(Script::default()), recovery, true)
    }

    /// A harness on `store` (a server started again on the same database), creating the
    /// pipeline if `create`.
    fn on(store: Arc<MemoryStore>, script: Arc<Script>, recovery: Recovery, create: bool) -> Self {
        let log: Arc<dyn culvert_store::EventLog> = store.clone();
        let (projections, _) =
            Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
        let writer = ControlPlaneWriter::with_positions(log, Arc::new(projections));
        let pipelines = PipelineOrchestrator::new(writer.clone());
        let connectors = ConnectorOrchestrator::new(writer.clone());
        let id = PipelineId("p".into());
        if create {
            pipelines
                .create_with_id(&user(), id.clone(), "p", "")
                .unwrap();
            let settings: Settings = [("table".to_owned(), "users".to_owned())].into();
            connectors
                .create_with_id(
                    &user(),
                    ConnectorId("src".into()),
                    &id,
                    ConnectorType::Source,
                    "builtin:scripted",
                    "src",
                    settings,
                )
                .unwrap();
            connectors
                .create_with_id(
                    &user(),
                    ConnectorId("dst".into()),
                    &id,
                    ConnectorType::Destination,
                    "builtin:log",
                    "dst",
                    [("level".to_owned(), "trace".to_owned())].into(),
                )
                .unwrap();
        }
        Self {
            store,
            writer,
            pipelines,
            connectors,
            script,
            id,
            recovery,
        }
    }

    fn supervise(&self) -> Running {
        let mut registry = culvert_connectors::registry();
        registry.add(Scripted::plugin(self.script.clone()));
        let supervisor = Supervisor::new(
            self.writer.clone(),
            Arc::new(registry),
            Arc::new(culvert_processors::registry()),
            self.store.clone(),
            self.recovery,
        );
        let (shutdown, rx) = watch::channel(false);
        Running {
            shutdown,
            task: tokio::spawn(supervisor.run(rx)),
        }
    }

    fn status(&self) -> PipelineStatus {
        self.writer
            .projections()
            .read()
            .pipeline(&self.id)
            .expect("the pipeline exists")
            .status
            .clone()
    }

    /// Wait until the pipeline's status satisfies `want` (woken by every applied event).
    async fn until(&self, what: &str, want: impl Fn(&PipelineStatus) -> bool) -> PipelineStatus {
        let mut applied = self.writer.projections().watch_applied();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let status = self.status();
            if want(&status) {
                return status;
            }
            if tokio::time::timeout_at(deadline, applied.changed())
                .await
                .is_err()
            {
                panic!("the pipeline never got {what}; it is {status:?}");
            }
        }
    }

    /// Wait until `check` holds of the script, looking again as events are applied or
    /// every few milliseconds (records flow without events).
    async fn until_script(&self, what: &str, check: impl Fn(&Script) -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut applied = self.writer.projections().watch_applied();
        while !check(&self.script) {
            assert!(tokio::time::Instant::now() < deadline, "never saw {what}");
            let _ = tokio::time::timeout(Duration::from_millis(5), applied.changed()).await;
        }
    }

    /// Start the pipeline and wait until it runs.
    async fn start(&self) {
        self.pipelines.start(&user(), &self.id).unwrap();
        self.until("running", |s| *s == PipelineStatus::Running)
            .await;
    }

    /// Stop the pipeline (`force`: without a drain) and wait until the user's stop is
    /// recorded.
    async fn stop(&self, force: bool) {
        self.pipelines.stop(&user(), &self.id, force).unwrap();
        self.until("stopped", |s| {
            *s == PipelineStatus::Stopped {
                reason: StoppedReason::User,
            }
        })
        .await;
    }

    /// The kinds of the pipeline's events, in order.
    fn history(&self) -> Vec<String> {
        use culvert_store::EventLog;
        self.store
            .read_stream(&culvert_domain::StreamId::pipeline(&self.id), 0, 1000)
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

impl Running {
    /// Shut the supervisor down as the server does (engines drain; nothing is reported).
    async fn shut_down(self) {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the supervisor shut down in time")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_pipeline_runs_and_a_stop_drains_it() {
    let h = Harness::new(fast_recovery(-1));
    let running = h.supervise();
    h.start().await;
    h.until_script("records read", |s| s.read.load(Ordering::SeqCst) >= 20)
        .await;
    h.stop(false).await;
    assert_eq!(h.script.torn_down.load(Ordering::SeqCst), 1);
    // Drained: the position saved is the last record read.
    let saved = h
        .store
        .get("src", POSITION_SLOT)
        .unwrap()
        .expect("a position");
    let read = h.script.read.load(Ordering::SeqCst);
    assert_eq!(String::from_utf8(saved).unwrap(), read.to_string());
    running.shut_down().await;
    assert_eq!(
        h.history(),
        [
            "PipelineCreated",
            "PipelineConnectorAdded",
            "PipelineConnectorAdded",
            "PipelineStartRequested",
            "PipelineStarted",
            "PipelineStopRequested",
            "PipelineStopped"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_open_degrades_the_pipeline_with_its_error() {
    let h = Harness::new(fast_recovery(-1));
    *h.script.refuse_open.lock().unwrap() = Some("no such host".into());
    let running = h.supervise();
    h.pipelines.start(&user(), &h.id).unwrap();
    let status = h
        .until("degraded", |s| matches!(s, PipelineStatus::Degraded { .. }))
        .await;
    let PipelineStatus::Degraded { error } = status else {
        unreachable!()
    };
    assert!(error.contains("no such host"), "{error}");
    // A failure at start is the start's answer: not retried.
    assert_eq!(h.script.opened.lock().unwrap().len(), 1);
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_asked_for_as_soon_as_a_failed_start_is_recorded_is_acted_on() {
    // The engine of a failed start ends just after its failure is recorded; a start asked
    // for in between must still run (once a reconcile kept the ending engine and the start
    // waited forever in STARTING).
    let h = Harness::new(fast_recovery(-1));
    *h.script.refuse_open.lock().unwrap() = Some("no such host".into());
    let running = h.supervise();
    for attempt in 1..=100 {
        h.pipelines.start(&user(), &h.id).unwrap();
        h.until("degraded", |s| matches!(s, PipelineStatus::Degraded { .. }))
            .await;
        assert_eq!(h.script.opened.lock().unwrap().len(), attempt);
    }
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_while_running_is_recovered_from() {
    let h = Harness::new(fast_recovery(-1));
    let running = h.supervise();
    h.start().await;
    h.until_script("records read", |s| s.read.load(Ordering::SeqCst) >= 8)
        .await;
    h.script
        .failures
        .lock()
        .unwrap()
        .push_back(PluginError::io("reading", std::io::Error::other("reset")));
    h.until_script("a second open", |s| s.opened.lock().unwrap().len() == 2)
        .await;
    h.until("running again", |s| *s == PipelineStatus::Running)
        .await;
    let history = h.history();
    assert!(
        history.ends_with(&[
            "PipelineRecovering".to_owned(),
            "PipelineStarted".to_owned()
        ]),
        "{history:?}"
    );
    // The restart resumed where the first run's acks got to.
    let resumed = h.script.opened.lock().unwrap()[1].clone();
    assert!(resumed.is_some(), "resumed from a position");
    running.shut_down().await;
    // A shutdown drains but reports nothing: the pipeline is still meant to run.
    assert_eq!(h.status(), PipelineStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_no_restart_can_mend_is_not_retried() {
    let h = Harness::new(fast_recovery(-1));
    let running = h.supervise();
    h.start().await;
    h.script
        .failures
        .lock()
        .unwrap()
        .push_back(PluginError::InvalidPosition {
            position: "x".into(),
            reason: "the table was dropped".into(),
        });
    let status = h
        .until("degraded", |s| matches!(s, PipelineStatus::Degraded { .. }))
        .await;
    assert!(
        matches!(&status, PipelineStatus::Degraded { error } if error.contains("the table was dropped")),
        "{status:?}"
    );
    assert_eq!(h.script.opened.lock().unwrap().len(), 1, "never restarted");
    assert!(!h.history().contains(&"PipelineRecovering".to_owned()));
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_retries_run_out_the_pipeline_is_left_degraded() {
    let h = Harness::new(fast_recovery(2));
    let running = h.supervise();
    h.start().await;
    *h.script.always_fail.lock().unwrap() = true;
    let status = h
        .until("degraded", |s| matches!(s, PipelineStatus::Degraded { .. }))
        .await;
    assert!(
        matches!(&status, PipelineStatus::Degraded { error } if error.contains("the network is down")),
        "{status:?}"
    );
    // The first run and two restarts.
    assert_eq!(h.script.opened.lock().unwrap().len(), 3);
    let recovering = h
        .history()
        .iter()
        .filter(|k| *k == "PipelineRecovering")
        .count();
    assert_eq!(recovering, 2);
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_was_running_starts_again_with_the_server_where_it_was() {
    let first = Harness::new(fast_recovery(-1));
    let running = first.supervise();
    first.pipelines.start(&user(), &first.id).unwrap();
    first
        .until("running", |s| *s == PipelineStatus::Running)
        .await;
    first
        .until_script("records read", |s| s.read.load(Ordering::SeqCst) >= 12)
        .await;
    running.shut_down().await;
    let saved = first.store.get("src", POSITION_SLOT).unwrap();
    assert!(saved.is_some());

    // The server starts again on the same database.
    let second = Harness::on(
        first.store.clone(),
        first.script.clone(),
        fast_recovery(-1),
        false,
    );
    assert_eq!(second.status(), PipelineStatus::Running);
    let running = second.supervise();
    second
        .until_script("a second open", |s| s.opened.lock().unwrap().len() == 2)
        .await;
    let resumed = second.script.opened.lock().unwrap()[1].clone();
    assert_eq!(
        resumed.map(|p| p.0),
        saved,
        "resumed from the saved position"
    );
    second.stop(false).await;
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_left_stopping_by_the_last_server_is_stopped_at_boot() {
    let h = Harness::new(fast_recovery(-1));
    // The last server recorded the start and the stop request, and died before the drain.
    h.pipelines.start(&user(), &h.id).unwrap();
    h.pipelines
        .report_started(&Context::system(), &h.id)
        .unwrap();
    h.pipelines.stop(&user(), &h.id, false).unwrap();
    assert_eq!(h.status(), PipelineStatus::Stopping { force: false });
    let running = h.supervise();
    h.until("stopped", |s| {
        *s == PipelineStatus::Stopped {
            reason: StoppedReason::User,
        }
    })
    .await;
    assert!(h.script.opened.lock().unwrap().is_empty(), "not run again");
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_stop_cancels_at_once() {
    let h = Harness::new(fast_recovery(-1));
    let running = h.supervise();
    h.start().await;
    h.stop(true).await;
    // It can start again at once.
    h.start().await;
    running.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_connectors_plugin_is_told_with_the_settings_it_last_ran_with() {
    let h = Harness::new(fast_recovery(-1));
    let running = h.supervise();
    h.start().await;
    h.stop(false).await;
    assert!(h.store.get("src", LAST_ACTIVE_SLOT).unwrap().is_some());
    h.connectors
        .delete(&user(), &ConnectorId("src".into()))
        .unwrap();
    // Its position and state went with the deletion's own write ...
    assert_eq!(h.store.get("src", POSITION_SLOT).unwrap(), None);
    assert_eq!(h.store.get("src", LAST_ACTIVE_SLOT).unwrap(), None);
    // ... and the plugin still hears of it, with the settings it ran with.
    h.until_script("on_deleted", |s| !s.deleted.lock().unwrap().is_empty())
        .await;
    let told = h.script.deleted.lock().unwrap().clone();
    assert_eq!(
        told,
        vec![Settings::from([("table".to_owned(), "users".to_owned())])]
    );
    running.shut_down().await;
}

#[test]
fn recording_an_outcome_is_tried_again_while_the_failure_may_pass() {
    let h = Harness::new(fast_recovery(-1));
    let recorder = PipelineOrchestrator::new(h.writer.clone());
    let ctx = Context::system();
    let retry = ReportRetry {
        attempts: 5,
        pause: Duration::from_millis(1),
    };
    let conflict = || CommandError::Conflict {
        stream: culvert_domain::StreamId("pipeline/p".to_owned()),
        expected: culvert_store::ExpectedVersion::Exact(1),
        actual: 2,
    };
    // Two concurrent changes, then it goes through.
    let tries = Arc::new(AtomicU32::new(0));
    let counted = tries.clone();
    let report = Report {
        pipeline: Some(h.id.clone()),
        what: "started",
        apply: Box::new(move |_, _| {
            if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(conflict());
            }
            Ok(())
        }),
    };
    record(&report, &recorder, &ctx, retry);
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    // The domain's refusal (the pipeline is gone) is final, and changes nothing.
    let tries = Arc::new(AtomicU32::new(0));
    let counted = tries.clone();
    let report = Report {
        pipeline: Some(h.id.clone()),
        what: "stopped",
        apply: Box::new(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(CommandError::Domain(
                culvert_domain::DomainError::InvalidArgument {
                    entity: culvert_domain::EntityKind::Pipeline,
                    field: "id",
                    reason: "gone".to_owned(),
                },
            ))
        }),
    };
    record(&report, &recorder, &ctx, retry);
    assert_eq!(tries.load(Ordering::SeqCst), 1);
    assert_eq!(
        h.status(),
        PipelineStatus::Stopped {
            reason: StoppedReason::User
        }
    );
}

#[test]
fn an_outcome_that_cannot_be_recorded_shows_in_the_pipelines_status() {
    let h = Harness::new(fast_recovery(-1));
    h.pipelines.start(&user(), &h.id).unwrap();
    h.pipelines
        .report_started(&Context::system(), &h.id)
        .unwrap();
    h.pipelines.stop(&user(), &h.id, false).unwrap();
    let recorder = PipelineOrchestrator::new(h.writer.clone());
    let tries = Arc::new(AtomicU32::new(0));
    let counted = tries.clone();
    let report = Report {
        pipeline: Some(h.id.clone()),
        what: "stopped",
        apply: Box::new(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(CommandError::Store(culvert_store::StoreError::Injected(
                "the disk is full".into(),
            )))
        }),
    };
    let retry = ReportRetry {
        attempts: 3,
        pause: Duration::from_millis(1),
    };
    record(&report, &recorder, &Context::system(), retry);
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    // Not left `Stopping` with nothing running it: degraded, saying what was lost.
    match h.status() {
        PipelineStatus::Degraded { error } => {
            assert!(
                error.contains("could not record that the pipeline stopped"),
                "{error}"
            );
            assert!(error.contains("the disk is full"), "{error}");
        }
        other => panic!("want degraded, got {other:?}"),
    }
}

#[test]
fn delays_grow_by_the_factor_up_to_the_maximum() {
    let r = Recovery::conduit_defaults();
    let delays: Vec<u64> = (1..=12).map(|a| r.delay(a).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    assert!(r.retry_allowed(1_000_000), "-1: no limit");
    let limited = Recovery {
        max_retries: 2,
        min_delay: Duration::from_millis(10),
        ..r
    };
    assert!(limited.retry_allowed(1));
    assert!(!limited.retry_allowed(2));
    assert_eq!(limited.delay(1), Duration::from_millis(10));
    let none = Recovery {
        max_retries: 0,
        ..r
    };
    assert!(!none.retry_allowed(0));
}
