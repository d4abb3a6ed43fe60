//! Field references: the `.Payload.After.name` paths processors use to point into a record.
//!
//! The syntax and behaviour are those of conduit-processor-sdk's reference resolver, so
//! processor settings written for Conduit mean the same here:
//!
//! * a reference is a chain of fields, `.Position`, `.Operation`, `.Metadata.<key>`,
//!   `.Key[.<field>...]`, `.Payload`, `.Payload.Before[.<field>...]`,
//!   `.Payload.After[.<field>...]`; a field may be written in brackets,
//!   `.Metadata["opencdc.readAt"]`, for names that are not identifiers; a leading `$` is
//!   allowed (`$.Key`);
//! * the first segments may be lower case (`.payload.after.x` is `.Payload.After.x`);
//! * resolving walks into structured data, creating the objects on the way that do not
//!   exist yet (Conduit does the same, so `field.set` can create nested fields); walking
//!   into raw data, into a metadata value or into a non-object field is an error;
//! * `.Position` can never be changed, `.Operation` only set, and only metadata and data
//!   fields can be renamed. Renaming onto a name that exists is an error.

use culvert_domain::{Data, Metadata, Operation, Record};
use serde_json::{Map, Value};

/// A parsed field reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    raw: String,
    fields: Vec<String>,
}

/// Why a reference is not valid, or cannot be used on a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReferenceError(pub String);

/// A value read from a record through a reference, or to write into one.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// `.Position`.
    Position(Vec<u8>),
    /// `.Operation`.
    Operation(Operation),
    /// `.Metadata`, all of it.
    Metadata(Metadata),
    /// A metadata value, or text to store.
    Text(String),
    /// Bytes to store (raw data; base64 text inside structured data).
    Bytes(Vec<u8>),
    /// `.Payload`, both sides.
    Payload(culvert_domain::Change),
    /// `.Key`, `.Payload.Before` or `.Payload.After`: raw or structured data, or none.
    Data(Option<Data>),
    /// A field inside structured data (null when missing), or a JSON value to store.
    Json(Value),
}

impl FieldValue {
    /// The kind of value, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Position(_) => "position",
            Self::Operation(_) => "operation",
            Self::Metadata(_) => "metadata",
            Self::Text(_) => "string",
            Self::Bytes(_) => "bytes",
            Self::Payload(_) => "payload",
            Self::Data(None) => "nil",
            Self::Data(Some(Data::Raw(_))) => "raw data",
            Self::Data(Some(Data::Structured(_))) => "structured data",
            Self::Json(Value::Null) => "nil",
            Self::Json(Value::Bool(_)) => "bool",
            Self::Json(Value::Number(_)) => "number",
            Self::Json(Value::String(_)) => "string",
            Self::Json(Value::Array(_)) => "array",
            Self::Json(Value::Object(_)) => "map",
        }
    }
}

