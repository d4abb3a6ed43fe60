//! Keys and payloads encoded with a schema from the registry, as Conduit's SDKs handle them:
//! the steps the processors' `sdk.schema.*` wrapper and the built-in connectors'
//! `sdk.schema.extract.*` settings share.
//!
//! A record names the schema of its key and of its payload in its metadata
//! (`opencdc.key.schema.subject` / `.version`, `opencdc.payload.schema.subject` /
//! `.version`); the data under it is an Avro datum without a header. [`SchemaCodec`]
//! decodes such data into structured data (a record whole or not at all), and extracts a
//! schema from structured data a source produced and names it in the metadata (the schema
//! Conduit's Avro serde infers, registered under `[context:][collection.]subject`).
//! Schemas are looked up once per subject and version; extracted schemas once per shape.

use crate::avro::{decode, encode_map, encoding, infer, parse_schema, Encoding, ShapeCache};
use culvert_domain::opencdc::metadata::{key, COLLECTION};
use culvert_domain::opencdc::MetaText;
use culvert_domain::{Data, Record, Structured};
use culvert_plugins::schema::{SchemaRegistry, SchemaType};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The metadata key naming a key's schema subject.
pub const KEY_SUBJECT: &str = "opencdc.key.schema.subject";
/// The metadata key naming a key's schema version.
pub const KEY_VERSION: &str = "opencdc.key.schema.version";
/// The metadata key naming a payload's schema subject.
pub const PAYLOAD_SUBJECT: &str = "opencdc.payload.schema.subject";
/// The metadata key naming a payload's schema version.
pub const PAYLOAD_VERSION: &str = "opencdc.payload.schema.version";

/// A schema's subject and version, as the metadata names it.
pub type Named = (String, u32);

/// Most extracted schemas remembered by shape before the memory is cleared (shapes of
/// arrays vary with their lengths, so the set of shapes is not bounded).
const MAX_SHAPES: usize = 4_096;

/// A schema ready to use: its registry version and its encoder.
pub(crate) struct Ready {
    pub(crate) version: u32,
    pub(crate) encoding: Encoding,
}

/// What a source's schema extraction does (`sdk.schema.extract.*` and
/// `sdk.schema.context.*` of Conduit's connector SDK).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extraction {
    /// The key's subject (before the collection and context are added); `None`: keys get
    /// no schema.
    pub key_subject: Option<String>,
    /// The payload's subject; `None`: payloads get no schema.
    pub payload_subject: Option<String>,
    /// The schema context the subjects are qualified with (`context:subject`); empty:
    /// none.
    pub context: String,
}

/// Decodes and extracts schemas of records, with schemas from a registry.
pub struct SchemaCodec {
    registry: Arc<dyn SchemaRegistry>,
    /// Schemas by subject and version (a version never changes meaning).
    cache: HashMap<Named, Arc<Ready>>,
    /// Versions of extracted schemas by subject and the data's shape.
    extracted: ShapeCache<u32>,
}

