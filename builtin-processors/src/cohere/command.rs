//! `cohere.command`: for each record, the prompt (a Go format string) applied to the text
//! of `request.body` is sent to a Cohere chat model, and its reply stored in
//! `response.body`.

use super::sprintf::sprintf;
use super::{
    default_base_url, input_text, parameters, raw_object, raw_string, required, Api, Endpoint,
};
use crate::params::{reference, setting_or};
use crate::per_record::{AsyncPerRecord, AsyncRecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::resolve;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::json;

/// `cohere.command`: a Cohere chat model's reply to a prompt made from each record.
pub struct CohereCommand {
    spec: ProcessorSpecification,
    endpoint: Endpoint,
}

impl CohereCommand {
    /// The plugin, calling Cohere's API (or `CO_API_URL` when set).
    pub fn new() -> Self {
        Self::with_base_url(&default_base_url())
    }

    /// The plugin, calling the API at `url` (tests use a local server).
    pub fn with_base_url(url: &str) -> Self {
        let own = vec![
            Parameter::new(
                "prompt",
                ParameterType::String,
                "The prompt sent for each record: a Go format string applied to the input \
                 text (`Summarize: %s`); without a verb, Go appends the text as \
                 `%!(EXTRA string=...)`.",
            )
            .validate(Validation::Required),
            Parameter::new(
                "request.body",
                ParameterType::String,
                "The field (a reference such as `.Payload.After.text`) whose text fills the \
                 prompt; structured data is taken as its JSON.",
            )
            .default_value(".Payload.After"),
            Parameter::new(
                "response.body",
                ParameterType::String,
                "The field that receives the model's reply.",
            )
            .default_value(".Payload.After"),
        ];
        Self {
            spec: ProcessorSpecification {
                name: "cohere.command",
                summary: "Ask a Cohere chat model about each record.",
                description: "Sends a prompt made from a field of each record to one of \
                              Cohere's chat (command) models and stores the reply's text in a \
                              field. Replies with status 500, 503 or 504 are retried as the \
                              backoffRetry settings say.",
                version: VERSION,
                author: AUTHOR,
                parameters: parameters(
                    "command",
                    "The Cohere chat model to use (such as `command-r-plus`).",
                    own,
                ),
                standalone: false,
            },
            endpoint: Endpoint::new(url),
        }
    }
}

impl Default for CohereCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for CohereCommand {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let api = Api::new(settings, &self.endpoint, "v2/chat")?;
        let prompt = required(settings, "prompt")?.to_owned();
        let request = setting_or(settings, "request.body", ".Payload.After");
        let response = setting_or(settings, "response.body", ".Payload.After");
        Ok(Box::new(AsyncPerRecord(CommandProcessor {
            api,
            model: setting_or(settings, "model", "command").to_owned(),
            prompt,
            request: reference("request.body", request)?,
            response: reference("response.body", response)?,
        })))
    }
}

/// A configured `cohere.command`.
struct CommandProcessor {
    api: Api,
    model: String,
    prompt: String,
    request: Reference,
    response: Reference,
}

impl CommandProcessor {}

