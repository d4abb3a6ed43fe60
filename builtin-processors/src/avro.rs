//! Avro for the `avro.*` processors: the Confluent wire format (a zero byte, the schema id
//! as 4 bytes big-endian, then the Avro binary datum), encoding structured data with a
//! schema, decoding a datum back into structured data, and inferring a schema from data
//! the way Conduit's `autoRegister` strategy does. The codec is the `apache-avro` crate's;
//! this module maps between its values and the JSON values records hold.
//!
//! It also has [`MemoryRegistry`], a schema registry in memory (for tests and benchmarks;
//! the server's registry keeps schemas in the event log).

#[cfg(test)]
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use base64::Engine as _;
use culvert_domain::schema::Schemas;
use culvert_domain::Structured;
use culvert_plugins::schema::{RegisteredSchema, SchemaError, SchemaRegistry, SchemaType};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// The first byte of the Confluent wire format.
const MAGIC: u8 = 0;

/// Parse an Avro schema text.
pub fn parse_schema(text: &str) -> Result<Schema, String> {
    Schema::parse_str(text).map_err(|e| format!("could not parse avro schema: {e}"))
}

/// `datum` with the Confluent header for schema `id` in front.
pub(crate) fn with_header(id: u32, datum: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&datum);
    out
}

/// The schema id and the datum of Confluent wire-format bytes.
pub(crate) fn split_header(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [] | [MAGIC, ..] => Err(format!(
            "failed to decode header: {} bytes is too short for the 5-byte header",
            bytes.len()
        )),
        [other, ..] => Err(format!(
            "failed to decode header: the first byte is {other}, not the magic byte 0"
        )),
    }
}

/// A parsed schema with its named types (by full name), ready to encode with.
pub(crate) struct Encoding {
    schema: Schema,
    names: Names,
}

/// Named types by full name.
type Names = std::collections::HashMap<String, Schema>;

/// `schema` ready to encode with.
pub(crate) fn encoding(schema: Schema) -> Result<Encoding, String> {
    let mut names = Names::new();
    collect_names(&schema, &mut names);
    Ok(Encoding { schema, names })
}

fn collect_names(schema: &Schema, names: &mut Names) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.fullname(None), schema.clone());
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(array) => collect_names(&array.items, names),
        Schema::Map(map) => collect_names(&map.types, names),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_names(variant, names);
            }
        }
        _ => {}
    }
}

/// Encode structured data as an Avro datum of `schema` (a record schema, or any schema an
/// object fits), without copying it into a JSON value first.
pub(crate) fn encode_map(schema: &Encoding, data: &Map<String, Value>) -> Result<Vec<u8>, String> {
    match &schema.schema {
        Schema::Record(record) => {
            let mut out = Vec::with_capacity(64);
            write_record(record, &schema.names, data, &mut out, &mut String::new())
                .map_err(|e| format!("the data does not fit the schema: {e}"))?;
            Ok(out)
        }
        _ => encode(schema, &Value::Object(data.clone())),
    }
}

/// Encode a JSON value (structured data) as an Avro datum of `schema`, straight from the
/// JSON (no intermediate values). Integers go into `int`, `long`, `float` and `double`
/// fields, floats with no fraction into integer ones; bytes and fixed fields take base64
/// text (how records carry bytes) or, if it is not base64, the text's UTF-8 bytes; a
/// missing record field takes its default, or null if it is nullable.
pub(crate) fn encode(schema: &Encoding, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64);
    let mut path = String::new();
    write(&schema.schema, &schema.names, value, &mut out, &mut path)
        .map_err(|e| format!("the data does not fit the schema: {e}"))?;
    Ok(out)
}

