//! `json.encode`: replace a field under `.Key` or `.Payload` with its JSON text, written
//! as Conduit writes it (keys sorted, HTML characters escaped, Go's number forms).
//!
//! Also home to Go's ways of writing a float64 (`go_float`), which `base64.encode`
//! uses too.

use crate::base64_decode::{go_type, resolve};
use crate::reference::{FieldValue, Reference};
use crate::{invalid, schema_parameters, setting, AUTHOR, VERSION};
use base64::Engine as _;
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Number, Value};
use std::fmt::Write as _;

/// `json.encode`: encode a field as JSON text.
pub struct JsonEncode {
    spec: ProcessorSpecification,
}

impl JsonEncode {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![json_field_parameter(
            "The field to encode (a reference under `.Key` or `.Payload`, such as \
             `.Payload.After.address`); `.Payload` itself cannot be encoded.",
        )];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "json.encode",
                summary: "Write a field's value as JSON text.",
                description: "Writes the value of the field as JSON and stores that text in the \
                              same field: `.Key` and the payload sides become raw data, a field \
                              inside structured data becomes a string. Object keys are sorted. \
                              A missing or null field is left alone. Only fields under `.Key`, \
                              `.Payload.Before` and `.Payload.After` can be encoded.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for JsonEncode {
    fn default() -> Self {
        Self::new()
    }
}

/// The `field` parameter of `json.decode` and `json.encode`: under `.Key` or `.Payload`,
/// not `.Payload` itself.
pub(crate) fn json_field_parameter(description: &'static str) -> Parameter {
    Parameter::new("field", ParameterType::String, description)
        .validate(Validation::Required)
        .validate(Validation::Regex("^\\.(Payload|Key).*".to_owned()))
        .validate(Validation::Exclusion(vec![".Payload".to_owned()]))
}

/// The `field` setting of the JSON processors, checked as its parameter's validations
/// check it (again, for callers that skip them) and parsed.
pub(crate) fn json_field_setting(settings: &Settings) -> Result<Reference, PluginError> {
    let field = setting(settings, "field");
    if field.is_empty() {
        return Err(invalid("field", "required parameter is not provided"));
    }
    if !(field.starts_with(".Payload") || field.starts_with(".Key")) {
        return Err(invalid(
            "field",
            format!("{field:?} is not a field under .Key or .Payload"),
        ));
    }
    if field == ".Payload" {
        return Err(invalid(
            "field",
            "\".Payload\" cannot be used, name .Payload.Before or .Payload.After",
        ));
    }
    Reference::parse(field).map_err(|e| invalid("field", e))
}

impl ProcessorPlugin for JsonEncode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = json_field_setting(settings)?;
        Ok(Box::new(EncodeProcessor { field }))
    }
}

struct EncodeProcessor {
    field: Reference,
}

impl EncodeProcessor {
    fn encode(&self, record: &mut Record) -> Result<(), String> {
        let value = resolve(&self.field, record)
            .map_err(|e| format!("failed to resolve the field: {e}"))?;
        let mut json = String::new();
        match value {
            None => return Ok(()),
            // Raw data is a byte slice to Go's JSON: base64 text.
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => write_string(
                &mut json,
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            ),
            Some(FieldValue::Data(Some(Data::Structured(object)))) => {
                write_json(&mut json, &Value::Object(object))
            }
            Some(FieldValue::Json(value)) => write_json(&mut json, &value),
            Some(FieldValue::Text(text)) => write_string(&mut json, &text),
            // Not under `.Key` or `.Payload`: the setting's validations keep these out.
            Some(other) => return Err(format!("unexpected data type {}", go_type(&other))),
        }
        self.field
            .set(record, json)
            .map_err(|e| format!("failed to set the JSON encoded value into the record: {e}"))
    }
}

#[async_trait::async_trait]
impl Processor for EncodeProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            if let Err(error) = self.encode(record) {
                *outcome = Outcome::Fail(error);
            }
        }
        Ok(())
    }
}

/// Write a value as compact JSON the way goccy/go-json (Conduit's JSON library) writes
/// it: object keys sorted, Go's number forms, strings escaped as Go escapes them.
fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => {
            // goccy/go-json orders the keys by their written form, quotes and escapes
            // included: `"a!"` comes before `"a"`, `"B"` before `"\u003c"` (`<`).
            let mut entries: Vec<(String, &Value)> = object
                .iter()
                .map(|(key, item)| {
                    let mut written = String::with_capacity(key.len() + 2);
                    write_string(&mut written, key);
                    (written, item)
                })
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => write!(out, "{u}").expect("writing to a string"),
        (_, Some(i), _) => write!(out, "{i}").expect("writing to a string"),
        (_, _, Some(f)) => out.push_str(&go_float(f, GoFloat::Json)),
        _ => out.push_str(&n.to_string()),
    }
}

