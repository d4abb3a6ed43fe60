//! Tests of the built-in processors, the registry, conditions and workers.

use crate::testing::{after_value as after, meta, run, settings, structured};
use crate::*;
use culvert_domain::{Change, Data, Operation, Position, Record};
use culvert_plugins::processor::Outcome;
use culvert_plugins::Settings;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn record(n: i64, table: &str) -> Record {
    Record {
        position: Position(n.to_string().into_bytes()),
        operation: Operation::Create,
        metadata: meta(&[("table", table)]),
        key: None,
        payload: Change {
            before: None,
            after: structured(json!({"id": n, "name": format!("user-{n}"), "secret": "s"})),
        },
    }
}

#[test]
fn workers_process_runs_of_a_batch_and_keep_the_order() {
    let registry = registry();
    let instances = (0..3)
        .map(|_| {
            registry
                .configure(
                    "field.set",
                    &settings(&[("field", ".Metadata.seen"), ("value", "yes")]),
                    "{{ ne (index .Metadata \"table\") \"skip\" }}",
                )
                .unwrap()
        })
        .collect();
    let mut parallel = Parallel::new(instances);
    let mut records: Vec<Record> = (0..10)
        .map(|n| record(n, if n == 4 { "skip" } else { "users" }))
        .collect();
    let outcomes = run(&mut parallel, &mut records);
    assert_eq!(outcomes, vec![Outcome::Keep; 10]);
    for (n, record) in records.iter().enumerate() {
        assert_eq!(record.position.0, n.to_string().into_bytes(), "order kept");
        let seen = record.metadata.get("seen");
        if n == 4 {
            assert_eq!(seen, None, "its condition was false");
        } else {
            assert_eq!(seen, Some("yes"));
        }
    }
    // Fewer records than workers, and none.
    let mut two: Vec<Record> = (0..2).map(|n| record(n, "users")).collect();
    assert_eq!(run(&mut parallel, &mut two), vec![Outcome::Keep; 2]);
    assert_eq!(run(&mut parallel, &mut []), Vec::<Outcome>::new());
}

#[test]
fn registry_lists_and_finds_the_builtins() {
    let registry = registry();
    let names: Vec<_> = registry.specifications().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "avro.decode",
            "avro.encode",
            "base64.decode",
            "base64.encode",
            "clone",
            "cohere.command",
            "cohere.embed",
            "cohere.rerank",
            "custom.javascript",
            "error",
            "field.convert",
            "field.exclude",
            "field.rename",
            "field.set",
            "filter",
            "json.decode",
            "json.encode",
            "ollama",
            "openai.embeddings",
            "openai.textgen",
            "split",
            "unwrap.debezium",
            "unwrap.kafkaconnect",
            "unwrap.opencdc",
            "webhook.http"
        ]
    );
    for reference in [
        "field.set",
        "builtin:field.set",
        "builtin:filter@v0.1.0",
        "any:filter",
    ] {
        registry
            .lookup(reference)
            .unwrap_or_else(|e| panic!("{reference}: {e}"));
    }
    for reference in ["nope", "standalone:filter", "filter@v9", "bad:filter"] {
        assert!(registry.lookup(reference).is_err(), "{reference}");
    }
}