fn zigzag(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    zigzag(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// The bytes a bytes or fixed field holds: base64 text decoded, or the text itself.
fn bytes_of(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|_| text.as_bytes().to_vec())
}

fn write(
    schema: &Schema,
    names: &Names,
    value: &Value,
    out: &mut Vec<u8>,
    path: &mut String,
) -> Result<(), String> {
    let mismatch = |want: &str| {
        let at = if path.is_empty() {
            "the value"
        } else {
            path.as_str()
        };
        Err(format!("{at}: want {want}, have {}", kind(value)))
    };
    let integer = |value: &Value| -> Option<i64> {
        match value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }),
            _ => None,
        }
    };
    match schema {
        Schema::Null => match value {
            Value::Null => Ok(()),
            _ => mismatch("null"),
        },
        Schema::Boolean => match value {
            Value::Bool(b) => {
                out.push(u8::from(*b));
                Ok(())
            }
            _ => mismatch("a boolean"),
        },
        Schema::Int | Schema::Date | Schema::TimeMillis => {
            match integer(value).and_then(|i| i32::try_from(i).ok()) {
                Some(i) => {
                    zigzag(out, i64::from(i));
                    Ok(())
                }
                None => mismatch("an int"),
            }
        }
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => match integer(value) {
            Some(i) => {
                zigzag(out, i);
                Ok(())
            }
            None => mismatch("a long"),
        },
        Schema::Float => match value.as_f64() {
            Some(f) => {
                out.extend_from_slice(&(f as f32).to_le_bytes());
                Ok(())
            }
            None => mismatch("a float"),
        },
        Schema::Double => match value.as_f64() {
            Some(f) => {
                out.extend_from_slice(&f.to_le_bytes());
                Ok(())
            }
            None => mismatch("a double"),
        },
        Schema::Bytes => match value {
            Value::String(text) => {
                write_bytes(out, &bytes_of(text));
                Ok(())
            }
            _ => mismatch("bytes (base64 text)"),
        },
        Schema::String | Schema::Uuid(_) => match value {
            Value::String(text) => {
                write_bytes(out, text.as_bytes());
                Ok(())
            }
            _ => mismatch("a string"),
        },
        Schema::Fixed(fixed) => match value {
            Value::String(text) => {
                let bytes = bytes_of(text);
                if bytes.len() != fixed.size {
                    return mismatch(&format!("{} bytes", fixed.size));
                }
                out.extend_from_slice(&bytes);
                Ok(())
            }
            _ => mismatch("fixed bytes (base64 text)"),
        },
        Schema::Enum(e) => match value {
            Value::String(symbol) => match e.symbols.iter().position(|s| s == symbol) {
                Some(index) => {
                    zigzag(out, index as i64);
                    Ok(())
                }
                None => mismatch(&format!("one of {:?}", e.symbols)),
            },
            _ => mismatch("an enum symbol"),
        },
        Schema::Array(array) => match value {
            Value::Array(items) => {
                if !items.is_empty() {
                    zigzag(out, items.len() as i64);
                    let len = path.len();
                    for (index, item) in items.iter().enumerate() {
                        path.push_str(&format!("[{index}]"));
                        write(&array.items, names, item, out, path)?;
                        path.truncate(len);
                    }
                }
                out.push(0);
                Ok(())
            }
            _ => mismatch("an array"),
        },
        Schema::Map(map) => match value {
            Value::Object(entries) => {
                if !entries.is_empty() {
                    zigzag(out, entries.len() as i64);
                    let len = path.len();
                    for (key, item) in entries {
                        write_bytes(out, key.as_bytes());
                        path.push('.');
                        path.push_str(key);
                        write(&map.types, names, item, out, path)?;
                        path.truncate(len);
                    }
                }
                out.push(0);
                Ok(())
            }
            _ => mismatch("a map"),
        },
        Schema::Record(record) => match value {
            Value::Object(entries) => write_record(record, names, entries, out, path),
            _ => mismatch("a record (an object)"),
        },
        Schema::Union(union) => {
            let variants = union.variants();
            let Some(index) = pick(variants, names, value) else {
                return mismatch(&format!("one of the union's {} types", variants.len()));
            };
            zigzag(out, index as i64);
            write(&variants[index], names, value, out, path)
        }
        Schema::Ref { name } => match names.get(&name.fullname(None)) {
            Some(named) => write(named, names, value, out, path),
            None => Err(format!(
                "the schema names {name:?}, which it does not define"
            )),
        },
        Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration(_) => {
            let at = if path.is_empty() {
                "the value"
            } else {
                path.as_str()
            };
            Err(format!(
                "{at}: decimal and duration fields cannot be encoded from JSON yet"
            ))
        }
    }
}

/// Write an object as a record of `record`'s fields.
fn write_record(
    record: &apache_avro::schema::RecordSchema,
    names: &Names,
    entries: &Map<String, Value>,
    out: &mut Vec<u8>,
    path: &mut String,
) -> Result<(), String> {
    let len = path.len();
    for field in &record.fields {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&field.name);
        match entries.get(&field.name) {
            Some(item) => write(&field.schema, names, item, out, path)?,
            None => match &field.default {
                Some(default) => write(&field.schema, names, default, out, path)?,
                None if nullable(&field.schema) => {
                    write(&field.schema, names, &Value::Null, out, path)?
                }
                None => return Err(format!("{path}: missing, and it has no default")),
            },
        }
        path.truncate(len);
    }
    Ok(())
}

/// Whether a union schema has null among its types.
fn nullable(schema: &Schema) -> bool {
    matches!(schema, Schema::Union(u) if u.variants().iter().any(|v| matches!(v, Schema::Null)))
}

/// The union member a JSON value is written as: by the value's kind, preferring the most
/// exact type (an integer a `long`, then `int`, `double`, `float`).
fn pick(variants: &[Schema], names: &Names, value: &Value) -> Option<usize> {
    fn resolved<'a>(schema: &'a Schema, names: &'a Names) -> Option<&'a Schema> {
        match schema {
            Schema::Ref { name } => names.get(&name.fullname(None)),
            other => Some(other),
        }
    }
    let first = |accept: &dyn Fn(&Schema) -> bool| {
        variants
            .iter()
            .position(|v| resolved(v, names).is_some_and(accept))
    };
    match value {
        Value::Null => first(&|s| matches!(s, Schema::Null)),
        Value::Bool(_) => first(&|s| matches!(s, Schema::Boolean)),
        Value::Number(n) if n.is_i64() || n.is_u64() => first(&|s| matches!(s, Schema::Long))
            .or_else(|| first(&|s| matches!(s, Schema::Int)))
            .or_else(|| first(&|s| matches!(s, Schema::Double)))
            .or_else(|| first(&|s| matches!(s, Schema::Float))),
        Value::Number(_) => first(&|s| matches!(s, Schema::Double))
            .or_else(|| first(&|s| matches!(s, Schema::Float))),
        Value::String(symbol) => first(&|s| matches!(s, Schema::String | Schema::Uuid(_)))
            .or_else(|| first(&|s| matches!(s, Schema::Enum(e) if e.symbols.contains(symbol))))
            .or_else(|| first(&|s| matches!(s, Schema::Bytes | Schema::Fixed(_)))),
        Value::Array(_) => first(&|s| matches!(s, Schema::Array(_))),
        Value::Object(_) => first(&|s| matches!(s, Schema::Record(_)))
            .or_else(|| first(&|s| matches!(s, Schema::Map(_)))),
    }
}

