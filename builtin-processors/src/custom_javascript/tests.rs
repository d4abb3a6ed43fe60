//! Tests of `custom.javascript`: Conduit's example and test cases, the settings, the limits.

use super::*;
use crate::testing::*;
use serde_json::json;

fn plugin() -> CustomJavascript {
    CustomJavascript::new()
}

/// A processor running the script.
fn js(script: &str) -> Box<dyn Processor> {
    configure(&plugin(), &[("script", script)]).unwrap_or_else(|e| panic!("{e}"))
}

/// One record through a processor: the record out and its outcome.
fn one(processor: &mut dyn Processor, record: Record) -> (Record, Outcome) {
    let mut records = [record];
    let outcome = run(processor, &mut records).remove(0);
    let [record] = records;
    (record, outcome)
}

/// The record fails with an error containing `want`, and is left as it was.
fn assert_fails(processor: &mut dyn Processor, record: Record, want: &str) {
    let (got, outcome) = one(processor, record.clone());
    match outcome {
        Outcome::Fail(error) => assert!(error.contains(want), "{error}"),
        other => panic!("{other:?}, not a failure with {want:?}"),
    }
    assert_eq!(got, record, "a failed record is left as it was");
}

fn record(position: &str, metadata: &[(&str, &str)], key: Option<Data>) -> Record {
    Record {
        position: Position(position.as_bytes().to_vec()),
        metadata: meta(metadata),
        key,
        ..Record::default()
    }
}

#[test]
fn conduits_example() {
    let script = "function process(rec) {\n  rec.Metadata[\"processed\"] = \"true\";\n  \
                  let existing = String.fromCharCode.apply(String, rec.Payload.After);\n  \
                  rec.Payload.After = RawData(\"hello, \" + existing);\n  return rec;\n}";
    let have = Record {
        metadata: meta(&[("existing-key", "existing-value")]),
        ..payload(None, raw("world"))
    };
    let want = Record {
        metadata: meta(&[("existing-key", "existing-value"), ("processed", "true")]),
        ..payload(None, raw("hello, world"))
    };
    let cases = [(
        "Modify a record's metadata and payload using JavaScript",
        &[("script", script)][..],
        have,
        want,
    )];
    assert_kept_with(&plugin(), cases);
}

