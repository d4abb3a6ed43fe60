//! OpenCDC records: what moves through a pipeline, with Conduit's JSON form.
//!
//! The JSON form is the one conduit-commons' `opencdc.Record` marshals to (and the file
//! destination writes, one record per line):
//!
//! ```json
//! {"position":"cG9z","operation":"create","metadata":{"opencdc.version":"v1"},
//!  "key":"a2V5","payload":{"before":null,"after":{"id":1}}}
//! ```
//!
//! * `position` and raw data are base64 (standard alphabet, padded); a missing key or
//!   payload side is `null`;
//! * structured data is a plain JSON object; its numbers are f64, as Conduit's Go
//!   `encoding/json` reads them into `any`: an integer beyond 2^53 is rounded to the nearest
//!   f64 once and then round-trips exactly;
//! * `operation` is the lower-case name (`create`, `update`, `delete`, `snapshot`);
//! * on input a JSON string is raw data and an object is structured data, as Conduit reads
//!   them.

pub use crate::metadata_map::{Iter as MetadataIter, MetaText, Metadata, ToCompactString};
pub use crate::structured::Structured;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What happened to the data a record describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A new entity (the default).
    #[default]
    Create,
    /// A change to an existing entity.
    Update,
    /// An entity removed.
    Delete,
    /// An entity read as part of a snapshot of existing data.
    Snapshot,
}

impl Operation {
    /// The name Conduit uses in JSON and in processor references.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Snapshot => "snapshot",
        }
    }

    /// Parse a lower-case name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "create" => Self::Create,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "snapshot" => Self::Snapshot,
            _ => return None,
        })
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        // Conduit leaves the operation unchanged (create) for an empty string.
        if name.is_empty() {
            return Ok(Self::default());
        }
        Self::parse(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown operation {name:?}: want create, update, delete or snapshot"
            ))
        })
    }
}

/// A record's key or one side of its payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Opaque bytes (base64 in JSON).
    Raw(Vec<u8>),
    /// A JSON object: a map, or its JSON text until a field is read (see [`Structured`]).
    Structured(Structured),
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Raw(bytes) => serializer.serialize_str(&BASE64.encode(bytes)),
            Self::Structured(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => BASE64
                .decode(text.as_bytes())
                .map(Self::Raw)
                .map_err(|e| D::Error::custom(format!("raw data is not valid base64: {e}"))),
            serde_json::Value::Object(map) => Ok(Self::Structured(map.into())),
            other => Err(D::Error::custom(format!(
                "data must be a base64 string (raw) or an object (structured), not {other}"
            ))),
        }
    }
}

/// The data before and after the change a record describes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The data before (updates and deletes, when the source knows it).
    #[serde(default)]
    pub before: Option<Data>,
    /// The data after (creates, updates, snapshots).
    #[serde(default)]
    pub after: Option<Data>,
}

/// Where a source is in its input; opaque to everything but the source that made it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position(pub Vec<u8>);

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(Self::default()),
            Some(text) => BASE64
                .decode(text.as_bytes())
                .map(Self)
                .map_err(|e| D::Error::custom(format!("position is not valid base64: {e}"))),
        }
    }
}

/// Standard metadata keys (conduit-commons and Conduit).
pub mod metadata {
    use super::MetaText;

    /// A standard key as metadata text, borrowing the static string (no allocation, however
    /// long the key).
    pub const fn key(name: &'static str) -> MetaText {
        MetaText::const_new(name)
    }

    /// The OpenCDC version a record follows (`v1`).
    pub const VERSION: &str = "opencdc.version";
    /// When the data was created in the source system (unix nanoseconds).
    pub const CREATED_AT: &str = "opencdc.createdAt";
    /// When the source read the record (unix nanoseconds).
    pub const READ_AT: &str = "opencdc.readAt";
    /// The collection (table, topic, ...) the record came from or goes to.
    pub const COLLECTION: &str = "opencdc.collection";
    /// The id of the source connector that produced the record.
    pub const SOURCE_CONNECTOR_ID: &str = "conduit.source.connector.id";
    /// Why a record went to the dead-letter queue.
    pub const DLQ_NACK_ERROR: &str = "conduit.dlq.nack.error";
    /// Which node nacked a record sent to the dead-letter queue.
    pub const DLQ_NACK_NODE_ID: &str = "conduit.dlq.nack.node.id";
}

/// One change event flowing through a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Where the source is after this record; acked back to the source once every
    /// destination has written the record.
    #[serde(default)]
    pub position: Position,
    /// What happened.
    #[serde(default)]
    pub operation: Operation,
    /// Free-form string metadata (see [`metadata`] for the standard keys).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: Metadata,
    /// The entity's key.
    #[serde(default)]
    pub key: Option<Data>,
    /// The data before and after.
    #[serde(default)]
    pub payload: Change,
}

/// Why writing JSON into a `Vec` cannot fail: the writer cannot, and maps with string keys
/// of strings or JSON values always serialise.
const WRITES: &str = "a record always serialises: string keys, finite data";

