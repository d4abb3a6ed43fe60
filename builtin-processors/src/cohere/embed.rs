//! `cohere.embed`: the text of each record's `inputField` is embedded by a Cohere model, in
//! requests of up to `maxTextsPerRequest` texts; each embedding is stored in `outputField`
//! as its JSON (`[0.1,0.2,0.3]`) in a zstd frame, and the model's name in the metadata
//! key `cohere.embed.model`.

use super::zstd::frame;
use super::{default_base_url, go_f64, input_text, parameters, raw_object, Api, Endpoint};
use crate::gofmt::{go_float, GoFloat};
use crate::params::{invalid, reference, setting, setting_or};
use crate::reference::{FieldValue, Reference};
use crate::resolve::resolve;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType};
use culvert_plugins::{PluginError, Settings};
use serde_json::json;
use serde_json::value::RawValue;

/// The metadata key that receives the model's name.
pub const EMBED_MODEL_METADATA: &str = "cohere.embed.model";

/// The default model (a v2 model, which needs no `inputType`).
const DEFAULT_MODEL: &str = "embed-english-v2.0";

/// `cohere.embed`: embeddings of a field, compressed with zstd.
pub struct CohereEmbed {
    spec: ProcessorSpecification,
    endpoint: Endpoint,
}

impl CohereEmbed {
    /// The plugin, calling Cohere's API (or `CO_API_URL` when set).
    pub fn new() -> Self {
        Self::with_base_url(&default_base_url())
    }

    /// The plugin, calling the API at `url` (tests use a local server).
    pub fn with_base_url(url: &str) -> Self {
        let own = vec![
            Parameter::new(
                "inputField",
                ParameterType::String,
                "The field (a reference such as `.Payload.After.text`) whose text is \
                 embedded; structured data is taken as its JSON.",
            )
            .default_value(".Payload.After"),
            Parameter::new(
                "inputType",
                ParameterType::String,
                "What the input is, which embedding models from v3 on require: \
                 `search_document`, `search_query`, `classification`, `clustering` or \
                 `image`.",
            ),
            Parameter::new(
                "maxTextsPerRequest",
                ParameterType::Int,
                "How many texts one request to Cohere carries at most (Cohere takes up to \
                 96).",
            )
            .default_value("96"),
            Parameter::new(
                "outputField",
                ParameterType::String,
                "The field that receives the embedding: its JSON, zstd-compressed.",
            )
            .default_value(".Payload.After"),
        ];
        Self {
            spec: ProcessorSpecification {
                name: "cohere.embed",
                summary: "Embed a field of each record with a Cohere model.",
                description: "Sends the text of a field of each record to one of Cohere's \
                              embedding models (several records per request) and stores \
                              the embedding, as JSON compressed with zstd, in a field; the \
                              model's name goes in the metadata key `cohere.embed.model`. \
                              Replies with status 500, 503 or 504 are retried as the \
                              backoffRetry settings say.",
                version: VERSION,
                author: AUTHOR,
                parameters: parameters(
                    DEFAULT_MODEL,
                    "The Cohere embedding model to use; one whose name does not contain `v2` \
                     needs `inputType`.",
                    own,
                ),
                standalone: false,
            },
            endpoint: Endpoint::new(url),
        }
    }
}

impl Default for CohereEmbed {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for CohereEmbed {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let api = Api::new(settings, &self.endpoint, "v2/embed")?;
        let model = setting_or(settings, "model", DEFAULT_MODEL).to_owned();
        let input_type = setting(settings, "inputType").to_owned();
        if !model.contains("v2") && input_type.is_empty() {
            return Err(invalid(
                "inputType",
                format!("inputType is required for model {model:?} (v3 or higher)"),
            ));
        }
        let max = setting_or(settings, "maxTextsPerRequest", "96");
        let max_texts = match max.parse::<i64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            Ok(_) => return Err(invalid("maxTextsPerRequest", "must be at least 1")),
            Err(_) => {
                return Err(invalid(
                    "maxTextsPerRequest",
                    format!("{max:?} is not an integer"),
                ))
            }
        };
        let input = setting_or(settings, "inputField", ".Payload.After");
        let output = setting_or(settings, "outputField", ".Payload.After");
        Ok(Box::new(EmbedProcessor {
            api,
            model,
            input_type,
            max_texts,
            input: reference("inputField", input)?,
            output: reference("outputField", output)?,
        }))
    }
}

