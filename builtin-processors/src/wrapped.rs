//! Records carried in other records, as the unwrap processors read them: the processor
//! that replaces each record with the one it carries ([`Unwrap`]), the JSON object a field
//! holds ([`wrapped_object`], [`parse_object`]) and a key in Kafka Connect form
//! ([`unwrap_key`]).

use crate::gofmt::{go_sprint, go_type, Numbers};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use culvert_domain::{Data, Record};
use culvert_plugins::processor::Processor;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// An unwrap processor: each record is replaced by the record `unwrap` makes of it, reading
/// the wrapped one from `field`. A record that cannot be unwrapped fails, unchanged.
pub(crate) struct Unwrap {
    field: Reference,
    unwrap: fn(&Reference, &Record) -> Result<Record, String>,
}

impl Unwrap {
    /// The processor, ready to run.
    pub(crate) fn processor(
        field: Reference,
        unwrap: fn(&Reference, &Record) -> Result<Record, String>,
    ) -> Box<dyn Processor> {
        Box::new(PerRecord(Self { field, unwrap }))
    }
}

impl RecordProcessor for Unwrap {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        *record = (self.unwrap)(&self.field, record)?;
        Ok(())
    }
}

/// The object `field` holds in `record`, for `unwrap.debezium` and `unwrap.kafkaconnect`:
/// structured data is used as it is, raw data and strings are parsed as JSON (so Go holds
/// their numbers as `float64`s, as the second part of the answer says). `suffix` is added
/// to the error for other kinds of value.
pub(crate) fn wrapped_object<'r>(
    field: &Reference,
    record: &'r Record,
    suffix: &str,
) -> Result<(Cow<'r, Map<String, Value>>, Numbers), String> {
    // Structured data in a whole data field is read where it is, not copied.
    let whole = if field.is(&["Payload", "After"]) {
        Some(&record.payload.after)
    } else if field.is(&["Payload", "Before"]) {
        Some(&record.payload.before)
    } else if field.is(&["Key"]) {
        Some(&record.key)
    } else {
        None
    };
    if let Some(Some(Data::Structured(object))) = whole {
        return Ok((Cow::Borrowed(object.as_map()), Numbers::AsHeld));
    }
    let value = field
        .get(record)
        .map_err(|e| format!("failed resolving reference: {e}"))?;
    match value {
        FieldValue::Data(Some(Data::Structured(object))) => {
            Ok((Cow::Owned(object.into_map()), Numbers::AsHeld))
        }
        FieldValue::Json(Value::Object(object)) => Ok((Cow::Owned(object), Numbers::AsHeld)),
        FieldValue::Data(Some(Data::Raw(bytes))) => parse_object(&bytes)
            .map(|object| (Cow::Owned(object), Numbers::Float64))
            .map_err(|e| format!("failed unmarshalling JSON from raw data: {e}")),
        FieldValue::Text(text) | FieldValue::Json(Value::String(text)) => {
            parse_object(text.as_bytes())
                .map(|object| (Cow::Owned(object), Numbers::Float64))
                .map_err(|e| format!("failed unmarshalling JSON from string: {e}"))
        }
        other => Err(format!(
            "unexpected data type {}{suffix}",
            go_type(&other, Numbers::Float64)
        )),
    }
}

/// The structured data in the whole field `field` (`.Payload.After`, `.Payload.Before` or
/// `.Key`), taken out of `record`: for a caller that had it from [`wrapped_object`] as
/// borrowed and now makes it part of the record. Anything else there is left alone and an
/// empty object answered.
pub(crate) fn take_whole_object(field: &Reference, record: &mut Record) -> Map<String, Value> {
    let slot = if field.is(&["Payload", "After"]) {
        &mut record.payload.after
    } else if field.is(&["Payload", "Before"]) {
        &mut record.payload.before
    } else if field.is(&["Key"]) {
        &mut record.key
    } else {
        return Map::new();
    };
    match slot.take() {
        Some(Data::Structured(object)) => object.into_map(),
        other => {
            *slot = other;
            Map::new()
        }
    }
}

/// Parse JSON text that must hold an object; `null` is an empty object (as Go decodes it
/// into a map).
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string())? {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(Map::new()),
        other => Err(format!(
            "cannot unmarshal {} into an object",
            json_kind(&other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The key of an unwrapped Debezium or Kafka Connect record: when the key (structured data,
/// or raw data holding a JSON object) has a `payload` field, that field (an object becomes
/// structured data, anything else raw text as Go prints it); otherwise the key unchanged.
pub(crate) fn unwrap_key(key: &Option<Data>) -> Option<Data> {
    let parsed;
    let (object, numbers) = match key {
        Some(Data::Structured(object)) => (object.as_map(), Numbers::AsHeld),
        Some(Data::Raw(bytes)) => match parse_object(bytes) {
            Ok(object) => {
                parsed = object;
                (&parsed, Numbers::Float64)
            }
            Err(_) => return key.clone(),
        },
        None => return None,
    };
    match object.get("payload") {
        None => key.clone(),
        Some(Value::Object(payload)) => Some(Data::Structured(payload.clone().into())),
        Some(other) => Some(Data::Raw(go_sprint(other, numbers).into_bytes())),
    }
}

/// [`unwrap_key`] for a key the caller owns: the key's parts are moved, not copied.
pub(crate) fn unwrap_key_owned(key: Option<Data>) -> Option<Data> {
    let (mut object, numbers, raw) = match key {
        Some(Data::Structured(object)) => (object.into_map(), Numbers::AsHeld, None),
        Some(Data::Raw(bytes)) => match parse_object(&bytes) {
            Ok(object) => (object, Numbers::Float64, Some(bytes)),
            Err(_) => return Some(Data::Raw(bytes)),
        },
        None => return None,
    };
    let unchanged = |object: Map<String, Value>, raw: Option<Vec<u8>>| match raw {
        Some(bytes) => Some(Data::Raw(bytes)),
        None => Some(Data::Structured(object.into())),
    };
    match object.get("payload") {
        None => unchanged(object, raw),
        Some(Value::Object(_)) => match object.remove("payload") {
            Some(Value::Object(payload)) => Some(Data::Structured(payload.into())),
            _ => None,
        },
        Some(other) => Some(Data::Raw(go_sprint(other, numbers).into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{raw, structured};
    use serde_json::json;

    #[test]
    fn keys() {
        for (key, want) in [
            (None, None),
            (raw("not json"), raw("not json")),
            (raw("[1]"), raw("[1]")),
            (raw("null"), raw("null")),
            (raw(r#"{"id": 1}"#), raw(r#"{"id": 1}"#)),
            (
                raw(r#"{"payload": {"id": 1}}"#),
                structured(json!({"id": 1})),
            ),
            (raw(r#"{"payload": 12345678}"#), raw("1.2345678e+07")),
            (raw(r#"{"payload": null}"#), raw("<nil>")),
            (structured(json!({"payload": 12345678})), raw("12345678")),
            (structured(json!({"payload": true})), raw("true")),
            (structured(json!({"id": 1})), structured(json!({"id": 1}))),
        ] {
            assert_eq!(unwrap_key(&key), want, "{key:?}");
            assert_eq!(unwrap_key_owned(key.clone()), want, "{key:?}");
        }
    }
}
