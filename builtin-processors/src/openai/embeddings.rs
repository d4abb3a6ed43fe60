//! `openai.embeddings`: the embedding vector of a field's text, from OpenAI's embeddings
//! endpoint (`POST {base}/embeddings`), stored in the field as a JSON array of `float32`s.

use super::api::{array_member, object_value, reply_object, Api, Failure};
use super::{field_setting, int_setting, parameters, put, required, take, Retries};
use super::{ParameterRow, BASE_URL_VARIABLE, DEFAULT_BASE_URL};
use crate::gofmt::{go_float, GoFloat};
use crate::gojson::{f32_text, write_string, Writer};
use crate::per_record::{AsyncPerRecord, AsyncRecordProcessor};
use crate::reference::Reference;
use crate::{AUTHOR, VERSION};
use base64::Engine as _;
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::ParameterType;
use culvert_plugins::{PluginError, Settings};
use serde_json::value::RawValue;

/// `openai.embeddings`: replace a field's text with its embedding vector.
pub struct OpenAiEmbeddings {
    spec: ProcessorSpecification,
    base_url: String,
}

/// The parameters of its own (the shared ones are in the parent module).
#[rustfmt::skip]
const OWN_PARAMETERS: [ParameterRow; 4] = [
    ("dimensions", ParameterType::Int, "", "How many dimensions the embeddings have (models `text-embedding-3` and later); the model's own number when not set."),
    ("encoding_format", ParameterType::String, "", "How the API sends the embeddings: `float` or `base64`; the field receives a JSON array of numbers either way."),
    ("model", ParameterType::String, "", "The embeddings model, such as `text-embedding-3-small`."),
    ("user", ParameterType::String, "", "An identifier of the end user, passed on to OpenAI."),
];

impl OpenAiEmbeddings {
    /// The plugin, calling the API at [`DEFAULT_BASE_URL`] or where
    /// [`BASE_URL_VARIABLE`] points.
    pub fn new() -> Self {
        Self::with_base_url(&crate::http::base_url(BASE_URL_VARIABLE, DEFAULT_BASE_URL))
    }

    /// The plugin, calling the API at `url` (such as `https://api.openai.com/v1`).
    pub fn with_base_url(url: &str) -> Self {
        Self {
            spec: ProcessorSpecification {
                name: "openai.embeddings",
                summary: "Replace a field's text with its embedding vector, from OpenAI.",
                description: "Sends the text of a field (by default `.Payload.After`) to \
                              OpenAI's embeddings API and stores the vector it returns in the \
                              same field, as a JSON array of numbers, for semantic search, \
                              clustering and the like. Failed calls are retried with a growing \
                              wait, as configured; a record whose call fails is failed.",
                version: VERSION,
                author: AUTHOR,
                parameters: parameters(&OWN_PARAMETERS, &["model"]),
                standalone: false,
            },
            base_url: url.trim_end_matches('/').to_owned(),
        }
    }
}

impl Default for OpenAiEmbeddings {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for OpenAiEmbeddings {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let api_key = required(settings, "api_key")?;
        let model = required(settings, "model")?;
        let retries = Retries::from_settings(settings)?;
        let field = field_setting(settings)?;
        let dimensions = int_setting(settings, "dimensions", 0)?;
        let encoding_format = crate::params::setting(settings, "encoding_format");
        let user = crate::params::setting(settings, "user");
        Ok(Box::new(AsyncPerRecord(EmbeddingsProcessor {
            api: Api::new(&self.base_url, "embeddings", api_key)?,
            field,
            retries,
            request: EmbeddingsRequest {
                model: model.to_owned(),
                dimensions,
                encoding_format: encoding_format.to_owned(),
                user: user.to_owned(),
            },
        })))
    }
}

/// What each request carries besides the text.
#[derive(Clone, Debug)]
struct EmbeddingsRequest {
    model: String,
    /// 0: not sent.
    dimensions: i64,
    /// Empty: not sent.
    encoding_format: String,
    /// Empty: not sent.
    user: String,
}