#[test]
fn settings_are_validated_with_errors_naming_the_setting() {
    let registry = registry();
    let error = |plugin: &str, pairs: &[(&str, &str)], condition: &str| match registry.configure(
        plugin,
        &settings(pairs),
        condition,
    ) {
        Ok(_) => panic!("{plugin} {pairs:?} accepted"),
        Err(e) => e.to_string(),
    };
    let e = error("field.set", &[("field", ".Metadata.x")], "");
    assert!(e.contains("\"value\"") && e.contains("required"), "{e}");
    let e = error("field.set", &[("field", ".Position"), ("value", "x")], "");
    assert!(e.contains("\"field\""), "{e}");
    let e = error("field.set", &[("field", ".Nope"), ("value", "x")], "");
    assert!(
        e.contains("\"field\"") && e.contains("unexpected field"),
        "{e}"
    );
    let e = error(
        "field.set",
        &[("field", ".Metadata.x"), ("value", "{{ nofunc }}")],
        "",
    );
    assert!(e.contains("\"value\""), "{e}");
    let e = error(
        "field.exclude",
        &[("fields", ".Metadata.a, .Operation")],
        "",
    );
    assert!(e.contains("not allowed to exclude"), "{e}");
    let e = error("field.rename", &[("mapping", ".Payload.After:x")], "");
    assert!(e.contains("top-level"), "{e}");
    let e = error("field.rename", &[("mapping", ".Metadata.a")], "");
    assert!(e.contains("wrong format"), "{e}");
    let e = error("field.rename", &[("mapping", ".Metadata.a: ")], "");
    assert!(e.contains("empty string"), "{e}");
    let e = error("filter", &[("bogus", "1")], "");
    assert!(e.contains("\"bogus\"") && e.contains("unrecognized"), "{e}");
    let e = error("filter", &[], "{{ if }}");
    assert!(e.starts_with("invalid condition"), "{e}");
    let e = error("nope", &[], "");
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn field_set_renders_the_template_into_the_field() {
    let mut p = registry()
        .configure(
            "field.set",
            &settings(&[
                ("field", ".Payload.After.label"),
                ("value", "{{ .Metadata.table }}-{{ .Payload.After.id }}"),
            ]),
            "",
        )
        .unwrap();
    let mut records = vec![record(1, "users"), record(2, "orders")];
    assert_eq!(
        run(p.as_mut(), &mut records),
        [Outcome::Keep, Outcome::Keep]
    );
    assert_eq!(after(&records[0])["label"], "users-1");
    assert_eq!(after(&records[1])["label"], "orders-2");

    let mut op = registry()
        .configure(
            "field.set",
            &settings(&[("field", ".Operation"), ("value", "{{ .Metadata.table }}")]),
            "",
        )
        .unwrap();
    let mut records = vec![record(1, "update"), record(2, "nonsense")];
    let outcomes = run(op.as_mut(), &mut records);
    assert_eq!(records[0].operation, Operation::Update);
    assert_eq!(outcomes[0], Outcome::Keep);
    assert!(matches!(&outcomes[1], Outcome::Fail(e) if e.contains("unknown operation")));
}

#[test]
fn exclude_and_rename() {
    let registry = registry();
    let mut exclude = registry
        .configure(
            "field.exclude",
            &settings(&[("fields", ".Payload.After.secret, .Metadata.table")]),
            "",
        )
        .unwrap();
    let mut rename = registry
        .configure(
            "field.rename",
            &settings(&[("mapping", ".Payload.After.name:full_name")]),
            "",
        )
        .unwrap();
    let mut records = vec![record(7, "users")];
    run(exclude.as_mut(), &mut records);
    run(rename.as_mut(), &mut records);
    assert_eq!(after(&records[0]), json!({"id": 7, "full_name": "user-7"}));
    assert!(records[0].metadata.is_empty());

    // Raw data cannot be walked into: the record fails, with the reason.
    let mut raw = record(8, "users");
    raw.payload.after = Some(Data::Raw(b"{}".to_vec()));
    let outcomes = run(exclude.as_mut(), std::slice::from_mut(&mut raw));
    assert!(
        matches!(&outcomes[0], Outcome::Fail(e) if e.contains("does not contain structured data"))
    );
}

#[test]
fn condition_chooses_the_records_and_keeps_order() {
    let registry = registry();
    let mut filter = registry
        .configure(
            "filter",
            &Settings::new(),
            "{{ eq .Metadata.table \"orders\" }}",
        )
        .unwrap();
    let mut set = registry
        .configure(
            "field.set",
            &settings(&[("field", ".Metadata.seen"), ("value", "yes")]),
            "{{ ne .Metadata.table \"orders\" }}",
        )
        .unwrap();
    let mut records: Vec<Record> = (0..6)
        .map(|n| record(n, if n % 3 == 0 { "orders" } else { "users" }))
        .collect();
    let outcomes = run(filter.as_mut(), &mut records);
    let dropped: Vec<usize> = (0..6).filter(|&i| outcomes[i] == Outcome::Drop).collect();
    assert_eq!(dropped, [0, 3]);
    run(set.as_mut(), &mut records);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.position.0,
            i.to_string().into_bytes(),
            "order and identity kept"
        );
        assert_eq!(r.metadata.contains_key("seen"), i % 3 != 0, "record {i}");
    }
    // A condition that does not render a boolean fails the record, not the batch.
    let mut odd = registry
        .configure("filter", &Settings::new(), "{{ .Metadata.table }}")
        .unwrap();
    let outcomes = run(odd.as_mut(), &mut records[..1]);
    assert!(matches!(&outcomes[0], Outcome::Fail(e) if e.contains("failed evaluating condition")));
}

