//! The engine running real built-in sources into test destinations: everything delivered
//! and acked, a stop drains and a restart resumes with nothing lost, an error stops every
//! node and positions never pass what was written.

use culvert_domain::{Position, Record};
use culvert_engine::{run, DestinationNode, EngineError, Options, Positions, SourceNode};
use culvert_plugins::{ConnectorPlugin, Destination, PluginError, Registry, Settings, Side};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(30);

/// Positions in memory; `acked` publishes the source's count so tests wait on it.
struct MemoryPositions(Mutex<HashMap<String, Position>>, watch::Sender<u64>);

impl Default for MemoryPositions {
    fn default() -> Self {
        Self(Mutex::default(), watch::Sender::new(0))
    }
}

impl Positions for MemoryPositions {
    fn load(&self, connector: &str) -> Result<Option<Position>, String> {
        Ok(self.0.lock().unwrap().get(connector).cloned())
    }
    fn save(&self, connector: &str, position: &Position) -> Result<(), String> {
        let mut map = self.0.lock().unwrap();
        if let Some(previous) = map.get(connector) {
            let number = |p: &Position| -> u64 { String::from_utf8_lossy(&p.0).parse().unwrap() };
            assert!(
                number(position) > number(previous),
                "positions move forward"
            );
        }
        map.insert(connector.to_owned(), position.clone());
        self.1
            .send_replace(String::from_utf8_lossy(&position.0).parse().unwrap());
        Ok(())
    }
}

impl MemoryPositions {
    /// Wait (with the deadline) until the source has acked at least `n` records.
    async fn acked(&self, n: u64) {
        let mut acked = self.1.subscribe();
        tokio::time::timeout(DEADLINE, acked.wait_for(|count| *count >= n))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {n} acked records"))
            .unwrap();
    }

    fn count(&self, connector: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(connector)
            .map_or(0, |p| String::from_utf8_lossy(&p.0).parse().unwrap())
    }
}

/// Collects what it is given; can be told to fail at the n-th write, or be slow.
#[derive(Clone, Default)]
struct Collect {
    records: Arc<Mutex<Vec<Record>>>,
    /// How many records were written so far, for tests to wait on.
    written: Arc<watch::Sender<usize>>,
    fail_at_write: Option<usize>,
    delay: Duration,
    writes: Arc<Mutex<usize>>,
}

#[async_trait::async_trait]
impl Destination for Collect {
    async fn open(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        tokio::time::sleep(self.delay).await;
        let n = {
            let mut writes = self.writes.lock().unwrap();
            *writes += 1;
            *writes
        };
        if self.fail_at_write == Some(n) {
            return Err(PluginError::Other("disk full".into()));
        }
        let mut held = self.records.lock().unwrap();
        held.extend_from_slice(records);
        self.written.send_replace(held.len());
        Ok(())
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

fn generator(count: u64) -> SourceNode {
    let registry = Registry::builtin();
    let settings: Settings = [
        ("format.type", "structured"),
        ("format.options.id", "int"),
        ("recordCount", &count.to_string()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let settings = registry
        .validate("builtin:generator", Side::Source, &settings)
        .unwrap();
    let plugin: &Arc<dyn ConnectorPlugin> = registry.lookup("generator").unwrap();
    SourceNode {
        id: "src".into(),
        source: plugin.new_source(&settings).unwrap(),
    }
}

fn dest(id: &str, collect: &Collect) -> DestinationNode {
    DestinationNode {
        id: id.into(),
        destination: Box::new(collect.clone()),
    }
}

impl Collect {
    /// Wait (with the deadline) until more than `n` records were written.
    async fn more_than(&self, n: usize) {
        let mut written = self.written.subscribe();
        tokio::time::timeout(DEADLINE, written.wait_for(|count| *count > n))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {n} written records"))
            .unwrap();
    }
}

fn small_batches() -> Options {
    Options {
        batch_size: 7,
        channel_capacity: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_every_destination_and_is_acked() {
    let positions = Arc::new(MemoryPositions::default());
    let (a, b) = (
        Collect::default(),
        Collect {
            delay: Duration::from_millis(1),
            ..Collect::default()
        },
    );
    let (stop_tx, stop) = watch::channel(false);
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let engine = tokio::spawn(run(
        vec![generator(500)],
        vec![dest("a", &a), dest("b", &b)],
        positions.clone(),
        small_batches(),
        stop,
        Some(started_tx),
    ));
    tokio::time::timeout(DEADLINE, started)
        .await
        .expect("started in time")
        .expect("every connector opened");
    positions.acked(500).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    for collected in [&a, &b] {
        let records = collected.records.lock().unwrap();
        let numbers: Vec<u64> = records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.position.0).parse().unwrap())
            .collect();
        assert_eq!(
            numbers,
            (1..=500).collect::<Vec<_>>(),
            "all, once, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_drains_and_a_restart_resumes_with_nothing_lost() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect {
        delay: Duration::from_millis(1),
        ..Collect::default()
    };
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        vec![generator(2_000)],
        vec![dest("out", &out)],
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    out.more_than(100).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    let delivered = out.records.lock().unwrap().len() as u64;
    assert!(delivered < 2_000, "stopped mid-flight");
    assert_eq!(
        positions.count("src"),
        delivered,
        "a drained stop acks everything it delivered"
    );

    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        vec![generator(2_000)],
        vec![dest("out", &out)],
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    positions.acked(2_000).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    let records = out.records.lock().unwrap();
    let numbers: Vec<u64> = records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.position.0).parse().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=2_000).collect::<Vec<_>>(),
        "no loss, no duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_error_stops_every_node_and_positions_stay_behind_it() {
    let positions = Arc::new(MemoryPositions::default());
    let good = Collect::default();
    let bad = Collect {
        fail_at_write: Some(3),
        ..Collect::default()
    };
    let (_stop_tx, stop) = watch::channel(false);
    let result = tokio::time::timeout(
        DEADLINE,
        run(
            vec![generator(0)],
            vec![dest("good", &good), dest("bad", &bad)],
            positions.clone(),
            small_batches(),
            stop,
            None,
        ),
    )
    .await
    .expect("an error ends the run without a stop");
    let error = result.unwrap_err();
    assert!(matches!(error, EngineError::Plugin { .. }), "{error}");
    assert_eq!(error.to_string(), "destination bad: disk full");
    // The failing destination wrote two batches; nothing past them was acked.
    let written_by_bad = bad.records.lock().unwrap().len() as u64;
    assert!(positions.count("src") <= written_by_bad);
}

#[tokio::test]
async fn a_pipeline_without_destinations_is_refused() {
    let (_stop_tx, stop) = watch::channel(false);
    let result = run(
        vec![generator(1)],
        vec![],
        Arc::new(MemoryPositions::default()),
        Options::default(),
        stop,
        None,
    )
    .await;
    assert!(matches!(result, Err(EngineError::Incomplete)));
}
