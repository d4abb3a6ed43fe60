//! Reading a field the way Conduit's reference resolver hands it to a processor, which
//! the base64 and JSON processors do.

use crate::gofmt::{go_type, Numbers};
use crate::reference::{FieldValue, Reference, ReferenceError};
use culvert_domain::Record;
use serde_json::Value;

/// The value `reference` points at in `record`, as Conduit's resolver hands it to a
/// processor: `None` stands for Go's nil (no data, a missing or null data field, a
/// missing metadata key). As in Conduit, resolving a data field creates the objects on
/// the way to it, so a nil field leaves them behind: `.Payload.After.a.b` on a record
/// without `.Payload.After` makes it `{"a": {}}`.
pub(crate) fn resolve(
    reference: &Reference,
    record: &mut Record,
) -> Result<Option<FieldValue>, ReferenceError> {
    match reference.get(record)? {
        FieldValue::Data(None) => Ok(None),
        FieldValue::Text(text) if text.is_empty() => {
            // A metadata key: empty, or missing (nil).
            let mut without = record.clone();
            reference.delete(&mut without)?;
            Ok((without != *record).then_some(FieldValue::Text(text)))
        }
        FieldValue::Json(Value::Null) => {
            // Null stays null; a missing field stays missing, its parents created.
            let mut with_null = record.clone();
            reference.set_value(&mut with_null, FieldValue::Json(Value::Null))?;
            if with_null != *record {
                reference.delete(record)?;
            }
            Ok(None)
        }
        value => Ok(Some(value)),
    }
}

/// The error for a resolved value a processor does not take, naming its Go type.
pub(crate) fn unexpected_type(value: &FieldValue) -> String {
    format!("unexpected data type {}", go_type(value, Numbers::AsHeld))
}

/// A field's value as structured data, as Conduit's processors that want an object take
/// it: structured data, or JSON text in raw data or a string (empty raw data is an empty
/// object). `nil` is the error for a missing or null field.
pub(crate) fn structured_data(
    value: Option<FieldValue>,
    nil: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    use culvert_domain::Data;
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Map<String, Value>>(bytes)
            .map_err(|e| format!("failed unmarshalling JSON from raw data: {e}"))
    };
    match value {
        Some(FieldValue::Data(Some(Data::Structured(map)))) => Ok(map.into_map()),
        Some(FieldValue::Json(Value::Object(map))) => Ok(map),
        Some(FieldValue::Data(Some(Data::Raw(bytes)))) if bytes.is_empty() => {
            Ok(serde_json::Map::new())
        }
        Some(FieldValue::Data(Some(Data::Raw(bytes))) | FieldValue::Bytes(bytes)) => parse(&bytes),
        Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
            parse(text.as_bytes())
        }
        Some(other) => Err(unexpected_type(&other)),
        None => Err(nil.to_owned()),
    }
}
