//! The cost of the process boundary: the same small records into the built-in file
//! destination, once from the built-in generator and once from a standalone plugin (the
//! Go fixture connector of `tests/fixtures/connector`, built here with `go build`) over
//! connector protocol v2 on a unix socket.
//!
//! Prints records/s for both and the per-record overhead of the plugin (the difference of
//! the per-record times). Run: `make bench-standalone` (= `cargo bench --locked -p
//! culvert-engine --bench standalone`); copy the figures into BENCHMARKS.md.
//! `CULVERT_BENCH_RECORDS` sets the count (default 500,000).

mod common;

use common::{generator, go_fixture, measure, records, settings};
use culvert_hosts::standalone::StandalonePlugin;
use culvert_plugins::ConnectorPlugin;
use std::time::Duration;

/// The server's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let records = records();
    let dir = tempfile::tempdir().unwrap();
    let (builtin, builtin_bytes) = measure(
        generator(records),
        vec![],
        &dir.path().join("builtin.jsonl"),
        records,
    );

    let binary = go_fixture("connector", dir.path(), false);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plugin = runtime.block_on(StandalonePlugin::load(&binary)).unwrap();
    drop(runtime);
    let count = records.to_string();
    let source = plugin
        .new_source(&settings(&[("recordCount", &count)]))
        .unwrap();
    let (standalone, standalone_bytes) = measure(
        source,
        vec![],
        &dir.path().join("standalone.jsonl"),
        records,
    );

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    let per_record_us = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
    println!(
        "built-in generator -> file: {records} records of {:.0} bytes: {:.0} records/s ({:.2} s)",
        builtin_bytes as f64 / records as f64,
        rate(builtin),
        builtin.as_secs_f64()
    );
    println!(
        "standalone source (Go fixture) -> file: {records} records of {:.0} bytes: {:.0} records/s ({:.2} s)",
        standalone_bytes as f64 / records as f64,
        rate(standalone),
        standalone.as_secs_f64()
    );
    println!(
        "process boundary: {:.2} us per record ({:.2} vs {:.2} us)",
        per_record_us(standalone) - per_record_us(builtin),
        per_record_us(standalone),
        per_record_us(builtin)
    );
}
