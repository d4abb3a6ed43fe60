//! The cost of a WASM processor: the built-in generator -> file, once with no processor
//! and once through each of two no-op WASM processors, plus each processor alone on
//! batches of 1,000 records: the Go fixture of `tests/fixtures/processor` with `noop:
//! true` (built here with `GOOS=wasip1 GOARCH=wasm`; the SDK decodes and re-encodes every
//! record inside the module), and `benches/echo.wat`, which copies the records back
//! without decoding them (what remains is the host's cost).
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
use culvert_hosts::wasm::{Limits, WasmProcessorPlugin};
use culvert_plugins::processor::{Outcome, ProcessorPlugin};
use culvert_plugins::Settings;
use culvert_processors::Parallel;
use std::path::Path;
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
    let go_module = go_fixture("processor", dir.path(), true);
    let echo_module = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/echo.wat");
    let (bare, _) = measure(
        generator(records),
        vec![],
        &dir.path().join("bare.jsonl"),
        records,
    );
    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    let per_record_us = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
    println!(
        "generator -> file: {records} records: {:.0} records/s ({:.2} s)",
        rate(bare),
        bare.as_secs_f64()
    );
    for (name, module, processor_settings, workers) in [
        (
            "Go SDK no-op (fixture, noop: true)",
            go_module.as_path(),
            settings(&[("noop", "true")]),
            1,
        ),
        (
            "Go SDK no-op, 2 workers",
            go_module.as_path(),
            settings(&[("noop", "true")]),
            2,
        ),
        (
            "echo (WAT, records not decoded)",
            echo_module.as_path(),
            settings(&[]),
            1,
        ),
    ] {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let compile = Instant::now();
        let plugin = runtime
            .block_on(WasmProcessorPlugin::load(module, Limits::default()))
            .unwrap();
        let compile = compile.elapsed();
        let alone = runtime.block_on(alone(&plugin, &processor_settings, records));
        drop(runtime);
        let instances = (0..workers)
            .map(|_| plugin.configure(&processor_settings).unwrap())
            .collect();
        let processors = vec![ProcessorNode {
            id: "wasm".into(),
            processor: Box::new(Parallel::new(instances)),
            inline: false,
        }];
        let (through, _) = measure(
            generator(records),
            processors,
            &dir.path().join("wasm.jsonl"),
            records,
        );
        println!(
            "generator -> {name} -> file: {:.0} records/s ({:.2} s); in the pipeline {:.2} us \
             per record; alone, batches of 1,000: {:.2} us per record; compiled in {:.2} s",
            rate(through),
            through.as_secs_f64(),
            per_record_us(through) - per_record_us(bare),
            alone.as_secs_f64() * 1e6,
            compile.as_secs_f64()
        );
    }
}

/// The processor alone on batches of 1,000 records of 100-byte payloads; time per record.
async fn alone(plugin: &WasmProcessorPlugin, settings: &Settings, records: u64) -> Duration {
    let mut processor = plugin.configure(settings).unwrap();
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
        assert_eq!(batch[999].position, template[999].position);
    }
    started.elapsed() / (batches * 1000) as u32
}