impl SchemaCodec {
    /// A codec reading and registering schemas in `registry`.
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        Self {
            registry,
            cache: HashMap::new(),
            extracted: ShapeCache::new(MAX_SHAPES),
        }
    }

    /// The schema a subject and version name.
    pub(crate) fn schema(&mut self, named: &Named) -> Result<Arc<Ready>, String> {
        if let Some(ready) = self.cache.get(named) {
            return Ok(ready.clone());
        }
        let (subject, version) = named;
        let registered = self
            .registry
            .get(subject, *version)
            .map_err(|e| format!("failed to get schema for {subject}:{version}: {e}"))?;
        let ready = Arc::new(prepare(registered.version, &registered.text)?);
        self.cache.insert(named.clone(), ready.clone());
        Ok(ready)
    }

    /// Register the Avro schema `text` under `subject` (its existing version if the subject
    /// has it already) and make it ready to use.
    pub(crate) fn register(&mut self, subject: &str, text: &str) -> Result<Arc<Ready>, String> {
        let registered = self
            .registry
            .create(subject, SchemaType::Avro, text)
            .map_err(|e| format!("failed to register schema: {e}"))?;
        let named = (subject.to_owned(), registered.version);
        if let Some(ready) = self.cache.get(&named) {
            return Ok(ready.clone());
        }
        let ready = Arc::new(prepare(registered.version, text)?);
        self.cache.insert(named, ready.clone());
        Ok(ready)
    }

    /// Decode the raw key (if `key`) and payload sides (if `payload`) of `record` whose
    /// schema its metadata names; structured or empty data and parts without schema
    /// metadata stay as they are. All of them or (on an error) none.
    pub fn decode(&mut self, record: &mut Record, key: bool, payload: bool) -> Result<(), String> {
        let key = if key {
            named(record, KEY_SUBJECT, KEY_VERSION)?
        } else {
            None
        };
        let payload = if payload {
            named(record, PAYLOAD_SUBJECT, PAYLOAD_VERSION)?
        } else {
            None
        };
        self.decode_named(record, key.as_ref(), payload.as_ref())
    }

    /// As [`Self::decode`], with the schemas already read from the metadata (`None`: that
    /// part is not decoded).
    pub(crate) fn decode_named(
        &mut self,
        record: &mut Record,
        key: Option<&Named>,
        payload: Option<&Named>,
    ) -> Result<(), String> {
        let mut new_key = None;
        if let (Some(named), Some(bytes)) = (key, raw(&record.key)) {
            let ready = self.schema(named)?;
            new_key = Some(
                decoded(&ready.encoding, bytes)
                    .map_err(|e| format!("failed to decode key: {e}"))?,
            );
        }
        let mut sides = [None, None];
        if let Some(named) = payload {
            for (slot, side, name) in [
                (0, &record.payload.before, "payload.before"),
                (1, &record.payload.after, "payload.after"),
            ] {
                if let Some(bytes) = raw(side) {
                    let ready = self.schema(named)?;
                    sides[slot] = Some(
                        decoded(&ready.encoding, bytes)
                            .map_err(|e| format!("failed to decode {name}: {e}"))?,
                    );
                }
            }
        }
        let [before, after] = sides;
        replace(&mut record.key, new_key);
        replace(&mut record.payload.before, before);
        replace(&mut record.payload.after, after);
        Ok(())
    }

    /// Encode the structured key (if `key`) and payload sides (if `payload`) of `record`
    /// whose schema its metadata names with that schema, as a source built with Conduit's
    /// SDK sends them. All of them or (on an error) none.
    pub fn encode(&mut self, record: &mut Record, key: bool, payload: bool) -> Result<(), String> {
        let mut new_key = None;
        let key_schema = if key {
            named(record, KEY_SUBJECT, KEY_VERSION)?
        } else {
            None
        };
        if let (Some(named), Some(data)) = (key_schema, structured(&record.key)) {
            let ready = self.schema(&named)?;
            let bytes = encode_map(&ready.encoding, data)
                .map_err(|e| format!("failed to encode key: {e}"))?;
            new_key = Some(Data::Raw(bytes));
        }
        let mut sides = [None, None];
        let payload_schema = if payload {
            named(record, PAYLOAD_SUBJECT, PAYLOAD_VERSION)?
        } else {
            None
        };
        if let Some(named) = payload_schema {
            for (slot, side, name) in [
                (0, &record.payload.before, "payload.before"),
                (1, &record.payload.after, "payload.after"),
            ] {
                if let Some(data) = structured(side) {
                    let ready = self.schema(&named)?;
                    let bytes = encode_map(&ready.encoding, data)
                        .map_err(|e| format!("failed to encode {name}: {e}"))?;
                    sides[slot] = Some(Data::Raw(bytes));
                }
            }
        }
        let [before, after] = sides;
        replace(&mut record.key, new_key);
        replace(&mut record.payload.before, before);
        replace(&mut record.payload.after, after);
        Ok(())
    }

    /// Whether [`Self::encode`] would change `record`: a structured part under a schema.
    pub fn needs_encoding(record: &Record, key: bool, payload: bool) -> bool {
        under_schema(record, key, payload, |d| structured(d).is_some())
    }

    /// Whether [`Self::decode`] would change `record`: a raw, non-empty part under a schema.
    pub fn needs_decoding(record: &Record, key: bool, payload: bool) -> bool {
        under_schema(record, key, payload, |d| raw(d).is_some())
    }

    /// Name in `record`'s metadata a schema for its structured key and payload, as a source
    /// built with Conduit's connector SDK does: a part whose schema the metadata already
    /// names keeps it (the source chose it; naming only one of subject and version is an
    /// error); otherwise the schema is inferred from the data (the payload's from `after`,
    /// else `before`) and registered under the subject, prefixed with the record's
    /// collection (`collection.subject`) and qualified with the context. Raw parts get no
    /// schema. The data itself stays structured.
    pub fn extract(&mut self, record: &mut Record, how: &Extraction) -> Result<(), String> {
        let mut found = [None, None];
        if let (Some(subject), Some(Data::Structured(data))) = (&how.key_subject, &record.key) {
            if named_by_source(record, KEY_SUBJECT, KEY_VERSION)
                .map_err(|e| format!("failed to get key schema: {e}"))?
                .is_none()
            {
                let subject = qualified(record, how, subject);
                let version = self
                    .extracted_version(&subject, data)
                    .map_err(|e| format!("failed to extract schema for key: {e}"))?;
                found[0] = Some((subject, version));
            }
        }
        let sample = structured(&record.payload.after).or(structured(&record.payload.before));
        if let (Some(subject), Some(data)) = (&how.payload_subject, sample) {
            if named_by_source(record, PAYLOAD_SUBJECT, PAYLOAD_VERSION)
                .map_err(|e| format!("failed to get payload schema: {e}"))?
                .is_none()
            {
                let subject = qualified(record, how, subject);
                let version = self
                    .extracted_version(&subject, data)
                    .map_err(|e| format!("failed to extract schema for payload: {e}"))?;
                found[1] = Some((subject, version));
            }
        }
        for (found, subject_key, version_key) in [
            (found[0].take(), KEY_SUBJECT, KEY_VERSION),
            (found[1].take(), PAYLOAD_SUBJECT, PAYLOAD_VERSION),
        ] {
            if let Some((subject, version)) = found {
                // The keys are static strings (borrowed, however long); the version fits
                // inline.
                record.metadata.insert(key(subject_key), subject);
                record
                    .metadata
                    .insert(key(version_key), itoa::Buffer::new().format(version));
            }
        }
        Ok(())
    }

    /// The subject and version of the schema inferred for `data`, registered under
    /// `subject` the first time its shape is seen.
    pub(crate) fn extracted(
        &mut self,
        subject: String,
        data: &Structured,
    ) -> Result<Named, String> {
        let version = self.extracted_version(&subject, data)?;
        Ok((subject, version))
    }

    /// As [`Self::extracted`], the version only.
    fn extracted_version(&mut self, subject: &str, data: &Structured) -> Result<u32, String> {
        let shape = match self.extracted.get(subject, data) {
            Ok(version) => return Ok(version),
            Err(shape) => shape,
        };
        let text = infer(data)?.to_string();
        let version = self.register(subject, &text)?.version;
        self.extracted
            .insert(subject.to_owned(), shape, data, version);
        Ok(version)
    }
}

