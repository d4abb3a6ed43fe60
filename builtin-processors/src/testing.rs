//! Test helpers for the processors' tests: records and settings, configuring a plugin as
//! the registry does (settings validated, defaults applied), running a batch, and table
//! runners for cases such as Conduit's examples.

use culvert_domain::{Change, Data, Metadata, Operation, Position, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin};
use culvert_plugins::spec::validate;
use culvert_plugins::Settings;
use serde_json::Value;

/// A record's metadata from pairs.
pub(crate) fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().copied().collect()
}

/// Settings from pairs.
pub(crate) fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Structured data from a JSON object.
pub(crate) fn structured(value: Value) -> Option<Data> {
    match value {
        Value::Object(map) => Some(Data::Structured(map.into())),
        other => panic!("not an object: {other}"),
    }
}

/// Raw data.
pub(crate) fn raw(text: &str) -> Option<Data> {
    Some(Data::Raw(text.as_bytes().to_vec()))
}

/// The record of Conduit's examples: position, create, `key1: val1`, the key and
/// `.Payload.After` given.
pub(crate) fn example(after: Option<Data>, key: Option<Data>) -> Record {
    Record {
        position: Position(b"test-position".to_vec()),
        operation: Operation::Create,
        metadata: meta(&[("key1", "val1")]),
        key,
        payload: Change {
            before: None,
            after,
        },
    }
}

/// A record with only a key.
pub(crate) fn keyed(key: Option<Data>) -> Record {
    Record {
        key,
        ..Record::default()
    }
}

/// A record with only a payload.
pub(crate) fn payload(before: Option<Data>, after: Option<Data>) -> Record {
    Record {
        payload: Change { before, after },
        ..Record::default()
    }
}

/// A snapshot record with only `.Payload.Before`.
pub(crate) fn snapshot(before: Option<Data>) -> Record {
    Record {
        operation: Operation::Snapshot,
        ..payload(before, None)
    }
}

/// A record's `.Payload.After`, which must be structured, as a JSON object.
pub(crate) fn after_value(record: &Record) -> Value {
    match &record.payload.after {
        Some(Data::Structured(map)) => Value::Object(map.as_map().clone()),
        other => panic!("not structured: {other:?}"),
    }
}

/// The settings validated against the plugin's parameters, defaults applied.
pub(crate) fn validated_settings(plugin: &dyn ProcessorPlugin, pairs: &[(&str, &str)]) -> Settings {
    validate(&plugin.specification().parameters, &settings(pairs))
        .unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
}

/// Validate the settings (applying defaults) and configure the plugin, as the registry
/// does.
pub(crate) fn configure(
    plugin: &dyn ProcessorPlugin,
    pairs: &[(&str, &str)],
) -> Result<Box<dyn Processor>, String> {
    let validated = validate(&plugin.specification().parameters, &settings(pairs))
        .map_err(|e| e.to_string())?;
    plugin.configure(&validated).map_err(|e| e.to_string())
}

/// Why [`configure`] refuses the settings (they must be refused).
pub(crate) fn refusal(plugin: &dyn ProcessorPlugin, pairs: &[(&str, &str)]) -> String {
    match configure(plugin, pairs) {
        Ok(_) => panic!("{pairs:?} accepted"),
        Err(error) => error,
    }
}

/// Why the plugin itself refuses the settings, given without validation (they must be
/// refused).
pub(crate) fn direct_refusal(plugin: &dyn ProcessorPlugin, pairs: &[(&str, &str)]) -> String {
    match plugin.configure(&settings(pairs)) {
        Ok(_) => panic!("{pairs:?} accepted without validation"),
        Err(error) => error.to_string(),
    }
}

/// Each case (settings, text): [`configure`] refuses the settings with an error containing
/// the text.
pub(crate) fn assert_refused<'a>(
    plugin: &dyn ProcessorPlugin,
    cases: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, &'a str)>,
) {
    for (pairs, want) in cases {
        let error = refusal(plugin, &pairs);
        assert!(error.contains(want), "{pairs:?}: {error}");
    }
}

/// Each case (field, text): [`configure`] refuses `field` with an error naming the setting
/// and containing the text.
pub(crate) fn assert_field_refused<'a>(
    plugin: &dyn ProcessorPlugin,
    cases: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    for (field, want) in cases {
        let error = refusal(plugin, &[("field", field)]);
        assert!(
            error.contains("\"field\"") && error.contains(want),
            "{field}: {error}"
        );
    }
}

/// The `sdk.schema.*` parameters every processor has, last and in this order.
const SCHEMA_PARAMETERS: [&str; 4] = [
    "sdk.schema.decode.key.enabled",
    "sdk.schema.decode.payload.enabled",
    "sdk.schema.encode.key.enabled",
    "sdk.schema.encode.payload.enabled",
];

