//! PostgreSQL values, in their text format, as the JSON values a record carries.
//!
//! The snapshot (simple-query protocol) and the replication stream (pgoutput, text
//! format) both hand values over as text with the column's type OID, so one conversion
//! serves both and a row reads the same whichever way it came. The session runs with
//! `TimeZone=UTC`, `DateStyle=ISO` and `extra_float_digits=3`, so the text is fixed.
//!
//! What each type becomes (Conduit's connector decodes with pgx and its records show the
//! Go values as JSON; the same JSON is produced here):
//!
//! | PostgreSQL | JSON |
//! | --- | --- |
//! | `bool` | boolean |
//! | `int2`, `int4`, `int8`, `oid` | number |
//! | `float4`, `float8` | number (`NaN`/`Infinity` as strings) |
//! | `numeric` | string, the exact decimal (`"12.50"`) |
//! | `text`, `varchar`, `bpchar`, `name`, `uuid`, `xml`, others | string |
//! | `timestamptz`, `timestamp` | string, RFC 3339 in UTC (`"2024-01-02T03:04:05.5Z"`) |
//! | `date` | string, midnight UTC (`"2024-01-02T00:00:00Z"`) |
//! | `json`, `jsonb` | string, base64 of the JSON text (Conduit hands the text over as bytes) |
//! | `bytea` | string, base64 (Go's JSON form of bytes) |
//! | arrays of the above | array of the element values (`NULL` elements as `null`) |

use base64::Engine;
use serde_json::Value;

/// Type OIDs this module knows (pg_type.oid).
pub mod oid {
    /// `bool`.
    pub const BOOL: u32 = 16;
    /// `bytea`.
    pub const BYTEA: u32 = 17;
    /// `int8`.
    pub const INT8: u32 = 20;
    /// `int2`.
    pub const INT2: u32 = 21;
    /// `int4`.
    pub const INT4: u32 = 23;
    /// `oid`.
    pub const OID: u32 = 26;
    /// `json`.
    pub const JSON: u32 = 114;
    /// `float4`.
    pub const FLOAT4: u32 = 700;
    /// `float8`.
    pub const FLOAT8: u32 = 701;
    /// `date`.
    pub const DATE: u32 = 1082;
    /// `timestamp`.
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`.
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `numeric`.
    pub const NUMERIC: u32 = 1700;
    /// `jsonb`.
    pub const JSONB: u32 = 3802;
}

/// The element type of an array type, if `type_oid` is an array of a type this module
/// converts specially (other arrays' elements are strings).
fn element_of(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1016 => oid::INT8,
        1028 => oid::OID,
        199 => oid::JSON,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1182 => oid::DATE,
        1115 => oid::TIMESTAMP,
        1185 => oid::TIMESTAMPTZ,
        1231 => oid::NUMERIC,
        3807 => oid::JSONB,
        // text[], varchar[], bpchar[], name[], uuid[], xml[], char[]
        1009 | 1015 | 1014 | 1003 | 2951 | 143 | 1002 => 25,
        _ => return None,
    })
}

/// The JSON value of `text`, a value of type `type_oid` in PostgreSQL's text format.
/// Text that does not parse as its type is kept as a string rather than lost.
pub fn to_json(type_oid: u32, text: &str) -> Value {
    if let Some(element) = element_of(type_oid) {
        return match parse_array(text) {
            Some(items) => array_json(element, items),
            None => Value::String(text.to_owned()),
        };
    }
    scalar(type_oid, text)
}

fn scalar(type_oid: u32, text: &str) -> Value {
    let string = || Value::String(text.to_owned());
    match type_oid {
        oid::BOOL => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => string(),
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| string()),
        oid::FLOAT4 | oid::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(string),
        // Conduit passes JSON columns on as their text's bytes (an Avro `bytes` field).
        oid::JSON | oid::JSONB => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
        }
        oid::BYTEA => match decode_bytea(text) {
            Some(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            None => string(),
        },
        oid::TIMESTAMPTZ => timestamp(text, true).unwrap_or_else(string),
        oid::TIMESTAMP => timestamp(text, false).unwrap_or_else(string),
        oid::DATE => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| Value::String(format!("{}T00:00:00Z", d.format("%Y-%m-%d"))))
            .unwrap_or_else(|_| string()),
        _ => string(),
    }
}

fn array_json(element: u32, items: Vec<ArrayItem>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|item| match item {
                ArrayItem::Null => Value::Null,
                ArrayItem::Value(text) => scalar(element, &text),
                ArrayItem::Nested(inner) => array_json(element, inner),
            })
            .collect(),
    )
}

/// An ISO timestamp (`2024-01-02 03:04:05.123456+00`, or without offset) as RFC 3339 in
/// UTC with as many fractional digits as needed (Go's `time.Time` JSON form).
fn timestamp(text: &str, with_zone: bool) -> Option<Value> {
    let utc = if with_zone {
        // PostgreSQL writes offsets as +HH, +HH:MM or +HH:MM:SS.
        let mut fixed = text.to_owned();
        let sign = fixed.rfind(['+', '-']).filter(|&i| i > 10)?;
        if fixed[sign..].len() == 3 {
            fixed.push_str(":00");
        }
        chrono::DateTime::parse_from_str(&fixed, "%Y-%m-%d %H:%M:%S%.f%:z")
            .ok()?
            .with_timezone(&chrono::Utc)
    } else {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .ok()?
            .and_utc()
    };
    Some(Value::String(
        utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    ))
}

/// `\x0a0b...` (hex, the default output) as bytes.
fn decode_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// One element of an array literal.
#[derive(Debug, PartialEq)]
enum ArrayItem {
    Null,
    Value(String),
    Nested(Vec<ArrayItem>),
}

/// Parse an array literal (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`), optionally
/// with dimension decoration (`[0:1]={1,2}`).
fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let text = match text.find("={") {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let bytes: Vec<char> = text.chars().collect();
    let mut at = 0;
    let items = parse_level(&bytes, &mut at)?;
    (at == bytes.len()).then_some(items)
}