/// Whether a part of `record` (its key if `key`, a payload side if `payload`) satisfies
/// `part` and its metadata names a schema for it.
fn under_schema(
    record: &Record,
    key: bool,
    payload: bool,
    part: impl Fn(&Option<Data>) -> bool,
) -> bool {
    let has = |subject: &str, version: &str| {
        record.metadata.contains_key(subject) && record.metadata.contains_key(version)
    };
    (key && part(&record.key) && has(KEY_SUBJECT, KEY_VERSION))
        || (payload
            && (part(&record.payload.before) || part(&record.payload.after))
            && has(PAYLOAD_SUBJECT, PAYLOAD_VERSION))
}

/// `[context:][collection.]subject` for a record, as metadata text (no allocation when
/// it is up to 24 bytes long).
fn qualified(record: &Record, how: &Extraction, subject: &str) -> MetaText {
    let collection = record.metadata.get(COLLECTION).filter(|c| !c.is_empty());
    // Sized once: this runs for every record a source reads.
    let mut out = MetaText::with_capacity(
        how.context.len() + 1 + collection.map_or(0, |c| c.len() + 1) + subject.len(),
    );
    if !how.context.is_empty() {
        out.push_str(&how.context);
        out.push(':');
    }
    if let Some(collection) = collection {
        out.push_str(collection);
        out.push('.');
    }
    out.push_str(subject);
    out
}