/// The `sdk.schema.*` settings are all `default`.
pub(crate) fn assert_schema_defaults(validated: &Settings, default: &str) {
    for key in SCHEMA_PARAMETERS {
        assert_eq!(validated[key], default, "{key}");
    }
}

/// The plugin's parameters (names and defaults) are `own`, then the `sdk.schema.*` ones
/// with `schema_default`.
pub(crate) fn assert_parameters(
    plugin: &dyn ProcessorPlugin,
    own: &[(&str, &str)],
    schema_default: &str,
) {
    let parameters: Vec<_> = (plugin.specification().parameters.iter())
        .map(|p| (p.name, p.default))
        .collect();
    let schema = SCHEMA_PARAMETERS.map(|name| (name, schema_default));
    assert_eq!(parameters, [own, &schema].concat());
}

/// What the tests of a processor with a required `field` check of its settings: with
/// `field` set to `valid`, the settings validate (every `sdk.schema.*` setting `true` by
/// default) and the plugin takes them; it takes each of `accepted` too; it refuses settings
/// without `field` as the parameter's validation does, and each case of `refused` (a
/// `field`, and what the error says about the setting).
pub(crate) fn assert_field_settings<'a>(
    plugin: &dyn ProcessorPlugin,
    valid: &str,
    accepted: &[&str],
    refused: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let validated = validated_settings(plugin, &[("field", valid)]);
    assert_schema_defaults(&validated, "true");
    assert!(plugin.configure(&validated).is_ok(), "{valid}");
    for field in accepted {
        configure(plugin, &[("field", field)]).unwrap_or_else(|e| panic!("{field}: {e}"));
    }
    let error = refusal(plugin, &[]);
    let want = "setting \"field\": required parameter is not provided";
    assert!(error.contains(want), "no field: {error}");
    for (field, problem) in refused {
        let error = refusal(plugin, &[("field", field)]);
        let want = format!("setting \"field\": {problem}");
        assert!(error.contains(&want), "{field}: {error}");
    }
}

/// The plugin itself refuses each `field`, given without validation, naming the setting.
pub(crate) fn assert_field_refused_directly(plugin: &dyn ProcessorPlugin, fields: &[&str]) {
    for field in fields {
        let error = direct_refusal(plugin, &[("field", field)]);
        assert!(error.contains("\"field\""), "{field}: {error}");
    }
}

/// Run one batch.
pub(crate) fn run(processor: &mut dyn Processor, records: &mut [Record]) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Keep; records.len()];
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(processor.process(records, &mut outcomes))
        .unwrap();
    outcomes
}

/// Configure with the settings and process one record.
pub(crate) fn process(
    plugin: &dyn ProcessorPlugin,
    pairs: &[(&str, &str)],
    mut record: Record,
) -> (Record, Outcome) {
    let mut processor = configure(plugin, pairs).unwrap();
    let outcome = run(processor.as_mut(), std::slice::from_mut(&mut record)).remove(0);
    (record, outcome)
}

/// Configure with `field` and process one record.
pub(crate) fn process_one(
    plugin: &dyn ProcessorPlugin,
    field: &str,
    record: Record,
) -> (Record, Outcome) {
    process(plugin, &[("field", field)], record)
}

/// A named case for [`assert_kept_with`]: settings, the record in and the record out.
pub(crate) type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Record,
    Record,
);

/// Each case (name, settings, record in, record out): the record is kept and comes out as
/// expected.
pub(crate) fn assert_kept_with<'a>(
    plugin: &dyn ProcessorPlugin,
    cases: impl IntoIterator<Item = (&'a str, &'a [(&'a str, &'a str)], Record, Record)>,
) {
    for (name, pairs, input, want) in cases {
        let (got, outcome) = process(plugin, pairs, input);
        assert_eq!(outcome, Outcome::Keep, "{name}");
        assert_eq!(got, want, "{name}");
    }
}

/// Each case (name, field, record in, record out): with `field` set, the record is kept
/// and comes out as expected.
pub(crate) fn assert_kept<'a>(
    plugin: &dyn ProcessorPlugin,
    cases: impl IntoIterator<Item = (&'a str, &'a str, Record, Record)>,
) {
    for (name, field, input, want) in cases {
        assert_kept_with(plugin, [(name, &[("field", field)][..], input, want)]);
    }
}

/// Each case (field, record, error): with `field` set, the record fails with that error
/// and stays as it was.
pub(crate) fn assert_failed<'a>(
    plugin: &dyn ProcessorPlugin,
    cases: impl IntoIterator<Item = (&'a str, Record, &'a str)>,
) {
    for (field, input, want) in cases {
        let (got, outcome) = process_one(plugin, field, input.clone());
        assert_eq!(outcome, Outcome::Fail(want.to_owned()), "{field} {input:?}");
        assert_eq!(got, input, "{field}: unchanged");
    }
}

