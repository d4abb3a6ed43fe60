//! `cohere.rerank`: the texts of a batch's `request.body` fields are ranked against `query`
//! by a Cohere rerank model, in one request; each record's `response.body` receives its
//! result as JSON: `{"document":{"text":...},"index":0,"relevance_score":0.9}`.

use super::{
    default_base_url, go_f64, input_text, parameters, raw_object, raw_string, required, Api,
    Endpoint,
};
use crate::gofmt::{go_float, GoFloat};
use crate::params::{reference, setting_or};
use crate::reference::{FieldValue, Reference};
use crate::resolve::resolve;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// `cohere.rerank`: the relevance of each record's text to a query.
pub struct CohereRerank {
    spec: ProcessorSpecification,
    endpoint: Endpoint,
}

impl CohereRerank {
    /// The plugin, calling Cohere's API (or `CO_API_URL` when set).
    pub fn new() -> Self {
        Self::with_base_url(&default_base_url())
    }

    /// The plugin, calling the API at `url` (tests use a local server).
    pub fn with_base_url(url: &str) -> Self {
        let own = vec![
            Parameter::new(
                "query",
                ParameterType::String,
                "The query the records' texts are ranked against.",
            )
            .validate(Validation::Required),
            Parameter::new(
                "request.body",
                ParameterType::String,
                "The field (a reference such as `.Payload.After.text`) whose text is ranked; \
                 structured data is taken as its JSON.",
            )
            .default_value(".Payload.After"),
            Parameter::new(
                "response.body",
                ParameterType::String,
                "The field that receives the record's result as JSON (document, index in \
                 the request, relevance score).",
            )
            .default_value(".Payload.After"),
        ];
        Self {
            spec: ProcessorSpecification {
                name: "cohere.rerank",
                summary: "Score the relevance of each record to a query with a Cohere model.",
                description: "Sends the texts of a field of a batch's records as the \
                              documents of one request to one of Cohere's rerank models, \
                              with the configured query, and stores each record's result \
                              (its text, its index among the documents and its relevance \
                              score) as JSON in a field. Replies with status 500, 503 or 504 \
                              are retried as the backoffRetry settings say.",
                version: VERSION,
                author: AUTHOR,
                parameters: parameters("rerank-v3.5", "The Cohere rerank model to use.", own),
                standalone: false,
            },
            endpoint: Endpoint::new(url),
        }
    }
}

impl Default for CohereRerank {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for CohereRerank {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let api = Api::new(settings, &self.endpoint, "v2/rerank")?;
        let query = required(settings, "query")?.to_owned();
        let request = setting_or(settings, "request.body", ".Payload.After");
        let response = setting_or(settings, "response.body", ".Payload.After");
        Ok(Box::new(RerankProcessor {
            api,
            model: setting_or(settings, "model", "rerank-v3.5").to_owned(),
            query,
            request: reference("request.body", request)?,
            response: reference("response.body", response)?,
        }))
    }
}

/// A configured `cohere.rerank`.
struct RerankProcessor {
    api: Api,
    model: String,
    query: String,
    request: Reference,
    response: Reference,
}

#[async_trait::async_trait]
impl Processor for RerankProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        // The documents: the texts of the records that have one; the others fail.
        let mut sent = Vec::with_capacity(records.len());
        let mut documents = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            match self.text(record) {
                Ok(text) => {
                    sent.push(i);
                    documents.push(text);
                }
                Err(error) => outcomes[i] = Outcome::Fail(error),
            }
        }
        if documents.is_empty() {
            return Ok(());
        }
        let results = match self.rerank(&documents).await {
            Ok(results) => results,
            Err(error) => {
                for i in sent {
                    outcomes[i] = Outcome::Fail(error.clone());
                }
                return Ok(());
            }
        };
        for (document, i) in sent.into_iter().enumerate() {
            // As in Conduit, a document without a result gets Go's zero value.
            let result = results.get(&document).cloned().unwrap_or_else(|| {
                let mut zero = String::new();
                write_result(&mut zero, "", 0, 0.0);
                zero
            });
            let mut out = records[i].clone();
            match self.response.set_value(&mut out, FieldValue::Text(result)) {
                Ok(()) => records[i] = out,
                Err(e) => outcomes[i] = Outcome::Fail(format!("failed setting response body: {e}")),
            }
        }
        Ok(())
    }
}

