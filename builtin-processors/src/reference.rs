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

use culvert_domain::{Data, Operation, Record};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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

/// Where a reference points in one record.
enum Target<'r> {
    Record,
    Position,
    Operation(&'r mut Operation),
    Metadata(&'r mut BTreeMap<String, String>),
    MetadataField(&'r mut BTreeMap<String, String>, String),
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
                    let data = data.get_or_insert_with(|| Data::Structured(Map::new()));
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
    use culvert_domain::Position;
    use serde_json::json;

    fn record() -> Record {
        let Value::Object(after) = json!({"name": "ada", "nested": {"x": 1}, "n": 5}) else {
            unreachable!()
        };
        Record {
            position: Position(b"p".to_vec()),
            operation: Operation::Create,
            metadata: BTreeMap::from([("table".to_owned(), "users".to_owned())]),
            key: Some(Data::Raw(b"k".to_vec())),
            payload: culvert_domain::Change {
                before: None,
                after: Some(Data::Structured(after)),
            },
        }
    }

    fn after(record: &Record) -> Value {
        match &record.payload.after {
            Some(Data::Structured(map)) => Value::Object(map.clone()),
            other => panic!("not structured: {other:?}"),
        }
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