impl EmbeddingsRequest {
    /// The request body, as go-openai writes it (its members by name, the empty ones left
    /// out).
    fn body(&self, input: &str) -> Vec<u8> {
        let mut out = String::from("{");
        if self.dimensions != 0 {
            // go-openai passes the body through a map of JSON values: numbers are float64s.
            out.push_str("\"dimensions\":");
            out.push_str(&go_float(self.dimensions as f64, GoFloat::Json));
            out.push(',');
        }
        if !self.encoding_format.is_empty() {
            out.push_str("\"encoding_format\":");
            write_string(&mut out, &self.encoding_format, Writer::Std);
            out.push(',');
        }
        out.push_str("\"input\":");
        write_string(&mut out, input, Writer::Std);
        out.push_str(",\"model\":");
        write_string(&mut out, &self.model, Writer::Std);
        if !self.user.is_empty() {
            out.push_str(",\"user\":");
            write_string(&mut out, &self.user, Writer::Std);
        }
        out.push('}');
        out.into_bytes()
    }

    /// Whether the API is asked for base64 embeddings.
    fn base64(&self) -> bool {
        self.encoding_format == "base64"
    }
}

/// A configured `openai.embeddings`.
struct EmbeddingsProcessor {
    api: Api,
    field: Reference,
    retries: Retries,
    request: EmbeddingsRequest,
}

impl EmbeddingsProcessor {
    /// One call: the first embedding of the reply (`None`: none, Go's nil).
    async fn attempt(&self, input: &str) -> Result<Option<Vec<f32>>, Failure> {
        let reply = self.api.post(self.request.body(input)).await?;
        first_embedding(&reply, self.request.base64()).map_err(Failure::Transient)
    }
}

/// The embedding of the first item of a reply's `data`, read as go-openai reads the reply
/// (every item is read): `None` when there is no item or its embedding is null (or, as
/// base64, an empty vector).
fn first_embedding(reply: &[u8], base64: bool) -> Result<Option<Vec<f32>>, String> {
    let reply = reply_object(reply)?;
    let mut first = None;
    let items = array_member(&reply, "data", "data")?.unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        let item = object_value(item, &format!("data[{i}]"))?.unwrap_or_default();
        let raw = item.get("embedding").map(Box::as_ref);
        let embedding = if base64 {
            Some(decode_base64(raw, i)?)
        } else {
            decode_floats(raw, i)?
        };
        if i == 0 {
            first = embedding;
        }
    }
    Ok(first)
}

/// An embedding sent as numbers: `None` when missing or null; a null item is 0, as Go's
/// decoder leaves it.
fn decode_floats(raw: Option<&RawValue>, i: usize) -> Result<Option<Vec<f32>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let items: Option<Vec<Box<RawValue>>> = serde_json::from_str(raw.get())
        .map_err(|e| format!("the reply's data[{i}].embedding is not a list: {e}"))?;
    let Some(items) = items else { return Ok(None) };
    let floats = items.iter().map(|item| match item.get() {
        "null" => Ok(0.0),
        text => match text.parse::<f32>() {
            Ok(f) if f.is_finite() => Ok(f),
            _ => Err(format!(
                "the reply's data[{i}].embedding holds {text}, which is not a float32"
            )),
        },
    });
    floats.collect::<Result<Vec<f32>, String>>().map(Some)
}

/// An embedding sent as base64 (little-endian `float32`s; a missing or null one is empty;
/// line breaks are skipped and trailing bytes ignored, as Go does).
fn decode_base64(raw: Option<&RawValue>, i: usize) -> Result<Vec<f32>, String> {
    let text: Option<String> = match raw {
        None => None,
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| format!("the reply's data[{i}].embedding is not a string: {e}"))?,
    };
    let text: String = text
        .unwrap_or_default()
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let bytes = engine
        .decode(text.as_bytes())
        .map_err(|e| format!("the reply's data[{i}].embedding is not valid base64: {e}"))?;
    let floats = bytes.chunks_exact(4).map(|b| {
        let array: [u8; 4] = b.try_into().expect("chunks of four");
        f32::from_le_bytes(array)
    });
    Ok(floats.collect())
}