impl RerankProcessor {
    /// The text to rank for a record.
    fn text(&self, record: &Record) -> Result<String, String> {
        let mut scratch = record.clone();
        let value = resolve(&self.request, &mut scratch)
            .map_err(|e| format!("failed to resolve reference {}: {e}", self.request.as_str()))?;
        input_text(value).map_err(|e| format!("failed to get input: {e}"))
    }

    /// The results, as JSON, by the index of their document; as many as documents.
    async fn rerank(&self, documents: &[String]) -> Result<BTreeMap<usize, String>, String> {
        let body = json!({
            "model": self.model,
            "query": self.query,
            "documents": documents,
            "return_documents": true,
        });
        let reply = self.api.post(&body).await?;
        let results = results(&reply)?;
        if results.len() != documents.len() {
            return Err("invalid rerank response".to_owned());
        }
        Ok(results
            .into_iter()
            .filter_map(|(index, json)| usize::try_from(index).ok().map(|i| (i, json)))
            .collect())
    }
}

/// The results of a rerank reply, each (index, its JSON as Conduit writes it), in the
/// reply's order.
fn results(reply: &[u8]) -> Result<Vec<(i64, String)>, String> {
    let unreadable = |e: String| format!("error unmarshalling rerank response: {e}");
    let text = std::str::from_utf8(reply).map_err(|e| unreadable(e.to_string()))?;
    let top = raw_object(text).map_err(unreadable)?;
    let results: Vec<&RawValue> = match top.get("results") {
        Some(raw) => serde_json::from_str::<Option<_>>(raw.get())
            .map_err(|e| unreadable(format!("results: {e}")))?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    results
        .into_iter()
        .map(|raw| {
            let result = raw_object(raw.get()).map_err(unreadable)?;
            let document = match result.get("document") {
                Some(raw) => raw_object(raw.get()).map_err(unreadable)?,
                None => Default::default(),
            };
            let text = raw_string(&document, "text").map_err(unreadable)?;
            let index = match result.get("index") {
                Some(raw) => serde_json::from_str::<Option<i64>>(raw.get())
                    .map_err(|e| unreadable(format!("index: {e}")))?
                    .unwrap_or_default(),
                None => 0,
            };
            let score = match result.get("relevance_score") {
                Some(raw) => {
                    go_f64(raw).map_err(|e| unreadable(format!("relevance_score: {e}")))?
                }
                None => 0.0,
            };
            let mut json = String::new();
            write_result(&mut json, &text, index, score);
            Ok((index, json))
        })
        .collect()
}

/// A result as Conduit writes it.
fn write_result(out: &mut String, text: &str, index: i64, score: f64) {
    out.push_str(r#"{"document":{"text":"#);
    crate::gojson::write_string(out, text, crate::gojson::Writer::Goccy);
    out.push_str(&format!(
        r#"}},"index":{index},"relevance_score":{}}}"#,
        go_float(score, GoFloat::Json)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http_server::{ok, Reply, Seen, Server};
    use crate::testing::*;
    use culvert_domain::{Change, Data, Operation, Position};
    use serde_json::{json, Value};

    /// The plugin, calling the test server; its client waits 1ms before trying again.
    fn plugin_at(url: &str) -> CohereRerank {
        let mut plugin = CohereRerank::with_base_url(url);
        plugin.endpoint.client_retry_wait = std::time::Duration::from_millis(1);
        plugin
    }

    fn body(seen: &Seen) -> Value {
        serde_json::from_str(&seen.body).unwrap()
    }

    /// What Conduit's mock client answers: the documents in order, scored 0.9, 0.8, ...;
    /// sent here most relevant last, to show the results are matched by index.
    fn conduits_mock(seen: &Seen, _: usize) -> Reply {
        let documents = body(seen)["documents"].as_array().unwrap().clone();
        let mut results: Vec<Value> = documents
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let score = (10.0 - (i as f64 + 1.0)).round() / 10.0;
                json!({"document": {"text": d}, "index": i, "relevance_score": score})
            })
            .collect();
        results.reverse();
        ok(
            &json!({"id": "r1", "results": results, "meta": {"billed_units": {"search_units": 1}}})
                .to_string(),
        )
    }

    fn update(after: Option<Data>) -> Record {
        Record {
            position: Position(b"pos-1".to_vec()),
            operation: Operation::Update,
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

    const QUERY: &str = "What is the capital of the United States?";

    #[test]
    fn parameters_are_conduits() {
        assert_parameters(
            &CohereRerank::new(),
            &[
                ("apiKey", ""),
                ("backoffRetry.count", "0"),
                ("backoffRetry.factor", "2"),
                ("backoffRetry.max", "5s"),
                ("backoffRetry.min", "100ms"),
                ("model", "rerank-v3.5"),
                ("query", ""),
                ("request.body", ".Payload.After"),
                ("response.body", ".Payload.After"),
            ],
            "true",
        );
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_examples() {
        let nevada = "Carson City is the capital city of the American state of Nevada.";
        // ExampleRerankProcessor.
        let server = Server::start(conduits_mock);
        let plugin = plugin_at(&server.url);
        let want = update(raw(&format!(r#"{{"document":{{"text":"{nevada}"}},"index":0,"relevance_score":0.9}}"#)));
        assert_eq!(server.process(&plugin, &[("apiKey", "fakeapiKey"), ("query", QUERY)], update(raw(nevada))), (want, Outcome::Keep));
        let seen = &server.seen()[0];
        assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/v2/rerank"));
        assert_eq!(seen.headers["authorization"], "Bearer fakeapiKey");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert_eq!(body(seen), json!({"model": "rerank-v3.5", "query": QUERY, "documents": [nevada], "return_documents": true}));
        // TestRerankProcessor_Process: a batch is ranked in one request.
        let texts = [
            "Washington, D.C. is the capital of the United States.",
            nevada,
            "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
        ];
        let mut processor = configure(&plugin, &[("apiKey", "apikey"), ("query", QUERY)]).unwrap();
        let mut records: Vec<Record> = texts.iter().map(|t| Record { payload: Change { before: None, after: raw(t) }, ..Record::default() }).collect();
        let outcomes = server.run(processor.as_mut(), &mut records);
        assert_eq!(outcomes, vec![Outcome::Keep; 3]);
        for (i, (record, (text, score))) in records.iter().zip(texts.iter().zip(["0.9", "0.8", "0.7"])).enumerate() {
            let want = format!(r#"{{"document":{{"text":"{text}"}},"index":{i},"relevance_score":{score}}}"#);
            assert_eq!(record.payload.after, raw(&want), "{i}");
        }
        assert_eq!(server.seen().len(), 2);
        assert_eq!(body(&server.seen()[1])["documents"], json!(texts));
    }

    #[rustfmt::skip]
    #[test]
    fn results_are_written_as_go_writes_them() {
        let server = Server::start(|_, _| ok(r#"{"results":[{"index":0,"relevance_score":1e-7,"document":{"text":"<a & b>\u2028"}},{"index":1}]}"#));
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[("apiKey", "k"), ("query", "q"), ("model", "rerank-english-v3.0"),
                                                ("request.body", ".Payload.After.doc"), ("response.body", ".Payload.After.rank")]).unwrap();
        let mut records = [update(structured(json!({"doc": "a"}))), update(structured(json!({"doc": "b"})))];
        assert_eq!(server.run(processor.as_mut(), &mut records), vec![Outcome::Keep; 2]);
        assert_eq!(after_value(&records[0])["rank"], r#"{"document":{"text":"\u003ca \u0026 b\u003e\u2028"},"index":0,"relevance_score":1e-07}"#);
        assert_eq!(after_value(&records[1])["rank"], r#"{"document":{"text":""},"index":1,"relevance_score":0}"#);
        assert_eq!(body(&server.seen()[0])["model"], "rerank-english-v3.0");
        // Two results for the same document: the other gets Go's zero value.
        let server = Server::start(|_, _| ok(r#"{"results":[{"index":1,"relevance_score":0.5},{"index":1,"relevance_score":0.25}]}"#));
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[("apiKey", "k"), ("query", "q")]).unwrap();
        let mut records = [update(raw("a")), update(raw("b"))];
        assert_eq!(server.run(processor.as_mut(), &mut records), vec![Outcome::Keep; 2]);
        assert_eq!(records[0].payload.after, raw(r#"{"document":{"text":""},"index":0,"relevance_score":0}"#));
        assert_eq!(records[1].payload.after, raw(r#"{"document":{"text":""},"index":1,"relevance_score":0.25}"#));
    }

    #[rustfmt::skip]
    #[test]
    fn a_record_without_input_fails_alone() {
        let server = Server::start(conduits_mock);
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[("apiKey", "k"), ("query", "q"), ("request.body", ".Metadata.doc"), ("response.body", ".Position")]).unwrap();
        let mut records = [update(None), Record { metadata: meta(&[("doc", "d")]), ..update(None) }];
        let before = records.clone();
        let outcomes = server.run(processor.as_mut(), &mut records);
        assert_eq!(failure(&outcomes[0]), "failed to get input: unsupported type <nil>");
        assert!(failure(&outcomes[1]).starts_with("failed setting response body: "), "{outcomes:?}");
        assert_eq!(records, before);
        assert_eq!(body(&server.seen()[0])["documents"], json!(["d"]));
        // No document at all: no request.
        let mut records = [update(None)];
        server.run(processor.as_mut(), &mut records);
        assert_eq!(server.seen().len(), 1);
    }

    #[rustfmt::skip]
    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let plugin = CohereRerank::new();
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("query", "q")], "setting \"apiKey\": required parameter is not provided"),
            (&[("apiKey", "k")], "setting \"query\": required parameter is not provided"),
            (&[("apiKey", "k"), ("query", "q"), ("backoffRetry.count", "many")], "\"backoffRetry.count\""),
            (&[("apiKey", "k"), ("query", "q"), ("backoffRetry.factor", "0")], "\"backoffRetry.factor\""),
            (&[("apiKey", "k"), ("query", "q"), ("backoffRetry.max", "later")], "\"backoffRetry.max\""),
            (&[("apiKey", "k"), ("query", "q"), ("response.body", ".Payload.Invalid")], "\"response.body\""),
        ];
        for (pairs, want) in cases {
            let error = refusal(&plugin, pairs);
            assert!(error.contains(want), "{pairs:?}: {error}");
            let error = direct_refusal(&plugin, pairs);
            assert!(error.contains(want.split(':').next().unwrap()), "directly, {pairs:?}: {error}");
        }
        assert!(configure(&plugin, &[("apiKey", "k"), ("query", "q")]).is_ok());
    }

    #[rustfmt::skip]
    #[test]
    fn server_errors_are_retried_then_fail_the_records() {
        let backoff = [("backoffRetry.min", "1ms"), ("backoffRetry.max", "2ms"), ("backoffRetry.factor", "1.5")];
        let server = Server::start(|seen, n| if n <= 2 { (503, vec![], "unavailable".into()) } else { conduits_mock(seen, n) });
        let plugin = plugin_at(&server.url);
        let pairs = [&backoff[..], &[("apiKey", "k"), ("query", "q"), ("backoffRetry.count", "2")]].concat();
        assert_eq!(server.process(&plugin, &pairs, update(raw("x"))).1, Outcome::Keep);
        assert_eq!(server.seen().len(), 3);
        let server = Server::start(|_, _| (503, vec![], "unavailable".into()));
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &pairs).unwrap();
        let mut records = [update(raw("a")), update(raw("b"))];
        let want = Outcome::Fail("503: unavailable".into());
        assert_eq!(server.run(processor.as_mut(), &mut records), [want.clone(), want]);
        assert_eq!(server.seen().len(), 6);
        // 400 is not retried.
        let server = Server::start(|_, _| (400, vec![], r#"{"message":"bad"}"#.into()));
        let plugin = plugin_at(&server.url);
        assert_eq!(server.process(&plugin, &pairs, update(raw("x"))).1, Outcome::Fail(r#"400: {"message":"bad"}"#.into()));
        assert_eq!(server.seen().len(), 1);
    }

    #[rustfmt::skip]
    #[test]
    fn malformed_replies_fail_the_records() {
        let cases = [
            ("<html>", "error unmarshalling rerank response: "),
            (r#"{"results":[]}"#, "invalid rerank response"),
            (r#"{"results":[{"index":0},{"index":1}]}"#, "invalid rerank response"),
            (r#"{"results":[{"index":"0"}]}"#, "error unmarshalling rerank response: index: "),
            (r#"{"results":[{"index":0,"relevance_score":"high"}]}"#, "error unmarshalling rerank response: relevance_score: "),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(reply));
            let plugin = plugin_at(&server.url);
            let input = update(raw("x"));
            let (got, outcome) = server.process(&plugin, &[("apiKey", "k"), ("query", "q")], input.clone());
            assert_eq!(got, input);
            assert!(failure(&outcome).starts_with(want), "{reply}: {outcome:?}");
        }
    }
}