#[test]
fn filter_without_condition_drops_everything() {
    let mut filter = registry()
        .configure("builtin:filter", &Settings::new(), "  ")
        .unwrap();
    let mut records = vec![record(1, "a"), record(2, "b")];
    assert_eq!(
        run(filter.as_mut(), &mut records),
        [Outcome::Drop, Outcome::Drop]
    );
}

/// A validation as Conduit's specifications write it: its type and value.
fn conduit_validation(validation: &culvert_plugins::spec::Validation) -> Value {
    use culvert_plugins::spec::Validation;
    let (kind, value) = match validation {
        Validation::Required => ("required", String::new()),
        Validation::GreaterThan(n) => ("greater-than", n.to_string()),
        Validation::LessThan(n) => ("less-than", n.to_string()),
        Validation::Inclusion(list) => ("inclusion", list.join(",")),
        Validation::Exclusion(list) => ("exclusion", list.join(",")),
        Validation::Regex(regex) => ("regex", regex.clone()),
    };
    json!({"type": kind, "value": value})
}

#[test]
fn specifications_match_conduits_fixture() {
    use culvert_plugins::spec::ParameterType;
    // Derived from Conduit's exported specifications by scripts/conduit-processor-specs.py;
    // the file names the Conduit commit.
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/conduit-processor-specs.json")).unwrap();
    let conduit = fixture["processors"].as_object().unwrap();
    let registry = registry();
    let ours: BTreeMap<&str, &culvert_plugins::processor::ProcessorSpecification> =
        registry.specifications().map(|s| (s.name, s)).collect();
    let mut problems = Vec::new();
    for name in ours.keys() {
        if !conduit.contains_key(*name) {
            problems.push(format!("{name}: not one of Conduit's processors"));
        }
    }
    for (name, theirs) in conduit {
        let Some(spec) = ours.get(name.as_str()) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if spec.version != theirs["version"] {
            problems.push(format!(
                "{name}: version {} vs {}",
                spec.version, theirs["version"]
            ));
        }
        let params: BTreeMap<&str, Value> = spec
            .parameters
            .iter()
            .map(|p| {
                let ty = match p.ty {
                    ParameterType::String | ParameterType::File => "string",
                    ParameterType::Int => "int",
                    ParameterType::Float => "float",
                    ParameterType::Bool => "bool",
                    ParameterType::Duration => "duration",
                };
                let validations: Vec<Value> =
                    p.validations.iter().map(conduit_validation).collect();
                (
                    p.name,
                    json!({"type": ty, "default": p.default, "validations": validations}),
                )
            })
            .collect();
        let expected = theirs["parameters"].as_object().unwrap();
        for (param, want) in expected {
            match params.get(param.as_str()) {
                None => problems.push(format!("{name}: parameter {param} missing")),
                Some(got) if got != want => problems.push(format!(
                    "{name}: parameter {param}: {got} vs Conduit's {want}"
                )),
                Some(_) => {}
            }
        }
        for param in params.keys() {
            if !expected.contains_key(*param) {
                problems.push(format!("{name}: parameter {param} is not Conduit's"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
