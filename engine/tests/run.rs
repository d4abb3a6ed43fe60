//! The engine running real built-in sources into test destinations: everything delivered
//! and acked, a stop drains and a restart resumes with nothing lost, an error stops every
//! node and positions never pass what was written.

use culvert_domain::{Position, Record};
use culvert_engine::{
    run, DestinationNode, EngineError, Graph, Options, Positions, ProcessorNode, SourceNode,
};
use culvert_plugins::{ConnectorPlugin, Destination, PluginError, Settings, Side};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(30);

/// Positions in memory; `acked` publishes the source's count so tests wait on it; the
/// third field counts the saves.
struct MemoryPositions(
    Mutex<HashMap<String, Position>>,
    watch::Sender<u64>,
    std::sync::atomic::AtomicUsize,
);

impl Default for MemoryPositions {
    fn default() -> Self {
        Self(Mutex::default(), watch::Sender::new(0), Default::default())
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
        self.2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
    /// Refuse (nack) the records whose position ends in this digit.
    refuse_ending_in: Option<u8>,
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
    async fn write_each(
        &mut self,
        records: &[Record],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        let Some(digit) = self.refuse_ending_in else {
            return self.write(records).await.map(|()| Vec::new());
        };
        let (refused, accepted): (Vec<_>, Vec<_>) = records
            .iter()
            .enumerate()
            .partition(|(_, r)| r.position.0.last() == Some(&digit));
        let accepted: Vec<Record> = accepted.into_iter().map(|(_, r)| r.clone()).collect();
        self.write(&accepted).await?;
        Ok(refused
            .into_iter()
            .map(|(i, _)| (i, "constraint violated".to_owned()))
            .collect())
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

fn generator(count: u64) -> SourceNode {
    let registry = culvert_connectors::registry();
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
        processors: vec![],
    }
}

fn dest(id: &str, collect: &Collect) -> DestinationNode {
    DestinationNode {
        id: id.into(),
        destination: Box::new(collect.clone()),
        processors: vec![],
    }
}

fn graph(
    sources: Vec<SourceNode>,
    processors: Vec<ProcessorNode>,
    destinations: Vec<DestinationNode>,
) -> Graph {
    Graph {
        sources,
        processors,
        destinations,
        dlq: None,
    }
}

/// A built-in processor with settings and a condition.
fn processor(id: &str, plugin: &str, settings: &[(&str, &str)], condition: &str) -> ProcessorNode {
    let settings: Settings = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ProcessorNode {
        id: id.into(),
        processor: culvert_processors::registry()
            .configure(plugin, &settings, condition)
            .unwrap_or_else(|e| panic!("{plugin}: {e}")),
        inline: true,
    }
}

fn numbers(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.position.0).parse().unwrap())
        .collect()
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
        ..Options::default()
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
        graph(
            vec![generator(500)],
            vec![],
            vec![dest("a", &a), dest("b", &b)],
        ),
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

/// Saves start at most once per `position_save_interval` while records flow. With an
/// interval no test outlasts, the first release is saved at once and every later one
/// waits, gathered into one save; a stop saves the newest position at once, not after the
/// interval, and only then does the run end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn position_saves_are_paced_and_a_stop_saves_the_newest_at_once() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect::default();
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![generator(2_000)], vec![], vec![dest("out", &out)]),
        positions.clone(),
        Options {
            position_save_interval: Duration::from_secs(3_600),
            ..small_batches()
        },
        stop,
        None,
    ));
    out.more_than(1_999).await;
    positions.acked(1).await;
    let saves = || positions.2.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        saves(),
        1,
        "the first release saved at once, the rest waiting"
    );
    assert!(
        positions.count("src") < 2_000,
        "the first save was of the first release"
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(DEADLINE, engine)
        .await
        .expect("a stop does not wait out the interval")
        .unwrap()
        .unwrap();
    assert_eq!(
        positions.count("src"),
        2_000,
        "the newest position saved on stop"
    );
    assert_eq!(saves(), 2, "everything released meanwhile in one save");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_drains_and_a_restart_resumes_with_nothing_lost() {
    stop_and_restart(generator).await;
}

/// The same through a source with a detached stage: a stop raised while the reading task
/// waits for room (the slow destination keeps the channels full) or reads, and batches
/// waiting between the two tasks, lose nothing and repeat nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_a_detached_stage_drains_and_a_restart_resumes_with_nothing_lost() {
    stop_and_restart(|count| staged(count, None)).await;
}

async fn stop_and_restart(source: impl Fn(u64) -> SourceNode) {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect {
        delay: Duration::from_millis(1),
        ..Collect::default()
    };
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![source(2_000)], vec![], vec![dest("out", &out)]),
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
        graph(vec![source(2_000)], vec![], vec![dest("out", &out)]),
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
    a_destination_error_stops_everything(vec![]).await;
}

/// The cancel reaches the fan-in task too, racing its wait for the next batch: the run
/// ends (no task is left waiting) and nothing the failing destination did not write is
/// acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_error_also_stops_the_fan_in_task() {
    a_destination_error_stops_everything(in_tasks(vec![tag("p", "p")])).await;
}