/// A JSON value's kind, for errors.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decode an Avro datum of `schema` into a JSON value, straight from the bytes (no
/// intermediate values): records and maps as objects, unions as their value, bytes and
/// fixed as base64 text (as Go prints `[]byte`), enums as their symbol, dates and
/// timestamps as RFC 3339 text, times as nanoseconds (Go's `time.Duration`). A unit test
/// checks it against the apache-avro crate's reader.
pub(crate) fn decode(schema: &Encoding, datum: &[u8]) -> Result<Value, String> {
    let mut input = datum;
    let value = read(&schema.schema, &schema.names, &mut input)
        .map_err(|e| format!("could not decode: {e}"))?;
    if !input.is_empty() {
        return Err(format!(
            "could not decode: {} bytes left after the datum",
            input.len()
        ));
    }
    Ok(value)
}

fn read_long(input: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = input.split_first() else {
            return Err("the data ends inside a number".into());
        };
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("a number longer than 10 bytes".into())
}

fn read_fixed<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err(format!("the data ends inside a value of {n} bytes"));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn read_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = read_long(input)?;
    let n = usize::try_from(n).map_err(|_| format!("a negative length {n}"))?;
    read_fixed(input, n)
}

fn read_string(input: &mut &[u8]) -> Result<String, String> {
    let bytes = read_bytes(input)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string that is not UTF-8".into())
}

/// The item count of the next block of an array or map (0 at the end).
fn read_block(input: &mut &[u8]) -> Result<usize, String> {
    let count = read_long(input)?;
    if count < 0 {
        // A negative count is followed by the block's size in bytes.
        read_long(input)?;
    }
    usize::try_from(count.unsigned_abs()).map_err(|_| "a block too large".into())
}

fn base64_text(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn float_value(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn timestamp_value(nanos: i128) -> Value {
    let seconds = nanos.div_euclid(1_000_000_000) as i64;
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(seconds, sub).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

fn date_value(days: i32) -> Value {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map_or(Value::Null, |d| {
            Value::String(format!("{}T00:00:00Z", d.format("%Y-%m-%d")))
        })
}

fn read_int(input: &mut &[u8]) -> Result<i32, String> {
    let n = read_long(input)?;
    i32::try_from(n).map_err(|_| format!("{n} does not fit an int"))
}

fn read(schema: &Schema, names: &Names, input: &mut &[u8]) -> Result<Value, String> {
    Ok(match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => match read_fixed(input, 1)?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            other => return Err(format!("{other} is not a boolean")),
        },
        Schema::Int => Value::from(read_int(input)?),
        Schema::Long => Value::from(read_long(input)?),
        Schema::Float => {
            let bytes = read_fixed(input, 4)?;
            float_value(f64::from(f32::from_le_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ])))
        }
        Schema::Double => {
            let bytes = read_fixed(input, 8)?;
            let mut array = [0; 8];
            array.copy_from_slice(bytes);
            float_value(f64::from_le_bytes(array))
        }
        Schema::Bytes => base64_text(read_bytes(input)?),
        Schema::String | Schema::Uuid(apache_avro::schema::UuidSchema::String) => {
            Value::String(read_string(input)?)
        }
        Schema::Uuid(apache_avro::schema::UuidSchema::Bytes) => uuid_value(read_bytes(input)?)?,
        Schema::Uuid(apache_avro::schema::UuidSchema::Fixed(fixed)) => {
            uuid_value(read_fixed(input, fixed.size)?)?
        }
        Schema::Fixed(fixed) => base64_text(read_fixed(input, fixed.size)?),
        Schema::Enum(e) => {
            let index = read_long(input)?;
            let symbol = usize::try_from(index)
                .ok()
                .and_then(|i| e.symbols.get(i))
                .ok_or_else(|| format!("enum index {index} is out of range"))?;
            Value::String(symbol.clone())
        }
        Schema::Array(array) => {
            let mut items = Vec::new();
            loop {
                let count = read_block(input)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    items.push(read(&array.items, names, input)?);
                }
            }
            Value::Array(items)
        }
        Schema::Map(map) => {
            let mut entries = Map::new();
            loop {
                let count = read_block(input)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    let key = read_string(input)?;
                    entries.insert(key, read(&map.types, names, input)?);
                }
            }
            Value::Object(entries)
        }
        Schema::Union(union) => {
            let index = read_long(input)?;
            let variant = usize::try_from(index)
                .ok()
                .and_then(|i| union.variants().get(i))
                .ok_or_else(|| format!("union index {index} is out of range"))?;
            read(variant, names, input)?
        }
        Schema::Record(record) => {
            let mut fields = Map::new();
            for field in &record.fields {
                fields.insert(field.name.clone(), read(&field.schema, names, input)?);
            }
            Value::Object(fields)
        }
        Schema::Date => date_value(read_int(input)?),
        Schema::TimeMillis => Value::from(i64::from(read_int(input)?) * 1_000_000),
        Schema::TimeMicros => Value::from(read_long(input)?.saturating_mul(1_000)),
        Schema::TimestampMillis | Schema::LocalTimestampMillis => {
            timestamp_value(i128::from(read_long(input)?) * 1_000_000)
        }
        Schema::TimestampMicros | Schema::LocalTimestampMicros => {
            timestamp_value(i128::from(read_long(input)?) * 1_000)
        }
        Schema::TimestampNanos | Schema::LocalTimestampNanos => {
            timestamp_value(i128::from(read_long(input)?))
        }
        Schema::Decimal(decimal) => match &decimal.inner {
            apache_avro::schema::InnerDecimalSchema::Bytes => base64_text(read_bytes(input)?),
            apache_avro::schema::InnerDecimalSchema::Fixed(fixed) => {
                base64_text(read_fixed(input, fixed.size)?)
            }
        },
        Schema::Duration(_) => {
            let bytes = read_fixed(input, 12)?;
            let part = |i: usize| {
                Value::from(u32::from_le_bytes([
                    bytes[i],
                    bytes[i + 1],
                    bytes[i + 2],
                    bytes[i + 3],
                ]))
            };
            Value::Object(Map::from_iter([
                ("months".to_owned(), part(0)),
                ("days".to_owned(), part(4)),
                ("millis".to_owned(), part(8)),
            ]))
        }
        Schema::BigDecimal => return Err("big-decimal values cannot be decoded to JSON yet".into()),
        Schema::Ref { name } => match names.get(&name.fullname(None)) {
            Some(named) => read(named, names, input)?,
            None => {
                return Err(format!(
                    "the schema names {name:?}, which it does not define"
                ))
            }
        },
    })
}