pub(crate) fn prepare(version: u32, text: &str) -> Result<Ready, String> {
    Ok(Ready {
        version,
        encoding: encoding(parse_schema(text)?)?,
    })
}

/// The schema a record's metadata names with `subject` and `version` keys: none unless
/// both are there (the SDKs' decoding skips such a part); an error if the version is not a
/// number.
pub fn named(record: &Record, subject: &str, version: &str) -> Result<Option<Named>, String> {
    let (Some(s), Some(v)) = (record.metadata.get(subject), record.metadata.get(version)) else {
        return Ok(None);
    };
    let v = v.parse::<u32>().map_err(|_| {
        format!("failed to get schema version from metadata: {version} is {v:?}, not a number")
    })?;
    Ok(Some((s.to_owned(), v)))
}

/// As [`named`], for a source's extraction: naming only one of subject and version is an
/// error (a bug in the connector, says the SDK).
fn named_by_source(record: &Record, subject: &str, version: &str) -> Result<Option<Named>, String> {
    match (record.metadata.get(subject), record.metadata.get(version)) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => named(record, subject, version),
        (s, v) => Err(format!(
            "found metadata fields {subject}={} and {version}={}, expected schema subject \
             and version to be both set to valid values",
            s.unwrap_or_default(),
            v.unwrap_or_default()
        )),
    }
}

fn decoded(schema: &Encoding, bytes: &[u8]) -> Result<Data, String> {
    match decode(schema, bytes)? {
        Value::Object(map) => Ok(Data::Structured(map.into())),
        other => Err(format!("the schema gives {other}, not structured data")),
    }
}

/// The bytes a key or payload side holds, if it holds some.
fn raw(data: &Option<Data>) -> Option<&[u8]> {
    match data {
        Some(Data::Raw(bytes)) if !bytes.is_empty() => Some(bytes),
        _ => None,
    }
}

/// The structured data a key or payload side holds, if it holds some.
pub(crate) fn structured(data: &Option<Data>) -> Option<&Structured> {
    match data {
        Some(Data::Structured(map)) => Some(map),
        _ => None,
    }
}