/// The vector as Conduit stores it: goccy/go-json's JSON of a `[]float32` (`null` for
/// none).
fn vector_text(vector: Option<&[f32]>) -> String {
    let Some(vector) = vector else {
        return "null".to_owned();
    };
    let items: Vec<String> = vector.iter().map(|f| f32_text(*f, Writer::Goccy)).collect();
    format!("[{}]", items.join(","))
}

#[async_trait::async_trait]
impl AsyncRecordProcessor for EmbeddingsProcessor {
    /// The record with the field's text replaced by its embedding vector.
    async fn process_record(&self, record: &Record) -> Result<Record, String> {
        let taken = take(&self.field, record)?;
        let input = taken.input.as_str();
        let vector = self.retries.run(|| self.attempt(input)).await?;
        put(&self.field, taken, vector_text(vector.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http_server::{ok, Reply, Seen, Server};
    use crate::testing::{assert_parameters, assert_schema_defaults, configure, direct_refusal};
    use crate::testing::{example, meta, payload, raw, refusal, structured, validated_settings};
    use culvert_domain::{Operation, Position};
    use culvert_plugins::processor::Outcome;
    use serde_json::{json, Value};

    const VECTOR: &str = "[0.1,0.2,0.3,0.4,0.5]";

    /// OpenAI's reply with the vector.
    fn reply_with(embedding: Value) -> String {
        json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8, "total_tokens": 8}
        })
        .to_string()
    }

    /// What Conduit's mock answers: the same vector for every text.
    fn answer(_: &Seen, _: usize) -> Reply {
        ok(&reply_with(json!([0.1, 0.2, 0.3, 0.4, 0.5])))
    }

    fn failure(outcome: &Outcome) -> &str {
        match outcome {
            Outcome::Fail(error) => error,
            other => panic!("not failed: {other:?}"),
        }
    }

    fn body(seen: &Seen) -> Value {
        serde_json::from_str(&seen.body).unwrap()
    }

    /// Configure against `server` and process `records`.
    fn run(server: &Server, pairs: &[(&str, &str)], records: &mut [Record]) -> Vec<Outcome> {
        let plugin = OpenAiEmbeddings::with_base_url(&server.url);
        let mut processor = configure(&plugin, pairs).unwrap_or_else(|e| panic!("{e}"));
        server.run(processor.as_mut(), records)
    }

    const FAST: [(&str, &str); 5] = [
        ("api_key", "k"),
        ("model", "m"),
        ("initial_backoff", "1"),
        ("max_backoff", "4"),
        ("backoff_factor", "2"),
    ];