fn uuid_value(bytes: &[u8]) -> Result<Value, String> {
    apache_avro::Uuid::from_slice(bytes)
        .map(|u| Value::String(u.to_string()))
        .map_err(|e| format!("not a UUID: {e}"))
}

/// The apache-avro crate's reader, as the reference the tests hold [`decode`] to.
#[cfg(test)]
pub(crate) fn decode_with_the_crate(schema: &Schema, datum: &[u8]) -> Result<Value, String> {
    let mut reader = datum;
    let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .and_then(|r| r.read_value(&mut reader))
        .map_err(|e| format!("could not decode: {e}"))?;
    Ok(to_json(value))
}

#[cfg(test)]
/// An Avro value as JSON: records and maps as objects, unions as their value, bytes as
/// base64 text (as Go prints `[]byte`), enums as their symbol, dates and timestamps as
/// RFC 3339 text, times as nanoseconds (Go's `time.Duration`).
fn to_json(value: Avro) -> Value {
    use chrono::{DateTime, NaiveDate};
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    let timestamp = |nanos: i128| -> Value {
        let seconds = nanos.div_euclid(1_000_000_000) as i64;
        let sub = nanos.rem_euclid(1_000_000_000) as u32;
        DateTime::from_timestamp(seconds, sub).map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
    };
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) => Value::from(i),
        Avro::Long(i) => Value::from(i),
        Avro::Float(f) => float(f64::from(f)),
        Avro::Double(f) => float(f),
        Avro::Bytes(bytes) | Avro::Fixed(_, bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Union(_, inner) => to_json(*inner),
        Avro::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Avro::Map(items) => {
            Value::Object(items.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Avro::Record(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Avro::Date(days) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(days))))
            .map_or(Value::Null, |d| {
                Value::String(format!("{}T00:00:00Z", d.format("%Y-%m-%d")))
            }),
        Avro::TimeMillis(ms) => Value::from(i64::from(ms) * 1_000_000),
        Avro::TimeMicros(us) => Value::from(us.saturating_mul(1_000)),
        Avro::TimestampMillis(t) | Avro::LocalTimestampMillis(t) => {
            timestamp(i128::from(t) * 1_000_000)
        }
        Avro::TimestampMicros(t) | Avro::LocalTimestampMicros(t) => {
            timestamp(i128::from(t) * 1_000)
        }
        Avro::TimestampNanos(t) | Avro::LocalTimestampNanos(t) => timestamp(i128::from(t)),
        Avro::Uuid(u) => Value::String(u.to_string()),
        Avro::Decimal(d) => {
            let bytes: Vec<u8> = Vec::try_from(d).unwrap_or_default();
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Duration(d) => Value::Object(Map::from_iter([
            ("months".to_owned(), Value::from(u32::from(d.months()))),
            ("days".to_owned(), Value::from(u32::from(d.days()))),
            ("millis".to_owned(), Value::from(u32::from(d.millis()))),
        ])),
    }
}

/// The schema Conduit's `autoRegister` strategy infers for structured data: objects are
/// records (named by their path from `record`, fields sorted by name), integers `long`,
/// other numbers `double`, null a nullable string, arrays of a union of their items' types
/// with null; union members are sorted as Conduit sorts them.
pub(crate) fn infer(data: &Map<String, Value>) -> Result<Value, String> {
    infer_object(&mut vec!["record".to_owned()], data)
}

/// A compact text of a value's keys and the kind of every value, nested: two values with
/// the same text get the same schema from [`infer`] (two with different texts may too, as
/// arrays of different lengths do). Cheaper than inferring, so the `autoRegister`
/// strategy looks its schemas up by it.
pub(crate) fn shape(data: &Map<String, Value>, out: &mut impl ShapeSink) {
    out.put("{");
    let mut digits = itoa::Buffer::new();
    for (key, value) in data {
        out.put(digits.format(key.len()));
        out.put(":");
        out.put(key);
        out.put("=");
        shape_of(value, out);
    }
    out.put("}");
}

/// A scalar's letter in a shape's text; `None` for an object or an array.
fn letter(value: &Value) -> Option<&'static str> {
    Some(match value {
        Value::Null => "n",
        Value::Bool(_) => "b",
        Value::Number(n) if n.is_i64() => "l",
        Value::Number(n) if n.is_u64() => "u",
        Value::Number(_) => "d",
        Value::String(_) => "s",
        Value::Object(_) | Value::Array(_) => return None,
    })
}

fn shape_of(value: &Value, out: &mut impl ShapeSink) {
    if let Some(letter) = letter(value) {
        return out.put(letter);
    }
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        Value::Object(map) => shape(map, out),
        Value::Array(items) => {
            out.put("[");
            for item in items {
                shape_of(item, out);
                out.put(",");
            }
            out.put("]");
        }
    }
}

/// A shape seen before, to match data against quickly: the text [`shape`] built, and for
/// data without objects or arrays in it (a flat record, the usual case) each field, matched
/// directly without walking the text.
pub(crate) struct KnownShape {
    text: String,
    flat: Option<Vec<FlatField>>,
}

/// A field of a flat shape.
struct FlatField {
    name: String,
    /// The name as canonical JSON writes it, with its colon (`"name":`).
    json_key: String,
    letter: &'static str,
}

