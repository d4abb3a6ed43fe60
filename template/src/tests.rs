//! The template engine's tests, checked against what Go's text/template and sprig print.

use super::*;
use culvert_domain::opencdc::Position;
use proptest::prelude::*;
use serde_json::json;

pub(crate) fn object(v: serde_json::Value) -> JsonMap {
    match v {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The record the expected outputs were produced with in Go (same data, Go types).
pub(crate) fn record() -> Record {
    Record {
        position: Position(b"pos-1".to_vec()),
        operation: Operation::Create,
        metadata: [
            ("table", "postgres"),
            ("opencdc.readAt", "1700000000"),
            ("x", "hello"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        key: Some(Data::Structured(object(json!({"id": 7})).into())),
        payload: Change {
            before: Some(Data::Raw(b"hi".to_vec())),
            after: Some(Data::Structured(
                object(json!({
                    "name": "alice", "age": 30, "score": 3.5, "big": 1_000_000.0,
                    "a": {"b": {"c": "deep"}}, "list": [1, 2.5, "x", null, true],
                    "nul": null, "t": true, "f": false, "zero": 0, "fz": 0.0,
                    "emptys": "", "emptyl": [], "emptym": {},
                    "nested": {"z": 1, "a": [1, {"k": "v"}]}
                }))
                .into(),
            )),
        },
    }
}

pub(crate) fn render(text: &str) -> Result<String, TemplateError> {
    Template::parse(text)?.render(&record())
}

pub(crate) fn ok(text: &str) -> String {
    match render(text) {
        Ok(s) => s,
        Err(e) => panic!("{text}: {e}"),
    }
}

pub(crate) fn exec_err(text: &str) -> String {
    match render(text) {
        Err(TemplateError::Exec(m)) => m,
        other => panic!("{text}: expected an exec error, got {other:?}"),
    }
}

pub(crate) fn parse_err(text: &str) -> String {
    match Template::parse(text) {
        Err(TemplateError::Parse(m)) => m,
        other => panic!("{text}: expected a parse error, got {other:?}"),
    }
}

/// (template, output) pairs checked against Go's text/template with sprig v3.
pub(crate) fn check_all(cases: &[(&str, &str)]) {
    for (text, want) in cases {
        assert_eq!(ok(text), *want, "template {text}");
    }
}

#[test]
fn plain_text_is_literal_and_renders_unchanged() {
    for text in ["", "hello", "a } b }} c", "{ {x} }", "line\nline\t"] {
        let t = Template::parse(text).unwrap();
        assert!(t.is_literal(), "{text:?}");
        assert_eq!(t.render(&record()).unwrap(), text);
    }
    for text in ["{{ 1 }}", "a{{/* c */}}b", "{{ if 1 }}x{{ end }}"] {
        assert!(!Template::parse(text).unwrap().is_literal(), "{text:?}");
    }
    assert_eq!(ok("a{{/* comment */}}b"), "ab");
    assert_eq!(ok("a{{/* multi\nline */}}b"), "ab");
}

#[test]
fn metadata_equality() {
    assert_eq!(ok(r#"{{ eq .Metadata.table "postgres" }}"#), "true");
    assert_eq!(ok(r#"{{ eq .Metadata.table "mysql" }}"#), "false");
    assert_eq!(ok(r#"{{ eq .Metadata.table "mysql" "postgres" }}"#), "true");
    assert_eq!(ok(r#"{{ ne .Metadata.table "mysql" }}"#), "true");
    let mut other = record();
    other.metadata.insert("table", "mysql");
    let t = Template::parse(r#"{{ eq .Metadata.table "postgres" }}"#).unwrap();
    assert_eq!(t.render(&other).unwrap(), "false");
    assert_eq!(t.render(&record()).unwrap(), "true");
}

#[test]
fn missing_metadata_key() {
    assert_eq!(ok(r#"{{ eq .Metadata.missing "x" }}"#), "false");
    assert_eq!(ok(r#"{{ ne .Metadata.missing "x" }}"#), "true");
    assert_eq!(ok("{{ .Metadata.missing }}"), "<no value>");
    assert_eq!(ok("{{ print .Metadata.missing }}"), "<nil>");
    assert_eq!(ok("{{ eq .Metadata.missing .Metadata.other }}"), "true");
    assert_eq!(ok("{{ eq .Metadata.missing nil }}"), "true");
    // Go navigates on from a missing key without error.
    assert_eq!(ok("{{ .Metadata.missing.x }}"), "<no value>");
    assert_eq!(ok("{{ if .Metadata.missing }}y{{ else }}n{{ end }}"), "n");
    // index on metadata gives the zero string, as Go does for map[string]string.
    assert_eq!(ok(r#"{{ index .Metadata "missing" }}|"#), "|");
}

#[test]
fn structured_payload_fields() {
    assert_eq!(ok("{{ .Payload.After.name }}"), "alice");
    assert_eq!(ok("{{ .Payload.After.a.b }}"), "map[c:deep]");
    assert_eq!(ok("{{ .Payload.After.a.b.c }}"), "deep");
    assert_eq!(ok("{{ .Key.id }}"), "7");
    assert_eq!(ok("{{ $.Payload.After.name }}"), "alice");
    assert_eq!(ok("{{ (.Payload.After).name }}"), "alice");
    assert_eq!(ok(r#"{{ (index .Payload.After "a").b.c }}"#), "deep");
    assert_eq!(ok("{{ .Payload.After.nul }}"), "<no value>");
    assert_eq!(ok("{{ .Payload.After.missing }}"), "<no value>");
    assert_eq!(ok("{{ .Payload.After.list }}"), "[1 2.5 x <nil> true]");
    assert_eq!(ok("{{ .Payload.After.nested }}"), "map[a:[1 map[k:v]] z:1]");
    assert_eq!(ok("{{ .Payload.After.emptym }}"), "map[]");
    assert_eq!(ok("{{ .Payload.Before }}"), "[104 105]");
    assert_eq!(ok("{{ .Key }}"), "map[id:7]");
    assert_eq!(
        ok("{{ .Metadata }}"),
        "map[empty: opencdc.readAt:1700000000 table:postgres x:hello]"
    );
}

#[test]
fn whole_record_prints_like_a_go_struct() {
    assert_eq!(
        ok("{{ .Payload }}"),
        "{[104 105] map[a:map[b:map[c:deep]] age:30 big:1e+06 emptyl:[] emptym:map[] \
         emptys: f:false fz:0 list:[1 2.5 x <nil> true] name:alice nested:map[a:[1 map[k:v]] \
         z:1] nul:<nil> score:3.5 t:true zero:0]}"
    );
    let whole = ok("{{ . }}");
    assert!(
        whole.starts_with(
            "{pos-1 create map[empty: opencdc.readAt:1700000000 table:postgres x:hello] \
             map[id:7] {[104 105] map[a:"
        ),
        "{whole}"
    );
    assert_eq!(
        ok(r#"{{ printf "%+v" .Key }}|{{ printf "%+v" (.Payload) | len | lt 10 }}"#),
        "map[id:7]|true"
    );
    let empty = Template::parse("{{ .Key }}|{{ .Payload.After }}|{{ .Payload }}")
        .unwrap()
        .render(&Record::default())
        .unwrap();
    assert_eq!(empty, "<nil>|<nil>|{<nil> <nil>}");
}

#[test]
fn field_errors() {
    let e = exec_err("{{ .Foo }}");
    assert!(
        e.contains("can't evaluate field Foo in type opencdc.Record"),
        "{e}"
    );
    assert!(
        e.starts_with("template: :1:3: executing \"\" at <.Foo>"),
        "{e}"
    );
    let e = exec_err("{{ .Payload.Foo }}");
    assert!(
        e.contains("can't evaluate field Foo in type opencdc.Change"),
        "{e}"
    );
    let e = exec_err("{{ .Payload.Before.x }}");
    assert!(
        e.contains("can't evaluate field x in type opencdc.RawData"),
        "{e}"
    );
    let e = exec_err("{{ .Payload.After.name.first }}");
    assert!(
        e.contains("can't evaluate field first in type string"),
        "{e}"
    );
    let e = exec_err("{{ .Payload.After.list.x }}");
    assert!(e.contains("field x in type []interface {}"), "{e}");
    let e = exec_err("{{ .Metadata.table.x }}");
    assert!(e.contains("field x in type string"), "{e}");
    let e = exec_err("{{ .Operation.x }}");
    assert!(e.contains("field x in type opencdc.Operation"), "{e}");
    let e = exec_err("{{ .Payload.After.nul.x }}");
    assert!(e.contains("nil pointer evaluating interface {}.x"), "{e}");
    let t = Template::parse("{{ .Key.id }}").unwrap();
    let e = t.render(&Record::default()).unwrap_err().to_string();
    assert!(e.contains("nil pointer evaluating opencdc.Data.id"), "{e}");
    // The error is raised only when the action runs.
    assert_eq!(ok("{{ if false }}{{ .Foo }}{{ end }}ok"), "ok");
    let e = exec_err("line\n{{ .Foo }}");
    assert!(e.starts_with("template: :2:3:"), "{e}");
}

#[test]
fn operation_and_position() {
    assert_eq!(ok("{{ .Operation }}"), "create");
    assert_eq!(ok(r#"{{ eq .Operation "create" }}"#), "true");
    assert_eq!(ok(r#"{{ eq .Operation "update" }}"#), "false");
    assert_eq!(ok(r#"{{ eq .Operation.String "create" }}"#), "true");
    assert_eq!(ok("{{ eq .Operation 1 }}"), "true");
    assert_eq!(ok(r#"{{ .Operation | upper }}"#), "CREATE");
    assert_eq!(
        ok(r#"{{ printf "%s|%v|%d|%q" .Operation .Operation .Operation .Operation }}"#),
        "create|create|1|\"create\""
    );
    let mut r = record();
    r.operation = Operation::Snapshot;
    let t = Template::parse(r#"{{ if eq .Operation "snapshot" }}snap{{ end }}"#).unwrap();
    assert_eq!(t.render(&r).unwrap(), "snap");
    assert_eq!(ok("{{ .Position }}"), "pos-1");
    assert_eq!(ok("{{ .Position.String }}"), "pos-1");
    assert_eq!(ok("{{ len .Position }}"), "5");
    assert_eq!(
        ok(r#"{{ printf "%s|%v|%d|%x" .Position .Position .Position .Position }}"#),
        "pos-1|pos-1|[112 111 115 45 49]|706f732d31"
    );
}

#[test]
fn if_else_chains() {
    let t = Template::parse(
        r#"{{ if eq .Metadata.table "a" }}A{{ else if eq .Metadata.table "postgres" }}P{{ else }}E{{ end }}"#,
    )
    .unwrap();
    assert_eq!(t.render(&record()).unwrap(), "P");
    let mut r = record();
    r.metadata.insert("table", "a");
    assert_eq!(t.render(&r).unwrap(), "A");
    r.metadata.insert("table", "z");
    assert_eq!(t.render(&r).unwrap(), "E");
    check_all(&[
        (
            r#"{{ if 0 }}a{{ else if "" }}b{{ else if .Payload.After.emptyl }}c{{ else }}d{{ end }}"#,
            "d",
        ),
        ("{{ if .Payload.After.t }}t{{ end }}", "t"),
        ("{{ if .Payload.Before }}raw{{ end }}", "raw"),
        ("{{ if .Metadata }}m{{ end }}", "m"),
        ("{{ if . }}rec{{ end }}", "rec"),
        ("{{ if .Operation }}op{{ end }}", "op"),
        (
            "{{ if .Payload.After.fz }}x{{ else }}zero float{{ end }}",
            "zero float",
        ),
        (
            "{{ if .Payload.After.emptym }}x{{ else }}empty map{{ end }}",
            "empty map",
        ),
        (
            r#"{{ if 1 }}{{ if 0 }}a{{ else }}{{ if "x" }}b{{ end }}{{ end }}{{ end }}"#,
            "b",
        ),
        (
            r#"{{ if and .Metadata.table (eq .Metadata.table "postgres") }}yes{{ end }}"#,
            "yes",
        ),
    ]);
}

#[test]
fn trim_markers() {
    check_all(&[
        ("a  {{- 1 -}}  b", "a1b"),
        ("{{-3}}", "-3"),
        ("a {{- /* c */ -}} b", "ab"),
        ("a {{/* c */}} b", "a  b"),
        ("{{ 3 -}} x", "3x"),
        ("a \n {{- 1 }}\n b {{ 2 -}}\n\n c", "a1\n b 2c"),
        ("{{-\n1 -}}\nx", "1x"),
        ("{{ 1 -}}", "1"),
        (r#"{{ "a" }}{{- "b" -}}{{ "c" }}"#, "abc"),
        ("x {{/* c */ -}}  y", "x y"),
    ]);
    // Without the space, "-" is part of a number.
    assert_eq!(ok("{{-1}}"), "-1");
}

#[test]
fn pipelines() {
    check_all(&[
        ("{{ .Metadata.x | upper }}", "HELLO"),
        (r#"{{ "abc" | hasPrefix "a" }}"#, "true"),
        (r#"{{ .Metadata.x | upper | printf "%s!" }}"#, "HELLO!"),
        (r#"{{ "x" | printf "%s-%s" "a" }}"#, "a-x"),
        ("{{ .Payload.After.name | len }}", "5"),
        ("{{ .Payload.After.a.b | toJson }}", r#"{"c":"deep"}"#),
        (
            r#"{{ .Payload.After.a.b.c | upper | replace "E" "3" | trunc 3 }}"#,
            "D33",
        ),
        (
            r#"{{ index .Metadata "opencdc.readAt" | atoi | add 1 }}"#,
            "1700000001",
        ),
        (r#"{{ default "none" .Metadata.nothing | upper }}"#, "NONE"),
        ("{{ print (1) }}|{{ (print 1) }}|{{ ( 1 ) }}", "1|1|1"),
        ("{{ print (list) }}", "[]"),
    ]);
}

#[test]
fn and_or_return_the_deciding_value() {
    check_all(&[
        (
            r#"{{ and 1 0 2 }}|{{ or 0 "" "x" 3 }}|{{ and 1 2 }}|{{ or 0 "" }}"#,
            "0|x|2|",
        ),
        ("{{ not 0 }}|{{ not \"x\" }}", "true|false"),
        (
            "{{ or .Metadata.missing .Metadata.x }}|{{ and .Metadata.x .Metadata.missing }}",
            "hello|<no value>",
        ),
        (r#"{{ "v" | and 1 }}|{{ "" | or 0 }}"#, "v|"),
    ]);
    // Short-circuit: the failing argument is never evaluated.
    assert_eq!(ok("{{ or 1 .Foo }}|{{ and 0 .Foo }}"), "1|0");
    assert!(exec_err("{{ and 1 .Foo }}").contains("field Foo"));
    assert!(exec_err("{{ and }}").contains("wrong number of args for and: want at least 1 got 0"));
}

#[test]
fn index_function() {
    check_all(&[
        (r#"{{ index .Metadata "opencdc.readAt" }}"#, "1700000000"),
        (r#"{{ index .Payload.After "nul" }}"#, "<no value>"),
        ("{{ index .Payload.After.list 1 }}", "2.5"),
        (r#"{{ index .Payload.After "a" "b" "c" }}"#, "deep"),
        ("{{ index .Payload.After.name 0 }}", "97"),
        (
            "{{ index .Position 0 }}|{{ index .Payload.Before 1 }}",
            "112|105",
        ),
        (r#"{{ eq (index .Payload.After "list" 2) "x" }}"#, "true"),
        (r#"{{ index (split "." "a.b.c") "_9" }}|"#, "|"),
    ]);
    assert!(exec_err("{{ index .Payload.After.list 10 }}").contains("index out of range: 10"));
    assert!(exec_err("{{ index .Payload.After.list 1.0 }}")
        .contains("cannot index slice/array with type float64"));
    assert!(exec_err("{{ index .Metadata 1 }}").contains("value has type int; should be string"));
    assert!(exec_err("{{ index nil 1 }}").contains("index of untyped nil"));
}

#[test]
fn comparisons() {
    check_all(&[
        ("{{ eq .Payload.After.age 30 }}", "true"),
        // Lenient: Go reports incompatible types for int vs float.
        ("{{ eq .Payload.After.age 30.0 }}|{{ lt 1 2.5 }}|{{ eq 1 1.5 }}", "true|true|false"),
        ("{{ eq .Payload.After.score 3.5 }}", "true"),
        ("{{ eq .Payload.After.nul nil }}|{{ eq nil nil }}", "true|true"),
        (
            "{{ eq .Payload.After.nul 1 }}|{{ eq 1 .Payload.After.nul }}|{{ ne .Payload.After.nul 1 }}",
            "false|false|true",
        ),
        (r#"{{ eq "a" "b" "a" }}|{{ eq .Payload.After.t true }}"#, "true|true"),
        (r#"{{ le 2 2 }}|{{ ge "b" "a" }}|{{ gt 3 2 }}|{{ lt -1 0 }}"#, "true|true|true|true"),
        (r#"{{ le 1 1 }}{{ ge 1 2 }}{{ gt "b" "a" }}{{ lt "B" "a" }}"#, "truefalsetruetrue"),
    ]);
    let e = exec_err(r#"{{ eq true "true" }}"#);
    assert!(
        e.contains("error calling eq: incompatible types for comparison: bool and string"),
        "{e}"
    );
    assert!(exec_err(r#"{{ lt "a" 1 }}"#).contains("incompatible types for comparison"));
    assert!(exec_err("{{ lt true false }}").contains("invalid type for comparison"));
    assert!(exec_err("{{ lt .Metadata.missing 1 }}").contains("invalid type for comparison"));
    assert!(exec_err("{{ eq .Payload.After.list 1 }}").contains("non-comparable type"));
    let e = exec_err("{{ eq .Metadata.x }}");
    assert!(
        e.contains("wrong number of args for eq: want at least 2 got 1"),
        "{e}"
    );
    assert!(exec_err("{{ ne 1 2 3 }}").contains("wrong number of args for ne: want 2 got 3"));
}

#[test]
fn printf_and_print() {
    check_all(&[
        (
            r#"{{ printf "%s-%d-%q-%t-%.2f-%x-%%-%v" "a" 5 "q\"" true 3.14159 255 .Payload.After.list }}"#,
            r#"a-5-"q\""-true-3.14-ff-%-[1 2.5 x <nil> true]"#,
        ),
        (
            r#"{{ printf "%5.1f|%-5d|%05d|%x|%X" 3.14159 42 42 "hi" 255 }}"#,
            "  3.1|42   |00042|6869|FF",
        ),
        (
            r#"{{ printf "%8.3f|%-8.2f|%+d|% d|%x|%X|%o|%b|%e|%E|%g|%c|%U" 3.14159 2.5 5 5 -255 255 8 5 1234.5678 0.000123 0.00001234 65 65 }}"#,
            "   3.142|2.50    |+5| 5|-ff|FF|10|101|1.234568e+03|1.230000E-04|1.234e-05|A|U+0041",
        ),
        (
            r#"{{ printf "%5s|%-5s|%.2s|%5v|%q|%d" "ab" "ab" "hello" (list 1 2) 65 (list 1 "a") }}"#,
            "   ab|ab   |he|[    1     2]|'A'|[1 %!d(string=a)]",
        ),
        (
            r#"{{ printf "%d" "x" }}|{{ printf "%s" 5 }}|{{ printf "%d" }}|{{ printf "a" 1 }}"#,
            "%!d(string=x)|%!s(int=5)|%!d(MISSING)|a%!(EXTRA int=1)",
        ),
        (
            r#"{{ printf "%d %d" 1 }}|{{ printf "%d" 1 2 3 }}|{{ printf "%" }}|{{ printf "%d" nil }}|{{ printf "%v" nil }}"#,
            "1 %!d(MISSING)|1%!(EXTRA int=2, int=3)|%!(NOVERB)|%!d(<nil>)|<nil>",
        ),
        (
            r#"{{ printf "%.0f|%.1f|%.3f|%f" 2.5 0.05 1.0005 1e21 }}"#,
            "2|0.1|1.000|1000000000000000000000.000000",
        ),
        (
            r#"{{ printf "%5.1f|%-7.2f|%07.2f|%+.1f" -3.14159 2.5 -2.5 2.0 }}"#,
            " -3.1|2.50   |-002.50|+2.0",
        ),
        (
            r#"{{ printf "%6.2v|%.3v|%10.4g" 3.14159 3.14159 3.14159 }}"#,
            "   3.1|3.14|     3.142",
        ),
        (
            r#"{{ printf "%s|%v|%x|%q|%d" .Payload.Before .Payload.Before .Payload.Before .Payload.Before .Payload.Before }}"#,
            r#"hi|[104 105]|6869|"hi"|[104 105]"#,
        ),
        (
            r#"{{ printf "%s" .Payload.After.nested }}"#,
            "map[a:[%!s(int=1) map[k:v]] z:%!s(int=1)]",
        ),
        (
            r#"{{ printf "%T %T %T %T %T" 1 1.5 "s" true nil }}"#,
            "int float64 string bool <nil>",
        ),
        (
            r#"{{ printf "%05s|%#x|%#o|%#b|%#08x|% x" "ab" 255 8 5 255 "hi" }}"#,
            "000ab|0xff|010|0b101|0x000000ff|68 69",
        ),
        (
            r#"{{ printf "%+q|%#q|%#U" "é" "a`b" 65 }}"#,
            r#""\u00e9"|"a`b"|U+0041 'A'"#,
        ),
        (
            r#"{{ print "a" "b" 1 2 "c" 3.5 true }}|{{ println "a" 1 }}|{{ print nil }}"#,
            "ab1 2c3.5 true|a 1\n|<nil>",
        ),
        (
            "{{ print .Payload.Before .Payload.Before }}|{{ print .Operation .Operation }}",
            "[104 105] [104 105]|create create",
        ),
        (
            r#"{{ print (list 1 2) (list 3) }}|{{ print "x" (list 3) }}"#,
            "[1 2] [3]|x[3]",
        ),
    ]);
    let e = exec_err(r#"{{ printf "%z" 1 }}"#);
    assert!(
        e.contains("error calling printf: printf: unsupported verb %z"),
        "{e}"
    );
    assert!(exec_err(r#"{{ printf "%*d" 1 2 }}"#).contains("not supported"));
    assert!(exec_err(r#"{{ printf "%[1]d" 1 }}"#).contains("not supported"));
    assert!(exec_err(r#"{{ printf "%#v" 1 }}"#).contains("not supported"));
    assert!(exec_err("{{ printf 5 }}").contains("expected string; got int"));
}

#[test]
fn numbers_print_like_go() {
    // Outputs of Go's fmt.Sprint (%v) for the same float64 values.
    check_all(&[
        ("{{ 1000000.0 }}", "1e+06"),
        ("{{ 123456.0 }}", "123456"),
        ("{{ 1234567.0 }}", "1.234567e+06"),
        ("{{ 0.0001 }}", "0.0001"),
        ("{{ 0.00001 }}", "1e-05"),
        ("{{ 3.5 }}", "3.5"),
        ("{{ 100.0 }}", "100"),
        ("{{ 1e20 }}", "1e+20"),
        ("{{ 1e21 }}", "1e+21"),
        ("{{ 123456789012345678.0 }}", "1.2345678901234568e+17"),
        ("{{ 12345678.9 }}", "1.23456789e+07"),
        ("{{ -1234567.0 }}", "-1.234567e+06"),
        ("{{ 999999.0 }}", "999999"),
        ("{{ 123456.7 }}", "123456.7"),
        ("{{ 0.1 }}", "0.1"),
        ("{{ 5e-324 }}", "5e-324"),
        ("{{ 1.7976931348623157e308 }}", "1.7976931348623157e+308"),
        ("{{ -0.0 }}", "-0"),
        (
            "{{ 1.0 }} {{ 1e0 }} {{ 1. }} {{ .5 }} {{ 1e3 }}",
            "1 1 1 0.5 1000",
        ),
        ("{{ 1.5e300 }} {{ 1e-300 }}", "1.5e+300 1e-300"),
        (
            "{{ 1 }} {{ -42 }} {{ 9223372036854775807 }}",
            "1 -42 9223372036854775807",
        ),
        (
            "{{ 'a' }}|{{ 0x10 }}|{{ 1_000 }}|{{ 07 }}|{{ 0o7 }}|{{ 0b11 }}|{{ +5 }}",
            "97|16|1000|7|7|3|5",
        ),
        // JSON numbers: integers stay ints, floats are floats.
        (
            "{{ .Payload.After.big }}|{{ .Payload.After.score }}|{{ .Payload.After.age }}",
            "1e+06|3.5|30",
        ),
        (
            "{{ float64 1000000 }}|{{ float64 .Payload.After.age }}",
            "1e+06|30",
        ),
    ]);
    let e = parse_err("{{ 9223372036854775808 }}");
    assert!(e.contains("integer overflow"), "{e}");
}

#[test]
fn to_json() {
    check_all(&[
        (
            "{{ toJson .Payload.After }}",
            r#"{"a":{"b":{"c":"deep"}},"age":30,"big":1000000,"emptyl":[],"emptym":{},"emptys":"","f":false,"fz":0,"list":[1,2.5,"x",null,true],"name":"alice","nested":{"a":[1,{"k":"v"}],"z":1},"nul":null,"score":3.5,"t":true,"zero":0}"#,
        ),
        (
            "{{ toJson .Payload.Before }}|{{ toJson .Metadata }}|{{ toJson .Position }}|{{ toJson .Operation }}|{{ toJson .Metadata.missing }}",
            r#""aGk="|{"empty":"","opencdc.readAt":"1700000000","table":"postgres","x":"hello"}|"cG9zLTE="|"create"|null"#,
        ),
        (
            "{{ toJson 1e21 }}|{{ toJson 1e20 }}|{{ toJson 1.5e-7 }}|{{ toJson 1e-6 }}|{{ toJson -0.0 }}|{{ toJson 2.5e-10 }}",
            "1e+21|100000000000000000000|1.5e-7|0.000001|-0|2.5e-10",
        ),
        (
            r#"{{ toJson "\b\f\n\r\t\x01\u2028<>&\"\\é\x7f" }}"#,
            "\"\\b\\f\\n\\r\\t\\u0001\\u2028\\u003c\\u003e\\u0026\\\"\\\\é\u{7f}\"",
        ),
        (
            r#"{{ toJson (list 1 "a" nil 1.5 true) }}|{{ toJson (split "," "a,b") }}"#,
            r#"[1,"a",null,1.5,true]|{"_0":"a","_1":"b"}"#,
        ),
        (
            "{{ toJson . }}",
            r#"{"position":"cG9zLTE=","operation":"create","metadata":{"empty":"","opencdc.readAt":"1700000000","table":"postgres","x":"hello"},"key":{"id":7},"payload":{"before":"aGk=","after":{"a":{"b":{"c":"deep"}},"age":30,"big":1000000,"emptyl":[],"emptym":{},"emptys":"","f":false,"fz":0,"list":[1,2.5,"x",null,true],"name":"alice","nested":{"a":[1,{"k":"v"}],"z":1},"nul":null,"score":3.5,"t":true,"zero":0}}}"#,
        ),
    ]);
    // The JSON of the record parses back to the same record (integral floats such as
    // 1000000.0 are written as Go writes them, 1000000, and so come back as ints).
    let mut r = record();
    if let Some(Data::Structured(after)) = &mut r.payload.after {
        after.remove("big");
        after.remove("fz");
    }
    let json = Template::parse("{{ toJson . }}")
        .unwrap()
        .render(&r)
        .unwrap();
    assert_eq!(Record::from_json(json.as_bytes()).unwrap(), r);
}

#[test]
fn regex_functions() {
    check_all(&[
        (
            r#"{{ regexMatch "^a.c$" "abc" }}|{{ regexMatch "^a.c$" "abcd" }}|{{ regexFind "[0-9]+" "ab123cd45" }}|{{ regexFind "z" "abc" }}"#,
            "true|false|123|",
        ),
        (
            r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}|{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}"#,
            "-W-xxW-|---",
        ),
        (
            r#"{{ regexReplaceAll "(?P<first>a)" "abc" "[$first]" }}|{{ regexFind "(?i)B" "abc" }}"#,
            "[a]bc|b",
        ),
        // Go's \d and \w are ASCII.
        (
            r#"{{ regexMatch "\\d" "٣" }}|{{ regexMatch "\\w" "é" }}|{{ regexMatch "\\d" "3" }}"#,
            "false|false|true",
        ),
        (
            r#"{{ regexMatch "[\\d]x" "٣x" }}|{{ regexMatch "^[^\\s]+$" "a b" }}|{{ regexMatch "\\bfoo\\b" "a foo b" }}"#,
            "false|false|true",
        ),
        (
            r#"{{ regexMatch "[[:alpha:]]+" "abc" }}|{{ regexMatch "[]a]" "]" }}|{{ regexMatch "[a[]" "[" }}"#,
            "true|true|true",
        ),
        (
            r#"{{ regexMatch "^post" .Metadata.table }}|{{ .Metadata.table | regexMatch "gres$" }}"#,
            "true|true",
        ),
        (
            r#"{{ regexMatch (print "^" "po") .Metadata.table }}|{{ regexMatch (print "^" "xo") .Metadata.table }}"#,
            "true|false",
        ),
        // sprig's regexMatch ignores an invalid pattern.
        (
            r#"{{ regexMatch "[" "abc" }}|{{ regexMatch (print "(") "x" }}"#,
            "false|false",
        ),
    ]);
    assert!(exec_err(r#"{{ regexFind "[" "x" }}"#)
        .contains("error calling regexFind: error parsing regexp"));
    assert!(exec_err(r#"{{ regexReplaceAll (print "(") "x" "y" }}"#)
        .contains("error calling regexReplaceAll"));
    // A non-literal pattern is compiled once and cached.
    let t = Template::parse(r#"{{ regexMatch .Metadata.p .Metadata.s }}"#).unwrap();
    for (p, s, want) in [
        ("^a+$", "aaa", "true"),
        ("^b", "abc", "false"),
        ("^a+$", "ab", "false"),
    ] {
        let mut r = record();
        r.metadata.insert("p", p);
        r.metadata.insert("s", s);
        assert_eq!(t.render(&r).unwrap(), want, "{p} {s}");
    }
    assert_eq!(t.regex_cache.compiled.lock().unwrap().len(), 2);
}

#[test]
fn sprig_functions() {
    check_all(&[
        (
            r#"{{ contains "li" .Payload.After.name }}|{{ hasPrefix "a" "abc" }}|{{ hasSuffix "c" "abc" }}|{{ contains "gre" .Metadata.table }}"#,
            "true|true|true|true",
        ),
        (
            r#"{{ lower "ABC" }}|{{ upper "abc" }}|{{ title "hello wORLD foo-bar" }}|{{ trim "  x  " }}|{{ trimPrefix "a" "aab" }}|{{ trimSuffix "b" "abb" }}|{{ trimAll "$" "$$5$" }}"#,
            "abc|ABC|Hello WORLD Foo-Bar|x|ab|ab|5",
        ),
        (r#"{{ title "o'neil ña élan 3rd x_y" }}|{{ upper "héllo ß" }}|{{ lower "HÉLLO" }}"#, "O'Neil Ña Élan 3rd X_y|HÉLLO ß|héllo"),
        (r#"{{ trimAll "" "  x " }}|{{ trim "\t\n x \u00a0" }}|{{ trimAll "ab" "abxba" }}"#, "  x |x|x"),
        (
            r#"{{ replace "a" "b" "banana" }}|{{ repeat 3 "ab" }}|{{ substr 1 3 "hello" }}|{{ substr 0 10 "hello" }}|{{ substr -1 2 "hello" }}|{{ trunc 2 "hello" }}|{{ trunc -2 "hello" }}|{{ trunc 10 "hi" }}"#,
            "bbnbnb|ababab|el|hello|he|he|lo|hi",
        ),
        (r#"{{ substr 2 100 "hello" }}|{{ trunc -10 "hello" }}|{{ trunc 0 "hello" }}|{{ repeat 2.0 "x" }}"#, "llo|hello||xx"),
        (
            r#"{{ quote "a" 1 "b\"" }}|{{ squote "a" 1 }}|{{ quote nil }}|{{ quote .Metadata.missing }}|{{ quote }}"#,
            r#""a" "1" "b\""|'a' '1'|||"#,
        ),
        (r#"{{ squote nil "a" }}|{{ quote .Operation .Position .Payload.Before 1.5 (list 1) }}"#, r#"'a'|"create" "pos-1" "[104 105]" "1.5" "[1]""#),
        (r#"{{ quote "a\x01\u00a0é" }}"#, r#""a\x01\u00a0é""#),
        (
            r#"{{ default "d" "" }}|{{ default "d" "x" }}|{{ default "d" .Metadata.missing }}|{{ default "d" 0 }}|{{ default "d" .Payload.After.emptyl }}|{{ default "d" }}"#,
            "d|x|d|d|d|d",
        ),
        (r#"{{ default "d" .Payload.After.nul }}|{{ default "d" .Payload.Before }}"#, "d|[104 105]"),
        (
            r#"{{ empty "" }}|{{ empty 0 }}|{{ empty .Payload.After.emptym }}|{{ empty .Metadata.missing }}|{{ empty "x" }}|{{ empty .Payload.After.nul }}|{{ empty false }}|{{ empty .Payload.Before }}"#,
            "true|true|true|true|false|true|true|false",
        ),
        (r#"{{ coalesce "" 0 "x" "y" }}|{{ coalesce "" 0 }}|{{ coalesce }}"#, "x|<no value>|<no value>"),
        (r#"{{ coalesce .Metadata.missing .Payload.After.nul .Payload.After.zero .Payload.After.name }}"#, "alice"),
        (r#"{{ ternary "a" "b" true }}|{{ ternary "a" "b" false }}|{{ true | ternary "y" "n" }}"#, "a|b|y"),
        (
            r#"{{ toString 1.5 }}|{{ toString .Payload.After.list }}|{{ toString nil }}|{{ toString .Metadata.missing }}|{{ toString .Payload.Before }}|{{ toString .Operation }}|{{ toString .Position }}"#,
            "1.5|[1 2.5 x <nil> true]|<nil>|<nil>|[104 105]|create|pos-1",
        ),
        (
            r#"{{ atoi "42" }}|{{ atoi "x" }}|{{ atoi "4.5" }}|{{ atoi " 4" }}|{{ int "42" }}|{{ int 4.9 }}|{{ int "4.9" }}|{{ int "x" }}|{{ int64 "12" }}|{{ float64 "1.5" }}|{{ float64 "x" }}|{{ float64 3 }}|{{ int true }}|{{ int nil }}"#,
            "42|0|0|0|42|4|0|0|12|1.5|0|3|1|0",
        ),
        (r#"{{ int "0x10" }}|{{ int "010" }}|{{ int64 "1e3" }}|{{ float64 "1e3" }}|{{ int "-5" }}|{{ int64 -4.7 }}"#, "16|8|0|1000|-5|-4"),
        (
            r#"{{ atoi "+5" }}|{{ atoi "1_000" }}|{{ int "1_000" }}|{{ int "4.0" }}|{{ int "5." }}|{{ int64 "9223372036854775808" }}|{{ float64 "1_0" }}|{{ float64 "inf" }}"#,
            "5|0|1000|4|0|0|10|+Inf",
        ),
        ("{{ int 1e300 }}|{{ int .Payload.After.score }}|{{ int .Payload.Before }}", "-9223372036854775808|3|0"),
        (
            r#"{{ add 1 2 }}|{{ add 1 2.7 }}|{{ add "3" 4 }}|{{ add }}|{{ sub 5 2 }}|{{ mul 2 3 4 }}|{{ div 7 2 }}|{{ mod 7 3 }}|{{ max 1 5 3 }}|{{ min 4 2 8 }}|{{ add 1.5 1.5 }}"#,
            "3|3|7|0|3|24|3|1|5|2|2",
        ),
        ("{{ add 9223372036854775807 1 }}|{{ div -7 2 }}|{{ mod -7 2 }}|{{ div 5 2.5 }}", "-9223372036854775808|-3|-1|2"),
        (
            r#"{{ split "," "a,b,c" }}|{{ (split "," "a,b,c")._1 }}|{{ join "-" .Payload.After.list }}|{{ join "," (list 1 "a" 2.5) }}|{{ join "," "abc" }}"#,
            "map[_0:a _1:b _2:c]|b|1-2.5-x-true|1,a,2.5|abc",
        ),
        (r#"{{ join "," .Payload.Before }}|{{ join "," nil }}|{{ join "," 5 }}|{{ len (split "." "a.b.c") }}"#, "104,105||5|3"),
        (
            r#"{{ hasKey .Payload.After "name" }}|{{ hasKey .Payload.After "zz" }}|{{ keys .Payload.After.nested }}|{{ list 1 "a" nil }}|{{ b64enc "hello" }}|{{ b64dec "aGVsbG8=" }}|{{ b64dec "!!" }}"#,
            "true|false|[a z]|[1 a <nil>]|aGVsbG8=|hello|illegal base64 data at input byte 0",
        ),
        // Lenient: Go's hasKey and keys reject metadata (a map[string]string).
        (r#"{{ hasKey .Metadata "table" }}|{{ keys .Metadata }}|{{ keys .Key .Payload.After.a }}"#, "true|[empty opencdc.readAt table x]|[b id]"),
        (
            r#"{{ b64dec "aGk" }}|{{ b64dec "aG=k" }}|{{ b64dec "a" }}|{{ b64dec "" }}|{{ b64dec "YQ==" }}|{{ b64dec "YQ=" }}|{{ b64dec "YWI=YWI=" }}|{{ b64dec "aGVs\nbG8=" }}"#,
            "illegal base64 data at input byte 0|illegal base64 data at input byte 2|illegal base64 data at input byte 0||a|illegal base64 data at input byte 3|illegal base64 data at input byte 4|hello",
        ),
        (r#"{{ b64enc "" }}|{{ b64enc "a" }}|{{ b64enc "ab" }}|{{ b64enc "abc" }}|{{ b64enc .Metadata.table | b64dec }}"#, "|YQ==|YWI=|YWJj|postgres"),
        ("{{ len (list) }}|{{ list }}|{{ keys }}", "0|[]|[]"),
    ]);
    for (text, want) in [
        (
            r#"{{ substr 3 1 "hello" }}"#,
            "error calling substr: slice bounds out of range [3:1]",
        ),
        (r#"{{ substr 10 12 "hello" }}"#, "slice bounds out of range"),
        (
            r#"{{ repeat -1 "x" }}"#,
            "error calling repeat: negative repeat count",
        ),
        (
            r#"{{ trunc 2.5 "hello" }}"#,
            "expected integer; got float64",
        ),
        ("{{ div 1 0 }}", "error calling div: integer divide by zero"),
        ("{{ mod 1 0 }}", "error calling mod: integer divide by zero"),
        (
            r#"{{ ternary "a" "b" 1 }}"#,
            "error calling ternary: expected bool; got int",
        ),
        (
            r#"{{ contains "1" 123 }}"#,
            "error calling contains: wrong type for value; expected string; got int",
        ),
        (
            "{{ upper .Metadata.missing }}",
            "invalid value; expected string",
        ),
        ("{{ upper nil }}", "cannot use nil as string"),
        (
            "{{ lower .Payload.Before }}",
            "expected string; got opencdc.RawData",
        ),
        (
            "{{ upper }}",
            "wrong number of args for upper: want 1 got 0",
        ),
        (
            r#"{{ upper "a" "b" }}"#,
            "wrong number of args for upper: want 1 got 2",
        ),
        (
            r#"{{ hasPrefix "a" }}"#,
            "wrong number of args for hasPrefix: want 2 got 1",
        ),
        (
            r#"{{ hasKey .Payload.After.list "x" }}"#,
            "expected map[string]interface {}; got []interface {}",
        ),
        (
            "{{ min }}",
            "wrong number of args for min: want at least 1 got 0",
        ),
        ("{{ len 3 }}", "error calling len: len of type int"),
        ("{{ len nil }}", "error calling len: len of nil pointer"),
    ] {
        let e = exec_err(text);
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn string_literals() {
    check_all(&[
        (
            r#"{{ "a\u00e9\U0001F600\x41\101\a\v" }}"#,
            "aé😀AA\u{7}\u{b}",
        ),
        ("{{ '\\n' }}|{{ '\\'' }}|{{ 'é' }}", "10|39|233"),
        ("{{ `raw\\n` }}", "raw\\n"),
        ("{{ `a\r\nb` }}", "a\nb"),
        (r#"{{ "}}" }}"#, "}}"),
        (r#"{{ "\xff" | len }}"#, "3"),
    ]);
    assert!(parse_err(r#"{{ "\'" }}"#).contains("invalid syntax"));
    assert!(parse_err(r#"{{ "abc }}"#).contains("unterminated quoted string"));
    assert!(parse_err("{{ \"a\nb\" }}").contains("unterminated quoted string"));
    assert!(parse_err("{{ `abc }}").contains("unterminated raw quoted string"));
    assert!(parse_err("{{ 'ab' }}").contains("malformed character constant"));
}

#[test]
fn parse_errors() {
    for (text, want) in [
        ("{{ foo }}", r#"template: :1: function "foo" not defined"#),
        ("{{ .Metadata.x | nope }}", r#"function "nope" not defined"#),
        (
            "{{ if .Metadata.x }}{{ nope 1 }}{{ end }}",
            r#"function "nope" not defined"#,
        ),
        ("{{ .Metadata.x", "unclosed action"),
        ("a\n{{ .Metadata.x", "template: :2: unclosed action"),
        ("{{ if 1 }}x", "template: :1: unexpected EOF"),
        ("{{ if 1 }}x{{ else }}y", "template: :1: unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        (
            "{{ if 1 }}x{{ else }}y{{ else }}z{{ end }}",
            "template: :1: expected end; found {{else}}",
        ),
        ("{{ if }}{{ end }}", "missing value for if"),
        ("{{if 1}}a{{else if}}b{{end}}", "missing value for if"),
        ("{{ end 1 }}", "unexpected number 1 in end"),
        ("{{ $x }}", r#"template: :1: undefined variable "$x""#),
        ("{{ print ( }}", "unclosed left paren"),
        ("{{ print ) }}", "unexpected right paren"),
        ("{{ (print 1 }}", "unclosed left paren"),
        ("{{ }}", "missing value for command"),
        ("{{ .x | }}", "missing value for command"),
        ("{{ nil }}", "nil is not a command"),
        (r#"{{ "a" "b" }}"#, "can't give argument to non-function"),
        (r#"{{ .A "x" }}"#, "can't give argument to non-function .A"),
        ("{{ 1 | 2 }}", "non executable command in pipeline stage 2"),
        (
            "{{ .Metadata.x | .Metadata.y }}",
            "non executable command in pipeline stage 2",
        ),
        ("{{ /* c */ }}", r#"unexpected '/' in command"#),
        ("{{/* unclosed", "unclosed comment"),
        ("{{/* c */ x}}", "comment ends before closing delimiter"),
        ("{{ 1.2.3 }}", "bad number syntax"),
        ("{{ 0x1p4 }}", "hexadecimal floating-point"),
        ("{{ 1i }}", "complex numbers are not supported"),
        ("{{ print \"a\"\"b\" }}", "unexpected string"),
        ("{{ \"a\".x }}", "unexpected .x after term"),
        ("{{ print . . }}{{ $. }}", "unexpected . after term"),
        ("{{ print if }}", "template: :1: unexpected <if> in operand"),
        ("{{ .a-}}", "bad character '-'"),
        ("{{ # }}", "unexpected '#' in command"),
    ] {
        let e = parse_err(text);
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.starts_with("template: :"), "{e}");
    }
    let deep = format!("{}x{}", "{{ if 1 }}".repeat(200), "{{ end }}".repeat(200));
    assert!(parse_err(&deep).contains("nested too deeply"));
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(200), ")".repeat(200));
    assert!(parse_err(&deep).contains("nested too deeply"));
    let ok_nesting = format!("{}x{}", "{{ if 1 }}".repeat(50), "{{ end }}".repeat(50));
    assert_eq!(ok(&ok_nesting), "x");
}

#[test]
fn parse_bool_matches_strconv() {
    for s in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_bool(s), Some(true), "{s}");
    }
    for s in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_bool(s), Some(false), "{s}");
    }
    for s in [
        "",
        "yes",
        "no",
        "tRUE",
        "fALSE",
        " true",
        "true ",
        "2",
        "<no value>",
        "on",
    ] {
        assert_eq!(parse_bool(s), None, "{s:?}");
    }
}

#[test]
fn condition_use() {
    let cond = |text: &str, r: &Record| {
        let t = Template::parse(text).unwrap();
        parse_bool(&t.render(r).unwrap())
    };
    let r = record();
    assert_eq!(
        cond(r#"{{ eq .Metadata.table "postgres" }}"#, &r),
        Some(true)
    );
    assert_eq!(
        cond(r#"{{ hasPrefix "ali" .Payload.After.name }}"#, &r),
        Some(true)
    );
    assert_eq!(cond("{{ gt .Payload.After.age 40 }}", &r), Some(false));
    assert_eq!(cond(" {{- true -}} ", &r), Some(true));
    assert_eq!(cond("{{ .Metadata.missing }}", &r), None);
}

#[test]
fn templates_are_reusable_and_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    let t = Template::parse("{{ .Metadata.table }}-{{ .Payload.After.age }}").unwrap();
    let copy = t.clone();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let t = copy.clone();
            std::thread::spawn(move || {
                let mut r = record();
                r.metadata.insert("table", format!("t{i}"));
                t.render(&r).unwrap()
            })
        })
        .collect();
    for (i, h) in threads.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), format!("t{i}-30"));
    }
    assert_eq!(t.render(&record()).unwrap(), "postgres-30");
    assert!(format!("{t:?}").contains("Metadata.table"));
}

#[test]
fn go_float_formatting_helpers() {
    assert_eq!(format_g(0.0, None, false), "0");
    assert_eq!(format_g(123.0, Some(0), false), "1e+02");
    assert_eq!(format_g(1.0 / 3.0, Some(10), false), "0.3333333333");
    assert_eq!(format_g(1e100, None, false), "1e+100");
    assert_eq!(format_g(1e-7, None, true), "1E-07");
    let mut s = String::new();
    fmt_float(&mut s, 'v', &Spec::default(), f64::INFINITY, &Value::Nil);
    fmt_float(
        &mut s,
        'v',
        &Spec::default(),
        f64::NEG_INFINITY,
        &Value::Nil,
    );
    fmt_float(&mut s, 'v', &Spec::default(), f64::NAN, &Value::Nil);
    assert_eq!(s, "+Inf-InfNaN");
    let mut s = String::new();
    assert!(json_float(&mut s, f64::NAN).is_err());
    assert_eq!(ok(r#"{{ float64 "inf" | toJson }}|"#), "|");
}

#[test]
fn base64_round_trips() {
    for len in 0..20 {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let encoded = base64_encode(&bytes);
        assert_eq!(base64_decode(&encoded).unwrap(), bytes, "{encoded}");
    }
}

proptest! {
    #[test]
    fn text_without_actions_renders_to_itself(text in "\\PC*") {
        prop_assume!(!text.contains("{{"));
        let t = Template::parse(&text).unwrap();
        prop_assert!(t.is_literal());
        prop_assert_eq!(t.render(&record()).unwrap(), text);
    }

    #[test]
    fn text_with_braces_renders_to_itself(text in "[a-z{} \n]{0,40}") {
        prop_assume!(!text.contains("{{"));
        let t = Template::parse(&text).unwrap();
        prop_assert_eq!(t.render(&Record::default()).unwrap(), text);
    }

    #[test]
    fn string_literals_print_themselves(text in "[^\"\\\\\n]{0,30}") {
        let template = format!("{{{{ \"{text}\" }}}}");
        let t = Template::parse(&template).unwrap();
        prop_assert_eq!(t.render(&record()).unwrap(), text);
    }

    #[test]
    fn ints_print_and_compare(a in any::<i64>(), b in any::<i64>()) {
        let t = Template::parse(&format!("{{{{ {a} }}}}|{{{{ lt {a} {b} }}}}|{{{{ eq {a} {b} }}}}")).unwrap();
        prop_assert_eq!(t.render(&record()).unwrap(), format!("{a}|{}|{}", a < b, a == b));
    }

    #[test]
    fn arbitrary_input_never_panics(text in "[{}a-z .|()\"$-]{0,30}") {
        if let Ok(t) = Template::parse(&text) {
            let _ = t.render(&record());
        }
    }
}