    #[rustfmt::skip]
    #[test]
    fn parameters_are_conduits() {
        let own = [
            ("api_key", ""), ("backoff_factor", "2.0"), ("dimensions", ""), ("encoding_format", ""),
            ("field", ".Payload.After"), ("initial_backoff", "1000"), ("max_backoff", "30000"),
            ("max_retries", "3"), ("model", ""), ("user", ""),
        ];
        let plugin = OpenAiEmbeddings::new();
        assert_parameters(&plugin, &own, "true");
        assert_eq!((plugin.spec.name, plugin.spec.version), ("openai.embeddings", "v0.1.0"));
        let validated = validated_settings(&plugin, &[("api_key", "k"), ("model", "m")]);
        assert_schema_defaults(&validated, "true");
        assert_eq!(OpenAiEmbeddings::with_base_url("http://h/v1/").base_url, "http://h/v1");
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_examples() {
        // (settings, record in, record out, the request's body)
        let cases = [
            // Conduit's example: "Generate embeddings for text".
            (&[("api_key", "your-openai-api-key"), ("model", "text-embedding-3-small"), ("field", ".Payload.After")][..],
             example(raw("This is a sample text to generate embeddings for."), raw("test-key")),
             example(raw(VECTOR), raw("test-key")),
             r#"{"input":"This is a sample text to generate embeddings for.","model":"text-embedding-3-small"}"#),
            // Conduit's TestEmbeddingsProcessor_Process.
            (&[("api_key", "fake api key"), ("model", "text-embedding-3-small")][..],
             payload(None, raw("test text")), payload(None, raw(VECTOR)),
             r#"{"input":"test text","model":"text-embedding-3-small"}"#),
        ];
        let server = Server::start(answer);
        for (i, (pairs, input, want, sent)) in cases.into_iter().enumerate() {
            let mut records = [input];
            assert_eq!(run(&server, pairs, &mut records), [Outcome::Keep], "{pairs:?}");
            assert_eq!(records[0], want, "{pairs:?}");
            let seen = &server.seen()[i];
            assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/embeddings"));
            let bearer = format!("Bearer {}", pairs[0].1);
            assert_eq!(seen.headers["authorization"], bearer);
            assert_eq!(seen.headers["content-type"], "application/json");
            assert_eq!(seen.headers["accept"], "application/json");
            assert_eq!(seen.body, sent);
        }
    }

    #[rustfmt::skip]
    #[test]
    fn sends_the_optional_settings_and_reads_base64() {
        // 1.5 and -2 as little-endian float32s.
        let server = Server::start(|seen, _| {
            if body(seen)["encoding_format"] == "base64" { ok(&reply_with(json!("AADAPwAAAMA="))) } else { answer(seen, 0) }
        });
        let pairs = [("api_key", "k"), ("model", "text-embedding-3-large"), ("dimensions", "256"), ("encoding_format", "base64"), ("user", "u<1>")];
        let mut records = [payload(None, raw("a \"text\"\n"))];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep]);
        assert_eq!(records[0], payload(None, raw("[1.5,-2]")));
        let want = r#"{"dimensions":256,"encoding_format":"base64","input":"a \"text\"\n","model":"text-embedding-3-large","user":"u\u003c1\u003e"}"#;
        assert_eq!(server.seen()[0].body, want);
        let pairs = [("api_key", "k"), ("model", "m"), ("encoding_format", "float")];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep]);
        assert_eq!(server.seen()[1].body, r#"{"encoding_format":"float","input":"[1.5,-2]","model":"m"}"#);
    }