impl KnownShape {
    /// `text`, the shape [`shape`] built for `data`.
    pub(crate) fn new(text: String, data: &Map<String, Value>) -> Self {
        let flat = data
            .iter()
            .map(|(name, value)| {
                // A nested value: not flat (and no key text made for nothing).
                let letter = letter(value)?;
                let mut json_key = serde_json::to_string(name).unwrap_or_default();
                json_key.push(':');
                Some(FlatField {
                    name: name.clone(),
                    json_key,
                    letter,
                })
            })
            .collect();
        Self { text, flat }
    }

    /// Whether `data` has this shape (exactly when [`shape`] would build the same text).
    pub(crate) fn matches(&self, data: &Map<String, Value>) -> bool {
        match &self.flat {
            Some(fields) => {
                fields.len() == data.len()
                    && fields.iter().zip(data).all(|(field, (key, value))| {
                        field.name == *key && letter(value) == Some(field.letter)
                    })
            }
            None => {
                let mut same = SameShape::new(&self.text);
                shape(data, &mut same);
                same.matched()
            }
        }
    }

    /// [`matches`](Self::matches) for structured data that may still be JSON text: a flat
    /// shape is matched against the canonical text directly, without building the map (a
    /// source's records pass through unparsed). Anything else is matched on the map.
    pub(crate) fn matches_structured(&self, data: &Structured) -> bool {
        match (&self.flat, data.json_text()) {
            (Some(fields), Some(text)) => matches_canonical(fields, text.as_bytes()),
            _ => self.matches(data),
        }
    }
}

/// Whether canonical JSON text (see `Structured`: what serde_json writes for a map) holds
/// exactly a flat shape's fields, in order, with values of their letters.
fn matches_canonical(fields: &[FlatField], text: &[u8]) -> bool {
    if text.first() != Some(&b'{') {
        return false;
    }
    let mut at = 1;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            if text.get(at) != Some(&b',') {
                return false;
            }
            at += 1;
        }
        if !text[at..].starts_with(field.json_key.as_bytes()) {
            return false;
        }
        at += field.json_key.len();
        match canonical_scalar(text, at) {
            Some((letter, end)) if letter == field.letter => at = end,
            _ => return false,
        }
    }
    text.get(at..) == Some(b"}")
}

/// The letter ([`letter`]) of the scalar at `at` in canonical JSON text and where it ends;
/// `None` for an object or an array. Canonical text has no whitespace; in its strings a
/// backslash escapes the byte after it, so a string ends at the first quote not escaped;
/// its numbers are serde_json's: integers as digits (parsed back as i64, else u64, else
/// f64), floats with a `.` or an exponent.
fn canonical_scalar(text: &[u8], at: usize) -> Option<(&'static str, usize)> {
    match *text.get(at)? {
        b'"' => {
            let mut from = at + 1;
            loop {
                let end = from + memchr::memchr2(b'"', b'\\', text.get(from..)?)?;
                if text[end] == b'"' {
                    return Some(("s", end + 1));
                }
                // An escape: the next byte is part of it.
                from = end + 2;
            }
        }
        b'n' => Some(("n", at + 4)),
        b't' => Some(("b", at + 4)),
        b'f' => Some(("b", at + 5)),
        b'-' | b'0'..=b'9' => {
            let len = text[at..]
                .iter()
                .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                .unwrap_or(text.len() - at);
            let number = std::str::from_utf8(&text[at..at + len]).ok()?;
            let letter = if number.contains(['.', 'e', 'E']) {
                "d"
            } else if number.parse::<i64>().is_ok() {
                "l"
            } else if number.parse::<u64>().is_ok() {
                "u"
            } else {
                "d"
            };
            Some((letter, at + len))
        }
        _ => None,
    }
}

/// Data whose shape can be matched against a [`KnownShape`]: a map, or structured data that
/// may still be JSON text.
pub(crate) trait Shaped {
    /// The map (parsed, for data still in text).
    fn map(&self) -> &Map<String, Value>;
    /// Whether the data has `known`'s shape.
    fn has_shape(&self, known: &KnownShape) -> bool;
}

impl Shaped for Map<String, Value> {
    fn map(&self) -> &Map<String, Value> {
        self
    }

    fn has_shape(&self, known: &KnownShape) -> bool {
        known.matches(self)
    }
}

impl Shaped for Structured {
    fn map(&self) -> &Map<String, Value> {
        self.as_map()
    }

    fn has_shape(&self, known: &KnownShape) -> bool {
        known.matches_structured(self)
    }
}

/// Values made for data of one shape (inferred schemas), remembered by a scope (a subject)
/// and the data's shape. The last one used is matched first, field by field, without
/// building the data's shape text or hashing it: a source's records mostly share one shape.
/// At most `limit` are kept; then the memory is cleared (array shapes vary with their
/// lengths, so the set of shapes is not bounded).
pub(crate) struct ShapeCache<V> {
    by_shape: HashMap<(String, String), V>,
    last: Option<(String, KnownShape, V)>,
    limit: usize,
}

impl<V: Clone> ShapeCache<V> {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            by_shape: HashMap::new(),
            last: None,
            limit,
        }
    }

    /// The value for `data` under `scope`, or the shape text to [`insert`](Self::insert)
    /// one under once it is made.
    pub(crate) fn get(&mut self, scope: &str, data: &impl Shaped) -> Result<V, String> {
        if let Some((last_scope, known, value)) = &self.last {
            if last_scope == scope && data.has_shape(known) {
                return Ok(value.clone());
            }
        }
        let mut text = String::with_capacity(64);
        shape(data.map(), &mut text);
        let key = (scope.to_owned(), text);
        match self.by_shape.get(&key) {
            Some(value) => {
                let value = value.clone();
                let (scope, text) = key;
                self.last = Some((scope, KnownShape::new(text, data.map()), value.clone()));
                Ok(value)
            }
            None => Err(key.1),
        }
    }

    /// Remember `value` for data of `data`'s shape (`shape`, as [`get`](Self::get) gave it)
    /// under `scope`; it is the last one used now.
    pub(crate) fn insert(&mut self, scope: String, shape: String, data: &impl Shaped, value: V) {
        if self.by_shape.len() >= self.limit {
            self.by_shape.clear();
        }
        self.last = Some((
            scope.clone(),
            KnownShape::new(shape.clone(), data.map()),
            value.clone(),
        ));
        self.by_shape.insert((scope, shape), value);
    }
}

