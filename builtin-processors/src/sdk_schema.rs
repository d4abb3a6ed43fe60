//! The `sdk.schema.*` settings of the built-in processors: Conduit's processor SDK wraps
//! every processor so that a record whose key or payload comes encoded with a schema (the
//! `opencdc.key.schema.*` / `opencdc.payload.schema.*` metadata a source built with
//! Conduit's connector SDK attaches) reaches the processor as structured data, and leaves
//! it encoded again.
//!
//! Before the processor (`sdk.schema.decode.key.enabled`, `...payload.enabled`): raw data
//! under a schema (subject and version in the metadata) is decoded with that schema (an
//! Avro datum, no header) into structured data. After it (`sdk.schema.encode.*`):
//! structured data is encoded again. If the processor left the record's schema metadata as
//! it came, the schema is inferred from the data as it is now and registered under the same
//! subject (the processor may have changed the data's shape), and the metadata names the
//! new version; if the processor named another schema, that one is used. A part that came
//! structured (a built-in source's records stay structured inside the process) gets its
//! schema brought up to date the same way but is not encoded: the next step would only
//! decode it. A record without schema metadata passes untouched. A record that cannot be decoded or encoded fails alone
//! (Conduit fails the batch), saying which part and why.
//!
//! Standalone (WASM) processors are not wrapped: Conduit's SDK does this inside them.

use crate::avro::encode_map;
use crate::per_record::Subset;
use crate::schema_codec::{
    named, replace, structured, Named, Ready, SchemaCodec, KEY_SUBJECT, KEY_VERSION,
    PAYLOAD_SUBJECT, PAYLOAD_VERSION,
};
use culvert_domain::{parse_bool, Data, Record, Structured};
use culvert_plugins::processor::{Outcome, Processor};
use culvert_plugins::schema::SchemaRegistry;
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;
use std::sync::Arc;

/// Which parts are decoded before and encoded after the processor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Switches {
    decode_key: bool,
    decode_payload: bool,
    encode_key: bool,
    encode_payload: bool,
}

impl Switches {
    /// From the (validated) settings; a setting that is not there is off.
    pub(crate) fn from_settings(settings: &Settings) -> Self {
        let on = |key: &str| {
            settings
                .get(key)
                .and_then(|v| parse_bool(v))
                .unwrap_or(false)
        };
        Self {
            decode_key: on("sdk.schema.decode.key.enabled"),
            decode_payload: on("sdk.schema.decode.payload.enabled"),
            encode_key: on("sdk.schema.encode.key.enabled"),
            encode_payload: on("sdk.schema.encode.payload.enabled"),
        }
    }

    /// Whether anything is to be done.
    pub(crate) fn any(self) -> bool {
        self.decode_key || self.decode_payload || self.encode_key || self.encode_payload
    }
}

/// A record's key and payload schemas as it came, and whether each part came encoded.
#[derive(Clone, Default)]
struct Incoming {
    key: Option<Named>,
    payload: Option<Named>,
    /// The key came encoded (raw), the payload came encoded.
    raw: [bool; 2],
}

/// A processor with the SDK's schema decoding and encoding around it.
pub(crate) struct WithSchemas {
    inner: Box<dyn Processor>,
    switches: Switches,
    codec: SchemaCodec,
    /// Per record of the batch: the key's and the payload's schema as it came.
    incoming: Vec<Incoming>,
    /// The records that go to the processor, by index; the others failed to decode.
    chosen: Vec<usize>,
    subset: Subset,
}

impl WithSchemas {
    /// `inner` with `switches` applied around it, schemas from `registry`.
    pub(crate) fn new(
        inner: Box<dyn Processor>,
        switches: Switches,
        registry: Arc<dyn SchemaRegistry>,
    ) -> Self {
        Self {
            inner,
            switches,
            codec: SchemaCodec::new(registry),
            incoming: Vec::new(),
            chosen: Vec::new(),
            subset: Subset::default(),
        }
    }

    /// Decode the parts of `record` that came under a schema (and are switched on): all of
    /// them, or (on an error) none, so a failed record is left as it came.
    fn decode_record(
        &mut self,
        record: &mut Record,
        key: &Option<Named>,
        payload: &Option<Named>,
    ) -> Result<(), String> {
        let key = key.as_ref().filter(|_| self.switches.decode_key);
        let payload = payload.as_ref().filter(|_| self.switches.decode_payload);
        self.codec.decode_named(record, key, payload)
    }

