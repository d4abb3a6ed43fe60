//! The event-log API over 1,000,000 events: ListEvents paging through all of them,
//! WatchEvents catching up from the first, and GetAt of a pipeline in the middle — over a
//! real gRPC connection on loopback, server and client in one process on 2 worker threads.
//!
//! The log is 5,000 pipelines × 200 events (created, then 199 renames), appended with fsync
//! off. Prints events/s for the two catch-ups and the GetAt time (median of 5). Run:
//! `make bench-events` (= `cargo bench --locked --bench events`); copy the figures into
//! BENCHMARKS.md. `CULVERT_BENCH_EVENTS` changes the count (a multiple of 200).

use culvert_api::pb::culvert::api::v1 as ev;
use culvert_commands::ControlPlaneWriter;
use culvert_domain::{DeadLetterQueue, Event, PipelineId};
use culvert_migrations::{encode, layout, Provenance};
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{AppendRequest, EventLog, RocksStore, StoreOptions};
use ev::event_log_service_client::EventLogServiceClient;
use std::sync::Arc;
use std::time::Instant;
use tonic::transport::Channel;

const PER_PIPELINE: u64 = 200;

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let total: u64 = std::env::var("CULVERT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let pipelines = total / PER_PIPELINE;
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(
        dir.path().join("db"),
        StoreOptions {
            fsync: false,
            ..StoreOptions::default()
        },
        &layout(),
    )
    .unwrap();
    let who = Provenance {
        actor: "user:bench".into(),
        correlation_id: "bench".into(),
        causation_id: None,
        reason: None,
    };
    let started = Instant::now();
    for i in 0..pipelines {
        let id = PipelineId(format!("pipeline-{i:07}"));
        let mut events = vec![Event::PipelineCreated {
            id: id.clone(),
            name: format!("pipeline {i}"),
            description: String::new(),
            dlq: DeadLetterQueue::default(),
        }];
        for n in 1..PER_PIPELINE {
            events.push(Event::PipelineUpdated {
                id: id.clone(),
                name: format!("pipeline {i} rev {n}"),
                description: format!("revision {n}"),
            });
        }
        store
            .append(AppendRequest {
                events: events.iter().map(|e| encode(e, &who)).collect(),
                expected: vec![],
                clear_positions: Vec::new(),
                set_positions: Vec::new(),
                clear_letters: Vec::new(),
                queue_letters: Vec::new(),
            })
            .unwrap();
    }
    println!(
        "wrote {} events in {:.1} s",
        store.head().0,
        started.elapsed().as_secs_f64()
    );
    // The first open folds the whole log (and keeps snapshots along it); then the time a
    // restart takes: open the store and the read model from its latest snapshot.
    let started = Instant::now();
    let (projections, _) = Projections::open(&store, ProjectionOptions::default()).unwrap();
    println!(
        "first open (fold of every event): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    // The latest snapshot, as a server writes one every `snapshot_every` events it applies
    // (the events above went to the store directly).
    projections.write_snapshot(&store).unwrap();
    drop(projections);
    drop(store);
    // Each open timed whole and in its two parts: the store, then the read model.
    let open = || {
        let started = Instant::now();
        let store = RocksStore::open(
            dir.path().join("db"),
            StoreOptions {
                fsync: false,
                ..StoreOptions::default()
            },
            &layout(),
        )
        .unwrap();
        let store_opened = started.elapsed();
        let (projections, _) = Projections::open(&store, ProjectionOptions::default()).unwrap();
        let total = started.elapsed();
        (
            [total, store_opened, total - store_opened],
            store,
            projections,
        )
    };
    let mut opens = Vec::new();
    for _ in 0..4 {
        opens.push(open().0);
    }
    let (last, store, projections) = open();
    opens.push(last);
    let median = |part: usize| {
        let mut times: Vec<_> = opens.iter().map(|t| t[part]).collect();
        times.sort();
        times[2].as_secs_f64() * 1e3
    };
    println!(
        "open store + read model with {} events: {:.1} ms (median of 5; store {:.1} ms, \
         read model {:.1} ms)",
        store.head().0,
        median(0),
        median(1),
        median(2)
    );
    let log: Arc<dyn EventLog> = Arc::new(store);
    let writer = ControlPlaneWriter::new(log, Arc::new(projections));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let api = culvert_api::Api::new(writer);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(culvert_api::serve_grpc(
            listener,
            api,
            culvert_api::GrpcOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = EventLogServiceClient::new(channel).max_decoding_message_size(64 << 20);

        // ListEvents, pages of 1,000, from the first event to the last.
        let started = Instant::now();
        let mut token = String::new();
        let mut listed = 0u64;
        loop {
            let page = client
                .list_events(ev::ListEventsRequest {
                    page_size: 1000,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            listed += page.events.len() as u64;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(listed, total);
        println!(
            "ListEvents, {total} events in pages of 1000: {:.0} events/s ({seconds:.1} s)",
            total as f64 / seconds
        );

        // WatchEvents from the first event until the last has arrived.
        let started = Instant::now();
        let mut stream = client
            .watch_events(ev::WatchEventsRequest {
                from_seq: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut watched = 0u64;
        while watched < total {
            stream.message().await.unwrap().unwrap();
            watched += 1;
        }
        drop(stream);
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "WatchEvents catch-up, {total} events: {:.0} events/s ({seconds:.1} s)",
            total as f64 / seconds
        );

        // GetAt: a pipeline in the middle, as of the middle of the log.
        let middle = format!("pipeline-{:07}", pipelines / 2);
        let mut times = vec![];
        for _ in 0..5 {
            let started = Instant::now();
            let at = client
                .get_at(ev::GetAtRequest {
                    entity_id: middle.clone(),
                    seq: total / 2 + 1,
                    time: None,
                })
                .await
                .unwrap()
                .into_inner();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(at.as_of_seq, total / 2 + 1);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "GetAt {middle} as of sequence {}: {:.0} ms (median of 5)",
            total / 2 + 1,
            times[2]
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
}