async fn a_destination_error_stops_everything(pipeline: Vec<ProcessorNode>) {
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
            graph(
                vec![generator(0)],
                pipeline,
                vec![dest("good", &good), dest("bad", &bad)],
            ),
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
        graph(vec![generator(1)], vec![], vec![]),
        Arc::new(MemoryPositions::default()),
        Options::default(),
        stop,
        None,
    )
    .await;
    assert!(matches!(result, Err(EngineError::Incomplete)));
}

/// Appends `tag` to the record's `trail` metadata: shows which processors ran, in order.
fn tag(id: &str, tag: &str) -> ProcessorNode {
    let value = format!("{{{{ index .Metadata \"trail\" | default \"\" }}}}{tag}");
    processor(
        id,
        "field.set",
        &[("field", ".Metadata.trail"), ("value", &value)],
        "",
    )
}

/// Run `g` with small batches until its source's position reaches `count`, then stop it
/// (drained) and check that it ended without an error.
async fn run_until_acked(g: Graph, positions: &Arc<MemoryPositions>, count: u64) {
    run_until(g, positions, positions.acked(count)).await;
}

/// Run `g` with small batches until `done` completes, then stop it (drained) and check that
/// it ended without an error.
async fn run_until(
    g: Graph,
    positions: &Arc<MemoryPositions>,
    done: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(g, positions.clone(), small_batches(), stop, None));
    done.await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
}

/// `nodes` each in a task of their own (as standalone processors run), not in the task
/// that feeds them.
fn in_tasks(nodes: Vec<ProcessorNode>) -> Vec<ProcessorNode> {
    nodes
        .into_iter()
        .map(|node| ProcessorNode {
            inline: false,
            ..node
        })
        .collect()
}

