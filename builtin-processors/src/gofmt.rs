//! Go's ways of printing values, as Conduit's messages and conversions show them: a
//! float64 in `fmt`'s `%v` form or in JSON ([`go_float`]), `fmt.Sprint` of JSON-like values
//! ([`go_sprint`]), and the names of value types (`%T`, [`go_type`]).
//!
//! Whether Go holds a number as an `int` or a `float64` depends on where the value came
//! from; [`Numbers`] says which.

use crate::reference::FieldValue;
use culvert_domain::Data;
use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// How Go holds the numbers of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Numbers {
    /// As Culvert holds them: whole numbers are `int`s, the others `float64`s (structured
    /// data as connectors make it).
    AsHeld,
    /// All `float64`s, as Go's JSON decoding makes them.
    Float64,
}

impl Numbers {
    /// Whether Go holds `n` as a `float64`.
    fn float(self, n: &Number) -> bool {
        self == Self::Float64 || n.is_f64()
    }
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

/// A JSON value as Go's `fmt.Sprint` (`%v`) prints it: null `<nil>`, strings bare, arrays
/// `[a b]`, objects `map[k:v]` with sorted keys, numbers as `numbers` says Go holds them.
pub(crate) fn go_sprint(value: &Value, numbers: Numbers) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_sprint_number(n, numbers),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| go_sprint(v, numbers)).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(object) => go_sprint_map(object, numbers),
    }
}

/// A number as Go's `%v` prints it: an `int` as its digits, a `float64` as [`go_float`]'s
/// `%v` form.
pub(crate) fn go_sprint_number(n: &Number, numbers: Numbers) -> String {
    match n.as_f64() {
        Some(f) if numbers.float(n) => go_float(f, GoFloat::Verb),
        _ => n.to_string(),
    }
}

/// A map as Go's `%v` prints it: `map[k1:v1 k2:v2]`, keys sorted.
pub(crate) fn go_sprint_map(map: &Map<String, Value>, numbers: Numbers) -> String {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by_key(|(k, _)| *k);
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{k}:{}", go_sprint(v, numbers)))
        .collect();
    format!("map[{}]", entries.join(" "))
}

/// Go's name for the type of a value a reference resolves to (`%T`), as Conduit's errors
/// show it.
pub(crate) fn go_type(value: &FieldValue, numbers: Numbers) -> &'static str {
    match value {
        FieldValue::Position(_) => "opencdc.Position",
        FieldValue::Operation(_) => "opencdc.Operation",
        FieldValue::Metadata(_) => "opencdc.Metadata",
        FieldValue::Text(_) => "string",
        FieldValue::Bytes(_) => "[]uint8",
        FieldValue::Payload(_) => "opencdc.Change",
        FieldValue::Data(None) => "<nil>",
        FieldValue::Data(Some(Data::Raw(_))) => "opencdc.RawData",
        FieldValue::Data(Some(Data::Structured(_))) => "opencdc.StructuredData",
        FieldValue::Json(value) => go_json_type(value, numbers),
    }
}

/// Go's name for the type of a JSON value (`%T`), as Conduit's errors show it.
pub(crate) fn go_json_type(value: &Value, numbers: Numbers) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if numbers.float(n) => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn go_printing() {
        use Numbers::{AsHeld, Float64};
        for (value, numbers, want) in [
            (json!(1674061777225_i64), Float64, "1.674061777225e+12"),
            (json!(1674061777225_i64), AsHeld, "1674061777225"),
            (json!(27), Float64, "27"),
            (json!(1000000), Float64, "1e+06"),
            (json!(123456), Float64, "123456"),
            (json!(0.0001), Float64, "0.0001"),
            (json!(0.00001), Float64, "1e-05"),
            (json!(1e21), AsHeld, "1e+21"),
            (json!(-2.5e-7), AsHeld, "-2.5e-07"),
            (json!(0), Float64, "0"),
            (
                json!(12345678901234567890_u64),
                Float64,
                "1.2345678901234567e+19",
            ),
            (
                json!([1, "x", null, {"z": 1, "a": [true]}]),
                Float64,
                "[1 x <nil> map[a:[true] z:1]]",
            ),
            (
                json!({"k": null, "b": 2.5e-7}),
                Float64,
                "map[b:2.5e-07 k:<nil>]",
            ),
        ] {
            assert_eq!(go_sprint(&value, numbers), want, "{value}");
        }
    }
}