/// `bytes` as a JSON string of their base64.
fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = BASE64
        .encode_slice(bytes, &mut out[start..])
        .expect("room for the padded base64 was made");
    out.truncate(start + written);
    out.push(b'"');
}

/// `text` as a JSON string, escaped as serde_json escapes (`"`, `\\` and control
/// characters, nothing else): copied as it is when it has none of them, as metadata
/// almost never does.
fn write_str(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect(WRITES);
    }
}

/// Whether `text` has a byte a JSON string escapes: `"`, `\\` or a control character
/// (below 0x20). Eight bytes at a time, with bit tricks on a `u64` and no branch per byte
/// (metadata keys and values are a few dozen bytes: a byte loop, or a vector loop with its
/// byte-by-byte tail, cost more here); text shorter than eight bytes is padded with spaces.
fn needs_escape(text: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES * 0x80;
    /// Whether any byte of `chunk` is below 0x20, a quote or a backslash. `v - ONES * n`
    /// borrows into a byte's top bit only from a byte below `n` (for `n` up to 0x80), and
    /// `& !v` leaves out bytes whose own top bit is set: exact for "any", not per byte.
    fn any(chunk: [u8; 8]) -> bool {
        let x = u64::from_ne_bytes(chunk);
        let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
        (below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1))
            != 0
    }
    let eight = |bytes: &[u8]| {
        let mut chunk = [b' '; 8];
        chunk[..bytes.len()].copy_from_slice(bytes);
        chunk
    };
    let mut chunks = text.chunks_exact(8);
    let mut found = false;
    for chunk in &mut chunks {
        found |= any(eight(chunk));
    }
    match chunks.remainder().len() {
        0 => found,
        // The last eight bytes, overlapping the last whole chunk: no copy of a short tail.
        _ if text.len() >= 8 => found | any(eight(&text[text.len() - 8..])),
        _ => any(eight(text)),
    }
}