/// `nodes` run inline (`inline`: true, as built-ins) or, as the pipeline's processors, in a
/// fan-in task.
fn placed(nodes: Vec<ProcessorNode>, inline: bool) -> Vec<ProcessorNode> {
    if inline {
        nodes
    } else {
        in_tasks(nodes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_apply_in_order_and_dropped_records_are_acked() {
    processors_apply_in_order(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processors_in_a_fan_in_task_apply_in_order_and_dropped_records_are_acked() {
    processors_apply_in_order(false).await;
}

async fn processors_apply_in_order(inline: bool) {
    let positions = Arc::new(MemoryPositions::default());
    let (a, b) = (Collect::default(), Collect::default());
    let mut source = generator(300);
    source.processors = vec![tag("s1", "s1,"), tag("s2", "s2,")];
    // Every third record is filtered for everyone, on the pipeline.
    let pipeline = placed(
        vec![
            tag("p1", "p1,"),
            processor(
                "p2",
                "filter",
                &[],
                r#"{{ regexMatch "^[0-9]*[369]$" (print .Position) }}"#,
            ),
            tag("p3", "p3,"),
        ],
        inline,
    );
    let mut to_a = dest("a", &a);
    to_a.processors = vec![tag("a1", "a1")];
    // Destination b also drops the even ones; a does not see that.
    let mut to_b = dest("b", &b);
    to_b.processors = vec![
        processor(
            "b1",
            "filter",
            &[],
            r#"{{ regexMatch "[02468]$" (print .Position) }}"#,
        ),
        tag("b2", "b2"),
    ];
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![source], pipeline, vec![to_a, to_b]),
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    // Every record is acked, the filtered ones included: the position reaches the last.
    positions.acked(300).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();

    let kept = |n: &u64| !matches!(n % 10, 3 | 6 | 9);
    let a = a.records.lock().unwrap();
    assert_eq!(numbers(&a), (1..=300).filter(kept).collect::<Vec<_>>());
    assert!(
        a.iter().all(|r| r.metadata["trail"] == "s1,s2,p1,p3,a1"),
        "{:?}",
        a[0].metadata
    );
    let b = b.records.lock().unwrap();
    assert_eq!(
        numbers(&b),
        (1..=300)
            .filter(kept)
            .filter(|n| n % 2 == 1)
            .collect::<Vec<_>>()
    );
    assert!(b.iter().all(|r| r.metadata["trail"] == "s1,s2,p1,p3,b2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_drops_everything_still_acks_everything() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect::default();
    let mut source = generator(100);
    source.processors = vec![processor("drop-all", "filter", &[], "")];
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![source], vec![], vec![dest("out", &out)]),
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    positions.acked(100).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    assert!(out.records.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_record_stops_the_pipeline_and_is_not_acked() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect::default();
    // Setting the operation to something that is not one fails the record: here the 50th.
    let pipeline = vec![processor(
        "op",
        "field.set",
        &[("field", ".Operation"), ("value", "bogus")],
        r#"{{ eq (print .Position) "50" }}"#,
    )];
    let (_stop_tx, stop) = watch::channel(false);
    let result = tokio::time::timeout(
        DEADLINE,
        run(
            graph(vec![generator(0)], pipeline, vec![dest("out", &out)]),
            positions.clone(),
            small_batches(),
            stop,
            None,
        ),
    )
    .await
    .expect("a failed record ends the run");
    let error = result.unwrap_err();
    assert!(matches!(error, EngineError::Processor { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("processor op: record at position \"50\": ")
            && message.contains("unknown operation"),
        "{message}"
    );
    assert!(
        positions.count("src") < 50,
        "nothing at or past the failed record is acked"
    );
    assert!(numbers(&out.records.lock().unwrap())
        .iter()
        .all(|n| *n < 50));
}

fn dlq(collect: &Collect, window_size: u64, threshold: u64) -> culvert_engine::DeadLetterNode {
    culvert_engine::DeadLetterNode {
        destination: Box::new(collect.clone()),
        window_size,
        window_nack_threshold: threshold,
        letters: None,
    }
}

/// A processor that fails every record whose number ends in 5.
fn failing() -> ProcessorNode {
    processor(
        "breaker",
        "field.set",
        &[("field", ".Operation"), ("value", "bogus")],
        r#"{{ hasSuffix "5" (print .Position) }}"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_records_go_to_the_dlq_and_are_acked() {
    let positions = Arc::new(MemoryPositions::default());
    let (out, letters) = (Collect::default(), Collect::default());
    let mut g = graph(
        vec![generator(100)],
        vec![failing()],
        vec![dest("out", &out)],
    );
    // No window: every nack goes to the DLQ.
    g.dlq = Some(dlq(&letters, 0, 0));
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(g, positions.clone(), small_batches(), stop, None));
    positions.acked(100).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    assert_eq!(
        numbers(&out.records.lock().unwrap()),
        (1..=100).filter(|n| n % 10 != 5).collect::<Vec<_>>()
    );
    let letters = letters.records.lock().unwrap();
    assert_eq!(
        numbers(&letters),
        (1..=100).filter(|n| n % 10 == 5).collect::<Vec<_>>()
    );
    let letter = &letters[0];
    assert_eq!(
        letter.metadata["conduit.dlq.nack.node.id"],
        "processor breaker"
    );
    assert!(letter.metadata["conduit.dlq.nack.error"].contains("unknown operation"));
    let Some(culvert_domain::Data::Structured(failed)) = &letter.payload.after else {
        panic!("the failed record is the payload: {letter:?}")
    };
    assert_eq!(
        failed["position"], "NQ==",
        "the failed record's own position (\"5\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_failed_records_go_to_the_dlq_in_one_write_in_order() {
    let positions = Arc::new(MemoryPositions::default());
    let (out, letters) = (Collect::default(), Collect::default());
    // Every odd record fails: three or four in each batch of seven.
    let odd = processor(
        "breaker",
        "field.set",
        &[("field", ".Operation"), ("value", "bogus")],
        r#"{{ regexMatch "[13579]$" (print .Position) }}"#,
    );
    let mut g = graph(vec![generator(70)], vec![odd], vec![dest("out", &out)]);
    g.dlq = Some(dlq(&letters, 0, 0));
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(g, positions.clone(), small_batches(), stop, None));
    positions.acked(70).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    assert_eq!(
        numbers(&letters.records.lock().unwrap()),
        (1..=70).filter(|n| n % 2 == 1).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(&out.records.lock().unwrap()),
        (1..=70).filter(|n| n % 2 == 0).collect::<Vec<_>>()
    );
    // One DLQ write per batch of the source (ten of seven), not one per letter (35).
    assert_eq!(*letters.writes.lock().unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_destination_refuses_go_to_the_dlq_and_are_acked() {
    let positions = Arc::new(MemoryPositions::default());
    let letters = Collect::default();
    let out = Collect {
        refuse_ending_in: Some(b'7'),
        ..Collect::default()
    };
    let mut g = graph(vec![generator(100)], vec![], vec![dest("out", &out)]);
    g.dlq = Some(dlq(&letters, 0, 0));
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(g, positions.clone(), small_batches(), stop, None));
    positions.acked(100).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    assert_eq!(
        numbers(&out.records.lock().unwrap()),
        (1..=100).filter(|n| n % 10 != 7).collect::<Vec<_>>()
    );
    let letters = letters.records.lock().unwrap();
    assert_eq!(
        numbers(&letters),
        (1..=100).filter(|n| n % 10 == 7).collect::<Vec<_>>()
    );
    assert_eq!(
        letters[0].metadata["conduit.dlq.nack.node.id"],
        "destination out"
    );
    assert_eq!(
        letters[0].metadata["conduit.dlq.nack.error"],
        "constraint violated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_without_a_dlq_stops_the_pipeline_before_its_position() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect {
        refuse_ending_in: Some(b'7'),
        ..Collect::default()
    };
    let g = graph(vec![generator(100)], vec![], vec![dest("out", &out)]);
    let (_stop_tx, stop) = watch::channel(false);
    let result = tokio::time::timeout(
        DEADLINE,
        run(g, positions.clone(), small_batches(), stop, None),
    )
    .await
    .expect("the refusal ends the run");
    let message = result.unwrap_err().to_string();
    assert!(message.contains("destination out"), "{message}");
    assert!(message.contains("\"7\": constraint violated"), "{message}");
    assert!(
        positions.count("src") < 7,
        "never acked past the refused record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_dlq_threshold_the_pipeline_stops() {
    let positions = Arc::new(MemoryPositions::default());
    let (out, letters) = (Collect::default(), Collect::default());
    // Records ending in 5, 6 and 7 fail; two nacks are tolerated in the last 12 records,
    // so 5 and 6 go to the DLQ and 7 is one too many.
    let breaker = processor(
        "breaker",
        "field.set",
        &[("field", ".Operation"), ("value", "bogus")],
        r#"{{ regexMatch "[567]$" (print .Position) }}"#,
    );
    let mut g = graph(vec![generator(0)], vec![breaker], vec![dest("out", &out)]);
    g.dlq = Some(dlq(&letters, 12, 2));
    let (_stop_tx, stop) = watch::channel(false);
    let result = tokio::time::timeout(
        DEADLINE,
        run(g, positions.clone(), small_batches(), stop, None),
    )
    .await
    .expect("the third nack ends the run");
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("DLQ nack threshold exceeded (2/12), original error: ")
            && message.contains("unknown operation"),
        "{message}"
    );
    assert_eq!(numbers(&letters.records.lock().unwrap()), [5, 6]);
    assert!(
        positions.count("src") < 7,
        "the refused record is not acked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_conduits_default_dlq_the_first_failure_stops_with_its_own_error() {
    let positions = Arc::new(MemoryPositions::default());
    let (out, letters) = (Collect::default(), Collect::default());
    let mut g = graph(vec![generator(0)], vec![failing()], vec![dest("out", &out)]);
    g.dlq = Some(dlq(&letters, 1, 0));
    let (_stop_tx, stop) = watch::channel(false);
    let result = tokio::time::timeout(
        DEADLINE,
        run(g, positions.clone(), small_batches(), stop, None),
    )
    .await
    .expect("the first nack ends the run");
    let message = result.unwrap_err().to_string();
    assert!(
        message.starts_with("processor breaker: record at position \"5\": "),
        "{message}"
    );
    assert!(!message.contains("threshold"), "{message}");
    assert!(letters.records.lock().unwrap().is_empty());
}

/// A source that is *not* cancel-safe: it keeps the records of a read in a local across
/// awaits, so a read dropped half-way loses them. The engine must never drop its reads
/// while the pipeline runs (acks arrive all the time here), so nothing may be lost.
struct NotCancelSafe {
    next: u64,
    count: u64,
}

#[async_trait::async_trait]
impl culvert_plugins::Source for NotCancelSafe {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        self.next = position.map_or(1, |p| {
            String::from_utf8_lossy(&p.0).parse::<u64>().unwrap() + 1
        });
        Ok(())
    }
    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        let mut local = Vec::new();
        while local.len() < max && self.next <= self.count {
            local.push(Record {
                position: Position(self.next.to_string().into_bytes()),
                ..Record::default()
            });
            self.next += 1;
            // An await point with records held in the local.
            tokio::task::yield_now().await;
        }
        if local.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(local)
    }
    async fn ack(&mut self, _position: Position) -> Result<(), PluginError> {
        Ok(())
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_dropped_half_way_while_acks_flow() {
    const COUNT: u64 = 200_000;
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect::default();
    let source = SourceNode {
        id: "src".into(),
        source: Box::new(NotCancelSafe {
            next: 1,
            count: COUNT,
        }),
        processors: vec![],
    };
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![source], vec![], vec![dest("out", &out)]),
        positions.clone(),
        Options {
            batch_size: 64,
            channel_capacity: 2,
            // A save per release: acks arrive as often as they can.
            position_save_interval: Duration::ZERO,
        },
        stop,
        None,
    ));
    positions.acked(COUNT).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    let records = out.records.lock().unwrap();
    let numbers = numbers(&records);
    let lost = (1..=COUNT)
        .filter(|n| numbers.binary_search(n).is_err())
        .count();
    assert_eq!(lost, 0, "records lost by dropped reads");
    assert_eq!(
        numbers,
        (1..=COUNT).collect::<Vec<_>>(),
        "all, once, in order"
    );
}

/// Splits record n into n % 3 copies (none: dropped), each tagged with its index in
/// `copy` and with `by`.
struct Splitter(&'static str);

#[async_trait::async_trait]
impl culvert_plugins::processor::Processor for Splitter {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [culvert_plugins::processor::Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter().zip(outcomes.iter_mut()) {
            let n: u64 = String::from_utf8_lossy(&record.position.0).parse().unwrap();
            let copies = (0..n % 3)
                .map(|i| {
                    let mut copy = record.clone();
                    copy.metadata
                        .insert(format!("copy.{}", self.0), i.to_string());
                    copy
                })
                .collect();
            *outcome = culvert_plugins::processor::Outcome::Split(copies);
        }
        Ok(())
    }
}

fn splitter(id: &'static str) -> ProcessorNode {
    ProcessorNode {
        id: id.into(),
        processor: Box::new(Splitter(id)),
        inline: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_records_reach_every_destination_and_the_original_is_acked_once_all_are() {
    let positions = Arc::new(MemoryPositions::default());
    let (a, b) = (
        Collect::default(),
        Collect {
            delay: Duration::from_millis(1),
            ..Collect::default()
        },
    );
    // Split before the fan-out (both destinations see the copies), and again in b.
    let mut to_b = dest("b", &b);
    to_b.processors = vec![splitter("b")];
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(
            vec![generator(600)],
            vec![splitter("p")],
            vec![dest("a", &a), to_b],
        ),
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    positions.acked(600).await;
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    let copies = |n: u64| n % 3;
    let a = a.records.lock().unwrap();
    let want_a: Vec<u64> = (1..=600)
        .flat_map(|n| std::iter::repeat_n(n, copies(n) as usize))
        .collect();
    assert_eq!(numbers(&a), want_a, "every copy, once, in order");
    let b = b.records.lock().unwrap();
    let want_b: Vec<u64> = (1..=600)
        .flat_map(|n| std::iter::repeat_n(n, (copies(n) * copies(n)) as usize))
        .collect();
    assert_eq!(numbers(&b), want_b);
    // The copies are distinct: (p copy, b copy) pairs for record 2 are (0,0) (0,1) (1,0) (1,1).
    let two: Vec<(String, String)> = b
        .iter()
        .filter(|r| r.position.0 == b"2")
        .map(|r| {
            (
                r.metadata["copy.p"].to_string(),
                r.metadata["copy.b"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        two,
        [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")].map(|(p, b)| (p.to_owned(), b.to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_never_passes_a_record_whose_copies_are_not_all_written() {
    let positions = Arc::new(MemoryPositions::default());
    // One copy per write: the third write (a copy of record 2, or later) fails.
    let bad = Collect {
        fail_at_write: Some(3),
        ..Collect::default()
    };
    let (_stop_tx, stop) = watch::channel(false);
    let options = Options {
        batch_size: 1,
        channel_capacity: 1,
        ..Options::default()
    };
    let result = tokio::time::timeout(
        DEADLINE,
        run(
            graph(
                vec![generator(0)],
                vec![splitter("p")],
                vec![dest("bad", &bad)],
            ),
            positions.clone(),
            options,
            stop,
            None,
        ),
    )
    .await
    .expect("an error ends the run");
    assert!(result.is_err());
    let written = bad.records.lock().unwrap();
    // Records are whole when every copy was written (n % 3 copies of record n).
    let complete = (1..)
        .take_while(|n: &u64| {
            written
                .iter()
                .filter(|r| numbers(std::slice::from_ref(r))[0] == *n)
                .count() as u64
                == n % 3
        })
        .last()
        .unwrap_or(0);
    assert!(
        positions.count("src") <= complete,
        "persisted {} but only records up to {complete} were written whole",
        positions.count("src")
    );
}

/// Letters kept in memory, as the store's dead-letter column family keeps them.
#[derive(Default)]
struct MemoryLetters {
    letters:
        Mutex<std::collections::BTreeMap<u64, (culvert_domain::dead_letter::DeadLetter, bool)>>,
    /// How many letters are kept, for tests to wait on.
    kept: watch::Sender<usize>,
}

impl MemoryLetters {
    fn queue_all(&self) {
        for (_, queued) in self.letters.lock().unwrap().values_mut() {
            *queued = true;
        }
    }

    fn all(&self) -> Vec<culvert_domain::dead_letter::DeadLetter> {
        let letters = self.letters.lock().unwrap();
        letters.values().map(|(letter, _)| letter.clone()).collect()
    }

    /// Wait (with the deadline) until `count` letters are kept.
    async fn until(&self, count: usize) {
        let mut kept = self.kept.subscribe();
        tokio::time::timeout(DEADLINE, kept.wait_for(|kept| *kept == count))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {count} kept letters"))
            .unwrap();
    }
}

impl culvert_engine::dlq::LetterBox for MemoryLetters {
    fn keep_all(&self, kept: &[culvert_domain::dead_letter::DeadLetter]) -> Result<(), String> {
        let mut letters = self.letters.lock().unwrap();
        for letter in kept {
            let next = letters.keys().next_back().map_or(1, |n| n + 1);
            letters.insert(next, (letter.clone(), false));
        }
        self.kept.send_replace(letters.len());
        Ok(())
    }
    fn queued(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, culvert_domain::dead_letter::DeadLetter)>, String> {
        let letters = self.letters.lock().unwrap();
        Ok(letters
            .range(after + 1..)
            .filter(|(_, (_, queued))| *queued)
            .take(limit)
            .map(|(n, (letter, _))| (*n, letter.clone()))
            .collect())
    }
    fn delivered(&self, through: u64) -> Result<(), String> {
        let mut letters = self.letters.lock().unwrap();
        letters.retain(|n, (_, queued)| *n > through || !*queued);
        self.kept.send_replace(letters.len());
        Ok(())
    }
}

/// Records a processor fails and a destination refuses are kept as letters saying where
/// they failed; re-injected (after the user removed the failing processor and mended the
/// destination), each reaches the destinations that lacked it exactly once, without
/// passing the processors it had passed again, and the letters go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_and_reinjected_once_from_where_they_failed() {
    dead_letters_reinjected_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_reinjected_once_into_processors_in_a_fan_in_task() {
    dead_letters_reinjected_once(false).await;
}

async fn dead_letters_reinjected_once(inline: bool) {
    use culvert_domain::dead_letter::Stage;
    let positions = Arc::new(MemoryPositions::default());
    let letters = Arc::new(MemoryLetters::default());
    let with_letters = |collect: &Collect| culvert_engine::DeadLetterNode {
        letters: Some(letters.clone() as Arc<dyn culvert_engine::dlq::LetterBox>),
        ..dlq(collect, 0, 0)
    };
    let (picky, other, dlq_out) = (
        Collect {
            refuse_ending_in: Some(b'7'),
            ..Collect::default()
        },
        Collect::default(),
        Collect::default(),
    );
    let mut g = graph(
        vec![generator(100)],
        placed(vec![tag("a", "a"), failing()], inline),
        vec![dest("picky", &picky), dest("other", &other)],
    );
    g.dlq = Some(with_letters(&dlq_out));
    run_until_acked(g, &positions, 100).await;
    let kept = letters.all();
    let failed: Vec<_> = kept.iter().filter(|l| l.stage == Stage::Pipeline).collect();
    let refused: Vec<_> = kept.iter().filter(|l| l.stage != Stage::Pipeline).collect();
    assert_eq!(
        numbers(&failed.iter().map(|l| l.record.clone()).collect::<Vec<_>>()),
        (1..=100).filter(|n| n % 10 == 5).collect::<Vec<_>>()
    );
    assert!(failed
        .iter()
        .all(|l| l.processor.as_deref() == Some("breaker")
            && l.index == 1
            && l.record.metadata["trail"] == "a"));
    assert_eq!(
        numbers(&refused.iter().map(|l| l.record.clone()).collect::<Vec<_>>()),
        (1..=100).filter(|n| n % 10 == 7).collect::<Vec<_>>()
    );
    assert!(refused.iter().all(|l| l.stage
        == Stage::Destination {
            connector: "picky".into()
        }
        && l.processor.is_none()
        && l.node == "destination picky"));

    // The user removes the failing processor, the destination takes everything now, and
    // every letter is queued. The source has nothing new.
    let (picky, other) = (Collect::default(), Collect::default());
    let mut g = graph(
        vec![generator(100)],
        placed(vec![tag("a", "a")], inline),
        vec![dest("picky", &picky), dest("other", &other)],
    );
    g.dlq = Some(with_letters(&dlq_out));
    letters.queue_all();
    run_until(g, &positions, letters.until(0)).await;
    let mut to_picky = numbers(&picky.records.lock().unwrap());
    to_picky.sort_unstable();
    assert_eq!(
        to_picky,
        (1..=100)
            .filter(|n| n % 10 == 5 || n % 10 == 7)
            .collect::<Vec<_>>(),
        "each letter once to the destination that refused it or never had it"
    );
    let to_other = other.records.lock().unwrap();
    assert_eq!(
        numbers(&to_other),
        (1..=100).filter(|n| n % 10 == 5).collect::<Vec<_>>(),
        "the other destination had the refused ones already"
    );
    assert!(
        to_other.iter().all(|r| r.metadata["trail"] == "a"),
        "processors before the failing one are not run again"
    );
    assert_eq!(positions.count("src"), 100);
}

/// A source's processor fails records into the DLQ; once it no longer fails them, the
/// re-injected letters go through it (and the processors after it), not the ones before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_a_source_processor_resume_at_it() {
    use culvert_domain::dead_letter::Stage;
    let positions = Arc::new(MemoryPositions::default());
    let letters = Arc::new(MemoryLetters::default());
    let with_letters = |collect: &Collect| culvert_engine::DeadLetterNode {
        letters: Some(letters.clone() as Arc<dyn culvert_engine::dlq::LetterBox>),
        ..dlq(collect, 0, 0)
    };
    let (out, dlq_out) = (Collect::default(), Collect::default());
    let mut source = generator(100);
    source.processors = vec![tag("a", "a"), failing(), tag("c", "c")];
    let mut g = graph(vec![source], vec![], vec![dest("out", &out)]);
    g.dlq = Some(with_letters(&dlq_out));
    run_until_acked(g, &positions, 100).await;
    let kept = letters.all();
    assert_eq!(
        numbers(&kept.iter().map(|l| l.record.clone()).collect::<Vec<_>>()),
        (1..=100).filter(|n| n % 10 == 5).collect::<Vec<_>>()
    );
    assert!(kept.iter().all(|l| l.stage
        == Stage::Source {
            connector: "src".into()
        }
        && l.index == 1
        && l.record.metadata["trail"] == "a"));
    assert_eq!(
        numbers(&out.records.lock().unwrap()),
        (1..=100).filter(|n| n % 10 != 5).collect::<Vec<_>>()
    );

    // The processor in the failing one's place (same id) lets them through now.
    let out = Collect::default();
    let mut source = generator(100);
    source.processors = vec![tag("a", "a"), tag("breaker", "b"), tag("c", "c")];
    let mut g = graph(vec![source], vec![], vec![dest("out", &out)]);
    g.dlq = Some(with_letters(&dlq_out));
    letters.queue_all();
    run_until(g, &positions, letters.until(0)).await;
    let again = out.records.lock().unwrap();
    let mut resent = numbers(&again);
    resent.sort_unstable();
    assert_eq!(
        resent,
        (1..=100).filter(|n| n % 10 == 5).collect::<Vec<_>>(),
        "each letter once"
    );
    assert!(
        again.iter().all(|r| r.metadata["trail"] == "abc"),
        "from the processor that failed it on: {:?}",
        again.first().map(|r| &r.metadata)
    );
}

/// A submission to [`Gated`]: the positions of its records and what completes its receipt.
type Submission = (
    Vec<u64>,
    tokio::sync::oneshot::Sender<Result<culvert_plugins::Refusals, PluginError>>,
);

/// A destination whose writes the test completes, receipt by receipt, as a destination
/// that writes one batch while the engine prepares the next reports them.
struct Gated {
    submissions: tokio::sync::mpsc::UnboundedSender<Submission>,
    /// Receipts the engine has not yet seen complete.
    outstanding: Arc<std::sync::atomic::AtomicUsize>,
    /// The most receipts ever outstanding at once.
    most: Arc<std::sync::atomic::AtomicUsize>,
    /// How many receipts were outstanding when the engine tore the destination down.
    torn_down_with: Arc<Mutex<Option<usize>>>,
}

#[async_trait::async_trait]
impl Destination for Gated {
    async fn open(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        self.submit(records).await?.await.map(drop)
    }
    async fn submit(
        &mut self,
        records: &[Record],
    ) -> Result<culvert_plugins::Receipt, PluginError> {
        use std::sync::atomic::Ordering;
        let now = self.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let (done, receipt) = tokio::sync::oneshot::channel();
        self.submissions.send((numbers(records), done)).unwrap();
        let outstanding = self.outstanding.clone();
        Ok(Box::pin(async move {
            let written = receipt
                .await
                .unwrap_or_else(|_| Err(PluginError::Other("the test dropped a receipt".into())));
            outstanding.fetch_sub(1, Ordering::SeqCst);
            written
        }))
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        let outstanding = self.outstanding.load(std::sync::atomic::Ordering::SeqCst);
        *self.torn_down_with.lock().unwrap() = Some(outstanding);
        Ok(())
    }
}

/// What a test watches a [`Gated`] destination through.
struct Watch {
    submitted: tokio::sync::mpsc::UnboundedReceiver<Submission>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    torn_down_with: Arc<Mutex<Option<usize>>>,
}

/// A [`Gated`] destination node and what the test watches it through.
fn gated() -> (DestinationNode, Watch) {
    let (submissions, submitted) = tokio::sync::mpsc::unbounded_channel();
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let torn_down_with = Arc::new(Mutex::new(None));
    let node = DestinationNode {
        id: "gated".into(),
        destination: Box::new(Gated {
            submissions,
            outstanding: Arc::default(),
            most: most.clone(),
            torn_down_with: torn_down_with.clone(),
        }),
        processors: vec![],
    };
    let watched = Watch {
        submitted,
        most,
        torn_down_with,
    };
    (node, watched)
}

async fn next_submission(
    submitted: &mut tokio::sync::mpsc::UnboundedReceiver<Submission>,
) -> Submission {
    tokio::time::timeout(DEADLINE, submitted.recv())
        .await
        .expect("a batch submitted in time")
        .expect("the destination node is running")
}

/// With a destination that overlaps its writes, the engine keeps two batches submitted (the
/// next is prepared while one is written), never more; a batch's records are acked only
/// once its receipt completes, in order; a stop waits for every receipt before teardown.
/// It also covers the node's `select!`: while the first receipt is pending, input wins the
/// race (the second batch is submitted), dropping the future polling that receipt; the
/// receipt is completed afterwards and must still be seen, or the records would never be
/// acked and the wait for them below would time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_batches_are_acked_only_once_written_in_order_two_at_a_time() {
    use std::sync::atomic::Ordering;
    let positions = Arc::new(MemoryPositions::default());
    let (node, watched) = gated();
    let Watch {
        mut submitted,
        most,
        torn_down_with,
    } = watched;
    let (stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![generator(70)], vec![], vec![node]),
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    let mut pending = std::collections::VecDeque::new();
    let (mut received, mut written) = (Vec::new(), 0u64);
    while written < 70 {
        if pending.len() < culvert_plugins::SUBMITTED && (received.len() as u64) < 70 {
            let (batch, done) = next_submission(&mut submitted).await;
            received.extend(batch.iter().copied());
            pending.push_back((batch.len() as u64, done));
            continue;
        }
        let (count, done) = pending.pop_front().unwrap();
        assert!(
            positions.count("src") <= written,
            "nothing acked past the batches written"
        );
        done.send(Ok(Vec::new())).unwrap();
        written += count;
        positions.acked(written).await;
    }
    stop_tx.send(true).unwrap();
    engine.await.unwrap().unwrap();
    assert_eq!(
        received,
        (1..=70).collect::<Vec<_>>(),
        "all, once, in order"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        culvert_plugins::SUBMITTED,
        "the next batch was submitted while one was being written, and no more"
    );
    assert_eq!(
        *torn_down_with.lock().unwrap(),
        Some(0),
        "drained before teardown"
    );
    assert_eq!(positions.count("src"), 70);
}

/// A receipt that fails stops the pipeline with its error; the batch submitted after it is
/// never reported written, so nothing past the last good batch is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_receipt_stops_the_pipeline_and_nothing_after_it_is_acked() {
    let positions = Arc::new(MemoryPositions::default());
    let (node, watched) = gated();
    let mut submitted = watched.submitted;
    let (_stop_tx, stop) = watch::channel(false);
    let engine = tokio::spawn(run(
        graph(vec![generator(0)], vec![], vec![node]),
        positions.clone(),
        small_batches(),
        stop,
        None,
    ));
    let (first, first_done) = next_submission(&mut submitted).await;
    let (_, second_done) = next_submission(&mut submitted).await;
    first_done.send(Ok(Vec::new())).unwrap();
    positions.acked(first.len() as u64).await;
    let (_, third_done) = next_submission(&mut submitted).await;
    second_done
        .send(Err(PluginError::Other("disk full".into())))
        .unwrap();
    let error = tokio::time::timeout(DEADLINE, engine)
        .await
        .expect("the error ends the run")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.to_string(), "destination gated: disk full");
    assert_eq!(positions.count("src"), first.len() as u64);
    drop(third_done);
}

/// A generator whose reads leave work to a detached stage (`Source::detach_stage`), as the
/// connector SDK's schema extraction does: the stage numbers each record it sees in
/// `stage.seq` and fails at the batch `fail_at` (from 1), if given.
struct Staged {
    inner: Box<dyn culvert_plugins::Source>,
    fail_at: Option<u64>,
}

struct Numbering {
    seen: u64,
    batches: u64,
    fail_at: Option<u64>,
}

impl culvert_plugins::ReadStage for Numbering {
    fn apply(&mut self, records: &mut [Record]) -> Result<(), PluginError> {
        self.batches += 1;
        if self.fail_at == Some(self.batches) {
            return Err(PluginError::Other("schema registry unreachable".into()));
        }
        for record in records {
            self.seen += 1;
            record.metadata.insert("stage.seq", self.seen.to_string());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl culvert_plugins::Source for Staged {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        self.inner.open(position).await
    }
    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        self.inner.read(max).await
    }
    async fn ack(&mut self, position: Position) -> Result<(), PluginError> {
        self.inner.ack(position).await
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }
    fn detach_stage(&mut self) -> Option<Box<dyn culvert_plugins::ReadStage>> {
        Some(Box::new(Numbering {
            seen: 0,
            batches: 0,
            fail_at: self.fail_at,
        }))
    }
}

fn staged(count: u64, fail_at: Option<u64>) -> SourceNode {
    let mut node = generator(count);
    node.source = Box::new(Staged {
        inner: node.source,
        fail_at,
    });
    node
}

/// The engine runs a source's detached stage on every batch, once, in the order read, before
/// any destination sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_detached_stage_finishes_every_batch_in_order() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect {
        delay: Duration::from_millis(1),
        ..Collect::default()
    };
    run_until_acked(
        graph(vec![staged(3_000, None)], vec![], vec![dest("out", &out)]),
        &positions,
        3_000,
    )
    .await;
    let records = out.records.lock().unwrap();
    assert_eq!(numbers(&records), (1..=3_000).collect::<Vec<_>>());
    for record in records.iter() {
        assert_eq!(
            record.metadata.get("stage.seq"),
            Some(String::from_utf8_lossy(&record.position.0).as_ref()),
            "numbered by the stage in the order read"
        );
    }
}

/// A stage that fails stops the pipeline with its error, named by the source; nothing of
/// the batch it failed (or after it) is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_detached_stage_stops_the_pipeline_before_its_batch() {
    let positions = Arc::new(MemoryPositions::default());
    let out = Collect::default();
    let (_stop_tx, stop) = watch::channel(false);
    let error = tokio::time::timeout(
        DEADLINE,
        run(
            graph(vec![staged(0, Some(4))], vec![], vec![dest("out", &out)]),
            positions.clone(),
            small_batches(),
            stop,
            None,
        ),
    )
    .await
    .expect("the error ends the run")
    .unwrap_err();
    assert_eq!(error.to_string(), "source src: schema registry unreachable");
    // Three batches of seven went through the stage; the fourth never reached anyone.
    let batch = small_batches().batch_size as u64;
    assert!(out.records.lock().unwrap().len() as u64 <= 3 * batch);
    assert!(positions.count("src") <= 3 * batch);
}
