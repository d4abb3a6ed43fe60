//! The cost of a WASM processor: the built-in generator -> file, once with no processor
//! and once through a no-op WASM processor (the Go fixture of `tests/fixtures/processor`
//! with `noop: true`, built here with `GOOS=wasip1 GOARCH=wasm`), plus the processor alone
//! on batches of 1,000 records.
//!
//! Prints records/s for both pipelines, the per-record cost of the processor in the
//! pipeline, and its per-record cost on its own. Run: `make bench-wasm` (= `cargo bench
//! --locked -p culvert-engine --bench wasm`; in this crate so that it does not link
//! RocksDB); copy the figures into BENCHMARKS.md. `CULVERT_BENCH_RECORDS`
//! sets the count (default 500,000).

mod common;

use common::{generator, go_fixture, measure, records, settings};
use culvert_domain::{Position, Record};
use culvert_engine::ProcessorNode;
use culvert_plugins::processor::{Outcome, ProcessorPlugin};
use culvert_plugins::wasm::{Limits, WasmProcessorPlugin};
use std::time::{Duration, Instant};

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
    let module = go_fixture("processor", dir.path(), true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let compile = Instant::now();
    let plugin = runtime
        .block_on(WasmProcessorPlugin::load(&module, Limits::default()))
        .unwrap();
    let compile = compile.elapsed();
    let noop = settings(&[("noop", "true")]);

    // The processor alone, on batches of 1,000 records like the generator's.
    let alone = runtime.block_on(async {
        let mut processor = plugin.configure(&noop).unwrap();
        processor.open().await.unwrap();
        let template: Vec<Record> = (0..1000)
            .map(|i| Record {
                position: Position(i.to_string().into_bytes()),
                payload: culvert_domain::Change {
                    before: None,
                    after: Some(culvert_domain::Data::Raw(vec![b'x'; 100])),
                },
                ..Record::default()
            })
            .collect();
        let batches = (records / 1000).max(1);
        let mut outcomes = vec![Outcome::Keep; 1000];
        let started = Instant::now();
        for _ in 0..batches {
            let mut batch = template.clone();
            outcomes.fill(Outcome::Keep);
            processor.process(&mut batch, &mut outcomes).await.unwrap();
        }
        started.elapsed() / (batches * 1000) as u32
    });
    drop(runtime);

    let (bare, _) = measure(
        generator(records),
        vec![],
        &dir.path().join("bare.jsonl"),
        records,
    );
    let processors = vec![ProcessorNode {
        id: "noop".into(),
        processor: plugin.configure(&noop).unwrap(),
    }];
    let (through, _) = measure(
        generator(records),
        processors,
        &dir.path().join("wasm.jsonl"),
        records,
    );

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    let per_record_us = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
    println!("module compiled in {:.2} s", compile.as_secs_f64());
    println!(
        "generator -> file: {records} records: {:.0} records/s ({:.2} s)",
        rate(bare),
        bare.as_secs_f64()
    );
    println!(
        "generator -> no-op WASM processor -> file: {records} records: {:.0} records/s ({:.2} s)",
        rate(through),
        through.as_secs_f64()
    );
    println!(
        "WASM processor in the pipeline: {:.2} us per record; alone, batches of 1,000: {:.2} us per record",
        per_record_us(through) - per_record_us(bare),
        alone.as_secs_f64() * 1e6
    );
}