/// A configured `cohere.embed`.
struct EmbedProcessor {
    api: Api,
    model: String,
    input_type: String,
    max_texts: usize,
    input: Reference,
    output: Reference,
}

#[async_trait::async_trait]
impl Processor for EmbedProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        // The texts of the records that have one; the others fail.
        let mut texts = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            match self.text(record) {
                Ok(text) => texts.push((i, text)),
                Err(error) => outcomes[i] = Outcome::Fail(error),
            }
        }
        for chunk in texts.chunks(self.max_texts) {
            let embeddings = match self.embed(chunk).await {
                Ok(embeddings) => embeddings,
                Err(error) => {
                    for (i, _) in chunk {
                        outcomes[*i] = Outcome::Fail(format!("failed to get embeddings: {error}"));
                    }
                    continue;
                }
            };
            for ((i, _), embedding) in chunk.iter().zip(embeddings) {
                match self.store(&records[*i], &embedding) {
                    Ok(done) => records[*i] = done,
                    Err(error) => outcomes[*i] = Outcome::Fail(error),
                }
            }
        }
        Ok(())
    }
}

impl EmbedProcessor {
    /// The text to embed for a record.
    fn text(&self, record: &Record) -> Result<String, String> {
        let mut scratch = record.clone();
        let value = resolve(&self.input, &mut scratch)
            .map_err(|e| format!("failed to resolve reference {}: {e}", self.input.as_str()))?;
        input_text(value).map_err(|e| format!("failed to get input: {e}"))
    }

    /// The embeddings of the texts, each as Go writes it in JSON, one per text.
    async fn embed(&self, chunk: &[(usize, String)]) -> Result<Vec<String>, String> {
        let texts: Vec<&str> = chunk.iter().map(|(_, text)| text.as_str()).collect();
        let body = json!({
            "texts": texts,
            "model": self.model,
            "input_type": self.input_type,
            "embedding_types": ["float"],
        });
        let reply = self.api.post(&body).await?;
        let embeddings = float_embeddings(&reply)?;
        if embeddings.len() < texts.len() {
            return Err(format!(
                "the reply has {} embeddings for {} texts",
                embeddings.len(),
                texts.len()
            ));
        }
        Ok(embeddings)
    }

    /// The record with the embedding stored and the model named in the metadata.
    fn store(&self, record: &Record, embedding: &str) -> Result<Record, String> {
        let mut out = record.clone();
        out.metadata
            .insert(EMBED_MODEL_METADATA.to_owned(), self.model.clone());
        let compressed = frame(embedding.as_bytes());
        self.output
            .set_value(&mut out, FieldValue::Bytes(compressed))
            .map_err(|e| format!("failed to set output: {e}"))?;
        Ok(out)
    }
}