    /// Encode the structured parts of a processed record again: all of them, or (on an
    /// error) none. A part that came structured (from a built-in source, inside this
    /// process) stays structured: its schema is brought up to date (inferred from the data
    /// as it is now, and registered) but the data is not encoded, as the next step would
    /// only decode it again; what any consumer sees is the same.
    fn encode_record(&mut self, record: &mut Record, incoming: &Incoming) -> Result<(), String> {
        let mut new_key = None;
        let mut key_version = None;
        if let (true, Some(Data::Structured(data))) = (self.switches.encode_key, &record.key) {
            if let Some(outgoing) = named(record, KEY_SUBJECT, KEY_VERSION)? {
                let failed = |e: String| format!("failed to encode key: {e}");
                let ready = self
                    .outgoing(&outgoing, &incoming.key, data)
                    .map_err(failed)?;
                if incoming.raw[0] {
                    new_key = Some(encoded(&ready, data).map_err(failed)?);
                }
                key_version = Some(ready.version);
            }
        }
        let mut sides = [None, None];
        let mut payload_version = None;
        let sample = structured(&record.payload.after).or(structured(&record.payload.before));
        if let (true, Some(sample)) = (self.switches.encode_payload, sample) {
            if let Some(outgoing) = named(record, PAYLOAD_SUBJECT, PAYLOAD_VERSION)? {
                let failed = |e: String| format!("failed to encode payload: {e}");
                let ready = self
                    .outgoing(&outgoing, &incoming.payload, sample)
                    .map_err(failed)?;
                if incoming.raw[1] {
                    for (slot, side) in [&record.payload.before, &record.payload.after]
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(map) = structured(side) {
                            sides[slot] = Some(encoded(&ready, map).map_err(failed)?);
                        }
                    }
                }
                payload_version = Some(ready.version);
            }
        }
        replace(&mut record.key, new_key);
        if let Some(version) = key_version {
            record
                .metadata
                .insert(KEY_VERSION.to_owned(), version.to_string());
        }
        let [before, after] = sides;
        replace(&mut record.payload.before, before);
        replace(&mut record.payload.after, after);
        if let Some(version) = payload_version {
            record
                .metadata
                .insert(PAYLOAD_VERSION.to_owned(), version.to_string());
        }
        Ok(())
    }

    /// The schema to encode with: the one the record names if the processor named another
    /// than it came with; else one inferred from `data` and registered under the subject.
    fn outgoing(
        &mut self,
        outgoing: &Named,
        incoming: &Option<Named>,
        data: &Structured,
    ) -> Result<Arc<Ready>, String> {
        if incoming.as_ref() != Some(outgoing) {
            return self.codec.schema(outgoing);
        }
        let named = self
            .codec
            .extracted(outgoing.0.clone(), data)
            .map_err(|e| format!("failed to extract schema: {e}"))?;
        self.codec.schema(&named)
    }
}

fn encoded(ready: &Ready, data: &serde_json::Map<String, Value>) -> Result<Data, String> {
    encode_map(&ready.encoding, data).map(Data::Raw)
}