/// Put `new` in `slot` if there is one.
pub(crate) fn replace(slot: &mut Option<Data>, new: Option<Data>) {
    if let Some(new) = new {
        *slot = Some(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::MemoryRegistry;
    use crate::testing::meta;
    use serde_json::json;

    fn record(metadata: &[(&str, &str)], after: Value) -> Record {
        let Value::Object(after) = after else {
            panic!("an object")
        };
        Record {
            metadata: meta(metadata),
            key: Some(Data::Raw(b"k".to_vec())),
            payload: culvert_domain::Change {
                before: None,
                after: Some(Data::Structured(after.into())),
            },
            ..Record::default()
        }
    }

    fn how(context: &str) -> Extraction {
        Extraction {
            key_subject: Some("key".into()),
            payload_subject: Some("payload".into()),
            context: context.into(),
        }
    }

    #[test]
    fn a_source_names_an_inferred_schema_and_a_destination_decodes_by_it() {
        let registry = Arc::new(MemoryRegistry::default());
        let mut codec = SchemaCodec::new(registry.clone());
        let mut one = record(
            &[(COLLECTION, "users")],
            json!({"id": 1, "name": "ada", "tags": ["x"]}),
        );
        codec.extract(&mut one, &how("p:src")).unwrap();
        assert_eq!(one.metadata[PAYLOAD_SUBJECT], "p:src:users.payload");
        assert_eq!(one.metadata[PAYLOAD_VERSION], "1");
        // A raw key gets no schema; the data stays structured.
        assert!(!one.metadata.contains_key(KEY_SUBJECT));
        assert!(matches!(one.payload.after, Some(Data::Structured(_))));
        // The same shape again is not registered again; another shape is the next version.
        let mut two = record(
            &[(COLLECTION, "users")],
            json!({"id": 2, "name": "bo", "tags": ["y"]}),
        );
        codec.extract(&mut two, &how("p:src")).unwrap();
        assert_eq!(two.metadata[PAYLOAD_VERSION], "1");
        let mut three = record(&[(COLLECTION, "users")], json!({"id": 3}));
        codec.extract(&mut three, &how("p:src")).unwrap();
        assert_eq!(three.metadata[PAYLOAD_VERSION], "2");
        // A schema the source named stays.
        let mut chosen = record(
            &[(PAYLOAD_SUBJECT, "mine"), (PAYLOAD_VERSION, "7")],
            json!({"id": 4}),
        );
        codec.extract(&mut chosen, &how("")).unwrap();
        assert_eq!(chosen.metadata[PAYLOAD_SUBJECT], "mine");
        let mut half = record(&[(PAYLOAD_SUBJECT, "mine")], json!({"id": 4}));
        let error = codec.extract(&mut half, &how("")).unwrap_err();
        assert!(
            error.contains("expected schema subject and version"),
            "{error}"
        );

        // Encoded with the registered schema, the payload decodes back.
        let mut encoded = one.clone();
        assert!(SchemaCodec::needs_encoding(&encoded, false, true));
        codec.encode(&mut encoded, true, true).unwrap();
        assert!(!SchemaCodec::needs_encoding(&encoded, true, true));
        assert!(matches!(encoded.payload.after, Some(Data::Raw(_))));
        assert!(SchemaCodec::needs_decoding(&encoded, true, true));
        assert!(!SchemaCodec::needs_decoding(&encoded, true, false));
        codec.decode(&mut encoded, true, true).unwrap();
        assert_eq!(encoded, one);
        assert!(!SchemaCodec::needs_decoding(&encoded, true, true));
    }

    #[test]
    fn a_record_that_cannot_be_decoded_is_left_as_it_came() {
        let registry = Arc::new(MemoryRegistry::default());
        let mut codec = SchemaCodec::new(registry);
        let mut bad = record(
            &[(PAYLOAD_SUBJECT, "none"), (PAYLOAD_VERSION, "1")],
            json!({}),
        );
        bad.payload.after = Some(Data::Raw(vec![1, 2]));
        let before = bad.clone();
        let error = codec.decode(&mut bad, true, true).unwrap_err();
        assert!(error.contains("failed to get schema for none:1"), "{error}");
        assert_eq!(bad, before);
        let mut word = before.clone();
        word.metadata.insert(PAYLOAD_VERSION, "one");
        assert!(codec
            .decode(&mut word, true, true)
            .unwrap_err()
            .contains("not a number"));
        // Only a subject: nothing to decode by.
        let mut half = before.clone();
        half.metadata.remove(PAYLOAD_VERSION);
        codec.decode(&mut half, true, true).unwrap();
        assert_eq!(half.payload, before.payload);
    }
}
