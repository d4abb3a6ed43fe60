//! Load script for the gRPC API: unary GetPipeline and ListPipelines (100 pipelines)
//! requests per second over loopback, client and server in one process on the same cores.
//!
//! Run: `make bench-api` (= `cargo bench --locked --bench grpc_load`). It prints one line per
//! figure; copy them into BENCHMARKS.md. Bounded: a fixed duration per figure, loopback only.

mod support;

use culvert_api::pb::api::v1 as pb;
use pb::pipeline_service_client::PipelineServiceClient;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const PIPELINES: usize = 100;
const CONCURRENCY: usize = 32;
const CHANNELS: usize = 4;
const DURATION: Duration = Duration::from_secs(5);

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let support::Fixture {
        writer,
        ids,
        runtime,
        ..
    } = support::fixture(PIPELINES);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let api = culvert_api::Api::new(writer);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(culvert_api::serve_grpc(listener, api, culvert_api::GrpcOptions::default(), async {
            let _ = stopped.await;
        }));
        let mut channels = vec![];
        for _ in 0..CHANNELS {
            channels.push(
                Channel::from_shared(format!("http://{address}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        let ids = Arc::new(ids);
        let get = load(&channels, {
            let ids = ids.clone();
            move |mut client, n| {
                let id = ids[n % ids.len()].clone();
                async move {
                    client
                        .get_pipeline(pb::GetPipelineRequest { id })
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        println!("grpc GetPipeline: {get:.0} requests/s ({CONCURRENCY} concurrent, {CHANNELS} connections)");
        let list = load(&channels, |mut client, _| async move {
            let answer = client
                .list_pipelines(pb::ListPipelinesRequest::default())
                .await
                .unwrap();
            assert_eq!(answer.into_inner().pipelines.len(), PIPELINES);
        })
        .await;
        println!("grpc ListPipelines ({PIPELINES} pipelines): {list:.0} requests/s ({CONCURRENCY} concurrent, {CHANNELS} connections)");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
}

/// Runs `call` from CONCURRENCY tasks for DURATION; returns completed calls per second.
async fn load<F, Fut>(channels: &[Channel], call: F) -> f64
where
    F: Fn(PipelineServiceClient<Channel>, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..CONCURRENCY {
        let client = PipelineServiceClient::new(channels[task % channels.len()].clone());
        let call = call.clone();
        let done = done.clone();
        tasks.spawn(async move {
            let mut n = task;
            while start.elapsed() < DURATION {
                call(client.clone(), n).await;
                done.fetch_add(1, Ordering::Relaxed);
                n += CONCURRENCY;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
