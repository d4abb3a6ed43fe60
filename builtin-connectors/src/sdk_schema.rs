//! The schema settings Conduit's connector SDK gives every connector, for the built-ins.
//!
//! * Sources (`sdk.schema.extract.*`, `sdk.schema.context.*`): a record's structured key
//!   and payload get a schema, inferred from the data (Conduit's Avro inference) and
//!   registered under `[context:][collection.]key` / `...payload`, named in the record's
//!   metadata (`opencdc.key.schema.*`, `opencdc.payload.schema.*`). The context is the
//!   connector's id unless `sdk.schema.context.name` names another. Conduit's SDK also
//!   encodes the data with the schema; inside Culvert it stays structured (no encode and
//!   decode round trip between built-ins), which nothing observes: every built-in reading
//!   it accepts both.
//! * Destinations (`sdk.schema.extract.key.enabled`, `...payload.enabled`): a key or
//!   payload that arrives encoded under a schema its metadata names (from a standalone
//!   source built with the SDK, or a processor that encoded it) is decoded before it is
//!   written, so the destination writes structured data as Conduit's does. Where decoding
//!   is switched off, structured data under a schema (from a built-in source) is encoded
//!   instead: Conduit's destination would get it encoded from its source. A record that
//!   cannot be decoded or encoded fails the write, naming the record and why.
//!
//! [`with_schemas`] wraps a built-in plugin so; its specification lists the settings.

use culvert_domain::{parse_bool, Position, Record};
use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Prepare, ReadStage, Receipt, Settings, Source,
    Specification,
};
use culvert_plugins::schema::SchemaRegistry;
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_processors::schema_codec::{Extraction, SchemaCodec};
use std::sync::Arc;

/// The settings a built-in source takes for schema extraction; `extract` is whether keys
/// and payloads get schemas by default (Conduit's file source has it off).
pub fn source_parameters(extract: bool) -> Vec<Parameter> {
    use ParameterType::{Bool, String};
    let extract = if extract { "true" } else { "false" };
    vec![
        Parameter::new(
            "sdk.schema.context.enabled",
            Bool,
            "Whether schema subjects are qualified with a context (`context:subject`), so \
             that connectors do not share subjects by accident.",
        )
        .default_value("true"),
        Parameter::new(
            "sdk.schema.context.name",
            String,
            "The context that qualifies schema subjects; empty: the connector's id.",
        ),
        Parameter::new(
            "sdk.schema.extract.key.enabled",
            Bool,
            "Whether a structured key gets a schema extracted from it.",
        )
        .default_value(extract),
        Parameter::new(
            "sdk.schema.extract.key.subject",
            String,
            "The subject of the key's schema; a record's `opencdc.collection` is put before \
             it, separated by a dot.",
        )
        .default_value("key"),
        Parameter::new(
            "sdk.schema.extract.payload.enabled",
            Bool,
            "Whether a structured payload gets a schema extracted from it.",
        )
        .default_value(extract),
        Parameter::new(
            "sdk.schema.extract.payload.subject",
            String,
            "The subject of the payload's schema; a record's `opencdc.collection` is put \
             before it, separated by a dot.",
        )
        .default_value("payload"),
        Parameter::new(
            "sdk.schema.extract.type",
            String,
            "The type of the extracted schemas.",
        )
        .default_value("avro")
        .validate(Validation::Inclusion(vec!["avro".into()])),
    ]
}

/// The settings a built-in destination takes for schema decoding.
pub fn destination_parameters() -> Vec<Parameter> {
    vec![
        Parameter::new(
            "sdk.schema.extract.key.enabled",
            ParameterType::Bool,
            "Whether a key encoded under a schema (named in the record's metadata) is \
             decoded before it is written.",
        )
        .default_value("true"),
        Parameter::new(
            "sdk.schema.extract.payload.enabled",
            ParameterType::Bool,
            "Whether a payload encoded under a schema (named in the record's metadata) is \
             decoded before it is written.",
        )
        .default_value("true"),
    ]
}

/// `plugin` with the SDK's schema settings: its specification lists them, its sources
/// extract schemas (by default if `extract`) and its destinations decode by them, with
/// schemas from `registry`.
pub fn with_schemas(
    plugin: Arc<dyn ConnectorPlugin>,
    extract: bool,
    registry: Arc<dyn SchemaRegistry>,
) -> Arc<dyn ConnectorPlugin> {
    let mut spec = plugin.specification().clone();
    for (params, extra) in [
        (&mut spec.source, source_parameters(extract)),
        (&mut spec.destination, destination_parameters()),
    ] {
        if let Some(params) = params {
            params.extend(extra);
            params.sort_by_key(|p| p.name);
        }
    }
    Arc::new(WithSchemas {
        inner: plugin,
        spec,
        registry,
    })
}