/// The float embeddings of an embed reply (`embeddings.float`), each written as Go writes
/// a `[]float64` in JSON (`null` for none).
fn float_embeddings(reply: &[u8]) -> Result<Vec<String>, String> {
    let unreadable = |e: String| format!("error reading the reply: {e}");
    let text = std::str::from_utf8(reply).map_err(|e| unreadable(e.to_string()))?;
    let top = raw_object(text).map_err(unreadable)?;
    let embeddings = match top.get("embeddings") {
        Some(raw) => raw_object(raw.get()).map_err(unreadable)?,
        None => Default::default(),
    };
    let floats: Vec<Option<Vec<&RawValue>>> = match embeddings.get("float") {
        Some(raw) => serde_json::from_str::<Option<_>>(raw.get())
            .map_err(|e| unreadable(format!("embeddings.float: {e}")))?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    floats
        .into_iter()
        .map(|embedding| {
            let Some(numbers) = embedding else {
                return Ok("null".to_owned());
            };
            let mut json = String::with_capacity(numbers.len() * 12 + 2);
            json.push('[');
            for (i, number) in numbers.into_iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                let f = go_f64(number).map_err(|e| unreadable(format!("embeddings.float: {e}")))?;
                json.push_str(&go_float(f, GoFloat::Json));
            }
            json.push(']');
            Ok(json)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::zstd::unframe;
    use super::*;
    use crate::testing::http_server::{ok, Reply, Seen, Server};
    use crate::testing::*;
    use culvert_domain::{Change, Data, Operation, Position};
    use serde_json::{json, Value};

    /// The plugin, calling the test server; its client waits 1ms before trying again.
    fn plugin_at(url: &str) -> CohereEmbed {
        let mut plugin = CohereEmbed::with_base_url(url);
        plugin.endpoint.client_retry_wait = std::time::Duration::from_millis(1);
        plugin
    }

    /// Settings as pairs.
    type Pairs = &'static [(&'static str, &'static str)];

    /// The frame of the embedding `[0.1,0.2,0.3]` of Conduit's examples (the bytes are the
    /// compressor's; `zstd`'s tests show Conduit's own frame decodes to the same).
    fn example_frame() -> Vec<u8> {
        super::super::zstd::frame(b"[0.1,0.2,0.3]")
    }

    fn body(seen: &Seen) -> Value {
        serde_json::from_str(&seen.body).unwrap()
    }

    /// What Conduit's mock client answers: `[0.1, 0.2, 0.3]` for every text.
    fn conduits_mock(seen: &Seen, _: usize) -> Reply {
        let texts = body(seen)["texts"].as_array().unwrap().clone();
        let floats: Vec<Value> = texts.iter().map(|_| json!([0.1, 0.2, 0.3])).collect();
        let reply = json!({
            "id": "e1",
            "embeddings": {"float": floats},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}},
            "response_type": "embeddings_by_type",
        });
        ok(&reply.to_string())
    }

    fn record(after: Option<Data>, metadata: &[(&str, &str)]) -> Record {
        Record {
            metadata: meta(metadata),
            payload: Change {
                before: None,
                after,
            },
            ..Record::default()
        }
    }

    fn failure(outcome: &Outcome) -> &str {
        match outcome {
            Outcome::Fail(error) => error,
            other => panic!("not a failure: {other:?}"),
        }
    }

    fn base64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn parameters_are_conduits() {
        assert_parameters(
            &CohereEmbed::new(),
            &[
                ("apiKey", ""),
                ("backoffRetry.count", "0"),
                ("backoffRetry.factor", "2"),
                ("backoffRetry.max", "5s"),
                ("backoffRetry.min", "100ms"),
                ("inputField", ".Payload.After"),
                ("inputType", ""),
                ("maxTextsPerRequest", "96"),
                ("model", "embed-english-v2.0"),
                ("outputField", ".Payload.After"),
            ],
            "true",
        );
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_examples() {
        let model = [("cohere.embed.model", "embed-english-v2.0")];
        // (settings, record in, record out)
        let cases: [(Pairs, Record, Record); 3] = [
            // ExampleEmbedProcessor.
            (&[("apiKey", "fake-api-key"), ("inputField", ".Payload.After"), ("outputField", ".Payload.After")],
             Record { position: Position(b"pos-1".to_vec()), operation: Operation::Create, ..record(raw("test input"), &[]) },
             Record { position: Position(b"pos-1".to_vec()), operation: Operation::Create,
                      ..record(Some(Data::Raw(example_frame())), &model) }),
            // TestEmbedProcessor_Process: into .Payload.After, and into a new field of
            // structured data (bytes there are base64 text, as JSON shows them).
            (&[("apiKey", "api-key"), ("outputField", ".Payload.After")],
             record(raw("test input"), &[]), record(Some(Data::Raw(example_frame())), &model)),
            (&[("apiKey", "api-key"), ("outputField", ".Payload.After.response")],
             record(structured(json!({"test": "testInput"})), &[]),
             record(structured(json!({"test": "testInput", "response": base64(&example_frame())})), &model)),
        ];
        for (i, (pairs, input, want)) in cases.into_iter().enumerate() {
            let server = Server::start(conduits_mock);
            let plugin = plugin_at(&server.url);
            let input_text = match &input.payload.after { Some(Data::Raw(_)) => json!("test input"), _ => json!(r#"{"test":"testInput"}"#) };
            assert_eq!(server.process(&plugin, pairs, input), (want, Outcome::Keep), "{i}");
            let seen = &server.seen()[0];
            assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/v2/embed"));
            assert_eq!(seen.headers["authorization"], format!("Bearer {}", pairs[0].1));
            assert_eq!(seen.headers["content-type"], "application/json");
            assert_eq!(body(seen), json!({
                "texts": [input_text],
                "model": "embed-english-v2.0",
                "input_type": "",
                "embedding_types": ["float"],
            }));
        }
        // Into a field of raw data: Conduit's error.
        let server = Server::start(conduits_mock);
        let plugin = plugin_at(&server.url);
        let input = record(raw("test input"), &[]);
        let (got, outcome) = server.process(&plugin, &[("apiKey", "api-key"), ("outputField", ".Payload.After.response")], input.clone());
        assert_eq!(got, input, "a failed record is left as it was");
        assert_eq!(failure(&outcome), "failed to set output: .Payload.After does not contain structured data: cannot resolve reference");
    }

    #[rustfmt::skip]
    #[test]
    fn batches_go_in_requests_of_max_texts() {
        // TestEmbedProcessor_Process "batch processing with multiple records".
        let server = Server::start(conduits_mock);
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[("apiKey", "api-key"), ("maxTextsPerRequest", "2"), ("model", "embed-english-v3.0"), ("inputType", "search_document")]).unwrap();
        let mut records: Vec<Record> = (1..=3).map(|i| record(raw(&format!("test input {i}")), &[])).collect();
        let outcomes = server.run(processor.as_mut(), &mut records);
        assert_eq!(outcomes, vec![Outcome::Keep; 3]);
        let want = record(Some(Data::Raw(example_frame())), &[("cohere.embed.model", "embed-english-v3.0")]);
        assert_eq!(records, vec![want; 3]);
        let sent: Vec<Value> = server.seen().iter().map(|s| body(s)["texts"].clone()).collect();
        assert_eq!(sent, [json!(["test input 1", "test input 2"]), json!(["test input 3"])]);
        assert_eq!(body(&server.seen()[0])["input_type"], "search_document");
        assert_eq!(body(&server.seen()[0])["model"], "embed-english-v3.0");
    }

    #[rustfmt::skip]
    #[test]
    fn embeddings_are_written_as_go_writes_them() {
        let server = Server::start(|seen, _| {
            let n = body(seen)["texts"].as_array().unwrap().len();
            let floats = r#"[1e-7, 0.000001, -0.0123, 12, 1e21, 0.30000000000000004, -0.019363403]"#;
            let list = vec![floats; n].join(",");
            ok(&format!(r#"{{"embeddings":{{"float":[{list}]}}}}"#))
        });
        let plugin = plugin_at(&server.url);
        let (got, outcome) = server.process(&plugin, &[("apiKey", "k")], record(raw("x"), &[]));
        assert_eq!(outcome, Outcome::Keep);
        let Some(Data::Raw(bytes)) = got.payload.after else { panic!("{got:?}") };
        let json = String::from_utf8(unframe(&bytes)).unwrap();
        assert_eq!(json, "[1e-07,0.000001,-0.0123,12,1e+21,0.30000000000000004,-0.019363403]");
    }

    #[rustfmt::skip]
    #[test]
    fn a_record_without_input_fails_alone() {
        let server = Server::start(conduits_mock);
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[("apiKey", "k"), ("inputField", ".Payload.After.text"), ("outputField", ".Payload.After.embedding")]).unwrap();
        let mut records = [record(structured(json!({"text": "a"})), &[]), record(None, &[]), record(structured(json!({"text": ["no"]})), &[]), record(structured(json!({"text": "b"})), &[])];
        let before = records.clone();
        let outcomes = server.run(processor.as_mut(), &mut records);
        assert_eq!(failure(&outcomes[1]), "failed to get input: unsupported type <nil>");
        assert_eq!(failure(&outcomes[2]), "failed to get input: unsupported type []interface {}");
        assert_eq!((&outcomes[0], &outcomes[3]), (&Outcome::Keep, &Outcome::Keep));
        assert_eq!(records[1..3], before[1..3]);
        assert_eq!(after_value(&records[3]), json!({"text": "b", "embedding": base64(&example_frame())}));
        assert_eq!(body(&server.seen()[0])["texts"], json!(["a", "b"]));
    }

    #[rustfmt::skip]
    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let plugin = CohereEmbed::new();
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[("inputType", "search_document")], "setting \"apiKey\": required parameter is not provided"),
            (&[("apiKey", "k"), ("model", "embed-english-light-v3.0")],
             "setting \"inputType\": inputType is required for model \"embed-english-light-v3.0\" (v3 or higher)"),
            (&[("apiKey", "k"), ("backoffRetry.count", "not-a-number")], "\"backoffRetry.count\""),
            (&[("apiKey", "k"), ("backoffRetry.factor", "-2")], "\"backoffRetry.factor\""),
            (&[("apiKey", "k"), ("backoffRetry.min", "soon")], "\"backoffRetry.min\""),
            (&[("apiKey", "k"), ("maxTextsPerRequest", "0")], "setting \"maxTextsPerRequest\": must be at least 1"),
            (&[("apiKey", "k"), ("maxTextsPerRequest", "ten")], "\"maxTextsPerRequest\""),
            (&[("apiKey", "k"), ("inputField", ".Payload.Invalid")], "\"inputField\""),
        ];
        for (pairs, want) in cases {
            let error = refusal(&plugin, pairs);
            assert!(error.contains(want), "{pairs:?}: {error}");
            let error = direct_refusal(&plugin, pairs);
            assert!(error.contains(want.split(':').next().unwrap()), "directly, {pairs:?}: {error}");
        }
        assert!(direct_refusal(&plugin, &[("apiKey", "k"), ("outputField", "Payload")]).contains("\"outputField\""));
        assert!(configure(&plugin, &[("apiKey", "k"), ("inputType", "search_document")]).is_ok());
        assert!(configure(&plugin, &[("apiKey", "k"), ("model", "embed-multilingual-v3.0"), ("inputType", "clustering")]).is_ok());
    }

    #[rustfmt::skip]
    #[test]
    fn server_errors_are_retried_then_fail_the_records() {
        let backoff = [("backoffRetry.min", "1ms"), ("backoffRetry.max", "2ms")];
        // Two 504s (the client's two requests), then the reply.
        let server = Server::start(|seen, n| if n <= 2 { (504, vec![], "timeout".into()) } else { conduits_mock(seen, n) });
        let plugin = plugin_at(&server.url);
        let pairs = [&backoff[..], &[("apiKey", "k"), ("backoffRetry.count", "1")]].concat();
        assert_eq!(server.process(&plugin, &pairs, record(raw("x"), &[])).1, Outcome::Keep);
        assert_eq!(server.seen().len(), 3);
        // Always 500: every record of the request fails once the retries are used up.
        let server = Server::start(|_, _| (500, vec![], r#"{"message":"oops"}"#.into()));
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[&backoff[..], &[("apiKey", "k"), ("backoffRetry.count", "2")]].concat()).unwrap();
        let mut records = [record(raw("a"), &[]), record(raw("b"), &[])];
        let outcomes = server.run(processor.as_mut(), &mut records);
        let want = Outcome::Fail(r#"failed to get embeddings: 500: {"message":"oops"}"#.into());
        assert_eq!(outcomes, [want.clone(), want]);
        assert_eq!(server.seen().len(), 6);
        // 429 gets the client's second try only.
        let server = Server::start(|_, _| (429, vec![], "slow down".into()));
        let plugin = plugin_at(&server.url);
        let pairs = [&backoff[..], &[("apiKey", "k"), ("backoffRetry.count", "3")]].concat();
        assert_eq!(server.process(&plugin, &pairs, record(raw("x"), &[])).1, Outcome::Fail("failed to get embeddings: 429: slow down".into()));
        assert_eq!(server.seen().len(), 2);
    }

    #[rustfmt::skip]
    #[test]
    fn malformed_replies_fail_the_records() {
        let cases = [
            ("[]", "failed to get embeddings: error reading the reply: "),
            (r#"{"embeddings":{"float":[]}}"#, "failed to get embeddings: the reply has 0 embeddings for 1 texts"),
            (r#"{"embeddings":{"int8":[[1,2]]}}"#, "failed to get embeddings: the reply has 0 embeddings for 1 texts"),
            (r#"{"embeddings":{"float":[["x"]]}}"#, "failed to get embeddings: error reading the reply: embeddings.float: "),
            (r#"{"embeddings":{"float":{"a":1}}}"#, "failed to get embeddings: error reading the reply: embeddings.float: "),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(reply));
            let plugin = plugin_at(&server.url);
            let input = record(raw("x"), &[]);
            let (got, outcome) = server.process(&plugin, &[("apiKey", "k")], input.clone());
            assert_eq!(got, input);
            assert!(failure(&outcome).starts_with(want), "{reply}: {outcome:?}");
        }
        // A null embedding is Go's nil slice: `null`.
        let server = Server::start(|_, _| ok(r#"{"embeddings":{"float":[null]}}"#));
        let plugin = plugin_at(&server.url);
        let (got, _) = server.process(&plugin, &[("apiKey", "k")], record(raw("x"), &[]));
        let Some(Data::Raw(bytes)) = got.payload.after else { panic!() };
        assert_eq!(unframe(&bytes), b"null");
    }
}