/// Where [`shape`] puts a shape's text as it walks the data: a `String` it is built in, or
/// a [`SameShape`] comparing it with one built before.
pub(crate) trait ShapeSink {
    /// The next piece of the text.
    fn put(&mut self, text: &str);
}

impl ShapeSink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

/// Whether data has a shape given as text, found without building the data's own: the
/// pieces [`shape`] produces are matched against the text as they come.
pub(crate) struct SameShape<'a> {
    rest: &'a str,
    same: bool,
}

impl<'a> SameShape<'a> {
    /// A comparison with `expected`, a text [`shape`] built.
    pub(crate) fn new(expected: &'a str) -> Self {
        Self {
            rest: expected,
            same: true,
        }
    }

    /// Whether the walked data's shape is the expected one, to its end.
    pub(crate) fn matched(&self) -> bool {
        self.same && self.rest.is_empty()
    }
}

impl ShapeSink for SameShape<'_> {
    fn put(&mut self, text: &str) {
        if !self.same {
            return;
        }
        // Pieces are one byte (punctuation, a type letter) or a short key or length: they
        // are compared byte by byte here, not with a `memcmp` call each (which cost more
        // than the comparing, at ~250 pieces per record of 39 fields).
        let (rest, piece) = (self.rest.as_bytes(), text.as_bytes());
        if rest.len() >= piece.len() && rest.iter().zip(piece).all(|(a, b)| a == b) {
            // A whole piece of valid UTF-8 matched: the rest starts on a char boundary.
            self.rest = &self.rest[piece.len()..];
        } else {
            self.same = false;
        }
    }
}

fn infer_object(path: &mut Vec<String>, data: &Map<String, Value>) -> Result<Value, String> {
    let mut fields: Vec<(&String, &Value)> = data.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        path.push(name.clone());
        let schema = infer_value(path, value);
        path.pop();
        out.push(serde_json::json!({"name": name, "type": schema?}));
    }
    Ok(serde_json::json!({"type": "record", "name": path.join("."), "fields": out}))
}

fn infer_value(path: &mut Vec<String>, value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::Null => Value::Array(vec!["null".into(), "string".into()]),
        Value::Bool(_) => "boolean".into(),
        Value::Number(n) if n.is_i64() => "long".into(),
        Value::Number(n) if n.is_u64() => {
            return Err(format!("{}: {n} does not fit a long", path.join(".")))
        }
        Value::Number(_) => "double".into(),
        Value::String(_) => "string".into(),
        Value::Object(map) => infer_object(path, map)?,
        Value::Array(items) => {
            let mut types = vec![Value::from("null")];
            for (index, item) in items.iter().enumerate() {
                path.push(format!("item{index}"));
                let schema = infer_value(path, item);
                path.pop();
                add_member(&mut types, schema?)?;
            }
            if items.is_empty() {
                types.push("string".into());
            }
            types.sort_by_key(union_sort_key);
            serde_json::json!({"type": "array", "items": types})
        }
    })
}

/// Add `schema` to a union's members unless it is there; a union's members are added one
/// by one; two arrays are combined into one of both item types.
fn add_member(types: &mut Vec<Value>, schema: Value) -> Result<(), String> {
    if let Value::Array(members) = schema {
        for member in members {
            add_member(types, member)?;
        }
        return Ok(());
    }
    if types.contains(&schema) {
        return Ok(());
    }
    let kind = |s: &Value| s.get("type").and_then(Value::as_str).map(str::to_owned);
    if let Some(k) = kind(&schema) {
        if let Some(existing) = types.iter_mut().find(|t| kind(t).as_deref() == Some(&k)) {
            if k != "array" {
                return Err(format!(
                    "can't combine two {k} schemas of different shapes in one array"
                ));
            }
            let mut items = match existing["items"].take() {
                Value::Array(items) => items,
                one => vec![one],
            };
            add_member(&mut items, schema["items"].clone())?;
            items.sort_by_key(union_sort_key);
            existing["items"] = if items.len() == 1 {
                items.remove(0)
            } else {
                Value::Array(items)
            };
            return Ok(());
        }
    }
    types.push(schema);
    Ok(())
}

/// How Conduit orders a union's members: by their schema text, in which a primitive is
/// `"name"`, a record starts `{"name":` and an array `{"type":"array"`.
fn union_sort_key(schema: &Value) -> String {
    match schema {
        Value::String(name) => format!("\"{name}\""),
        Value::Object(o) if o.get("type") == Some(&Value::from("record")) => format!(
            "{{\"name\":\"{}\"",
            o.get("name").and_then(Value::as_str).unwrap_or_default()
        ),
        Value::Object(o) => format!(
            "{{\"type\":\"{}\"",
            o.get("type").and_then(Value::as_str).unwrap_or_default()
        ),
        other => other.to_string(),
    }
}

/// A schema registry in memory, with the built-in registry's rules (for tests, benchmarks
/// and embedding; schemas do not outlive it). Texts must be Avro schemas.
#[derive(Default)]
pub struct MemoryRegistry(Mutex<Schemas>);

