//! Load script for the HTTP API: GET /v1/pipelines/{id} and GET /v1/pipelines (100
//! pipelines) requests per second over loopback, client and server in one process on the
//! same cores. The client keeps each connection alive (HTTP/1.1), one request in flight
//! per connection, as a typical REST client pool does.
//!
//! Run: `make bench-api` (= `cargo bench --locked --bench http_load`, after the gRPC one).
//! It prints one line per figure; copy them into BENCHMARKS.md. Bounded: a fixed duration
//! per figure, loopback only.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const PIPELINES: usize = 100;
const CONNECTIONS: usize = 32;
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
        let server = tokio::spawn(culvert_api::serve_http(
            listener,
            api,
            culvert_api::HttpOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let ids = Arc::new(ids);
        let get = load(address, {
            let ids = ids.clone();
            move |n| format!("/v1/pipelines/{}", ids[n % ids.len()])
        }, |body| assert!(body.starts_with(b"{\"id\":")))
        .await;
        println!("http GET /v1/pipelines/{{id}}: {get:.0} requests/s ({CONNECTIONS} keep-alive connections)");
        let list = load(address, |_| "/v1/pipelines".to_owned(), |body| {
            let list: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
            assert_eq!(list.len(), PIPELINES);
        })
        .await;
        println!("http GET /v1/pipelines ({PIPELINES} pipelines): {list:.0} requests/s ({CONNECTIONS} keep-alive connections)");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
}

/// Runs GET requests from CONNECTIONS connections for DURATION; returns completed requests
/// per second. Every answer must be 200 and pass `check`.
async fn load(
    address: SocketAddr,
    path: impl Fn(usize) -> String + Send + Sync + Clone + 'static,
    check: fn(&[u8]),
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..CONNECTIONS {
        let path = path.clone();
        let done = done.clone();
        tasks.spawn(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut line = String::new();
            let mut body = Vec::new();
            let mut n = task;
            while start.elapsed() < DURATION {
                let request = format!("GET {} HTTP/1.1\r\nHost: bench\r\n\r\n", path(n));
                write.write_all(request.as_bytes()).await.unwrap();
                // Status line, headers (we need Content-Length), then the body.
                line.clear();
                read.read_line(&mut line).await.unwrap();
                assert!(line.starts_with("HTTP/1.1 200"), "{line}");
                let mut length = None;
                loop {
                    line.clear();
                    read.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse::<usize>().ok();
                        }
                    }
                }
                body.resize(length.expect("a Content-Length"), 0);
                read.read_exact(&mut body).await.unwrap();
                check(&body);
                done.fetch_add(1, Ordering::Relaxed);
                n += CONNECTIONS;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
