//! Rendering parsed templates against a record: plain field access, a comparison, a
//! pipeline of functions, `range`, and variables with `with`.
//!
//! Run: `make bench-template` (= `cargo bench --locked -p culvert-template --bench
//! render`); copy the figures into BENCHMARKS.md.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use culvert_domain::{Change, Data, Operation, Position, Record};
use culvert_template::Template;
use serde_json::{json, Value};

fn record() -> Record {
    let Value::Object(after) = json!({
        "name": "ada", "age": 36, "list": [1, 2, 3, 4, 5], "a": {"b": {"c": "deep"}}
    }) else {
        unreachable!("an object")
    };
    Record {
        position: Position(b"42".to_vec()),
        operation: Operation::Create,
        metadata: [("table", "users")].into(),
        key: Some(Data::Raw(b"k".to_vec())),
        payload: Change {
            before: None,
            after: Some(Data::Structured(after.into())),
        },
    }
}

fn bench(c: &mut Criterion) {
    let record = record();
    let mut group = c.benchmark_group("render");
    for (name, text) in [
        ("fields", "{{ .Metadata.table }}-{{ .Payload.After.age }}"),
        ("eq", r#"{{ eq .Metadata.table "postgres" }}"#),
        (
            "pipeline",
            r#"{{ .Payload.After.name | upper | printf "%s!" }}"#,
        ),
        ("range", "{{ range .Payload.After.list }}{{ . }}{{ end }}"),
        (
            "variables",
            "{{ $x := .Payload.After }}{{ with $x.a.b }}{{ .c }}{{ end }}",
        ),
    ] {
        let template = Template::parse(text).unwrap();
        group.bench_function(name, |b| b.iter(|| template.render(&record).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