#[test]
fn processes_like_conduit() {
    let update = Record {
        operation: Operation::Update,
        ..Record::default()
    };
    let cases: Vec<(&str, &str, Record, Record)> = vec![
        (
            "change fields of structured record",
            r#"function process(rec) {
                rec.Operation = "update";
                rec.Metadata["returned"] = "JS";
                rec.Key = RawData("baz");
                rec.Payload.After["ccc"] = "baz";
                return rec;
            }"#,
            Record {
                payload: Change {
                    before: None,
                    after: structured(json!({"aaa": 111, "bbb": ["foo", "bar"]})),
                },
                ..record("2", &[("existing", "val")], raw("bar"))
            },
            Record {
                payload: Change {
                    before: None,
                    after: structured(json!({"aaa": 111, "bbb": ["foo", "bar"], "ccc": "baz"})),
                },
                ..Record {
                    operation: Operation::Update,
                    ..record("2", &[("existing", "val"), ("returned", "JS")], raw("baz"))
                }
            },
        ),
        (
            "complete change incoming record with structured data",
            r#"function process(rec) {
                rec.Metadata["returned"] = "JS";
                rec.Key = RawData("baz");
                rec.Payload.After = new StructuredData();
                rec.Payload.After["foo"] = "bar";
                return rec;
            }"#,
            Record {
                payload: Change {
                    before: None,
                    after: raw("foo"),
                },
                ..record("2", &[("existing", "val")], raw("bar"))
            },
            Record {
                payload: Change {
                    before: None,
                    after: structured(json!({"foo": "bar"})),
                },
                ..record("2", &[("existing", "val"), ("returned", "JS")], raw("baz"))
            },
        ),
        (
            "complete change incoming record with raw data",
            r#"function process(rec) {
                rec.Metadata["returned"] = "JS";
                rec.Key = RawData("baz");
                rec.Payload.After = RawData(String.fromCharCode.apply(String, rec.Payload.After) + "bar");
                return rec;
            }"#,
            Record {
                payload: Change {
                    before: None,
                    after: raw("foo"),
                },
                ..record("3", &[("existing", "val")], raw("bar"))
            },
            Record {
                payload: Change {
                    before: None,
                    after: raw("foobar"),
                },
                ..record("3", &[("existing", "val"), ("returned", "JS")], raw("baz"))
            },
        ),
        (
            "return new SingleRecord with raw data",
            r#"function process(record) {
                r = new Record();
                r.Position = "3"
                r.Metadata["returned"] = "JS";
                r.Key = new RawData("baz");
                r.Payload.After = new RawData("foobar");
                return r;
            }"#,
            record("3", &[], None),
            Record {
                payload: Change {
                    before: None,
                    after: raw("foobar"),
                },
                ..record("3", &[("returned", "JS")], raw("baz"))
            },
        ),
        (
            "use empty raw data",
            r#"function process(record) {
                r = new Record();
                r.Position = "3";
                r.Payload.After = new RawData("foobar");
                return r;
            }"#,
            update.clone(),
            Record {
                payload: Change {
                    before: None,
                    after: raw("foobar"),
                },
                ..record("3", &[], None)
            },
        ),
        (
            "filter: not matching (kept)",
            r#"function process(r) {
                if (r.Metadata["keepme"] != undefined) {
                    return r
                }
                return null;
            }"#,
            record("", &[("keepme", "yes")], None),
            record("", &[("keepme", "yes")], None),
        ),
        (
            "position from string",
            r#"function process(rec) { rec.Position = "foobar"; return rec; }"#,
            Record::default(),
            record("foobar", &[], None),
        ),
        (
            "raw payload, data from string",
            r#"function process(rec) { rec.Payload.After = new RawData("foobar"); return rec; }"#,
            Record::default(),
            payload(None, raw("foobar")),
        ),
        (
            "raw key, data from string",
            r#"function process(rec) { rec.Key = new RawData("foobar"); return rec; }"#,
            Record::default(),
            keyed(raw("foobar")),
        ),
        (
            "update metadata",
            r#"function process(rec) {
                rec.Metadata["new_key"] = "new_value"
                delete rec.Metadata.remove_me;
                return rec;
            }"#,
            record(
                "",
                &[("old_key", "old_value"), ("remove_me", "remove_me")],
                None,
            ),
            record(
                "",
                &[("old_key", "old_value"), ("new_key", "new_value")],
                None,
            ),
        ),
        (
            "script with multiple functions",
            r#"
            function getValue() {
                return "updated_value";
            }
            function process(rec) {
                rec.Metadata["updated_key"] = getValue()
                return rec;
            }"#,
            record("", &[("old_key", "old_value")], None),
            record(
                "",
                &[("old_key", "old_value"), ("updated_key", "updated_value")],
                None,
            ),
        ),
    ];
    for (name, script, input, want) in cases {
        let (got, outcome) = one(js(script).as_mut(), input);
        assert_eq!(outcome, Outcome::Keep, "{name}");
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn null_or_undefined_drops_the_record() {
    let filter = r#"function process(r) {
        if (r.Metadata["keepme"] != undefined) { return r }
        return null;
    }"#;
    let (_, outcome) = one(js(filter).as_mut(), record("", &[("foo", "bar")], None));
    assert_eq!(outcome, Outcome::Drop);
    for script in [
        "function process(r) { return null; }",
        "function process(r) {}",
    ] {
        let (got, outcome) = one(js(script).as_mut(), keyed(raw("k")));
        assert_eq!(outcome, Outcome::Drop, "{script}");
        assert_eq!(got, keyed(raw("k")), "{script}");
    }
}

#[test]
fn data_round_trips_unchanged() {
    let input = Record {
        position: Position(vec![0, 255, 128, 10]),
        operation: Operation::Snapshot,
        metadata: meta(&[("a", "é"), ("opencdc.version", "v1")]),
        key: Some(Data::Raw(vec![0xff, 0x00, 0xc3])),
        payload: Change {
            before: structured(json!({"n": -3, "f": 1.5, "s": "x", "l": [1, {"b": null}]})),
            after: Some(Data::Raw((0..=255).collect())),
        },
    };
    let (got, outcome) = one(
        js("function process(r) { return r; }").as_mut(),
        input.clone(),
    );
    assert_eq!(outcome, Outcome::Keep);
    assert_eq!(got, input);
}