/// The text of a chat reply, which must have exactly one content item.
fn reply_text(reply: &[u8]) -> Result<String, String> {
    let unreadable = |e: String| format!("error unmarshalling chat response: {e}");
    let text = std::str::from_utf8(reply).map_err(|e| unreadable(e.to_string()))?;
    let top = raw_object(text).map_err(unreadable)?;
    let message = match top.get("message") {
        Some(raw) => raw_object(raw.get()).map_err(unreadable)?,
        None => Default::default(),
    };
    let content: Vec<&serde_json::value::RawValue> = match message.get("content") {
        Some(raw) => serde_json::from_str::<Option<_>>(raw.get())
            .map_err(|e| unreadable(e.to_string()))?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let [item] = content[..] else {
        return Err("invalid chat content".to_owned());
    };
    let item = raw_object(item.get()).map_err(unreadable)?;
    raw_string(&item, "text").map_err(unreadable)
}

#[async_trait::async_trait]
impl AsyncRecordProcessor for CommandProcessor {
    /// The record with the model's reply stored.
    async fn process_record(&self, record: &Record) -> Result<Record, String> {
        let mut out = record.clone();
        let value = resolve(&self.request, &mut out)
            .map_err(|e| format!("failed to resolve reference {}: {e}", self.request.as_str()))?;
        let input = input_text(value).map_err(|e| format!("failed to get input: {e}"))?;
        let body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": sprintf(&self.prompt, &input)}],
            "stream": false,
        });
        let reply = self.api.post(&body).await?;
        let text = reply_text(&reply)?;
        let mut out = record.clone();
        self.response
            .set_value(&mut out, FieldValue::Text(text))
            .map_err(|e| format!("failed setting response body: {e}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http_server::{ok, Reply, Seen, Server};
    use crate::testing::*;
    use culvert_domain::{Change, Operation, Position};
    use culvert_plugins::processor::Outcome;
    use serde_json::{json, Value};

    /// The plugin, calling the test server; its client waits 1ms before trying again.
    fn plugin_at(url: &str) -> CohereCommand {
        let mut plugin = CohereCommand::with_base_url(url);
        plugin.endpoint.client_retry_wait = std::time::Duration::from_millis(1);
        plugin
    }

    /// Settings as pairs.
    type Pairs = &'static [(&'static str, &'static str)];

    /// A chat reply with `text` as its one content item.
    fn chat_reply(text: &str) -> Reply {
        let body = json!({
            "id": "c0ffee",
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 5}},
        });
        ok(&body.to_string())
    }

    /// What Conduit's mock client answers: a fixed reply.
    fn conduits_mock(_: &Seen, _: usize) -> Reply {
        chat_reply("cohere command response content")
    }

    fn update(after: Option<culvert_domain::Data>) -> Record {
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

    fn body(seen: &Seen) -> Value {
        serde_json::from_str(&seen.body).unwrap()
    }

    #[test]
    fn parameters_are_conduits() {
        assert_parameters(
            &CohereCommand::new(),
            &[
                ("apiKey", ""),
                ("backoffRetry.count", "0"),
                ("backoffRetry.factor", "2"),
                ("backoffRetry.max", "5s"),
                ("backoffRetry.min", "100ms"),
                ("model", "command"),
                ("prompt", ""),
                ("request.body", ".Payload.After"),
                ("response.body", ".Payload.After"),
            ],
            "true",
        );
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_examples() {
        // (settings, record in, record out, the prompt sent)
        let cases: [(Pairs, Record, Record, &str); 2] = [
            // ExampleCommandProcessor: a prompt without a verb gets the text Go's way.
            (&[("apiKey", "apikey"), ("prompt", "hello")],
             update(raw("who are you?")), update(raw("cohere command response content")),
             "hello%!(EXTRA string=who are you?)"),
            // TestCommandProcessor_Process.
            (&[("apiKey", "apikey"), ("prompt", "test-prompt")],
             update(raw("who are you?")), update(raw("cohere command response content")),
             "test-prompt%!(EXTRA string=who are you?)"),
        ];
        for (i, (pairs, input, want, prompt)) in cases.into_iter().enumerate() {
            let server = Server::start(conduits_mock);
            let plugin = plugin_at(&server.url);
            assert_eq!(server.process(&plugin, pairs, input), (want, Outcome::Keep), "{i}");
            let seen = &server.seen()[0];
            assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/v2/chat"));
            assert_eq!(seen.headers["authorization"], "Bearer apikey");
            assert_eq!(seen.headers["content-type"], "application/json");
            assert_eq!(body(seen), json!({
                "model": "command",
                "messages": [{"role": "user", "content": prompt}],
                "stream": false,
            }));
        }
    }

    #[rustfmt::skip]
    #[test]
    fn fills_the_prompt_from_a_field_and_stores_the_reply_in_another() {
        let server = Server::start(|seen, _| {
            let content = body(seen)["messages"][0]["content"].as_str().unwrap().to_owned();
            chat_reply(&format!("<{content}>"))
        });
        let plugin = plugin_at(&server.url);
        let pairs = [("apiKey", "k"), ("prompt", "Summarize: %s"), ("model", "command-r-plus"),
                     ("request.body", ".Payload.After.text"), ("response.body", ".Payload.After.summary")];
        let input = update(structured(json!({"text": "a long story"})));
        let want = update(structured(json!({"text": "a long story", "summary": "<Summarize: a long story>"})));
        assert_eq!(server.process(&plugin, &pairs, input), (want, Outcome::Keep));
        assert_eq!(body(&server.seen()[0])["model"], "command-r-plus");
        // Structured data is sent as its JSON; the position and metadata can be read too.
        let pairs = [("apiKey", "k"), ("prompt", "%s"), ("response.body", ".Metadata.reply")];
        let input = update(structured(json!({"b": 1, "a": "<x>"})));
        let mut want = input.clone();
        want.metadata = meta(&[("reply", r#"<{"a":"\u003cx\u003e","b":1}>"#)]);
        assert_eq!(server.process(&plugin, &pairs, input), (want, Outcome::Keep));
        let pairs = [("apiKey", "k"), ("prompt", "%q"), ("request.body", ".Position")];
        let (got, outcome) = server.process(&plugin, &pairs, update(None));
        assert_eq!((got, outcome), (update(raw("<\"pos-1\">")), Outcome::Keep));
    }

    #[rustfmt::skip]
    #[test]
    fn a_record_it_cannot_read_or_write_fails_alone() {
        let server = Server::start(conduits_mock);
        let plugin = plugin_at(&server.url);
        let mut processor = configure(&plugin, &[("apiKey", "k"), ("prompt", "%s"), ("request.body", ".Payload.After.text")]).unwrap();
        let mut records = [update(None), update(structured(json!({"text": 1}))), update(raw("raw")), update(structured(json!({"text": "hi"})))];
        let before = records.clone();
        let outcomes = server.run(processor.as_mut(), &mut records);
        assert_eq!(outcomes[0], Outcome::Fail("failed to get input: unsupported type <nil>".into()));
        assert_eq!(outcomes[1], Outcome::Fail("failed to get input: unsupported type int".into()));
        let error = failure(outcomes[2].clone());
        assert!(error.starts_with("failed to resolve reference .Payload.After.text: "), "{error}");
        assert_eq!(outcomes[3], Outcome::Keep);
        assert_eq!(records[..3], before[..3], "failed records are left as they were");
        assert_eq!(records[3], update(raw("cohere command response content")));
        assert_eq!(server.seen().len(), 1);
        // The reply cannot be stored in the position.
        let (got, outcome) = server.process(&plugin, &[("apiKey", "k"), ("prompt", "%s"), ("response.body", ".Position")], update(raw("x")));
        assert_eq!(got, update(raw("x")));
        assert!(failure(outcome).starts_with("failed setting response body: "));
    }

    #[rustfmt::skip]
    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let plugin = CohereCommand::new();
        let base = [("apiKey", "k"), ("prompt", "p")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs: Vec<_> = base.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).copied().collect();
            pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
            pairs
        };
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[("apiKey", "")], "setting \"apiKey\": required parameter is not provided"),
            (&[("prompt", "")], "setting \"prompt\": required parameter is not provided"),
            (&[("backoffRetry.count", "not-a-number")], "\"backoffRetry.count\""),
            (&[("backoffRetry.count", "-1")], "\"backoffRetry.count\""),
            (&[("backoffRetry.factor", "0")], "\"backoffRetry.factor\""),
            (&[("backoffRetry.min", "not-a-duration")], "\"backoffRetry.min\""),
            (&[("backoffRetry.max", "1x")], "\"backoffRetry.max\""),
            (&[("request.body", ".Payload.Invalid")], "\"request.body\""),
        ];
        for (extra, want) in cases {
            let pairs = with(extra);
            let error = refusal(&plugin, &pairs);
            assert!(error.contains(want), "{pairs:?}: {error}");
            let error = direct_refusal(&plugin, &pairs);
            assert!(error.contains(want.split(':').next().unwrap()), "directly, {pairs:?}: {error}");
        }
        for (key, value) in [("response.body", ".Foo"), ("apiKey", "bad\nkey")] {
            let error = direct_refusal(&plugin, &with(&[(key, value)]));
            assert!(error.contains(&format!("\"{key}\"")), "{key}: {error}");
        }
        assert!(configure(&plugin, &base).is_ok());
    }

    #[rustfmt::skip]
    #[test]
    fn server_errors_are_retried_then_fail_the_record() {
        let backoff = [("backoffRetry.min", "1ms"), ("backoffRetry.max", "5ms")];
        let reply = || chat_reply("cohere command response content");
        // Cohere's client tries once more by itself: one 503, then the reply.
        let server = Server::start(move |_, n| if n == 1 { (503, vec![], String::new()) } else { reply() });
        let plugin = plugin_at(&server.url);
        assert_eq!(server.process(&plugin, &[("apiKey", "k"), ("prompt", "%s")], update(raw("x"))).1, Outcome::Keep);
        assert_eq!(server.seen().len(), 2);
        // Three 503s, then the reply: the call is made again once (two requests a call).
        let server = Server::start(move |_, n| if n <= 3 { (503, vec![], r#"{"message":"busy"}"#.into()) } else { reply() });
        let plugin = plugin_at(&server.url);
        let pairs = [&backoff[..], &[("apiKey", "k"), ("prompt", "%s"), ("backoffRetry.count", "1")]].concat();
        assert_eq!(server.process(&plugin, &pairs, update(raw("x"))), (update(raw("cohere command response content")), Outcome::Keep));
        assert_eq!(server.seen().len(), 4);
        // 500, 503 and 504 are retried until the count is used up; the record fails with
        // the status and the reply's body.
        for status in [500, 503, 504] {
            let server = Server::start(move |_, _| (status, vec![], r#"{"message":"down"}"#.into()));
            let plugin = plugin_at(&server.url);
            let pairs = [&backoff[..], &[("apiKey", "k"), ("prompt", "%s"), ("backoffRetry.count", "2")]].concat();
            let (got, outcome) = server.process(&plugin, &pairs, update(raw("x")));
            assert_eq!((got, outcome), (update(raw("x")), Outcome::Fail(format!("{status}: {{\"message\":\"down\"}}"))));
            assert_eq!(server.seen().len(), 6, "{status}");
        }
        // Other statuses are not retried by backoffRetry: 408, 429 and other 5xx get the
        // client's second try, the others fail at once.
        for (status, requests) in [(400, 1), (401, 1), (404, 1), (422, 1), (408, 2), (429, 2), (501, 2), (502, 2)] {
            let server = Server::start(move |_, _| (status, vec![], "nope".into()));
            let plugin = plugin_at(&server.url);
            let pairs = [&backoff[..], &[("apiKey", "k"), ("prompt", "%s"), ("backoffRetry.count", "5")]].concat();
            assert_eq!(server.process(&plugin, &pairs, update(raw("x"))).1, Outcome::Fail(format!("{status}: nope")));
            assert_eq!(server.seen().len(), requests, "{status}");
        }
        // Without retries (the default), the client's two requests.
        let server = Server::start(|_, _| (503, vec![], String::new()));
        let plugin = plugin_at(&server.url);
        assert_eq!(server.process(&plugin, &[("apiKey", "k"), ("prompt", "%s")], update(raw("x"))).1, Outcome::Fail("503: ".into()));
        assert_eq!(server.seen().len(), 2);
        // A server that is not there: no retry.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let plugin = plugin_at(&format!("http://{closed}"));
        let mut processor = configure(&plugin, &[&backoff[..], &[("apiKey", "k"), ("prompt", "%s"), ("backoffRetry.count", "3")]].concat()).unwrap();
        let mut records = [update(raw("x"))];
        let outcome = server.run(processor.as_mut(), &mut records).remove(0);
        assert!(failure(outcome).starts_with(&format!("request to http://{closed}/v2/chat failed")));
    }

    #[rustfmt::skip]
    #[test]
    fn malformed_replies_fail_the_record() {
        let cases = [
            ("not json", "error unmarshalling chat response: "),
            (r#"{"message":{"content":[]}}"#, "invalid chat content"),
            (r#"{"message":{"content":[{"text":"a"},{"text":"b"}]}}"#, "invalid chat content"),
            (r#"{"id":"x"}"#, "invalid chat content"),
            (r#"{"message":{"content":[{"text":7}]}}"#, "error unmarshalling chat response: "),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(reply));
            let plugin = plugin_at(&server.url);
            let (got, outcome) = server.process(&plugin, &[("apiKey", "k"), ("prompt", "%s")], update(raw("x")));
            assert_eq!(got, update(raw("x")));
            let error = failure(outcome);
            assert!(error.starts_with(want), "{reply}: {error}");
        }
        // A content item without text is an empty reply, as in Go.
        let server = Server::start(|_, _| ok(r#"{"message":{"content":[{"type":"text"}]}}"#));
        let plugin = plugin_at(&server.url);
        assert_eq!(server.process(&plugin, &[("apiKey", "k"), ("prompt", "%s")], update(raw("x"))), (update(raw("")), Outcome::Keep));
    }
}