/// Each case (field, record, text): with `field` set, the record fails with an error
/// containing the text and stays as it was.
pub(crate) fn assert_failed_containing<'a>(
    plugin: &dyn ProcessorPlugin,
    cases: impl IntoIterator<Item = (&'a str, Record, &'a str)>,
) {
    for (field, input, want) in cases {
        let (got, outcome) = process_one(plugin, field, input.clone());
        match outcome {
            Outcome::Fail(error) => assert!(error.contains(want), "{field}: {error}"),
            other => panic!("{field} {input:?}: {other:?}"),
        }
        assert_eq!(got, input, "a failed record is left as it was");
    }
}

/// Why a record failed (it must have).
pub(crate) fn failure(outcome: Outcome) -> String {
    match outcome {
        Outcome::Fail(error) => error,
        other => panic!("not failed: {other:?}"),
    }
}

/// A loopback HTTP/1.1 server for the tests of processors that call web services.
pub(crate) mod http_server {
    use super::configure;
    use culvert_domain::Record;
    use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    /// A request the test server received (header names in lower case).
    #[derive(Clone, Debug)]
    pub(crate) struct Seen {
        pub(crate) method: String,
        pub(crate) target: String,
        pub(crate) headers: BTreeMap<String, String>,
        pub(crate) body: String,
    }

    /// A reply: status, extra headers, body.
    pub(crate) type Reply = (u16, Vec<(&'static str, &'static str)>, String);
    pub(crate) type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

    /// An HTTP/1.1 server on 127.0.0.1 answering each request (one per connection) as the
    /// handler says, given the request and how many came so far; and the runtime it and the
    /// processor run on.
    pub(crate) struct Server {
        pub(crate) rt: tokio::runtime::Runtime,
        pub(crate) url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Server {
        pub(crate) fn start(
            handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
        ) -> Self {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            let rt = builder.worker_threads(1).enable_all().build().unwrap();
            let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"));
            let listener = listener.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (log, handler): (_, Arc<Handler>) = (seen.clone(), Arc::new(handler));
            rt.spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, log.clone(), handler.clone()));
                }
            });
            Self { rt, url, seen }
        }

        pub(crate) fn run(
            &self,
            processor: &mut dyn Processor,
            records: &mut [Record],
        ) -> Vec<Outcome> {
            let mut outcomes = vec![Outcome::Keep; records.len()];
            let done = self.rt.block_on(processor.process(records, &mut outcomes));
            done.unwrap();
            outcomes
        }

        /// Configure `plugin` (`URL` in values replaced by the server's URL) and process one
        /// record.
        pub(crate) fn process(
            &self,
            plugin: &dyn ProcessorPlugin,
            pairs: &[(&str, &str)],
            mut record: Record,
        ) -> (Record, Outcome) {
            let owned: Vec<_> = (pairs.iter())
                .map(|(k, v)| (*k, v.replace("URL", &self.url)))
                .collect();
            let pairs: Vec<_> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut processor = configure(plugin, &pairs).unwrap();
            let outcome = self.run(processor.as_mut(), std::slice::from_mut(&mut record));
            (record, outcome[0].clone())
        }

        pub(crate) fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    async fn serve(
        stream: tokio::net::TcpStream,
        log: Arc<Mutex<Vec<Seen>>>,
        handler: Arc<Handler>,
    ) {
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                // Not an HTTP request (a TLS handshake, say): hang up.
                Err(_) => return,
                Ok(0) => break,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
            lines.push(line.trim_end().to_owned());
        }
        let mut words = lines[0].split(' ').map(str::to_owned);
        let (method, target) = (words.next().unwrap(), words.next().unwrap());
        let headers: BTreeMap<_, _> = (lines[1..].iter())
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let mut body = vec![
            0;
            headers
                .get("content-length")
                .map_or(0, |l| l.parse().unwrap())
        ];
        reader.read_exact(&mut body).await.unwrap();
        let body = String::from_utf8(body).unwrap();
        let seen = Seen {
            method,
            target,
            headers,
            body,
        };
        let count = {
            let mut log = log.lock().unwrap();
            log.push(seen.clone());
            log.len()
        };
        let (status, extra, body) = handler(&seen, count);
        let mut reply = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in extra {
            reply.push_str(&format!("{name}: {value}\r\n"));
        }
        reply.push_str(&format!("Connection: close\r\n\r\n{body}"));
        let mut stream = reader.into_inner();
        stream.write_all(reply.as_bytes()).await.unwrap();
        stream.shutdown().await.ok();
    }

    /// A 200 reply with `body`.
    pub(crate) fn ok(body: &str) -> Reply {
        (200, vec![], body.to_owned())
    }
}