/// Where a reference points in one record.
enum Target<'r> {
    Record,
    Position,
    Operation(&'r mut Operation),
    Metadata(&'r mut Metadata),
    MetadataField(&'r mut Metadata, String),
    Payload(&'r mut culvert_domain::Change),
    /// `.Key`, `.Payload.Before` or `.Payload.After` (the name is the path).
    Data(&'r mut Option<Data>, &'static str),
    /// A field of structured data; `path` names the object it is in.
    Field {
        object: &'r mut Map<String, Value>,
        field: String,
        path: String,
    },
}

impl Reference {
    /// Parse a reference and check that it can point into a record.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let invalid =
            |problem: String| ReferenceError(format!("invalid reference {input:?}: {problem}"));
        let canonical = canonical(input);
        let fields = lex(&canonical).map_err(invalid)?;
        let reference = Self {
            raw: input.to_owned(),
            fields,
        };
        // Walk a blank record: catches `.Foo`, `.Position.x`, `.Metadata.a.b` up front.
        let mut blank = Record::default();
        reference.resolve(&mut blank).map_err(|e| invalid(e.0))?;
        Ok(reference)
    }

    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the reference is exactly this top-level field path (e.g. `[".Position"]`).
    pub fn is(&self, path: &[&str]) -> bool {
        self.fields.len() == path.len() && self.fields.iter().zip(path).all(|(a, b)| a == b)
    }

    /// Set the field to a string (what `field.set` does): text for metadata and data fields,
    /// raw data for `.Key` and the payload sides, an operation name for `.Operation`.
    pub fn set(&self, record: &mut Record, value: String) -> Result<(), ReferenceError> {
        match self.resolve(record)? {
            Target::Record => Err(immutable("cannot set record")),
            Target::Position => Err(immutable("cannot set .Position")),
            Target::Operation(op) => match Operation::parse(&value) {
                Some(parsed) => {
                    *op = parsed;
                    Ok(())
                }
                None => Err(ReferenceError(format!(
                    "failed to set .Operation: unknown operation {value:?}"
                ))),
            },
            Target::Metadata(_) => Err(unexpected_type("string", ".Metadata")),
            Target::MetadataField(metadata, field) => {
                metadata.insert(field, value);
                Ok(())
            }
            Target::Payload(_) => Err(unexpected_type("string", ".Payload")),
            Target::Data(data, _) => {
                *data = Some(Data::Raw(value.into_bytes()));
                Ok(())
            }
            Target::Field { object, field, .. } => {
                object.insert(field, Value::String(value));
                Ok(())
            }
        }
    }

    /// The referenced value, read without changing the record (a missing field is
    /// [`FieldValue::Json`] null, missing data [`FieldValue::Data`] `None`), as Conduit's
    /// resolver's `Get` hands processors the value.
    pub fn get(&self, record: &Record) -> Result<FieldValue, ReferenceError> {
        let mut fields = self.fields.iter();
        let Some(first) = fields.next() else {
            return Err(immutable("cannot get record"));
        };
        let mut path;
        let mut data: Option<&Data> = match first.as_str() {
            "Position" => {
                return self.only(fields, FieldValue::Position(record.position.0.clone()))
            }
            "Operation" => return self.only(fields, FieldValue::Operation(record.operation)),
            "Metadata" => {
                return match fields.next() {
                    None => Ok(FieldValue::Metadata(record.metadata.clone())),
                    Some(key) => self.only(
                        fields,
                        FieldValue::Text(record.metadata.get(key).unwrap_or_default().to_owned()),
                    ),
                }
            }
            "Key" => {
                path = ".Key".to_owned();
                record.key.as_ref()
            }
            "Payload" => match fields.next().map(String::as_str) {
                None => return Ok(FieldValue::Payload(record.payload.clone())),
                Some("Before") => {
                    path = ".Payload.Before".to_owned();
                    record.payload.before.as_ref()
                }
                Some(_) => {
                    path = ".Payload.After".to_owned();
                    record.payload.after.as_ref()
                }
            },
            other => return Err(not_resolvable(format!("unexpected field {other:?}"))),
        };
        let Some(field) = fields.next() else {
            return Ok(FieldValue::Data(data.cloned()));
        };
        let mut value = match data.take() {
            None => return Ok(FieldValue::Json(Value::Null)),
            Some(Data::Raw(_)) => {
                return Err(not_resolvable(format!(
                    "{path} does not contain structured data"
                )))
            }
            Some(Data::Structured(object)) => object.get(field),
        };
        path.push('.');
        path.push_str(field);
        for field in fields {
            value = match value {
                None | Some(Value::Null) => return Ok(FieldValue::Json(Value::Null)),
                Some(Value::Object(object)) => object.get(field),
                Some(_) => {
                    return Err(not_resolvable(format!(
                        "{path} does not contain structured data"
                    )))
                }
            };
            path.push('.');
            path.push_str(field);
        }
        Ok(FieldValue::Json(value.cloned().unwrap_or(Value::Null)))
    }

    /// `value` if no field is left to walk, else the error of walking into a leaf.
    fn only<'f>(
        &self,
        mut rest: impl Iterator<Item = &'f String>,
        value: FieldValue,
    ) -> Result<FieldValue, ReferenceError> {
        match rest.next() {
            None => Ok(value),
            Some(_) => Err(not_resolvable(format!(
                "{} is not a structured field",
                self.raw
            ))),
        }
    }

    /// Set the field to a value of any kind, as Conduit's resolver's `Set` takes one: data
    /// (`.Key`, payload sides) takes data, an object (structured), text or bytes (raw) or
    /// null (none); a field in structured data takes any JSON value, text, or bytes (kept
    /// as base64 text, as JSON shows them); a metadata value takes text; `.Operation` an
    /// operation or its name; `.Metadata` and `.Payload` their own kind. Anything else is
    /// an error naming the type.
    pub fn set_value(&self, record: &mut Record, value: FieldValue) -> Result<(), ReferenceError> {
        match (self.resolve(record)?, value) {
            (Target::Record, _) => Err(immutable("cannot set record")),
            (Target::Position, _) => Err(immutable("cannot set .Position")),
            (Target::Operation(op), FieldValue::Operation(new)) => {
                *op = new;
                Ok(())
            }
            (
                Target::Operation(op),
                FieldValue::Text(name) | FieldValue::Json(Value::String(name)),
            ) => match Operation::parse(&name) {
                Some(parsed) => {
                    *op = parsed;
                    Ok(())
                }
                None => Err(ReferenceError(format!(
                    "failed to set .Operation: unknown operation {name:?}"
                ))),
            },
            (Target::Operation(_), other) => Err(unexpected_type(other.kind(), ".Operation")),
            (Target::Metadata(metadata), FieldValue::Metadata(new)) => {
                *metadata = new;
                Ok(())
            }
            (Target::Metadata(_), other) => Err(unexpected_type(other.kind(), ".Metadata")),
            (
                Target::MetadataField(metadata, field),
                FieldValue::Text(text) | FieldValue::Json(Value::String(text)),
            ) => {
                metadata.insert(field, text);
                Ok(())
            }
            (Target::MetadataField(_, field), other) => {
                Err(unexpected_type(other.kind(), &format!(".Metadata.{field}")))
            }
            (Target::Payload(payload), FieldValue::Payload(new)) => {
                *payload = new;
                Ok(())
            }
            (Target::Payload(_), other) => Err(unexpected_type(other.kind(), ".Payload")),
            (Target::Data(data, path), value) => {
                *data = match value {
                    FieldValue::Data(new) => new,
                    FieldValue::Json(Value::Object(object)) => {
                        Some(Data::Structured(object.into()))
                    }
                    FieldValue::Json(Value::Null) => None,
                    FieldValue::Json(Value::String(text)) | FieldValue::Text(text) => {
                        Some(Data::Raw(text.into_bytes()))
                    }
                    FieldValue::Bytes(bytes) => Some(Data::Raw(bytes)),
                    other => return Err(unexpected_type(other.kind(), path)),
                };
                Ok(())
            }
            (
                Target::Field {
                    object,
                    field,
                    path,
                },
                value,
            ) => {
                let value = match value {
                    FieldValue::Json(value) => value,
                    FieldValue::Text(text) => Value::String(text),
                    FieldValue::Bytes(bytes) => {
                        use base64::Engine as _;
                        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    FieldValue::Data(None) => Value::Null,
                    FieldValue::Data(Some(Data::Structured(object))) => {
                        Value::Object(object.into_map())
                    }
                    other => return Err(unexpected_type(other.kind(), &format!("{path}.{field}"))),
                };
                object.insert(field, value);
                Ok(())
            }
        }
    }

    /// Remove the field (metadata is emptied, `.Key` and payload sides become null).
    pub fn delete(&self, record: &mut Record) -> Result<(), ReferenceError> {
        match self.resolve(record)? {
            Target::Record => Err(immutable("cannot delete record")),
            Target::Position => Err(immutable("cannot delete .Position")),
            Target::Operation(_) => Err(immutable("cannot delete operation")),
            Target::Metadata(metadata) => {
                metadata.clear();
                Ok(())
            }
            Target::MetadataField(metadata, field) => {
                metadata.remove(&field);
                Ok(())
            }
            Target::Payload(payload) => {
                *payload = culvert_domain::Change::default();
                Ok(())
            }
            Target::Data(data, _) => {
                *data = None;
                Ok(())
            }
            Target::Field { object, field, .. } => {
                object.remove(&field);
                Ok(())
            }
        }
    }

    /// Give a metadata or data field a new name (in the same object). As in Conduit, a
    /// missing field is renamed too: the new name then holds an empty value.
    pub fn rename(&self, record: &mut Record, name: &str) -> Result<(), ReferenceError> {
        let exists = |name: &str| {
            ReferenceError(format!(
                "cannot rename, field {name:?}: field already exists"
            ))
        };
        match self.resolve(record)? {
            Target::MetadataField(metadata, field) => {
                if metadata.contains_key(name) {
                    return Err(exists(name));
                }
                let value = metadata.remove(&field).unwrap_or_default();
                metadata.insert(name.to_owned(), value);
                Ok(())
            }
            Target::Field { object, field, .. } => {
                if object.contains_key(name) {
                    return Err(exists(name));
                }
                let value = object.remove(&field).unwrap_or(Value::Null);
                object.insert(name.to_owned(), value);
                Ok(())
            }
            Target::Record => Err(cannot_rename("record")),
            Target::Position => Err(cannot_rename(".Position")),
            Target::Operation(_) => Err(cannot_rename("operation")),
            Target::Metadata(_) => Err(cannot_rename(".Metadata")),
            Target::Payload(_) => Err(cannot_rename(".Payload")),
            Target::Data(_, path) => Err(cannot_rename(path)),
        }
    }

    /// Walk the record to the referenced field, creating missing objects on the way.
    fn resolve<'r>(&self, record: &'r mut Record) -> Result<Target<'r>, ReferenceError> {
        let mut target = Target::Record;
        // Split the record into disjoint borrows up front; the walk takes one of them.
        let mut parts = Some(record);
        for field in &self.fields {
            target = match target {
                Target::Record => {
                    let record = parts.take().expect("the record is walked once");
                    match field.as_str() {
                        "Position" => Target::Position,
                        "Operation" => Target::Operation(&mut record.operation),
                        "Metadata" => Target::Metadata(&mut record.metadata),
                        "Key" => Target::Data(&mut record.key, ".Key"),
                        "Payload" => Target::Payload(&mut record.payload),
                        other => return Err(not_resolvable(format!("unexpected field {other:?}"))),
                    }
                }
                Target::Position => {
                    return Err(not_resolvable("position is not a structured field".into()))
                }
                Target::Operation(_) => {
                    return Err(not_resolvable(
                        ".Operation is not a structured field".into(),
                    ))
                }
                Target::Metadata(metadata) => Target::MetadataField(metadata, field.clone()),
                Target::MetadataField(..) => {
                    return Err(not_resolvable(".Metadata fields are not structured".into()))
                }
                Target::Payload(payload) => match field.as_str() {
                    "Before" => Target::Data(&mut payload.before, ".Payload.Before"),
                    "After" => Target::Data(&mut payload.after, ".Payload.After"),
                    other => return Err(not_resolvable(format!("unexpected field {other:?}"))),
                },
                Target::Data(data, path) => {
                    let data = data.get_or_insert_with(|| Data::Structured(Map::new().into()));
                    match data {
                        Data::Structured(object) => Target::Field {
                            object,
                            field: field.clone(),
                            path: path.to_owned(),
                        },
                        Data::Raw(_) => {
                            return Err(not_resolvable(format!(
                                "{path} does not contain structured data"
                            )))
                        }
                    }
                }
                Target::Field {
                    object,
                    field: parent,
                    path,
                } => {
                    let value = object.entry(parent.clone()).or_insert(Value::Null);
                    if value.is_null() {
                        *value = Value::Object(Map::new());
                    }
                    match value {
                        Value::Object(inner) => Target::Field {
                            object: inner,
                            field: field.clone(),
                            path: format!("{path}.{parent}"),
                        },
                        _ => {
                            return Err(not_resolvable(format!(
                                "{path}.{parent} does not contain structured data"
                            )))
                        }
                    }
                }
            };
        }
        Ok(target)
    }
}