#[test]
fn the_script_sees_conduits_record_shape() {
    let script = r#"function process(r) {
        const out = new Record();
        out.Operation = "delete";
        out.Metadata = {
            op: r.Operation,
            pos: String.fromCharCode.apply(String, r.Position),
            raw: String(r.Key instanceof Uint8Array) + r.Key.length,
            name: r.Payload.After.name,
            before: String(r.Payload.Before),
            n: 5,
        };
        out.Key = { nested: { list: [1, 2] } };
        return out;
    }"#;
    let input = Record {
        operation: Operation::Update,
        ..Record {
            payload: Change {
                before: None,
                after: structured(json!({"name": "x"})),
            },
            ..record("p1", &[], raw("abc"))
        }
    };
    let want = Record {
        operation: Operation::Delete,
        metadata: meta(&[
            ("op", "update"),
            ("pos", "p1"),
            ("raw", "true3"),
            ("name", "x"),
            ("before", "null"),
            ("n", "5"),
        ]),
        key: structured(json!({"nested": {"list": [1, 2]}})),
        ..Record::default()
    };
    let (got, outcome) = one(js(script).as_mut(), input);
    assert_eq!(outcome, Outcome::Keep);
    assert_eq!(got, want);
}

#[test]
fn a_script_error_fails_just_its_record() {
    let mut thrower = js("function process(r) { throw new Error('something bad happened'); }");
    assert_fails(
        thrower.as_mut(),
        keyed(raw("k")),
        "Error: something bad happened",
    );
    let mut undefined = js("function process(record) { var m; m.test }");
    assert_fails(
        undefined.as_mut(),
        payload(None, raw("test payload")),
        "TypeError",
    );
    // In a batch, the others go on.
    let mut processor = js(r#"function process(r) {
        if (r.Metadata.bad) throw new Error("bad one");
        r.Metadata.seen = "yes";
        return r;
    }"#);
    let mut records = vec![
        record("1", &[], None),
        record("2", &[("bad", "1")], None),
        record("3", &[], None),
    ];
    let outcomes = run(processor.as_mut(), &mut records);
    assert_eq!(outcomes[0], Outcome::Keep);
    assert!(matches!(&outcomes[1], Outcome::Fail(e) if e.contains("bad one")));
    assert_eq!(outcomes[2], Outcome::Keep);
    assert_eq!(records[1], record("2", &[("bad", "1")], None));
    assert_eq!(records[2], record("3", &[("seen", "yes")], None));
}

#[test]
fn returning_something_that_is_not_a_record_fails_it() {
    let cases = [
        (
            "return 5;",
            "process() must return a record or null, not number",
        ),
        ("r.Key = 5; return r;", "Key must be raw data"),
        (
            "r.Payload.After = [1, 2]; return r;",
            "Payload.After must be raw data",
        ),
        (
            "r.Operation = 'upsert'; return r;",
            "could not unmarshal operation",
        ),
        ("r.Metadata = 'x'; return r;", "Metadata must be an object"),
        ("return Promise.resolve(r);", "returned a promise"),
    ];
    for (body, want) in cases {
        let mut processor = js(&format!("function process(r) {{ {body} }}"));
        assert_fails(processor.as_mut(), keyed(raw("k")), want);
    }
    // A plain object is a record, and a string raw data.
    let script = "function process(r) { return { Key: 'text', Metadata: { a: 'b' } }; }";
    let (got, outcome) = one(js(script).as_mut(), keyed(raw("k")));
    assert_eq!(outcome, Outcome::Keep);
    assert_eq!(got, record("", &[("a", "b")], raw("text")));
}

#[test]
fn logger_writes_zerolog_style_events() {
    let script = r#"function process(r) {
        logger.Info().Msg("Hello");
        logger.Debug().Str("a", "b").Int("n", 1).Msgf("x %d %s", 3);
        logger.Error().Err(new Error("e")).Send();
        logger.Printf("%v!", 1);
        return r;
    }"#;
    let (got, outcome) = one(js(script).as_mut(), keyed(raw("k")));
    assert_eq!(outcome, Outcome::Keep);
    assert_eq!(got, keyed(raw("k")));
}

