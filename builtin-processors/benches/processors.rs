//! What each built-in processor costs per record: batches of 1,000 small records through
//! one configured processor, beside a no-op pass (the cost of the harness itself).
//!
//! Run: `make bench-processors` (= `cargo bench --locked -p culvert-processors --bench
//! processors`); copy the figures into BENCHMARKS.md.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use culvert_domain::{Change, Data, Operation, Position, Record};
use culvert_plugins::processor::{Outcome, Processor};
use culvert_plugins::Settings;
use serde_json::{json, Map, Value};

const BATCH: usize = 1_000;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("an object"),
    }
}

/// A small record: a raw key, three metadata entries, a structured payload of 6 fields.
fn small(n: usize) -> Record {
    Record {
        position: Position(n.to_string().into_bytes()),
        operation: Operation::Create,
        metadata: [
            ("opencdc.collection", "users"),
            ("opencdc.readAt", "1700000000000000000"),
            ("conduit.source.connector.id", "p:src"),
        ]
        .into(),
        key: Some(Data::Raw(format!("{n}").into_bytes())),
        payload: Change {
            before: None,
            after: Some(Data::Structured(
                object(json!({
                    "id": n,
                    "name": format!("user-{n}"),
                    "email": format!("user-{n}@example.com"),
                    "score": "42",
                    "active": true,
                    "json": format!("{{\"a\":{n},\"b\":\"text\",\"c\":[1,2,3]}}"),
                }))
                .into(),
            )),
        },
    }
}

/// A Debezium change event as a Kafka message value, in the payload.
fn debezium(n: usize) -> Record {
    let mut record = small(n);
    record.payload.after = Some(Data::Structured(object(json!({
        "schema": {},
        "payload": {
            "before": null,
            "after": {"id": n, "name": format!("user-{n}"), "email": format!("user-{n}@example.com")},
            "source": {"connector": "postgresql", "db": "app", "table": "users", "ts_ms": 1_700_000_000_000_u64},
            "op": "c",
            "ts_ms": 1_700_000_000_123_u64,
            "transaction": null
        }
    })).into()));
    record.key = Some(Data::Structured(
        object(json!({"schema": {}, "payload": {"id": n}})).into(),
    ));
    record
}

fn processor(name: &str, settings: &[(&str, &str)]) -> Box<dyn Processor> {
    let settings: Settings = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    culvert_processors::registry()
        .configure(name, &settings, "")
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Two processors one after the other (to measure one that needs the other's output).
struct Chain(Box<dyn Processor>, Box<dyn Processor>);

#[async_trait::async_trait]
impl Processor for Chain {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), culvert_plugins::PluginError> {
        self.0.process(records, outcomes).await?;
        self.1.process(records, outcomes).await
    }
}

/// `avro.encode` then `avro.decode` of the whole payload, over one registry.
fn avro_round_trip() -> Box<dyn Processor> {
    let registry = culvert_processors::registry_with_schemas(std::sync::Arc::new(
        culvert_processors::avro::MemoryRegistry::default(),
    ));
    let settings = |pairs: &[(&str, &str)]| -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let encode = registry
        .configure(
            "avro.encode",
            &settings(&[
                ("schema.strategy", "autoRegister"),
                ("schema.autoRegister.subject", "users"),
            ]),
            "",
        )
        .expect("avro.encode");
    let decode = registry
        .configure("avro.decode", &Settings::new(), "")
        .expect("avro.decode");
    Box::new(Chain(encode, decode))
}

/// A benchmark: its name, the processor (none: the harness alone) and its records.
type Case = (
    &'static str,
    Option<Box<dyn Processor>>,
    fn(usize) -> Record,
);

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("processors");
    group.throughput(Throughput::Elements(BATCH as u64));
    let cases: Vec<Case> = vec![
        ("none", None, small),
        (
            "field.set",
            Some(processor(
                "field.set",
                &[
                    ("field", ".Metadata.seen"),
                    ("value", "{{ .Payload.After.name }}"),
                ],
            )),
            small,
        ),
        (
            "json.decode",
            Some(processor(
                "json.decode",
                &[("field", ".Payload.After.json")],
            )),
            small,
        ),
        (
            "json.encode",
            Some(processor("json.encode", &[("field", ".Payload.After")])),
            small,
        ),
        (
            "base64.encode",
            Some(processor(
                "base64.encode",
                &[("field", ".Payload.After.name")],
            )),
            small,
        ),
        (
            "field.convert",
            Some(processor(
                "field.convert",
                &[("field", ".Payload.After.score"), ("type", "int")],
            )),
            small,
        ),
        (
            "unwrap.debezium",
            Some(processor("unwrap.debezium", &[])),
            debezium,
        ),
        (
            "custom.javascript",
            Some(processor(
                "custom.javascript",
                &[(
                    "script",
                    "function process(r) { r.Metadata[\"seen\"] = r.Payload.After.name; return r; }",
                )],
            )),
            small,
        ),
        (
            "js.identity",
            Some(processor("custom.javascript", &[("script", "function process(r) { return r; }")])),
            small,
        ),
        ("avro.encode+decode", Some(avro_round_trip()), small),
        (
            "avro.encode",
            Some(processor(
                "avro.encode",
                &[
                    ("schema.strategy", "autoRegister"),
                    ("schema.autoRegister.subject", "users"),
                ],
            )),
            small,
        ),
    ];
    for (name, mut processor, make) in cases {
        let batch: Vec<Record> = (0..BATCH).map(make).collect();
        group.bench_function(name, |b| {
            b.iter_batched(
                || (batch.clone(), vec![Outcome::Keep; BATCH]),
                |(mut records, mut outcomes)| {
                    if let Some(processor) = processor.as_mut() {
                        runtime
                            .block_on(processor.process(&mut records, &mut outcomes))
                            .unwrap();
                        assert!(outcomes.iter().all(|o| *o == Outcome::Keep), "{name}");
                    }
                    (records, outcomes)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