fn immutable(what: &str) -> ReferenceError {
    ReferenceError(format!("{what}: cannot set immutable reference"))
}

fn cannot_rename(what: &str) -> ReferenceError {
    ReferenceError(format!(
        "cannot rename {what}: cannot rename immutable reference"
    ))
}

fn unexpected_type(ty: &str, what: &str) -> ReferenceError {
    ReferenceError(format!("can't set type {ty} for {what}: unexpected type"))
}

fn not_resolvable(problem: String) -> ReferenceError {
    ReferenceError(format!("{problem}: cannot resolve reference"))
}

/// Conduit accepts lower-case names for the record's own fields.
fn canonical(input: &str) -> String {
    const PREFIXES: [(&str, &str); 5] = [
        (".payload", ".Payload"),
        (".key", ".Key"),
        (".metadata", ".Metadata"),
        (".position", ".Position"),
        (".operation", ".Operation"),
    ];
    let mut out = input.to_owned();
    if let Some((from, to)) = PREFIXES.iter().find(|(from, _)| out.starts_with(from)) {
        out = format!("{to}{}", &out[from.len()..]);
    }
    for (from, to) in [
        (".Payload.before", ".Payload.Before"),
        (".Payload.after", ".Payload.After"),
    ] {
        if out.starts_with(from) {
            out = format!("{to}{}", &out[from.len()..]);
            break;
        }
    }
    out
}