#[test]
fn a_script_that_runs_too_long_is_stopped_and_the_processor_goes_on() {
    let mut processor = js(r#"function process(r) {
        if (r.Metadata.loop) { while (true) {} }
        r.Metadata.ok = "yes";
        return r;
    }"#);
    let start = Instant::now();
    assert_fails(
        processor.as_mut(),
        record("1", &[("loop", "1")], None),
        "ran longer than the limit of 100 ms per record",
    );
    // Not a timing measurement: a bound far above the 100 ms limit, so a loaded machine
    // passes, while a script that is never stopped fails.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    // The same processor takes the next records; in a batch too.
    let mut records = vec![
        record("2", &[], None),
        record("3", &[("loop", "1")], None),
        record("4", &[], None),
    ];
    let outcomes = run(processor.as_mut(), &mut records);
    assert_eq!(outcomes[0], Outcome::Keep);
    assert!(matches!(&outcomes[1], Outcome::Fail(e) if e.contains("100 ms")));
    assert_eq!(outcomes[2], Outcome::Keep);
    assert_eq!(records[2], record("4", &[("ok", "yes")], None));
}

#[test]
fn a_script_that_takes_too_much_memory_is_stopped_and_the_processor_goes_on() {
    let mut processor = js(r#"function process(r) {
        if (r.Metadata.buffer) { globalThis.big = new ArrayBuffer(1 << 30); }
        if (r.Metadata.grow) {
            const chunks = [];
            while (true) chunks.push(new Array(1 << 20).fill(r.Metadata.grow));
        }
        r.Metadata.ok = "yes";
        return r;
    }"#);
    for kind in ["buffer", "grow"] {
        assert_fails(
            processor.as_mut(),
            record("1", &[(kind, "1")], None),
            "ran out of memory (limit 64 MiB)",
        );
        let (got, outcome) = one(processor.as_mut(), record("2", &[], None));
        assert_eq!(outcome, Outcome::Keep, "after {kind}");
        assert_eq!(got, record("2", &[("ok", "yes")], None));
    }
}