struct WithSchemas {
    inner: Arc<dyn ConnectorPlugin>,
    spec: Specification,
    registry: Arc<dyn SchemaRegistry>,
}

impl WithSchemas {
    /// A boolean setting of `side`'s parameters (validated, so it parses); its default
    /// when missing.
    fn on(&self, side: &Option<Vec<Parameter>>, settings: &Settings, key: &str) -> bool {
        let default = || {
            side.iter()
                .flatten()
                .find(|p| p.name == key)
                .and_then(|p| parse_bool(p.default))
                .unwrap_or(true)
        };
        settings
            .get(key)
            .and_then(|v| parse_bool(v))
            .unwrap_or_else(default)
    }
}

impl ConnectorPlugin for WithSchemas {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        let inner = self.inner.new_source(settings)?;
        let on = |key: &str| self.on(&self.spec.source, settings, key);
        let subject = |enabled: &str, subject: &str, default: &str| {
            on(enabled).then(|| {
                settings
                    .get(subject)
                    .filter(|s| !s.is_empty())
                    .map_or(default, String::as_str)
                    .to_owned()
            })
        };
        let how = Extraction {
            key_subject: subject(
                "sdk.schema.extract.key.enabled",
                "sdk.schema.extract.key.subject",
                "key",
            ),
            payload_subject: subject(
                "sdk.schema.extract.payload.enabled",
                "sdk.schema.extract.payload.subject",
                "payload",
            ),
            context: String::new(),
        };
        if how.key_subject.is_none() && how.payload_subject.is_none() {
            return Ok(inner);
        }
        let context = on("sdk.schema.context.enabled").then(|| {
            settings
                .get("sdk.schema.context.name")
                .cloned()
                .unwrap_or_default()
        });
        Ok(Box::new(ExtractingSource {
            inner,
            extract: Some(Extract {
                codec: SchemaCodec::new(self.registry.clone()),
                how,
            }),
            context,
        }))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        let inner = self.inner.new_destination(settings)?;
        let on = |key: &str| self.on(&self.spec.destination, settings, key);
        let key = on("sdk.schema.extract.key.enabled");
        let payload = on("sdk.schema.extract.payload.enabled");
        Ok(Box::new(DecodingDestination {
            inner,
            codec: SchemaCodec::new(self.registry.clone()),
            key,
            payload,
        }))
    }
}

/// A source whose records get schemas.
struct ExtractingSource {
    inner: Box<dyn Source>,
    /// The extraction, run in `read` until the engine takes it to run beside the next read
    /// (`Source::detach_stage`).
    extract: Option<Extract>,
    /// The context setting: `None` off, empty the connector's id.
    context: Option<String>,
}

/// Schemas extracted for each record of a batch, registered and named in its metadata.
struct Extract {
    codec: SchemaCodec,
    how: Extraction,
}

impl ReadStage for Extract {
    fn apply(&mut self, records: &mut [Record]) -> Result<(), PluginError> {
        for record in records {
            self.codec
                .extract(record, &self.how)
                .map_err(PluginError::Other)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for ExtractingSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        self.inner.open(position).await
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        // Cancel-safe as the inner read: nothing is awaited after it.
        let mut records = self.inner.read(max).await?;
        if let Some(extract) = &mut self.extract {
            extract.apply(&mut records)?;
        }
        Ok(records)
    }

    async fn ack(&mut self, position: Position) -> Result<(), PluginError> {
        self.inner.ack(position).await
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }

    fn prepare(&mut self, context: Prepare) {
        if let Some(extract) = &mut self.extract {
            extract.how.context = match &self.context {
                None => String::new(),
                Some(name) if name.is_empty() => context.connector_id.clone(),
                Some(name) => name.clone(),
            };
        }
        self.inner.prepare(context);
    }

    fn detach_stage(&mut self) -> Option<Box<dyn ReadStage>> {
        // The inner source's own stage, if any, stays in its read: it runs before ours.
        self.extract
            .take()
            .map(|extract| Box::new(extract) as Box<dyn ReadStage>)
    }

    async fn on_deleted(&mut self, config: Settings) -> Result<(), PluginError> {
        self.inner.on_deleted(config).await
    }
}

/// A destination that gets keys and payloads under a schema as Conduit's would: decoded
/// where its settings say so, encoded (as a source built with the SDK sends them) where
/// they do not.
struct DecodingDestination {
    inner: Box<dyn Destination>,
    codec: SchemaCodec,
    key: bool,
    payload: bool,
}

impl DecodingDestination {
    /// Whether `record` is not yet as the destination is to get it.
    fn needs_work(&self, record: &Record) -> bool {
        SchemaCodec::needs_decoding(record, self.key, self.payload)
            || SchemaCodec::needs_encoding(record, !self.key, !self.payload)
    }