    #[rustfmt::skip]
    #[test]
    fn fields_of_each_kind() {
        let server = Server::start(answer);
        let keyed = |key| culvert_domain::Record { key, ..Record::default() };
        let with_meta = |pairs: &[(&str, &str)]| culvert_domain::Record { metadata: meta(pairs), ..Record::default() };
        // (field, record in, record out, the text sent)
        let cases = [
            (".Key", keyed(raw("k")), keyed(raw(VECTOR)), "k"),
            (".Payload.After", payload(None, structured(json!({"b": 1, "a": "<x>"}))), payload(None, raw(VECTOR)), r#"{"a":"\u003cx\u003e","b":1}"#),
            (".Payload.After.text", payload(None, structured(json!({"text": "hi", "n": 1}))), payload(None, structured(json!({"text": VECTOR, "n": 1}))), "hi"),
            (".Metadata.text", with_meta(&[("text", "hi")]), with_meta(&[("text", VECTOR)]), "hi"),
            (".Metadata.empty", with_meta(&[("empty", "")]), with_meta(&[("empty", VECTOR)]), ""),
        ];
        for (i, (field, input, want, sent)) in cases.into_iter().enumerate() {
            let mut records = [input];
            let pairs = [("api_key", "k"), ("model", "m"), ("field", field)];
            assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep], "{field}");
            assert_eq!(records[0], want, "{field}");
            assert_eq!(body(&server.seen()[i])["input"], sent, "{field}");
        }
        // Values of other kinds fail the record, unchanged, without a call.
        let calls = server.seen().len();
        let cases = [
            (".Payload.After", payload(None, None), "unsupported type <nil>"),
            (".Metadata.missing", Record::default(), "unsupported type <nil>"),
            (".Payload.After.n", payload(None, structured(json!({"n": 1}))), "unsupported type int"),
            (".Payload.After.o", payload(None, structured(json!({"o": {}}))), "unsupported type map[string]interface {}"),
            (".Operation", Record::default(), "unsupported type opencdc.Operation"),
            (".Payload", Record::default(), "unsupported type opencdc.Change"),
        ];
        for (field, input, want) in cases {
            let mut records = [input.clone()];
            let outcomes = run(&server, &[("api_key", "k"), ("model", "m"), ("field", field)], &mut records);
            assert_eq!(outcomes, [Outcome::Fail(want.to_owned())], "{field}");
            assert_eq!(records[0], input, "{field}");
        }
        assert_eq!(server.seen().len(), calls);
        // The position is sent, but cannot be changed.
        let input = culvert_domain::Record { position: Position(b"p".to_vec()), operation: Operation::Update, ..Record::default() };
        let mut records = [input.clone()];
        let outcomes = run(&server, &[("api_key", "k"), ("model", "m"), ("field", ".Position")], &mut records);
        assert!(failure(&outcomes[0]).starts_with("failed to set position: "), "{outcomes:?}");
        assert_eq!((&records[0], body(&server.seen()[calls])["input"].as_str()), (&input, Some("p")));
        // Walking into raw data.
        let mut records = [payload(None, raw("x"))];
        let outcomes = run(&server, &[("api_key", "k"), ("model", "m"), ("field", ".Payload.After.a")], &mut records);
        assert!(failure(&outcomes[0]).starts_with("failed to resolve reference: "), "{outcomes:?}");
    }

    #[rustfmt::skip]
    #[test]
    fn replies_are_read_as_go_openai_reads_them() {
        // (reply, what the field receives)
        let cases = [
            (reply_with(json!([1e-7, -0.0, 123456789, null, 3])), "[1e-07,-0,123456790,0,3]"),
            (reply_with(json!([])), "[]"),
            (reply_with(Value::Null), "null"),
            (r#"{"data": []}"#.to_owned(), "null"),
            ("null".to_owned(), "null"),
            (r#"{"data": [{"embedding": [2]}, {"embedding": [3]}]} and more"#.to_owned(), "[2]"),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(&reply));
            let mut records = [payload(None, raw("x"))];
            assert_eq!(run(&server, &FAST[..2], &mut records), [Outcome::Keep], "{want}");
            assert_eq!(records[0], payload(None, raw(want)));
        }
        assert_eq!(first_embedding(br#"{"data":[{"embedding":null}]}"#, true).unwrap(), Some(vec![]));
        assert_eq!(first_embedding(br#"{"data":[{"embedding":"AADAPw=\n="}]}"#, true).unwrap(), Some(vec![1.5]));
        assert_eq!(vector_text(Some(&[f32::NAN, f32::INFINITY])), "[NaN,+Inf]");
    }

    #[rustfmt::skip]
    #[test]
    fn malformed_replies_are_retried_then_fail_the_record() {
        let cases = [
            ("not json", "the reply is not JSON"),
            ("", "the reply is empty"),
            ("[1]", "the reply is not a JSON object"),
            (r#"{"data": {"embedding": [1]}}"#, "the reply's data is not a list"),
            (r#"{"data": [{"embedding": ["0.1"]}]}"#, "the reply's data[0].embedding holds \"0.1\", which is not a float32"),
            (r#"{"data": [{"embedding": [1]}, {"embedding": [1e40]}]}"#, "the reply's data[1].embedding holds 1e40, which is not a float32"),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(reply));
            let mut records = [payload(None, raw("x"))];
            let outcomes = run(&server, &[&FAST[..], &[("max_retries", "1")]].concat(), &mut records);
            let error = failure(&outcomes[0]);
            assert!(error.starts_with("exceeded maximum retries (1): ") && error.contains(want), "{reply}: {error}");
            assert_eq!(server.seen().len(), 2, "{reply}");
            assert_eq!(records[0], payload(None, raw("x")));
        }
        let server = Server::start(|_, _| ok(&reply_with(json!("***"))));
        let mut records = [payload(None, raw("x"))];
        let outcomes = run(&server, &[&FAST[..], &[("max_retries", "0"), ("encoding_format", "base64")]].concat(), &mut records);
        assert!(failure(&outcomes[0]).contains("data[0].embedding is not valid base64"), "{outcomes:?}");
    }

    #[rustfmt::skip]
    #[test]
    fn error_replies_are_retried_as_in_conduit() {
        let rate_limited = r#"{"error":{"message":"rate limit exceeded","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        // Conduit's TestEmbeddingsProcessorWithRetry: a 429, then the vector.
        let server = Server::start(move |seen, n| if n < 2 { (429, vec![], rate_limited.to_owned()) } else { answer(seen, n) });
        let mut records = [payload(None, raw("test text"))];
        let pairs = [("api_key", "fake api key"), ("model", "text-embedding-3-small"), ("max_retries", "3"), ("initial_backoff", "10"), ("max_backoff", "100"), ("backoff_factor", "2.0")];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep]);
        assert_eq!((server.seen().len(), &records[0]), (2, &payload(None, raw(VECTOR))));
        // Failing for good: 1 call and max_retries retries, then the record fails, unchanged.
        let server = Server::start(|_, _| (503, vec![], r#"{"error":{"message":"overloaded","type":"server_error"}}"#.to_owned()));
        let mut records = [payload(None, raw("x"))];
        let outcomes = run(&server, &FAST, &mut records);
        assert_eq!(failure(&outcomes[0]), "exceeded maximum retries (3): error, status code: 503, status: 503 Service Unavailable, message: overloaded");
        assert_eq!((server.seen().len(), &records[0]), (4, &payload(None, raw("x"))));
        // An error reply that is not OpenAI's is retried, whatever its status.
        let server = Server::start(|_, _| (400, vec![], "down".to_owned()));
        let outcomes = run(&server, &[&FAST[..], &[("max_retries", "2")]].concat(), &mut [payload(None, raw("x"))]);
        let error = failure(&outcomes[0]);
        assert!(error.starts_with("exceeded maximum retries (2): error, status code: 400, status: 400 Bad Request, message: the reply is not JSON") && error.ends_with(", body: down"), "{error}");
        assert_eq!(server.seen().len(), 3);
        // Other OpenAI error replies fail the record at once.
        for status in [400, 401, 404, 501] {
            let server = Server::start(move |_, _| (status, vec![], r#"{"error":{"message":"no","type":"invalid_request_error"}}"#.to_owned()));
            let outcomes = run(&server, &FAST, &mut [payload(None, raw("x"))]);
            let error = failure(&outcomes[0]);
            assert!(error.starts_with(&format!("OpenAI API call failed with non-retryable error: error, status code: {status}, status: {status} ")), "{error}");
            assert!(error.ends_with("message: no"), "{error}");
            assert_eq!(server.seen().len(), 1, "{status}");
        }
        // A negative max_retries: no call at all, as in Conduit.
        let server = Server::start(answer);
        let outcomes = run(&server, &[&FAST[..], &[("max_retries", "-1")]].concat(), &mut [payload(None, raw("x"))]);
        assert!(failure(&outcomes[0]).starts_with("exceeded maximum retries (-1)"), "{outcomes:?}");
        assert!(server.seen().is_empty());
    }

    #[rustfmt::skip]
    #[test]
    fn unreachable_servers_are_retried_and_other_records_go_on() {
        // A port nothing listens on (bound, then closed).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let server = Server::start(answer);
        let plugin = OpenAiEmbeddings::with_base_url(&format!("http://{closed}/v1"));
        let mut processor = configure(&plugin, &[&FAST[..], &[("max_retries", "1")]].concat()).unwrap();
        let outcomes = server.run(processor.as_mut(), &mut [payload(None, raw("x"))]);
        let error = failure(&outcomes[0]);
        assert!(error.starts_with(&format!("exceeded maximum retries (1): request to http://{closed}/v1/embeddings failed")), "{error}");
        // In a batch, a record that fails does not stop the others.
        let server = Server::start(|seen, n| if body(seen)["input"] == "bad" { (401, vec![], r#"{"error":{"message":"no"}}"#.to_owned()) } else { answer(seen, n) });
        let mut records = [payload(None, raw("bad")), payload(None, raw("good"))];
        let outcomes = run(&server, &FAST, &mut records);
        assert!(matches!(&outcomes[..], [Outcome::Fail(_), Outcome::Keep]), "{outcomes:?}");
        assert_eq!(records, [payload(None, raw("bad")), payload(None, raw(VECTOR))]);
    }

    #[rustfmt::skip]
    #[test]
    fn settings_are_checked() {
        let plugin = OpenAiEmbeddings::new();
        let base = [("api_key", "k"), ("model", "m")];
        // (settings, what the error says), validated and given to the plugin directly.
        let cases = [
            (vec![("model", "m")], "setting \"api_key\": required parameter is not provided"),
            (vec![("api_key", "k")], "setting \"model\": required parameter is not provided"),
            (vec![base[0], base[1], ("max_retries", "x")], "setting \"max_retries\": \"x\" is not an integer"),
            (vec![base[0], base[1], ("initial_backoff", "1.5")], "setting \"initial_backoff\": \"1.5\" is not an integer"),
            (vec![base[0], base[1], ("max_backoff", "1s")], "setting \"max_backoff\": \"1s\" is not an integer"),
            (vec![base[0], base[1], ("backoff_factor", "fast")], "setting \"backoff_factor\": \"fast\" is not a number"),
            (vec![base[0], base[1], ("dimensions", "many")], "setting \"dimensions\": \"many\" is not an integer"),
            (vec![base[0], base[1], ("field", ".Foo")], "setting \"field\": invalid reference"),
        ];
        for (pairs, want) in cases {
            assert!(refusal(&plugin, &pairs).contains(want), "{pairs:?}: {}", refusal(&plugin, &pairs));
            assert!(direct_refusal(&plugin, &pairs).contains(want), "{pairs:?}: {}", direct_refusal(&plugin, &pairs));
        }
        assert!(refusal(&plugin, &[base[0], base[1], ("temperature", "1")]).contains("setting \"temperature\": unrecognized parameter"));
        // Accepted by Conduit, but of no use.
        let nan = refusal(&plugin, &[base[0], base[1], ("backoff_factor", "NaN")]);
        assert!(nan.contains("setting \"backoff_factor\": \"NaN\" is not a finite number"), "{nan}");
        let key = direct_refusal(&plugin, &[("api_key", "bad\nkey"), base[1]]);
        assert!(key.contains("setting \"api_key\": cannot be sent in an HTTP header"), "{key}");
        // Given directly, without the defaults, the plugin still takes them.
        assert!(plugin.configure(&crate::testing::settings(&base)).is_ok());
        let broken = OpenAiEmbeddings::with_base_url("ftp://example.com");
        assert!(direct_refusal(&broken, &base).contains(BASE_URL_VARIABLE));
    }
}