#[test]
fn runaway_recursion_fails_the_record() {
    let mut processor = js(r#"function f(n) { return f(n + 1) + 1; }
        function process(r) { if (r.Metadata.deep) f(0); return r; }"#);
    assert_fails(
        processor.as_mut(),
        record("", &[("deep", "1")], None),
        "RangeError",
    );
    let (_, outcome) = one(processor.as_mut(), Record::default());
    assert_eq!(outcome, Outcome::Keep);
}

#[test]
fn processors_end_their_thread_when_dropped() {
    for _ in 0..10 {
        let mut processor = js("function process(r) { while (true) {} }");
        let mut records = vec![Record::default()];
        let outcomes = run(processor.as_mut(), &mut records);
        assert!(matches!(&outcomes[0], Outcome::Fail(_)));
        drop(processor);
    }
}

#[test]
fn the_script_keeps_its_state_between_records() {
    let mut processor = js(r#"let n = 0;
        function process(r) { n++; r.Metadata.n = n; return r; }"#);
    let mut records = vec![Record::default(), Record::default()];
    run(processor.as_mut(), &mut records);
    run(processor.as_mut(), &mut records[1..]);
    assert_eq!(records[0].metadata["n"], "1");
    assert_eq!(records[1].metadata["n"], "3");
}

#[test]
fn script_path_is_read_at_configure_time() {
    let path = std::env::temp_dir().join(format!("culvert-js-{}.js", std::process::id()));
    std::fs::write(
        &path,
        "function process(r) { r.Metadata.from = 'file'; return r; }",
    )
    .unwrap();
    let mut processor = configure(&plugin(), &[("script.path", path.to_str().unwrap())])
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&path).unwrap();
    let (got, outcome) = one(processor.as_mut(), Record::default());
    assert_eq!(outcome, Outcome::Keep);
    assert_eq!(got, record("", &[("from", "file")], None));
    let error = refusal(&plugin(), &[("script.path", path.to_str().unwrap())]);
    assert!(
        error.contains("setting \"script.path\"") && error.contains("error reading script"),
        "{error}"
    );
}

#[test]
fn settings_are_validated() {
    assert_parameters(&plugin(), &[("script", ""), ("script.path", "")], "true");
    let validated = validated_settings(&plugin(), &[("script", "function process(r) {}")]);
    assert_schema_defaults(&validated, "true");
    let both = [
        ("script", "function process(r) {}"),
        ("script.path", "x.js"),
    ];
    let cases = [
        (
            vec![],
            "setting \"script\": one of: [script, script.path] needs to be provided",
        ),
        (
            both.to_vec(),
            "setting \"script\": only one of: [script, script.path]",
        ),
        (
            vec![("script", "function {")],
            "setting \"script\": failed to load script: SyntaxError",
        ),
        (
            vec![(
                "script",
                "function something() { logger.Debug('no entrypoint'); }",
            )],
            "setting \"script\": failed to get entrypoint function \"process\"",
        ),
        (
            vec![(
                "script",
                "throw new Error('at load'); function process(r) {}",
            )],
            "setting \"script\": failed to load script: Error: at load",
        ),
        (
            vec![("script", "while (true) {} function process(r) {}")],
            "setting \"script\": failed to load script: it ran longer than 1000 ms",
        ),
    ];
    assert_refused(&plugin(), cases);
    let error = direct_refusal(&plugin(), &[]);
    assert!(error.contains("setting \"script\""), "{error}");
}

/// Values `process` may return as structured data, some plain and some not, for the
/// comparison of [`capture_is_json_text`] (each an expression; `log` records getter and
/// `toJSON` calls in order).
const RETURNED: &[&str] = &[
    "{a: 1, b: 'x', c: [1, 2.5, null, undefined, () => 1, Symbol('s')], d: {e: true, f: null}}",
    "{a: 1e21, b: 2**53, c: 2**60, d: -0, e: 0.1, f: 1e-7, g: -1.5e300, h: NaN, i: Infinity, \
     j: 123456789012, k: 5e-324, l: 1.7976931348623157e308, m: 2**31, n: -(2**31), o: 1e20, \
     p: 123.456, q: -1e-6, r: 1.5e-6, s: 2**64, t: -(2**63), u: 0.000001, v: 1e-300}",
    "{d: new Date(0), t: {toJSON(k) { log.push('t:' + k); return 'key:' + k; }}, \
     arr: [{toJSON(k) { log.push('arr:' + k); return k; }}]}",
    "{n: new Number(5), s: new String('x'), b: new Boolean(false), big: {toJSON() { return 1; }}}",
    "{m: new Map([[1, 2]]), c: new (class A { constructor() { this.x = 1; } })(), \
     t: new Uint8Array([1, 2]), e: new Error('x')}",
    "{p: new Proxy({a: 1}, {}), q: new Proxy([1, 2], {})}",
    "new Proxy({a: 1, b: {c: 2}}, {})",
    "{a: '\\ud800'}",
    "{a: {'\\udc00': 1}}",
    "{a: 'x\\ud83d\\ude00y', 'é': '\\u0000\\n\"'}",
    "JSON.parse('{\"__proto__\": {\"x\": 1}, \"y\": [1]}')",
    "Object.assign(Object.create(null), {a: Object.assign(Object.create(null), {b: 1})})",
    "{[Symbol('s')]: 1, a: Symbol('x'), b: undefined, c: function () {}}",
    "{b: 1, 2: 2, 1: 1, a: 0, '-1': 3, '01': 4}",
    "{a: [1, , 3], b: Object.assign([1], {x: 2}), c: Object.setPrototypeOf([1], null), \
     d: Object.setPrototypeOf([2], Object.prototype)}",
    "Object.defineProperty({a: 1}, 'b', {value: 2, enumerable: false})",
    "{get a() { log.push('a'); return {get b() { log.push('b'); return 1; }}; }, \
     c: {toJSON() { log.push('c'); return [2]; }}, get d() { log.push('d'); return undefined; }}",
    "{toJSON() { return 'text'; }}",
    "{toJSON() { return {x: 1}; }}",
    "{toJSON() { return undefined; }}",
    "{a: 1n}",
    "{a: {toJSON: 5}}",
    "(() => { const o = {a: 1}; o.self = o; return o; })()",
    "(() => { const o = {a: 1}; o.list = [o]; return {o}; })()",
    "(() => { const o = {a: {toJSON() { return o; }}}; return o; })()",
    "(() => { let v = 1; for (let i = 0; i < 126; i++) v = {v}; return v; })()",
    "(() => { let v = 1; for (let i = 0; i < 127; i++) v = {v}; return v; })()",
    "(() => { let v = 1; for (let i = 0; i < 128; i++) v = {v}; return v; })()",
    "(() => { let v = 1; for (let i = 0; i < 126; i++) v = [v]; return {v}; })()",
    "(() => { let v = 1; for (let i = 0; i < 127; i++) v = [v]; return {v}; })()",
    "(() => { let v = 1; for (let i = 0; i < 120; i++) v = {v}; \
      return {a: {toJSON() { return [[[[[[[[[[v]]]]]]]]]]; }}}; })()",
    "(() => { let v = 1; for (let i = 0; i < 110; i++) v = {v}; \
      return {a: {toJSON() { return [[[[[[[[[[v]]]]]]]]]]; }}}; })()",
    "(() => { let v = 1; for (let i = 0; i < 300; i++) v = {v}; return v; })()",
    "{a: {get b() { throw new Error('getter'); }}}",
    "{a: new Array(70000), b: Object.assign(new Array(3), {1: 'x'})}",
];

/// What `capture` makes of a value is what `serde_json::from_str(JSON.stringify(value))`
/// made of it, with the same getters and `toJSON` calls in the same order and the same
/// exceptions.
#[test]
fn capture_is_json_text() {
    let runtime = Runtime::new().unwrap();
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        let capture = convert::Capture::default();
        let stringify: Function = ctx.eval("JSON.stringify").unwrap();
        let member: Function = ctx
            .eval("(function (k, v) { return JSON.stringify({ [k]: v }); })")
            .unwrap();
        let protos = || -> (Object, Object) {
            (
                ctx.eval("Object.prototype").unwrap(),
                ctx.eval("Array.prototype").unwrap(),
            )
        };
        let caught = |e: rquickjs::Error| describe(&ctx, e);
        for case in RETURNED {
            let fresh = || -> Value {
                ctx.eval::<(), _>("globalThis.log = [];").unwrap();
                ctx.eval(format!("({case})")).unwrap()
            };
            let log = || -> String { ctx.eval("log.join()").unwrap() };
            let value = fresh();
            let old: Result<Option<serde_json::Map<String, serde_json::Value>>, String> = stringify
                .call::<_, Option<String>>((value,))
                .map(|text| match text.as_deref().map(serde_json::from_str) {
                    Some(Ok(serde_json::Value::Object(map))) => Some(map),
                    _ => None,
                })
                .map_err(caught);
            let old_log = log();
            let value = fresh();
            capture.clear();
            let new = capture
                .capture(&ctx, value, protos(), member.clone(), stringify.clone())
                .map(|slot| capture.take(slot as usize))
                .map_err(caught);
            assert_eq!(new, old, "{case}");
            assert_eq!(log(), old_log, "{case}");
        }
    });
}