/// A JSON string as Go writes it: `"` and `\` escaped, `\n`, `\r` and `\t` short, other
/// control characters and `<`, `>`, `&` as `\u00xx`, U+2028 and U+2029 as `\u2028` and
/// `\u2029`; everything else as it is.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a string")
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Which of Go's float64 forms to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GoFloat {
    /// `fmt`'s `%v`: plain below an exponent of 6 and from 1e-4, else `1e+06`.
    Verb,
    /// JSON: plain from 1e-6 to below 1e21, else `1e-07` or `1e+21`.
    Json,
}

/// A float64 written the way Go writes it, with the fewest digits that read back as the
/// same number.
pub(crate) fn go_float(f: f64, style: GoFloat) -> String {
    if !f.is_finite() {
        // JSON values never hold these; Go's `%v` forms, for completeness.
        return if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        }
        .to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d.ddde<exp>`.
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes a whole exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponential = match style {
        GoFloat::Verb => !(-4..6).contains(&exponent),
        GoFloat::Json => f != 0.0 && !(1e-6..1e21).contains(&f.abs()),
    };
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    if exponential {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exponent.abs()).expect("writing to a string");
    } else {
        // The decimal point goes after `point` digits.
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64_decode::testing::*;
    use culvert_domain::{Change, Operation};
    use serde_json::json;

    fn snapshot(before: Option<Data>) -> Record {
        Record {
            operation: Operation::Snapshot,
            payload: Change {
                before,
                after: None,
            },
            ..Record::default()
        }
    }

    fn after(after: Option<Data>) -> Record {
        Record {
            payload: Change {
                before: None,
                after,
            },
            ..Record::default()
        }
    }

    #[test]
    fn conduits_examples() {
        // (description, field, input, expected output)
        let cases = [
            (
                "encode record key to JSON",
                ".Key",
                keyed(structured(json!({"tables": ["table1,table2"]}))),
                keyed(raw(r#"{"tables":["table1,table2"]}"#)),
            ),
            (
                "encode nested field to JSON",
                ".Payload.Before.foo",
                snapshot(structured(
                    json!({"foo": {"before": {"data": 4, "id": 3}, "baz": "bar"}}),
                )),
                snapshot(structured(
                    json!({"foo": r#"{"baz":"bar","before":{"data":4,"id":3}}"#}),
                )),
            ),
        ];
        for (name, field, input, want) in cases {
            let (got, outcome) = process_one(&JsonEncode::new(), field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn encodes_like_conduit() {
        let cases = [
            (
                "structured key to raw data",
                ".Key",
                keyed(structured(json!({"after": {"data": 4.0, "id": 3}}))),
                keyed(raw(r#"{"after":{"data":4,"id":3}}"#)),
            ),
            (
                "a map field",
                ".Payload.After.foo",
                after(structured(
                    json!({"foo": {"after": {"data": 4, "id": 3}, "baz": "bar"}}),
                )),
                after(structured(
                    json!({"foo": r#"{"after":{"data":4,"id":3},"baz":"bar"}"#}),
                )),
            ),
            (
                "a list under .Payload.After",
                ".Payload.After",
                after(structured(json!({"foo": ["one", "two", "three"]}))),
                after(raw(r#"{"foo":["one","two","three"]}"#)),
            ),
            (
                "an int",
                ".Payload.After.foo",
                after(structured(json!({"foo": 123}))),
                after(structured(json!({"foo": "123"}))),
            ),
            (
                "a string",
                ".Payload.After.foo",
                after(structured(json!({"foo": "a\"b"}))),
                after(structured(json!({"foo": r#""a\"b""#}))),
            ),
            (
                "raw data is base64 text to Go",
                ".Key",
                keyed(raw("foo")),
                keyed(raw(r#""Zm9v""#)),
            ),
            ("nil", ".Payload.After", after(None), after(None)),
            (
                "null field",
                ".Payload.After.foo",
                after(structured(json!({"foo": null}))),
                after(structured(json!({"foo": null}))),
            ),
            (
                "missing field: its parents are created, as in Conduit",
                ".Key.a.b",
                keyed(None),
                keyed(structured(json!({"a": {}}))),
            ),
        ];
        for (name, field, input, want) in cases {
            let (got, outcome) = process_one(&JsonEncode::new(), field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
        // A field that cannot be walked into fails the record, leaving it as it was.
        let input = keyed(raw("x"));
        let (got, outcome) = process_one(&JsonEncode::new(), ".Key.a", input.clone());
        assert_eq!(
            outcome,
            Outcome::Fail(
                "failed to resolve the field: .Key does not contain structured data: cannot \
                 resolve reference"
                    .into()
            )
        );
        assert_eq!(got, input);
    }

    #[test]
    fn json_is_written_as_go_writes_it() {
        let json = |value: Value| {
            let mut out = String::new();
            write_json(&mut out, &value);
            out
        };
        assert_eq!(
            json(json!({"<k>": 1, "B": 2, "a": [null, true, 0.000001, 0.0000001, 123456789.0, 1e20],
                        "é": "x\u{7f}é😀", "c": "\u{8}\u{c}\u{1}\n\r\t\\&\u{2028}\u{2029}"})),
            r#"{"B":2,"\u003ck\u003e":1,"a":[null,true,0.000001,1e-07,123456789,100000000000000000000],"c":"\u0008\u000c\u0001\n\r\t\\\u0026\u2028\u2029","é":"x\u{7f}é😀"}"#
                .replace("\\u{7f}", "\u{7f}")
        );
        // Checked against goccy/go-json: keys in the order of their written form.
        assert_eq!(
            json(json!({"a": 1, "a!": 2, "a ": 3, "a\"": 4, "a#": 5, "<": 6, "B": 7})),
            r#"{"B":7,"\u003c":6,"a ":3,"a!":2,"a":1,"a#":5,"a\"":4}"#
        );
        assert_eq!(json(json!(-2.5)), "-2.5");
        assert_eq!(json(json!(u64::MAX)), "18446744073709551615");
        assert_eq!(json(json!(i64::MIN)), "-9223372036854775808");
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        // Checked against Go: fmt.Sprintf("%v", f) and goccy/go-json's Marshal(f).
        let cases: [(f64, &str, &str); 17] = [
            (0.0, "0", "0"),
            (-0.0, "-0", "-0"),
            (1.0, "1", "1"),
            (123456.0, "123456", "123456"),
            (1234567.0, "1.234567e+06", "1234567"),
            (1e6, "1e+06", "1000000"),
            (1.1, "1.1", "1.1"),
            (0.0001, "0.0001", "0.0001"),
            (0.00001, "1e-05", "0.00001"),
            (1e21, "1e+21", "1e+21"),
            (1.5e-7, "1.5e-07", "1.5e-07"),
            (-2.5, "-2.5", "-2.5"),
            (100.0, "100", "100"),
            (1e20, "1e+20", "100000000000000000000"),
            (3.0e15, "3e+15", "3000000000000000"),
            (1e-6, "1e-06", "0.000001"),
            (9.99e20, "9.99e+20", "999000000000000000000"),
        ];
        for (f, verb, json) in cases {
            assert_eq!(go_float(f, GoFloat::Verb), verb, "%v of {f}");
            assert_eq!(go_float(f, GoFloat::Json), json, "JSON of {f}");
        }
        assert_eq!(go_float(1e300, GoFloat::Json), "1e+300");
        assert_eq!(go_float(5e-324, GoFloat::Verb), "5e-324");
        assert_eq!(go_float(f64::NEG_INFINITY, GoFloat::Verb), "-Inf");
        assert_eq!(go_float(f64::NAN, GoFloat::Json), "NaN");
    }

    #[test]
    fn settings_are_validated() {
        let plugin = JsonEncode::new();
        let validated = culvert_plugins::spec::validate(
            &plugin.specification().parameters,
            &settings(&[("field", ".Payload.After.foo")]),
        )
        .unwrap();
        assert_eq!(validated["sdk.schema.encode.payload.enabled"], "true");
        assert_eq!(validated["sdk.schema.decode.key.enabled"], "true");
        assert!(plugin.configure(&validated).is_ok());
        for field in [".Key", ".Payload.After", ".Payload.Before", ".Key.a.b"] {
            configure(&plugin, &[("field", field)]).unwrap_or_else(|e| panic!("{field}: {e}"));
        }
        for (pairs, want) in [
            (
                vec![],
                "setting \"field\": required parameter is not provided",
            ),
            (
                vec![("field", ".Metadata")],
                "setting \"field\": \".Metadata\" must match",
            ),
            (
                vec![("field", ".Payload")],
                "setting \"field\": \".Payload\" must not be one of .Payload",
            ),
            (
                vec![("field", ".Position")],
                "setting \"field\": \".Position\" must match",
            ),
            (
                vec![("field", ".Payload.Middle")],
                "setting \"field\": invalid reference",
            ),
        ] {
            let error = configure(&plugin, &pairs).err().unwrap();
            assert!(error.contains(want), "{pairs:?}: {error}");
        }
        // Refused by the plugin too when asked directly.
        for field in [".Payload", ".Metadata.x", ""] {
            let error = plugin
                .configure(&settings(&[("field", field)]))
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains("\"field\""), "{field}: {error}");
        }
    }
}
