//! JSON text written the way Conduit's Go code writes it: values and structured data
//! (goccy/go-json, Conduit's JSON library, as `json.encode` and `StructuredData.Bytes`
//! write them), strings for request bodies (Go's `encoding/json`, which go-openai uses),
//! and `float32` numbers (embeddings).

use crate::gofmt::{go_float, GoFloat};
use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// Which of Go's JSON writers: they differ in small ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writer {
    /// goccy/go-json: `\b` and `\f` as `\u0008` and `\u000c`; exponents of at least two
    /// digits (`1e-07`).
    Goccy,
    /// `encoding/json` (Go 1.22 and later): `\b` and `\f` short; a negative exponent
    /// without a leading zero (`1e-7`).
    Std,
}

/// A JSON string as Go writes it: `"` and `\` escaped, `\n`, `\r` and `\t` short (and `\b`,
/// `\f` for [`Writer::Std`]), other control characters and the HTML characters `<`, `>`,
/// `&` as `\u00xx`, U+2028 and U+2029 escaped; everything else as it is.
pub(crate) fn write_string(out: &mut String, text: &str, writer: Writer) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' if writer == Writer::Std => out.push_str("\\b"),
            '\u{c}' if writer == Writer::Std => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a string");
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Structured data as text, as Conduit hands it to the OpenAI processors: compact, object
/// keys in the order of their written form (goccy/go-json's), Go's number forms.
pub(crate) fn object_text(object: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, object);
    out
}

/// Write a value as compact JSON the way goccy/go-json writes it: object keys sorted by
/// their written form (quotes and escapes included), Go's number forms, strings escaped as
/// Go escapes them.
pub(crate) fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s, Writer::Goccy),
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
        Value::Object(object) => write_object(out, object),
    }
}

fn write_object(out: &mut String, object: &Map<String, Value>) {
    let mut entries: Vec<(String, &Value)> = object
        .iter()
        .map(|(key, item)| {
            let mut written = String::with_capacity(key.len() + 2);
            write_string(&mut written, key, Writer::Goccy);
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

fn write_number(out: &mut String, n: &Number) {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => write!(out, "{u}").expect("writing to a string"),
        (_, Some(i), _) => write!(out, "{i}").expect("writing to a string"),
        (_, _, Some(f)) => out.push_str(&go_float(f, GoFloat::Json)),
        _ => out.push_str(&n.to_string()),
    }
}

/// A `float32` as Go's JSON writers write it: the fewest digits that read back as the same
/// `float32`, plain from 1e-6 to below 1e21 and in exponent form outside; goccy/go-json
/// writes NaN and the infinities as `NaN`, `+Inf` and `-Inf` (which is not JSON).
pub(crate) fn f32_text(f: f32, writer: Writer) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        // Rust writes the shortest round-trip digits without an exponent, as Go's 'f'.
        return format!("{f}");
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes a whole exponent");
    let sign = if exponent < 0 { '-' } else { '+' };
    let digits = exponent.unsigned_abs();
    if writer == Writer::Std && exponent < 0 && digits < 10 {
        format!("{mantissa}e-{digits}")
    } else {
        format!("{mantissa}e{sign}{digits:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float32s_are_written_as_go_writes_them() {
        // (value, goccy/go-json, encoding/json)
        let cases: [(f32, &str, &str); 12] = [
            (0.1, "0.1", "0.1"),
            (0.0, "0", "0"),
            (-0.0, "-0", "-0"),
            (-0.015_5, "-0.0155", "-0.0155"),
            (123_456_789.0, "123456790", "123456790"),
            (1e-6, "0.000001", "0.000001"),
            (1e-7, "1e-07", "1e-7"),
            (-2.5e-12, "-2.5e-12", "-2.5e-12"),
            (1e21, "1e+21", "1e+21"),
            (f32::NAN, "NaN", "NaN"),
            (f32::INFINITY, "+Inf", "+Inf"),
            (f32::NEG_INFINITY, "-Inf", "-Inf"),
        ];
        for (f, goccy, std) in cases {
            assert_eq!(f32_text(f, Writer::Goccy), goccy, "{f}");
            assert_eq!(f32_text(f, Writer::Std), std, "{f}");
        }
    }

    #[test]
    fn structured_data_is_written_as_goccy_writes_it() {
        let object = json!({"b": [1, 2.5, null, true], "a": "<x> & \u{8}", "a!": {"z": 1e-7}});
        let Value::Object(object) = object else {
            unreachable!()
        };
        assert_eq!(
            object_text(&object),
            r#"{"a!":{"z":1e-07},"a":"\u003cx\u003e \u0026 \u0008","b":[1,2.5,null,true]}"#
        );
        let mut std = String::new();
        write_string(&mut std, "\u{8}\u{c}\u{1}\u{2028}", Writer::Std);
        assert_eq!(std, r#""\b\f\u0001\u2028""#);
    }
}
