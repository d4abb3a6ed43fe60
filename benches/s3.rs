//! Load program: `builtin:s3` against Conduit's S3 connector v0.9.3 (built from the Go
//! module proxy, run as a standalone plugin) on the same `culvert` server (the release
//! build `cargo bench` makes), against moto 5.2.5 in server mode on loopback
//! (`tests/s3.rs`; Python, one process) as the S3 server.
//!
//! * generator -> s3: structured records (`id` int, `name` string, `at` time), `format:
//!   json`; records/s from starting the pipeline to the destination having taken every
//!   record (the server's `conduit_connector_bytes_count`, polled every 100 ms). The
//!   built-in writes one object per engine batch (512 records); Conduit's connector gets
//!   `sdk.batch.size: 512` (and `sdk.batch.delay: 1s`) so that it writes objects of the
//!   same size.
//! * s3 -> file: a snapshot of the objects the built-in wrote, read by each source in
//!   turn into the built-in file destination; records/s (and objects/s) from starting the
//!   pipeline to the file destination having taken every object (polled every 50 ms).
//!
//! Each pipeline runs alone and is stopped before the next starts. Prints one line per
//! figure and the ratio built-in / Conduit's connector; copy them into BENCHMARKS.md.
//!
//! Run: `make bench-s3` (= `cargo bench --locked --bench s3`). Needs python3 (moto is
//! installed into `$HOME/.cache/culvert-moto` the first time) and go (`make deps`).
//! `CULVERT_BENCH_RECORDS` (default 200,000) sets the count; `CULVERT_BENCH_PERF=<dir>`
//! records `perf record -g` of the server during each run.

#[allow(dead_code)]
mod connectors;
#[allow(dead_code, unused_imports)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(dead_code, unused_imports)]
#[path = "../tests/http_client.rs"]
mod http_client;
#[allow(dead_code, unused_imports)]
#[path = "../tests/s3.rs"]
mod s3;
#[allow(dead_code, unused_imports)]
#[path = "../tests/standalone.rs"]
mod standalone;

use connectors::{poll, Profile};
use harness::{data_dir, Server};
use http_client::call;
use s3::{s3_settings, start_pipeline, Moto};
use serde_json::json;
use std::time::{Duration, Instant};

const CONDUIT: &str = "standalone:s3@v0.9.3";
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// Records a connector of pipeline `pipeline` on `side` has moved so far, from `/metrics`
/// (`conduit_connector_bytes_count`).
fn moved(address: &str, pipeline: &str, side: &str) -> f64 {
    let reply = http_client::request(address, "GET", "/metrics", &[], None);
    reply
        .text()
        .lines()
        .filter(|l| {
            l.starts_with("conduit_connector_bytes_count{")
                && l.contains(&format!("pipeline_name=\"{pipeline}\""))
                && l.contains(&format!("type=\"{side}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Stop pipeline `id` and wait until it has stopped.
fn stop(address: &str, id: &str) {
    call(address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    poll(
        "the pipeline stopped",
        harness::DEADLINE,
        Duration::from_millis(20),
        || {
            call(address, "GET", &format!("/v1/pipelines/{id}"), None)["state"]["status"]
                == "STATUS_STOPPED"
        },
    );
}

/// Objects under `prefix`.
fn objects(moto: &Moto, prefix: &str) -> usize {
    moto.python(&format!(
        "print(sum(p.get('KeyCount', 0) for p in s3.get_paginator('list_objects_v2')\
         .paginate(Bucket=BUCKET, Prefix='{prefix}')))"
    ))
    .trim()
    .parse()
    .expect("a count of objects")
}

fn main() {
    if !connectors::invoked_as_bench() {
        return;
    }
    let records = connectors::records(200_000);
    println!("s3: {}", connectors::describe_build());
    let moto = Moto::start();
    let (dir, data) = data_dir();
    let plugins = dir.path().join("connectors");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        standalone::upstream_connector("s3", "v0.9.3"),
        plugins.join("s3"),
    )
    .unwrap();
    let mut server = Server::start_with_env(
        &data,
        &["--connectors.path", plugins.to_str().unwrap()],
        &[("AWS_ENDPOINT_URL", std::ffi::OsStr::new(&moto.endpoint))],
    );
    let address = server.http_address();
    let generator = json!({
        "recordCount": records.to_string(),
        "format.type": "structured",
        "format.options.id": "int",
        "format.options.name": "string",
        "format.options.at": "time",
    });

    let mut written = vec![];
    for (label, plugin, prefix, extra) in [
        ("built-in", "builtin:s3", "gen-builtin", &[][..]),
        (
            "Conduit's connector",
            CONDUIT,
            "gen-conduit",
            &[("sdk.batch.size", "512"), ("sdk.batch.delay", "1s")][..],
        ),
    ] {
        let mut settings = s3_settings(prefix, &[("format", "json")]);
        for (k, v) in extra {
            settings[*k] = json!(v);
        }
        let name = format!("to-{prefix}");
        let profile = Profile::start(server.pid(), &name);
        let started = Instant::now();
        let id = start_pipeline(
            &address,
            &name,
            ("builtin:generator", generator.clone()),
            (plugin, settings),
        );
        poll(
            &format!("{plugin} to take {records} records"),
            RUN_LIMIT,
            Duration::from_millis(100),
            || moved(&address, &name, "destination") >= records as f64,
        );
        let elapsed = started.elapsed();
        drop(profile);
        stop(&address, &id);
        let count = objects(&moto, &format!("{prefix}/"));
        let rate = records as f64 / elapsed.as_secs_f64();
        println!(
            "generator -> s3 ({label}): {records} records in {count} objects, {:.1} s, \
             {rate:.0} records/s (load {})",
            elapsed.as_secs_f64(),
            connectors::load()
        );
        written.push(rate);
    }

    // Both sources read the objects the built-in wrote.
    let count = objects(&moto, "gen-builtin/");
    let mut read = vec![];
    for (label, plugin, name) in [
        ("built-in", "builtin:s3", "from-builtin"),
        ("Conduit's connector", CONDUIT, "from-conduit"),
    ] {
        let out = dir.path().join(format!("{name}.jsonl"));
        let profile = Profile::start(server.pid(), name);
        let started = Instant::now();
        let id = start_pipeline(
            &address,
            name,
            (plugin, s3_settings("gen-builtin/", &[])),
            ("builtin:file", json!({"path": out.to_str().unwrap()})),
        );
        poll(
            &format!("{plugin} to read {count} objects"),
            RUN_LIMIT,
            Duration::from_millis(50),
            || moved(&address, name, "destination") >= count as f64,
        );
        let elapsed = started.elapsed();
        drop(profile);
        stop(&address, &id);
        let lines: usize = s3::records(&out)
            .iter()
            .map(|r| s3::text(&r.payload.after).lines().count())
            .sum();
        assert_eq!(lines, records, "{plugin}: every record read back");
        let rate = records as f64 / elapsed.as_secs_f64();
        println!(
            "s3 -> file ({label}): {records} records ({count} objects), {:.1} s, {rate:.0} \
             records/s, {:.0} objects/s (load {})",
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            connectors::load()
        );
        read.push(rate);
    }
    for (pipeline, rates) in [("generator -> s3", &written), ("s3 -> file", &read)] {
        println!(
            "{pipeline}: built-in / Conduit's connector = {:.2}x records/s",
            rates[0] / rates[1]
        );
    }
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
}