fn parse_level(chars: &[char], at: &mut usize) -> Option<Vec<ArrayItem>> {
    if chars.get(*at) != Some(&'{') {
        return None;
    }
    *at += 1;
    let mut items = Vec::new();
    if chars.get(*at) == Some(&'}') {
        *at += 1;
        return Some(items);
    }
    loop {
        match chars.get(*at)? {
            '{' => items.push(ArrayItem::Nested(parse_level(chars, at)?)),
            '"' => {
                *at += 1;
                let mut value = String::new();
                loop {
                    match chars.get(*at)? {
                        '\\' => {
                            value.push(*chars.get(*at + 1)?);
                            *at += 2;
                        }
                        '"' => {
                            *at += 1;
                            break;
                        }
                        c => {
                            value.push(*c);
                            *at += 1;
                        }
                    }
                }
                items.push(ArrayItem::Value(value));
            }
            _ => {
                let start = *at;
                while !matches!(chars.get(*at)?, ',' | '}') {
                    *at += 1;
                }
                let value: String = chars[start..*at].iter().collect();
                let value = value.trim();
                items.push(if value.eq_ignore_ascii_case("NULL") {
                    ArrayItem::Null
                } else {
                    ArrayItem::Value(value.to_owned())
                });
            }
        }
        match chars.get(*at)? {
            ',' => *at += 1,
            '}' => {
                *at += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

/// A JSON value from a record as the text PostgreSQL should parse for a column of type
/// `type_name` (from `format_type`), for the destination: bytes come as base64 (bytea
/// takes hex; json/jsonb get the JSON the bytes hold), numbers as Conduit's fractions
/// (`"1/4"`) become decimals, and anything else goes through `jsonb_populate_record`'s
/// own conversion.
pub fn for_column(type_name: &str, value: Value) -> Value {
    match (type_name, value) {
        ("bytea", Value::String(b64)) => {
            match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
                Ok(bytes) => {
                    let mut hex = String::with_capacity(2 + bytes.len() * 2);
                    hex.push_str("\\x");
                    for b in bytes {
                        hex.push_str(&format!("{b:02x}"));
                    }
                    Value::String(hex)
                }
                Err(_) => Value::String(b64),
            }
        }
        (t, Value::String(s)) if t.starts_with("numeric") && s.contains('/') => {
            fraction_to_decimal(&s)
                .map(Value::String)
                .unwrap_or(Value::String(s))
        }
        // JSON text as bytes (base64), as sources following Conduit send it.
        ("json" | "jsonb", Value::String(b64)) => {
            match base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            {
                Some(json) => json,
                None => Value::String(b64),
            }
        }
        (_, value) => value,
    }
}

/// `"a/b"` (Go's `big.Rat` text) as a decimal with up to 20 fractional digits.
fn fraction_to_decimal(text: &str) -> Option<String> {
    let (n, d) = text.split_once('/')?;
    let n: i128 = n.trim().parse().ok()?;
    let d: i128 = d.trim().parse().ok()?;
    if d == 0 {
        return None;
    }
    let negative = (n < 0) != (d < 0);
    let (n, d) = (n.unsigned_abs(), d.unsigned_abs());
    let mut out = format!("{}{}", if negative { "-" } else { "" }, n / d);
    let mut rest = n % d;
    if rest != 0 {
        out.push('.');
        for _ in 0..20 {
            rest *= 10;
            out.push(char::from(b'0' + (rest / d) as u8));
            rest %= d;
            if rest == 0 {
                break;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_convert_as_conduit_shows_them() {
        assert_eq!(to_json(oid::BOOL, "t"), json!(true));
        assert_eq!(to_json(oid::INT4, "-42"), json!(-42));
        assert_eq!(
            to_json(oid::INT8, "9007199254740993"),
            json!(9007199254740993i64)
        );
        assert_eq!(to_json(oid::FLOAT8, "1.5"), json!(1.5));
        assert_eq!(to_json(oid::FLOAT8, "NaN"), json!("NaN"));
        assert_eq!(to_json(oid::NUMERIC, "12.2121"), json!("12.2121"));
        assert_eq!(to_json(25, "héllo"), json!("héllo"));
        assert_eq!(
            to_json(2950, "bd94ee0b-564f-4088-bf4e-8d5e626caf66"),
            json!("bd94ee0b-564f-4088-bf4e-8d5e626caf66")
        );
        assert_eq!(
            to_json(oid::JSONB, r#"{"b": [1, 2]}"#),
            json!("eyJiIjogWzEsIDJdfQ==")
        );
        assert_eq!(to_json(oid::BYTEA, "\\x00ff10"), json!("AP8Q"));
        assert_eq!(
            to_json(oid::TIMESTAMPTZ, "2024-01-02 03:04:05.123456+00"),
            json!("2024-01-02T03:04:05.123456Z")
        );
        assert_eq!(
            to_json(oid::TIMESTAMPTZ, "2024-01-02 03:04:05+02:30"),
            json!("2024-01-02T00:34:05Z")
        );
        assert_eq!(
            to_json(oid::TIMESTAMP, "2024-01-02 03:04:05.5"),
            json!("2024-01-02T03:04:05.500Z")
        );
        assert_eq!(
            to_json(oid::DATE, "2024-01-02"),
            json!("2024-01-02T00:00:00Z")
        );
    }

    #[test]
    fn arrays_convert_element_by_element() {
        assert_eq!(to_json(1007, "{1,2,NULL}"), json!([1, 2, null]));
        assert_eq!(
            to_json(1009, r#"{"a b","c\"d",plain,"NULL"}"#),
            json!(["a b", "c\"d", "plain", "NULL"])
        );
        assert_eq!(to_json(1007, "{{1,2},{3,4}}"), json!([[1, 2], [3, 4]]));
        assert_eq!(to_json(1007, "{}"), json!([]));
        assert_eq!(to_json(1007, "[0:1]={5,6}"), json!([5, 6]));
        assert_eq!(to_json(1000, "{t,f}"), json!([true, false]));
        // Broken text stays text.
        assert_eq!(to_json(1007, "{1,2"), json!("{1,2"));
    }

    #[test]
    fn values_go_back_to_columns() {
        assert_eq!(for_column("bytea", json!("AP8Q")), json!("\\x00ff10"));
        assert_eq!(for_column("numeric(10,4)", json!("1/4")), json!("0.25"));
        assert_eq!(for_column("numeric", json!("-7/2")), json!("-3.5"));
        assert_eq!(for_column("text", json!("1/4")), json!("1/4"));
        assert_eq!(for_column("integer", json!(5)), json!(5));
        assert_eq!(
            for_column("jsonb", json!("eyJiIjogWzEsIDJdfQ==")),
            json!({"b": [1, 2]})
        );
        assert_eq!(for_column("jsonb", json!({"x": 1})), json!({"x": 1}));
    }
}