impl SchemaRegistry for MemoryRegistry {
    fn create(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
    ) -> Result<RegisteredSchema, SchemaError> {
        parse_schema(text).map_err(SchemaError::InvalidSchema)?;
        self.0
            .lock()
            .expect("registry lock")
            .register(subject, schema_type, text)
            .map_err(|e| SchemaError::InvalidSchema(e.to_string()))
    }

    fn get(&self, subject: &str, version: u32) -> Result<RegisteredSchema, SchemaError> {
        let schemas = self.0.lock().expect("registry lock");
        schemas
            .get(subject, version)
            .ok_or_else(|| SchemaError::missing_version(schemas.has_subject(subject)))
    }

    fn by_id(&self, id: u32) -> Result<(SchemaType, String), SchemaError> {
        self.0
            .lock()
            .expect("registry lock")
            .by_id(id)
            .map(|(kind, text)| (kind, text.to_owned()))
            .ok_or(SchemaError::IdNotFound(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_header_is_a_zero_byte_and_the_id_big_endian() {
        assert_eq!(with_header(258, vec![7]), vec![0, 0, 0, 1, 2, 7]);
        assert_eq!(
            split_header(&[0, 0, 0, 1, 2, 7]).unwrap(),
            (258, &[7u8][..])
        );
        assert!(split_header(&[0, 0, 1]).unwrap_err().contains("too short"));
        assert!(split_header(&[1, 0, 0, 0, 1])
            .unwrap_err()
            .contains("magic"));
        assert!(split_header(&[]).is_err());
    }

    #[test]
    fn inferred_schemas_sort_fields_and_union_members_as_conduit_does() {
        let data = json!({
            "myString": "bar", "myInt": 1, "myFloat": 2.3, "nothing": null,
            "myMap": {"foo": true, "bar": 2.2},
            "list": [1, "a", [1], ["b"]], "empty": []
        });
        let schema = infer(data.as_object().unwrap()).unwrap();
        let names: Vec<&str> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["empty", "list", "myFloat", "myInt", "myMap", "myString", "nothing"]
        );
        assert_eq!(
            schema["fields"][0]["type"],
            json!({"type": "array", "items": ["null", "string"]})
        );
        assert_eq!(
            schema["fields"][1]["type"],
            json!({"type": "array", "items": [
                "long", "null", "string",
                {"type": "array", "items": ["long", "null", "string"]}
            ]})
        );
        assert_eq!(schema["fields"][4]["type"]["name"], "record.myMap");
        assert_eq!(schema["fields"][6]["type"], json!(["null", "string"]));
        parse_schema(&schema.to_string()).unwrap();
    }

    #[test]
    fn same_shape_and_known_shape_agree_with_comparing_the_built_texts() {
        let values = [
            json!({}),
            json!({"a": 1}),
            json!({"a": 2}),
            json!({"a": 1.5}),
            json!({"a": 1, "b": "x"}),
            json!({"a": 1, "bb": "x"}),
            json!({"a": 1, "b": "x", "c": null}),
            json!({"a": null}),
            json!({"a": true}),
            json!({"a": "1"}),
            json!({"a": -1}),
            json!({"a": u64::MAX}),
            json!({"b": 1}),
            json!({"a": []}),
            json!({"a": {}}),
            json!({"a": {"b": [1, "x", null]}}),
            json!({"a": {"b": [1, "x"]}}),
            json!({"a": {"b": [1, "x", null]}, "c": true}),
            json!({"a\"b": 1}),
            json!({"a": i64::MAX}),
            json!({"a": i64::MAX as u64 + 1}),
            json!({"a": -0.0}),
            json!({"a": 1, "b": "x\u{1}", "c": null}),
            json!({"a": 1, "b": "x\"y\\", "c": null}),
            json!({"a": 1, "b": "\\", "c": null}),
            json!({"a\\": 1}),
            json!({"a": i64::MIN}),
            json!({"a": 1e300}),
            json!({"a": u64::MAX, "b": "x"}),
        ];
        let built = |v: &Value| {
            let mut out = String::new();
            shape(v.as_object().unwrap(), &mut out);
            out
        };
        for expected in &values {
            let text = built(expected);
            let known = KnownShape::new(text.clone(), expected.as_object().unwrap());
            for data in &values {
                let mut same = SameShape::new(&text);
                shape(data.as_object().unwrap(), &mut same);
                assert_eq!(same.matched(), built(data) == text, "{expected} vs {data}");
                assert_eq!(
                    known.matches(data.as_object().unwrap()),
                    built(data) == text,
                    "known {expected} vs {data}"
                );
                // The same data as canonical JSON text: matched without the map.
                let unparsed = Structured::from_serialized(data).unwrap();
                assert_eq!(
                    known.matches_structured(&unparsed),
                    built(data) == text,
                    "known {expected} vs the text of {data}"
                );
                assert!(unparsed.json_text().is_some());
            }
        }
    }

    #[test]
    fn equal_shapes_have_equal_keys_and_different_ones_do_not() {
        let key = |v: Value| {
            let mut out = String::new();
            shape(v.as_object().unwrap(), &mut out);
            out
        };
        assert_eq!(
            key(json!({"a": 1, "b": [1, "x"]})),
            key(json!({"a": 2, "b": [3, "y"]}))
        );
        for (one, other) in [
            (json!({"a": 1}), json!({"a": 1.5})),
            (json!({"a": 1}), json!({"b": 1})),
            (json!({"a": null}), json!({"a": "x"})),
            (json!({"a": [1]}), json!({"a": [1, 2]})),
            (json!({"a": {"b": 1}}), json!({"a": {"b": true}})),
            (json!({"ab": 1}), json!({"a": 1, "b": 1})),
        ] {
            assert_ne!(key(one.clone()), key(other.clone()), "{one} vs {other}");
        }
    }

    #[test]
    fn records_of_different_shapes_in_one_array_are_refused() {
        let data = json!({"list": [{"a": 1}, {"b": 2}]});
        let error = infer(data.as_object().unwrap()).unwrap_err();
        assert!(
            error.contains("can't combine two record schemas"),
            "{error}"
        );
    }

    #[test]
    fn values_round_trip_through_a_schema() {
        let schema = parse_schema(
            r#"{"type":"record","name":"r","fields":[
                {"name":"s","type":"string"},{"name":"i","type":"int"},
                {"name":"n","type":["null","long"]},{"name":"b","type":"bytes"},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
                {"name":"m","type":{"type":"map","values":"double"}},
                {"name":"a","type":{"type":"array","items":"boolean"}}]}"#,
        )
        .unwrap();
        let value = json!({"s": "x", "i": 7, "n": null, "b": "AAE=", "e": "B",
                           "m": {"k": 1.5}, "a": [true, false]});
        let encoding = encoding(schema.clone()).unwrap();
        let datum = encode(&encoding, &value).unwrap();
        // The crate's own encoder agrees byte for byte (it writes a string's UTF-8 into a
        // bytes field; text that is not base64 is written so here too).
        let plain = json!({"s": "x", "i": 7, "n": 5, "b": "raw!", "e": "A",
                           "m": {"k": 1.5}, "a": [true]});
        let reference = apache_avro::types::Value::try_from(plain.clone())
            .and_then(|v| v.resolve(&schema))
            .unwrap();
        #[allow(deprecated)]
        let theirs = apache_avro::to_avro_datum(&schema, reference).unwrap();
        assert_eq!(encode(&encoding, &plain).unwrap(), theirs);
        let back = decode(&encoding, &datum).unwrap();
        // Bytes come back as base64 text, as Go prints []byte.
        assert_eq!(back["s"], "x");
        assert_eq!(back["i"], 7);
        assert_eq!(back["n"], Value::Null);
        assert_eq!(back["e"], "B");
        assert_eq!(back["m"], json!({"k": 1.5}));
        assert_eq!(back["a"], json!([true, false]));
        assert_eq!(back["b"], "AAE=", "bytes are base64 text both ways");
        let missing = encode(&encoding, &json!({"s": "x"})).unwrap_err();
        assert!(
            missing.contains("i: missing, and it has no default"),
            "{missing}"
        );
        let wrong = encode(&encoding, &json!({"s": 1})).unwrap_err();
        assert!(
            wrong.contains("s: want a string, have an integer"),
            "{wrong}"
        );
        let trailing = [datum.as_slice(), &[0]].concat();
        assert!(decode(&encoding, &trailing)
            .unwrap_err()
            .contains("left after"));
        assert!(decode(&encoding, &datum[..2]).is_err());
    }