#[async_trait::async_trait]
impl Processor for WithSchemas {
    fn identify(&mut self, id: &str) {
        self.inner.identify(id);
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }

    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        self.incoming.clear();
        self.chosen.clear();
        for (i, record) in records.iter_mut().enumerate() {
            let parts = named(record, KEY_SUBJECT, KEY_VERSION)
                .and_then(|key| Ok((key, named(record, PAYLOAD_SUBJECT, PAYLOAD_VERSION)?)));
            let (key, payload) = match parts {
                Ok(parts) => parts,
                Err(error) => {
                    outcomes[i] = Outcome::Fail(error);
                    self.incoming.push(Incoming::default());
                    continue;
                }
            };
            let raw = [
                matches!(record.key, Some(Data::Raw(_))),
                matches!(record.payload.before, Some(Data::Raw(_)))
                    || matches!(record.payload.after, Some(Data::Raw(_))),
            ];
            match self.decode_record(record, &key, &payload) {
                Ok(()) => self.chosen.push(i),
                Err(error) => outcomes[i] = Outcome::Fail(error),
            }
            self.incoming.push(Incoming { key, payload, raw });
        }
        self.subset
            .process(self.inner.as_mut(), &self.chosen, records, outcomes)
            .await?;
        if !(self.switches.encode_key || self.switches.encode_payload) {
            return Ok(());
        }
        let chosen = std::mem::take(&mut self.chosen);
        for &i in &chosen {
            let incoming = self.incoming[i].clone();
            match &mut outcomes[i] {
                Outcome::Keep => {
                    if let Err(error) = self.encode_record(&mut records[i], &incoming) {
                        outcomes[i] = Outcome::Fail(error);
                    }
                }
                Outcome::Split(copies) => {
                    let mut copies = std::mem::take(copies);
                    let mut failed = None;
                    for copy in &mut copies {
                        if let Err(error) = self.encode_record(copy, &incoming) {
                            failed = Some(error);
                            break;
                        }
                    }
                    outcomes[i] = match failed {
                        Some(error) => Outcome::Fail(error),
                        None => Outcome::Split(copies),
                    };
                }
                Outcome::Drop | Outcome::Fail(_) => {}
            }
        }
        self.chosen = chosen;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{decode, encode, encoding, parse_schema, MemoryRegistry};
    use crate::schema_codec::prepare;
    use crate::testing::{meta, run, settings};
    use culvert_plugins::schema::SchemaType;
    use serde_json::json;