/// A key or payload side as JSON: `null`, a base64 string or an object.
fn write_data(out: &mut Vec<u8>, data: &Option<Data>) {
    match data {
        None => out.extend_from_slice(b"null"),
        Some(Data::Raw(bytes)) => write_base64(out, bytes),
        Some(Data::Structured(data)) => match data.json_text() {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => serde_json::to_writer(&mut *out, data.as_map()).expect(WRITES),
        },
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Metadata, D::Error> {
    Ok(Option::<Metadata>::deserialize(deserializer)?.unwrap_or_default())
}

impl Record {
    /// The record as one line of Conduit's JSON form (no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }

    /// Append the record's JSON form to `out`: the same bytes serde_json writes for it
    /// (its `Serialize`), made faster. Base64 (the position and raw data) is encoded
    /// straight into `out`, with no string to allocate and no scan for characters to
    /// escape (base64 has none); structured data still JSON text is copied as it is.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"position\":");
        write_base64(out, &self.position.0);
        out.extend_from_slice(b",\"operation\":\"");
        out.extend_from_slice(self.operation.as_str().as_bytes());
        out.extend_from_slice(b"\",\"metadata\":{");
        for (n, (key, value)) in self.metadata.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            write_str(out, value);
        }
        out.push(b'}');
        out.extend_from_slice(b",\"key\":");
        write_data(out, &self.key);
        out.extend_from_slice(b",\"payload\":{\"before\":");
        write_data(out, &self.payload.before);
        out.extend_from_slice(b",\"after\":");
        write_data(out, &self.payload.after);
        out.extend_from_slice(b"}}");
    }

    /// A record from Conduit's JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn json_form_matches_conduits() {
        let record = Record {
            position: Position(b"pos-1".to_vec()),
            operation: Operation::Update,
            metadata: Metadata::from([("opencdc.version", "v1")]),
            key: Some(Data::Raw(b"key".to_vec())),
            payload: Change {
                before: None,
                after: Some(Data::Structured(
                    json!({"id": 1, "name": "x"})
                        .as_object()
                        .unwrap()
                        .clone()
                        .into(),
                )),
            },
        };
        let value: serde_json::Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert_eq!(
            value,
            json!({
                "position": "cG9zLTE=",
                "operation": "update",
                "metadata": {"opencdc.version": "v1"},
                "key": "a2V5",
                "payload": {"before": null, "after": {"id": 1, "name": "x"}}
            })
        );
        // Field order follows Conduit's struct (position, operation, metadata, key, payload).
        let text = String::from_utf8(record.to_json()).unwrap();
        assert!(
            text.starts_with("{\"position\":\"cG9zLTE=\",\"operation\":\"update\",\"metadata\"")
        );
        assert_eq!(Record::from_json(text.as_bytes()).unwrap(), record);
    }

    #[test]
    fn reading_accepts_what_conduit_accepts_and_names_what_it_does_not() {
        let r = Record::from_json(br#"{"operation":"","metadata":null,"key":null}"#).unwrap();
        assert_eq!(r, Record::default());
        let e = Record::from_json(br#"{"operation":"upsert"}"#).unwrap_err();
        assert!(
            e.to_string().contains("unknown operation \"upsert\""),
            "{e}"
        );
        let e = Record::from_json(br#"{"key":"not base64!"}"#).unwrap_err();
        assert!(e.to_string().contains("base64"), "{e}");
        let e = Record::from_json(br#"{"payload":{"after":[1]}}"#).unwrap_err();
        assert!(e.to_string().contains("raw"), "{e}");
    }

    fn data() -> impl Strategy<Value = Data> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..32).prop_map(Data::Raw),
            proptest::collection::btree_map("[a-z]{1,6}", any::<i64>(), 0..4).prop_map(|m| {
                Data::Structured(m.into_iter().map(|(k, v)| (k, json!(v))).collect())
            }),
            // Structured data still as its JSON text.
            proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..4)
                .prop_map(|m| { Data::Structured(Structured::from_serialized(&m).unwrap()) }),
        ]
    }

    /// Fuzz finding (target `opencdc_json`): an 84-digit integer in structured data and
    /// control characters in metadata. As in Conduit (Go's `encoding/json` into `any`), the
    /// integer becomes the nearest f64; that f64 must then come back exactly (serde_json's
    /// default float parsing can be one unit in the last place off, hence its
    /// `float_roundtrip` feature), and the control characters must be escaped and come back
    /// identical.
    #[test]
    fn big_integer_and_control_characters_round_trip() {
        let input = br#"{"position":"MQ==","operation":"create","metadata":{"conduit.source.connector.id":"ct?in\n\\\bGc0$$$$wwww$noct?in\n\\\bn2649368075","opencdc.createdAt":"1796166712652067633"},"key":"c3VwZXJzZW5zaWJseQ==","payload":{"before":null,"after":{"id":871477445905397966666666666666666666666666666666666666666666666666666666666666666678,"name":"unaccumulable"}}}"#;
        let record = Record::from_json(input).unwrap();
        let Some(Data::Structured(after)) = &record.payload.after else {
            panic!("structured payload expected: {record:?}");
        };
        // The nearest f64 (what Go's strconv.ParseFloat gives for the same digits).
        assert_eq!(after["id"].as_f64(), Some(8.71477445905398e83));
        assert_eq!(
            record.metadata["conduit.source.connector.id"],
            "ct?in\n\\\u{8}Gc0$$$$wwww$noct?in\n\\\u{8}n2649368075"
        );
        let json = record.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(!text.chars().any(char::is_control), "{text}");
        let again = Record::from_json(&json).unwrap();
        assert_eq!(again, record, "{text}");
        assert_eq!(again.to_json(), json, "to_json is not stable");
    }

    proptest! {
        /// The eight-at-a-time check says what a byte-by-byte one says, for any bytes at any
        /// length, and for bytes that need no escape with at most one byte put anywhere in
        /// them (so a miss in one place of a chunk, of the overlapping last eight or of the
        /// padded tail shows: random bytes alone almost always hold a byte to escape).
        #[test]
        fn needs_escape_is_exact(
            text in proptest::collection::vec(any::<u8>(), 0..40),
            plain in proptest::collection::vec(
                any::<u8>().prop_filter("needs no escape", |b| *b >= 0x20 && *b != b'"' && *b != b'\\'),
                0..40,
            ),
            put in proptest::option::of((any::<proptest::sample::Index>(), any::<u8>())),
        ) {
            let oracle = |bytes: &[u8]| bytes.iter().any(|b| *b < 0x20 || *b == b'"' || *b == b'\\');
            prop_assert_eq!(needs_escape(&text), oracle(&text));
            let mut plain = plain;
            if let (Some((at, byte)), false) = (put, plain.is_empty()) {
                let at = at.index(plain.len());
                plain[at] = byte;
            }
            prop_assert_eq!(needs_escape(&plain), oracle(&plain));
        }

        #[test]
        fn json_round_trips(
            position in proptest::collection::vec(any::<u8>(), 0..16),
            operation in prop_oneof![
                Just(Operation::Create), Just(Operation::Update),
                Just(Operation::Delete), Just(Operation::Snapshot)
            ],
            // Any text, text full of what JSON escapes (quotes, backslashes, controls), and
            // long plain text with one such character anywhere (or none).
            metadata in proptest::collection::btree_map(
                prop_oneof![".{0,8}", "[a\"\\\\\\x00-\\x1f\\x7fé]{0,6}", "[a-zé]{0,20}[\"\\\\\\x00-\\x1f]?[a-z]{0,20}"],
                prop_oneof![".{0,8}", "[a\"\\\\\\x00-\\x1f\\x7fé]{0,6}", "[a-zé]{0,20}[\"\\\\\\x00-\\x1f]?[a-z]{0,20}"],
                0..4,
            ),
            key in proptest::option::of(data()),
            before in proptest::option::of(data()),
            after in proptest::option::of(data()),
        ) {
            let record = Record {
                position: Position(position),
                operation,
                metadata: metadata.into_iter().collect(),
                key,
                payload: Change { before, after },
            };
            // The hand-made writer says exactly what serde_json says.
            prop_assert_eq!(
                String::from_utf8(record.to_json()).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
            prop_assert_eq!(Record::from_json(&record.to_json()).unwrap(), record);
        }
    }
}