/// Structured data reaches the script as `JSON.parse` of its JSON text makes it.
#[test]
fn structured_data_is_what_json_parse_makes() {
    let values = [
        json!({"a": 1, "b": [1, -2, 2.5, null, true, "x", {"c": []}], "__proto__": {"x": 1}}),
        json!({"n": [0, -0.0, 3.0, 2147483647, 2147483648_u64, -2147483649_i64,
                     9007199254740993_u64, u64::MAX, i64::MIN, 1e300, 5e-324]}),
        json!({"2": 1, "1": 0, "b": "\u{0}é😀", "": ""}),
    ];
    let runtime = Runtime::new().unwrap();
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        // Everything observable: keys in order, values, negative zero, own `__proto__`,
        // property flags.
        let show: Function = ctx
            .eval(
                r#"(function show(v) {
                    if (typeof v !== "object" || v === null) {
                        return Object.is(v, -0) ? "-0" : typeof v + ":" + String(v);
                    }
                    const parts = [Array.isArray(v) ? "[" : "{",
                        Object.getPrototypeOf(v) === (Array.isArray(v) ? Array : Object).prototype];
                    for (const k of Reflect.ownKeys(v)) {
                        const d = Object.getOwnPropertyDescriptor(v, k);
                        parts.push(String(k), d.writable, d.enumerable, d.configurable,
                            show(d.value));
                    }
                    return parts.join(",");
                })"#,
            )
            .unwrap();
        for value in values {
            let serde_json::Value::Object(map) = value else {
                unreachable!()
            };
            let direct = convert::to_js(&ctx, &map).unwrap();
            let parsed = ctx
                .json_parse(serde_json::to_string(&map).unwrap())
                .unwrap();
            let direct: String = show.call((direct,)).unwrap();
            let parsed: String = show.call((parsed,)).unwrap();
            assert_eq!(direct, parsed, "{map:?}");
        }
    });
}