    /// `records` as the destination is to get them, or `None` if they are so already (the
    /// batch is written as it came, uncopied).
    fn prepared(&mut self, records: &[Record]) -> Result<Option<Vec<Record>>, PluginError> {
        if !records.iter().any(|r| self.needs_work(r)) {
            return Ok(None);
        }
        let mut out = records.to_vec();
        for (i, record) in out.iter_mut().enumerate() {
            if !self.needs_work(record) {
                continue;
            }
            self.codec
                .decode(record, self.key, self.payload)
                .and_then(|()| self.codec.encode(record, !self.key, !self.payload))
                .map_err(|e| PluginError::Other(format!("record {i}: {e}")))?;
        }
        Ok(Some(out))
    }
}

#[async_trait::async_trait]
impl Destination for DecodingDestination {
    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        match self.prepared(records)? {
            None => self.inner.write(records).await,
            Some(decoded) => self.inner.write(&decoded).await,
        }
    }

    async fn write_each(
        &mut self,
        records: &[Record],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        match self.prepared(records)? {
            None => self.inner.write_each(records).await,
            Some(decoded) => self.inner.write_each(&decoded).await,
        }
    }

    async fn submit(&mut self, records: &[Record]) -> Result<Receipt, PluginError> {
        match self.prepared(records)? {
            None => self.inner.submit(records).await,
            Some(decoded) => self.inner.submit(&decoded).await,
        }
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }

    async fn gone(&mut self) -> PluginError {
        self.inner.gone().await
    }

    fn prepare(&mut self, context: Prepare) {
        self.inner.prepare(context);
    }

    async fn on_deleted(&mut self, config: Settings) -> Result<(), PluginError> {
        self.inner.on_deleted(config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::Data;
    use culvert_processors::avro::MemoryRegistry;
    use culvert_processors::schema_codec::{PAYLOAD_SUBJECT, PAYLOAD_VERSION};
    use std::sync::Mutex;

    /// A destination that keeps what it is given.
    struct Keep(Arc<Mutex<Vec<Record>>>);

    #[async_trait::async_trait]
    impl Destination for Keep {
        async fn open(&mut self) -> Result<(), PluginError> {
            Ok(())
        }
        async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
            self.0.lock().unwrap().extend_from_slice(records);
            Ok(())
        }
        async fn teardown(&mut self) -> Result<(), PluginError> {
            Ok(())
        }
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn the_generator_names_schemas_and_a_destination_decodes_encoded_payloads() {
        let registry: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let generator = with_schemas(
            Arc::new(crate::generator::Generator::new()),
            true,
            registry.clone(),
        );
        let names: Vec<&str> = generator
            .specification()
            .source
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.name)
            .collect();
        assert!(
            names.contains(&"sdk.schema.extract.payload.subject"),
            "{names:?}"
        );
        let mut source = generator
            .new_source(&settings(&[
                ("format.type", "structured"),
                ("format.options.id", "int"),
                ("format.options.name", "string"),
                ("recordCount", "3"),
                ("sdk.schema.context.enabled", "true"),
                ("sdk.schema.context.name", ""),
                ("sdk.schema.extract.key.enabled", "true"),
                ("sdk.schema.extract.payload.enabled", "true"),
            ]))
            .unwrap();
        source.prepare(Prepare {
            connector_id: "pipe:gen".into(),
            ..Prepare::default()
        });
        source.open(None).await.unwrap();
        let records = source.read(10).await.unwrap();
        assert_eq!(records.len(), 3);
        for record in &records {
            assert_eq!(record.metadata[PAYLOAD_SUBJECT], "pipe:gen:payload");
            assert_eq!(record.metadata[PAYLOAD_VERSION], "1");
            assert!(matches!(record.payload.after, Some(Data::Structured(_))));
        }
        let schema = registry.get("pipe:gen:payload", 1).unwrap();
        assert!(schema.text.contains("\"name\""), "{}", schema.text);

        // A destination given the payload encoded with that schema writes it decoded.
        let kept = Arc::new(Mutex::new(Vec::new()));
        let plugin = with_schemas(Arc::new(KeepPlugin(kept.clone())), true, registry.clone());
        let mut destination = plugin.new_destination(&Settings::new()).unwrap();
        let mut encoded = records.clone();
        let mut codec = SchemaCodec::new(registry.clone());
        for record in &mut encoded {
            codec.encode(record, true, true).unwrap();
            assert!(matches!(record.payload.after, Some(Data::Raw(_))));
        }
        destination.write(&encoded).await.unwrap();
        assert_eq!(*kept.lock().unwrap(), records);
        // One that cannot be decoded fails the write, naming it.
        let mut bad = records[0].clone();
        bad.payload.after = Some(Data::Raw(vec![0xff, 0xff]));
        let error = destination
            .write(&[records[1].clone(), bad])
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("record 1: failed to decode payload.after"),
            "{error}"
        );
        // Switched off, encoded data is written as it came, and structured data under a
        // schema encoded, as Conduit's destination gets it from a source built with the SDK.
        let mut off = plugin
            .new_destination(&settings(&[(
                "sdk.schema.extract.payload.enabled",
                "false",
            )]))
            .unwrap();
        for batch in [&encoded, &records] {
            kept.lock().unwrap().clear();
            off.write(batch).await.unwrap();
            assert_eq!(*kept.lock().unwrap(), encoded);
        }
    }