/// Split `.A.B["c d"]` into its field names.
fn lex(input: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    // A leading `$` (the root) is allowed.
    if chars.first() == Some(&'$') {
        i = 1;
    }
    let mut fields = Vec::new();
    let is_ident = |c: char| c == '_' || c.is_alphanumeric();
    while i < chars.len() {
        match chars[i] {
            c if c.is_whitespace() => i += 1,
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && is_ident(chars[end]) {
                    end += 1;
                }
                if end == start {
                    if fields.is_empty() && end == chars.len() && i + 1 == chars.len() {
                        // `.` alone: the record itself.
                        return Ok(fields);
                    }
                    return Err(format!(
                        "unexpected token at offset {i}: want a field name after \".\""
                    ));
                }
                if chars[start].is_ascii_digit() {
                    return Err(format!("unexpected token at offset {start}: a field name cannot start with a digit"));
                }
                fields.push(chars[start..end].iter().collect());
                i = end;
            }
            '[' => {
                if fields.is_empty() {
                    return Err(format!("unexpected token \"[\" at offset {i}"));
                }
                i += 1;
                let quote = chars.get(i).copied();
                if !matches!(quote, Some('"') | Some('`')) {
                    return Err(format!(
                        "unexpected token at offset {i}: want a quoted string after \"[\""
                    ));
                }
                let quote = quote.expect("checked");
                i += 1;
                let mut name = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted string".to_owned()),
                        Some(&c) if c == quote => break,
                        Some('\\') if quote == '"' => {
                            let escaped = chars.get(i + 1).ok_or("unterminated quoted string")?;
                            name.push(match escaped {
                                'n' => '\n',
                                't' => '\t',
                                other => *other,
                            });
                            i += 2;
                        }
                        Some(&c) => {
                            name.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                if chars.get(i) != Some(&']') {
                    return Err(format!("unexpected token at offset {i}: want \"]\""));
                }
                i += 1;
                fields.push(name);
            }
            other => return Err(format!("unexpected {other:?} at offset {i}")),
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{after_value as after, meta, raw, structured};
    use culvert_domain::Position;
    use serde_json::json;

    fn record() -> Record {
        Record {
            position: Position(b"p".to_vec()),
            operation: Operation::Create,
            metadata: meta(&[("table", "users")]),
            key: raw("k"),
            payload: culvert_domain::Change {
                before: None,
                after: structured(json!({"name": "ada", "nested": {"x": 1}, "n": 5})),
            },
        }
    }

    #[test]
    fn get_reads_every_kind_of_field_without_changing_the_record() {
        let r = record();
        let get = |reference: &str| Reference::parse(reference).unwrap().get(&r).unwrap();
        assert_eq!(get(".Position"), FieldValue::Position(b"p".to_vec()));
        assert_eq!(get(".Operation"), FieldValue::Operation(Operation::Create));
        assert_eq!(get(".Metadata.table"), FieldValue::Text("users".into()));
        assert_eq!(get(".Metadata.missing"), FieldValue::Text(String::new()));
        assert_eq!(
            get(".Key"),
            FieldValue::Data(Some(Data::Raw(b"k".to_vec())))
        );
        assert_eq!(get(".Payload.Before"), FieldValue::Data(None));
        assert_eq!(get(".Payload.After.name"), FieldValue::Json(json!("ada")));
        assert_eq!(get(".Payload.After.nested.x"), FieldValue::Json(json!(1)));
        assert_eq!(
            get(".Payload.After.nested.y"),
            FieldValue::Json(Value::Null)
        );
        assert_eq!(get(".Payload.After.a.b.c"), FieldValue::Json(Value::Null));
        assert_eq!(get(".Payload.Before.x"), FieldValue::Json(Value::Null));
        assert!(matches!(get(".Metadata"), FieldValue::Metadata(m) if m.len() == 1));
        assert!(matches!(get(".Payload"), FieldValue::Payload(_)));
        // Walking into raw data or a scalar is an error; nothing was created on the way.
        for bad in [".Key.x", ".Payload.After.name.first"] {
            let error = Reference::parse(bad).unwrap().get(&r).unwrap_err();
            assert!(
                error.0.contains("does not contain structured data"),
                "{error}"
            );
        }
        assert_eq!(r, record());
    }

    #[test]
    fn set_value_stores_each_kind_where_conduit_would() {
        let mut r = record();
        let set = |r: &mut Record, reference: &str, value: FieldValue| {
            Reference::parse(reference).unwrap().set_value(r, value)
        };
        set(
            &mut r,
            ".Payload.After.list",
            FieldValue::Json(json!([1, 2])),
        )
        .unwrap();
        set(
            &mut r,
            ".Payload.After.bytes",
            FieldValue::Bytes(b"hi".to_vec()),
        )
        .unwrap();
        set(&mut r, ".Payload.After.text", FieldValue::Text("t".into())).unwrap();
        assert_eq!(after(&r)["list"], json!([1, 2]));
        assert_eq!(after(&r)["bytes"], json!("aGk="));
        assert_eq!(after(&r)["text"], json!("t"));
        set(&mut r, ".Key", FieldValue::Json(json!({"id": 1}))).unwrap();
        assert_eq!(
            r.key,
            Some(Data::Structured(
                json!({"id": 1}).as_object().unwrap().clone().into()
            ))
        );
        set(&mut r, ".Key", FieldValue::Text("raw".into())).unwrap();
        assert_eq!(r.key, Some(Data::Raw(b"raw".to_vec())));
        set(&mut r, ".Payload.Before", FieldValue::Json(Value::Null)).unwrap();
        assert_eq!(r.payload.before, None);
        set(&mut r, ".Operation", FieldValue::Text("delete".into())).unwrap();
        assert_eq!(r.operation, Operation::Delete);
        set(&mut r, ".Metadata.k", FieldValue::Json(json!("v"))).unwrap();
        assert_eq!(r.metadata["k"], "v");
        // The wrong kind is an error naming the type and the field, and changes nothing.
        let before = r.clone();
        let error = set(&mut r, ".Metadata.k", FieldValue::Json(json!(5))).unwrap_err();
        assert_eq!(
            error.0,
            "can't set type number for .Metadata.k: unexpected type"
        );
        let error = set(&mut r, ".Key", FieldValue::Json(json!([1]))).unwrap_err();
        assert_eq!(error.0, "can't set type array for .Key: unexpected type");
        assert!(set(&mut r, ".Position", FieldValue::Text("x".into())).is_err());
        assert_eq!(r, before);
    }

    #[test]
    fn parse_accepts_conduits_forms_and_refuses_the_rest() {
        for ok in [
            ".Position",
            ".Operation",
            ".Metadata.table",
            ".Metadata[\"opencdc.readAt\"]",
            ".Key",
            ".Key.id",
            ".Payload",
            ".Payload.After.a.b.c",
            ".payload.after.x",
            "$.Payload.Before",
            ".Payload.After[\"with space\"].inner",
        ] {
            Reference::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            (".Foo", "unexpected field \"Foo\""),
            (".Position.x", "position is not a structured field"),
            (".Operation.x", ".Operation is not a structured field"),
            (".Metadata.a.b", ".Metadata fields are not structured"),
            (".Payload.Middle", "unexpected field \"Middle\""),
            ("[\"x\"]", "unexpected token"),
            (".Payload.After.", "want a field name"),
            (".Metadata[\"x", "unterminated"),
            ("Payload", "unexpected 'P'"),
        ] {
            let error = Reference::parse(bad).unwrap_err().0;
            assert!(error.contains(why), "{bad}: {error}");
            assert!(
                error.starts_with(&format!("invalid reference {bad:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn set_writes_strings_and_creates_nested_objects() {
        let mut r = record();
        Reference::parse(".Payload.After.name")
            .unwrap()
            .set(&mut r, "bob".into())
            .unwrap();
        Reference::parse(".Payload.After.new.deep")
            .unwrap()
            .set(&mut r, "v".into())
            .unwrap();
        Reference::parse(".Metadata.source")
            .unwrap()
            .set(&mut r, "gen".into())
            .unwrap();
        Reference::parse(".Operation")
            .unwrap()
            .set(&mut r, "update".into())
            .unwrap();
        Reference::parse(".Payload.Before.id")
            .unwrap()
            .set(&mut r, "1".into())
            .unwrap();
        assert_eq!(after(&r)["name"], "bob");
        assert_eq!(after(&r)["new"], json!({"deep": "v"}));
        assert_eq!(r.metadata["source"], "gen");
        assert_eq!(r.operation, Operation::Update);
        assert!(matches!(&r.payload.before, Some(Data::Structured(m)) if m["id"] == "1"));
        Reference::parse(".Key")
            .unwrap()
            .set(&mut r, "raw".into())
            .unwrap();
        assert_eq!(r.key, Some(Data::Raw(b"raw".to_vec())));
    }

    #[test]
    fn set_refuses_what_conduit_refuses() {
        let mut r = record();
        let original = r.clone();
        for (reference, why) in [
            (".Position", "cannot set .Position"),
            (".Operation", "unknown operation"),
            (".Metadata", "can't set type string for .Metadata"),
            (".Payload", "can't set type string for .Payload"),
            (".Key.id", ".Key does not contain structured data"),
            (
                ".Payload.After.name.first",
                ".Payload.After.name does not contain structured data",
            ),
        ] {
            let error = Reference::parse(reference)
                .unwrap()
                .set(&mut r, "bogus".into())
                .unwrap_err()
                .0;
            assert!(error.contains(why), "{reference}: {error}");
        }
        assert_eq!(r, original, "a refused set changes nothing");
    }

    #[test]
    fn delete_and_rename() {
        let mut r = record();
        Reference::parse(".Payload.After.nested")
            .unwrap()
            .delete(&mut r)
            .unwrap();
        Reference::parse(".Metadata.table")
            .unwrap()
            .delete(&mut r)
            .unwrap();
        Reference::parse(".Key").unwrap().delete(&mut r).unwrap();
        assert_eq!(after(&r), json!({"name": "ada", "n": 5}));
        assert!(r.metadata.is_empty());
        assert_eq!(r.key, None);
        assert!(Reference::parse(".Position")
            .unwrap()
            .delete(&mut r)
            .is_err());
        assert!(Reference::parse(".Operation")
            .unwrap()
            .delete(&mut r)
            .is_err());

        Reference::parse(".Payload.After.name")
            .unwrap()
            .rename(&mut r, "first")
            .unwrap();
        assert_eq!(after(&r), json!({"first": "ada", "n": 5}));
        let clash = Reference::parse(".Payload.After.first")
            .unwrap()
            .rename(&mut r, "n");
        assert!(clash.unwrap_err().0.contains("field already exists"));
        // Conduit renames a missing field too, leaving the new name empty.
        Reference::parse(".Payload.After.missing")
            .unwrap()
            .rename(&mut r, "m")
            .unwrap();
        assert_eq!(after(&r)["m"], Value::Null);
        let top = Reference::parse(".Payload.After")
            .unwrap()
            .rename(&mut r, "x");
        assert!(top.unwrap_err().0.contains("cannot rename .Payload.After"));
    }
}