/// Metadata with a lone surrogate fails as it did when it crossed as JSON text.
#[test]
fn unreadable_metadata_fails_the_record_as_before() {
    let mut processor = js(r#"function process(r) { r.Metadata.bad = "\ud800"; return r; }"#);
    assert_fails(
        processor.as_mut(),
        Record::default(),
        "custom.javascript: Metadata: unexpected end of hex escape",
    );
    let mut processor = js(r#"function process(r) { r.Payload.After = {a: "\ud800"}; return r; }"#);
    assert_fails(
        processor.as_mut(),
        Record::default(),
        "Payload.After must be raw data (RawData()), structured data (an object) or null, and \
         this object is not structured data as JSON",
    );
}

/// JavaScript's own printing of numbers, which `capture` copies.
#[test]
fn numbers_print_as_javascript_prints_them() {
    let runtime = Runtime::new().unwrap();
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        let string: Function = ctx.eval("String").unwrap();
        let mut samples = vec![
            1e21,
            1e20,
            123e18,
            1.5e-7,
            1e-6,
            1.5e-6,
            0.1,
            -0.5,
            5e-324,
            f64::MAX,
            2f64.powi(60),
            123456.789,
            1e-7,
            -1e-7,
            4.35,
            0.000123,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            // A cheap pseudo-random walk over doubles of all sizes.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                samples.push(f);
            }
        }
        for f in samples {
            let want: String = string.call((f,)).unwrap();
            assert_eq!(convert::js_number_text(f), want, "{f:e}");
        }
    });
}

/// Text `JSON.stringify` could not have built within the memory limit makes `capture` run
/// out of memory too (shared sparse arrays are small in JavaScript, huge as JSON).
#[test]
fn capture_runs_out_of_memory_where_json_text_would() {
    let runtime = Runtime::new().unwrap();
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        let capture = convert::Capture::default();
        let stringify: Function = ctx.eval("JSON.stringify").unwrap();
        let member: Function = ctx
            .eval("(function (k, v) { return JSON.stringify({ [k]: v }); })")
            .unwrap();
        let run = |expression: &str, budget: usize| {
            let value: Value = ctx.eval(format!("({expression})")).unwrap();
            let protos = (
                ctx.eval("Object.prototype").unwrap(),
                ctx.eval("Array.prototype").unwrap(),
            );
            capture.clear();
            capture
                .capture_within(
                    &ctx,
                    value,
                    protos,
                    member.clone(),
                    stringify.clone(),
                    budget,
                )
                .map(|slot| capture.take(slot as usize))
        };
        assert!(matches!(run("{a: 'x'.repeat(200)}", 1000), Ok(Some(_))));
        assert!(matches!(
            run("{a: 'x'.repeat(200)}", 100),
            Err(rquickjs::Error::Allocation)
        ));
        let shared =
            "(() => { const s = new Array(1000); return {a: new Array(1000).fill(s)}; })()";
        assert!(matches!(
            run(shared, 100_000),
            Err(rquickjs::Error::Allocation)
        ));
    });
    // In a processor, that is the memory limit (here reached by JSON.stringify, which gets
    // long arrays): the record fails and the next one goes.
    let mut processor = js(r#"function process(r) {
        if (r.Metadata.big) r.Payload.After = {a: new Array(1e8)};
        r.Metadata.ok = "yes";
        return r;
    }"#);
    assert_fails(
        processor.as_mut(),
        record("1", &[("big", "1")], None),
        "ran out of memory (limit 64 MiB)",
    );
    let (got, outcome) = one(processor.as_mut(), record("2", &[], None));
    assert_eq!(outcome, Outcome::Keep);
    assert_eq!(got, record("2", &[("ok", "yes")], None));
}