    /// The extraction taken out of the reads (as the engine does, to run it beside the next
    /// read) does to each batch what the reads did: the same schemas, subjects, versions.
    #[tokio::test]
    async fn a_detached_extraction_names_schemas_as_the_reads_did() {
        let settings = settings(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("format.options.name", "string"),
            ("recordCount", "4"),
        ]);
        let source = |registry: &Arc<dyn SchemaRegistry>| {
            let plugin = with_schemas(
                Arc::new(crate::generator::Generator::new()),
                true,
                registry.clone(),
            );
            let mut source = plugin.new_source(&settings).unwrap();
            source.prepare(Prepare {
                connector_id: "p:gen".into(),
                ..Prepare::default()
            });
            source
        };
        let in_reads: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let mut reading = source(&in_reads);
        reading.open(None).await.unwrap();
        let expected = reading.read(10).await.unwrap();
        assert_eq!(expected[0].metadata[PAYLOAD_SUBJECT], "p:gen:payload");

        let apart: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let mut detached = source(&apart);
        let mut stage = detached.detach_stage().expect("the extraction detaches");
        assert!(detached.detach_stage().is_none(), "once only");
        detached.open(None).await.unwrap();
        let mut records = detached.read(10).await.unwrap();
        assert_eq!(records.len(), 4);
        assert!(
            records
                .iter()
                .all(|r| r.metadata.get(PAYLOAD_SUBJECT).is_none()),
            "the reads no longer extract"
        );
        stage.apply(&mut records).unwrap();
        for (record, want) in records.iter().zip(&expected) {
            assert_eq!(record.metadata[PAYLOAD_SUBJECT], "p:gen:payload");
            assert_eq!(
                record.metadata[PAYLOAD_VERSION],
                want.metadata[PAYLOAD_VERSION]
            );
        }
        assert_eq!(
            apart.get("p:gen:payload", 1).unwrap().text,
            in_reads.get("p:gen:payload", 1).unwrap().text
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_extracting_source_is_cancel_safe() {
        use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
        let registry: Arc<dyn SchemaRegistry> = Arc::new(MemoryRegistry::default());
        let plugin = with_schemas(Arc::new(crate::generator::Generator::new()), true, registry);
        let count = 20_000;
        let expected: Vec<Vec<u8>> = (1..=count).map(|n| n.to_string().into_bytes()).collect();
        // Rate-limited, so every read waits and the harness drops reads at its await points.
        let settings = settings(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("rate", "100000"),
            ("recordCount", &count.to_string()),
        ]);
        let report = check_cancel_safety(
            || {
                let mut source = plugin.new_source(&settings).unwrap();
                source.prepare(Prepare {
                    connector_id: "p:gen".into(),
                    ..Prepare::default()
                });
                source
            },
            &expected,
            |r| {
                assert_eq!(r.metadata[PAYLOAD_SUBJECT], "p:gen:payload", "{r:?}");
                r.position.0.clone()
            },
            &CancelSafety::default(),
        )
        .await
        .unwrap_or_else(|violation| panic!("{violation}"));
        assert!(report.cancelled >= 2_000, "{report:?}");
    }

    /// A plugin whose destination keeps what it is given.
    struct KeepPlugin(Arc<Mutex<Vec<Record>>>);

    impl ConnectorPlugin for KeepPlugin {
        fn specification(&self) -> &Specification {
            static SPEC: std::sync::OnceLock<Specification> = std::sync::OnceLock::new();
            SPEC.get_or_init(|| Specification {
                name: "keep",
                summary: "",
                description: "",
                version: "v0",
                author: "",
                source: None,
                destination: Some(Vec::new()),
                standalone: false,
            })
        }
        fn new_source(&self, _: &Settings) -> Result<Box<dyn Source>, PluginError> {
            Err(PluginError::Other("no source".into()))
        }
        fn new_destination(&self, _: &Settings) -> Result<Box<dyn Destination>, PluginError> {
            Ok(Box::new(Keep(self.0.clone())))
        }
    }
}