    const USERS: &str = r#"{"type":"record","name":"users","fields":[
        {"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;

    /// A registry holding `USERS` as users:1, and a record whose payload is encoded with it.
    fn setup() -> (Arc<MemoryRegistry>, Record) {
        let registry = Arc::new(MemoryRegistry::default());
        registry.create("users", SchemaType::Avro, USERS).unwrap();
        let ready = prepare(1, USERS).unwrap();
        let after = encode(&ready.encoding, &json!({"name": "ada", "age": 36})).unwrap();
        let record = Record {
            metadata: meta(&[(PAYLOAD_SUBJECT, "users"), (PAYLOAD_VERSION, "1")]),
            payload: culvert_domain::Change {
                before: None,
                after: Some(Data::Raw(after)),
            },
            ..Record::default()
        };
        (registry, record)
    }

    fn configure(
        registry: &Arc<MemoryRegistry>,
        plugin: &str,
        pairs: &[(&str, &str)],
    ) -> Box<dyn Processor> {
        crate::registry_with_schemas(registry.clone())
            .configure(plugin, &settings(pairs), "")
            .unwrap()
    }

    fn payload_as(registry: &MemoryRegistry, record: &Record) -> Value {
        let version: u32 = record.metadata[PAYLOAD_VERSION].parse().unwrap();
        let text = registry.get("users", version).unwrap().text;
        let Some(Data::Raw(bytes)) = &record.payload.after else {
            panic!("not encoded: {record:?}");
        };
        decode(&encoding(parse_schema(&text).unwrap()).unwrap(), bytes).unwrap()
    }

    #[test]
    fn a_processor_sees_structured_data_and_its_output_is_encoded_again() {
        let (registry, record) = setup();
        let mut processor = configure(
            &registry,
            "field.set",
            &[("field", ".Payload.After.name"), ("value", "grace")],
        );
        let mut records = vec![record];
        assert_eq!(run(processor.as_mut(), &mut records), [Outcome::Keep]);
        let out = &records[0];
        // The schema was inferred from the data as it is now (integers are longs) and
        // registered as the subject's next version.
        assert_eq!(out.metadata[PAYLOAD_VERSION], "2");
        assert_eq!(
            payload_as(&registry, out),
            json!({"age": 36, "name": "grace"})
        );
    }

    #[test]
    fn structured_data_under_a_schema_stays_structured_and_its_schema_follows_it() {
        // As a built-in source's records come: structured, naming their schema.
        let registry = Arc::new(MemoryRegistry::default());
        let mut codec = crate::schema_codec::SchemaCodec::new(registry.clone());
        let mut record = Record {
            payload: culvert_domain::Change {
                before: None,
                after: Some(Data::Structured(
                    json!({"name": "ada"}).as_object().unwrap().clone().into(),
                )),
            },
            ..Record::default()
        };
        let how = crate::schema_codec::Extraction {
            payload_subject: Some("payload".into()),
            ..Default::default()
        };
        codec.extract(&mut record, &how).unwrap();
        assert_eq!(record.metadata[PAYLOAD_VERSION], "1");
        let mut processor = configure(
            &registry,
            "field.set",
            &[("field", ".Payload.After.age"), ("value", "36")],
        );
        let mut records = vec![record];
        assert_eq!(run(processor.as_mut(), &mut records), [Outcome::Keep]);
        let out = &records[0];
        assert_eq!(
            out.payload.after,
            Some(Data::Structured(
                json!({"name": "ada", "age": "36"})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into()
            ))
        );
        assert_eq!(out.metadata[PAYLOAD_VERSION], "2");
        let text = registry.get("payload", 2).unwrap().text;
        assert!(text.contains("\"age\""), "{text}");
    }

    #[test]
    fn switched_off_or_without_schema_metadata_the_data_stays_raw() {
        let kind = [
            ("field", ".Metadata.kind"),
            ("value", "{{ printf \"%T\" .Payload.After }}"),
        ];
        let (registry, record) = setup();
        let mut on = configure(&registry, "field.set", &kind);
        let mut records = vec![record.clone()];
        run(on.as_mut(), &mut records);
        assert_ne!(records[0].metadata["kind"], "opencdc.RawData", "decoded");
        let mut pairs = kind.to_vec();
        pairs.push(("sdk.schema.decode.payload.enabled", "false"));
        let mut off = configure(&registry, "field.set", &pairs);
        let mut records = vec![record.clone()];
        run(off.as_mut(), &mut records);
        assert_eq!(records[0].metadata["kind"], "opencdc.RawData");
        let mut bare = record;
        bare.metadata.clear();
        let mut records = vec![bare.clone()];
        run(on.as_mut(), &mut records);
        assert_eq!(records[0].metadata["kind"], "opencdc.RawData");
        assert_eq!(records[0].payload, bare.payload, "untouched");
    }

    #[test]
    fn a_record_that_cannot_be_decoded_fails_alone() {
        let (registry, good) = setup();
        let mut bad = good.clone();
        bad.payload.after = Some(Data::Raw(vec![0xff]));
        let mut wrong = good.clone();
        wrong
            .metadata
            .insert(PAYLOAD_VERSION.to_owned(), "x".to_owned());
        let mut missing = good.clone();
        missing
            .metadata
            .insert(PAYLOAD_VERSION.to_owned(), "9".to_owned());
        let mut processor = configure(
            &registry,
            "field.set",
            &[("field", ".Metadata.seen"), ("value", "yes")],
        );
        let mut records = vec![bad, good, wrong, missing];
        let outcomes = run(processor.as_mut(), &mut records);
        let reason = |o: &Outcome| match o {
            Outcome::Fail(e) => e.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason(&outcomes[0]).contains("failed to decode payload.after"));
        assert_eq!(outcomes[1], Outcome::Keep);
        assert_eq!(records[1].metadata["seen"], "yes");
        assert!(reason(&outcomes[2]).contains("not a number"));
        assert!(reason(&outcomes[3]).contains("failed to get schema for users:9"));
        assert!(
            !records[0].metadata.contains_key("seen"),
            "a failed record was not processed"
        );
    }

    #[test]
    fn a_record_is_decoded_whole_or_not_at_all() {
        let (registry, good) = setup();
        let mut record = good.clone();
        // The key decodes; the payload does not: the record fails as it came.
        record.key = good.payload.after.clone();
        record
            .metadata
            .insert(KEY_SUBJECT.to_owned(), "users".to_owned());
        record
            .metadata
            .insert(KEY_VERSION.to_owned(), "1".to_owned());
        record.payload.after = Some(Data::Raw(vec![0xff]));
        let mut processor = configure(
            &registry,
            "field.set",
            &[("field", ".Metadata.seen"), ("value", "yes")],
        );
        let mut records = vec![record.clone()];
        let outcomes = run(processor.as_mut(), &mut records);
        assert!(
            matches!(&outcomes[0], Outcome::Fail(e) if e.contains("payload.after")),
            "{outcomes:?}"
        );
        assert_eq!(records[0], record, "left as it came, the key still raw");
    }
}