    #[test]
    fn the_memory_registry_refuses_texts_that_are_not_avro() {
        let registry = MemoryRegistry::default();
        assert!(matches!(
            registry.create("s", SchemaType::Avro, "{\"type\":\"nope\"}"),
            Err(SchemaError::InvalidSchema(_))
        ));
        let first = registry
            .create("s", SchemaType::Avro, "\"string\"")
            .unwrap();
        assert_eq!((first.version, first.id), (1, 1));
        assert_eq!(registry.get("s", 2), Err(SchemaError::VersionNotFound));
        assert_eq!(registry.get("t", 1), Err(SchemaError::SubjectNotFound));
        assert_eq!(registry.by_id(2), Err(SchemaError::IdNotFound(2)));
    }

    #[test]
    fn the_decoder_agrees_with_the_crates_reader() {
        let schema = parse_schema(
            r#"{"type":"record","name":"r","namespace":"ns","fields":[
                {"name":"n","type":"null"},{"name":"b","type":"boolean"},
                {"name":"i","type":"int"},{"name":"l","type":"long"},
                {"name":"f","type":"float"},{"name":"d","type":"double"},
                {"name":"by","type":"bytes"},{"name":"s","type":"string"},
                {"name":"fx","type":{"type":"fixed","name":"F","size":3}},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
                {"name":"a","type":{"type":"array","items":["null","long","string"]}},
                {"name":"m","type":{"type":"map","values":"double"}},
                {"name":"inner","type":{"type":"record","name":"I","fields":[
                    {"name":"x","type":"int"}]}},
                {"name":"again","type":["null","I"]},
                {"name":"date","type":{"type":"int","logicalType":"date"}},
                {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
                {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
                {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
                {"name":"id","type":{"type":"string","logicalType":"uuid"}}]}"#,
        )
        .unwrap();
        let value = json!({
            "n": null, "b": true, "i": -7, "l": 1_234_567_890_123_i64, "f": 1.5, "d": -0.25,
            "by": "AAEC", "s": "héllo", "fx": "AQID", "e": "C",
            "a": [null, 5, "x"], "m": {"k": 2.5, "j": -1.0}, "inner": {"x": 3},
            "again": {"x": 4}, "date": 19_000, "tm": 1_000, "tu": 2_000_000,
            "ts": 1_700_000_000_123_i64, "tsu": 1_700_000_000_123_456_i64,
            "id": "67e55044-10b1-426f-9247-bb680e5fe0c8"
        });
        let encoding = encoding(schema.clone()).unwrap();
        let datum = encode(&encoding, &value).unwrap();
        let ours = decode(&encoding, &datum).unwrap();
        assert_eq!(ours, decode_with_the_crate(&schema, &datum).unwrap());
        assert_eq!(ours["again"], json!({"x": 4}));
        assert_eq!(ours["date"], "2022-01-08T00:00:00Z");
        // Cut anywhere, the datum is an error, never a panic.
        for end in 0..datum.len() {
            assert!(decode(&encoding, &datum[..end]).is_err(), "{end}");
        }
    }
}
