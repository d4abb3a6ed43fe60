//! `openai.textgen`: a field's text replaced by what a chat model writes for it, from
//! OpenAI's chat completions endpoint (`POST {base}/chat/completions`). The model gets
//! `developer_message` as the developer message and the field's text as the user message;
//! the field receives the content of the reply's first choice.

use super::api::{array_member, object_value, reply_object, Api, Failure};
use super::{bool_setting, f32_setting, field_setting, int_setting, parameters, put, required};
use super::{take, ParameterRow, Retries, BASE_URL_VARIABLE, DEFAULT_BASE_URL};
use crate::gojson::{f32_text, write_string, Writer};
use crate::params::setting;
use crate::per_record::{AsyncPerRecord, AsyncRecordProcessor};
use crate::reference::Reference;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::ParameterType;
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `openai.textgen`: replace a field's text with a chat model's answer to it.
pub struct OpenAiTextgen {
    spec: ProcessorSpecification,
    base_url: String,
}

/// The parameters of its own (the shared ones are in the parent module).
#[rustfmt::skip]
const OWN_PARAMETERS: [ParameterRow; 20] = [
    ("developer_message", ParameterType::String, "", "The instructions the model follows (the developer, or system, message), such as \"Translate the text into French.\"."),
    ("frequency_penalty", ParameterType::Float, "", "From -2 to 2: positive values make the model less likely to repeat the same tokens."),
    ("log_probs", ParameterType::Bool, "", "Whether to ask for the log probabilities of the output tokens (the record keeps only the text)."),
    ("logit_bias.*", ParameterType::Int, "", "`logit_bias.TOKEN_ID`: from -100 to 100, added to the likelihood of the token with that id."),
    ("max_completion_tokens", ParameterType::Int, "", "The most tokens the model may generate, reasoning included."),
    ("max_tokens", ParameterType::Int, "", "The most tokens the model may generate (older models; reasoning models take `max_completion_tokens`)."),
    ("metadata.*", ParameterType::String, "", "Accepted for compatibility with Conduit, which does not send it either."),
    ("model", ParameterType::String, "", "The chat model, such as `gpt-4o-mini`."),
    ("n", ParameterType::Int, "", "How many answers the model generates (the record keeps the first)."),
    ("presence_penalty", ParameterType::Float, "", "From -2 to 2: positive values make the model more likely to bring up new topics."),
    ("reasoning_effort", ParameterType::String, "", "How much a reasoning model reasons: `low`, `medium` or `high`."),
    ("seed", ParameterType::Int, "", "A seed, for answers as repeatable as the model allows."),
    ("stop", ParameterType::String, "", "Comma-separated sequences at which the model stops generating."),
    ("store", ParameterType::Bool, "", "Whether OpenAI keeps the conversation (for its evaluation and distillation tools)."),
    ("stream", ParameterType::Bool, "", "Accepted for compatibility with Conduit; answers are never streamed."),
    ("strict_output", ParameterType::Bool, "false", "Accepted for compatibility with Conduit; has no effect."),
    ("temperature", ParameterType::Float, "", "From 0 to 2: higher values give more random answers (0, the default, is not sent: the model's own default applies)."),
    ("top_log_probs", ParameterType::Int, "", "How many of the most likely tokens to return the log probabilities of, at each position (with `log_probs`)."),
    ("top_p", ParameterType::Float, "", "Nucleus sampling: the model considers the tokens of this top probability mass."),
    ("user", ParameterType::String, "", "An identifier of the end user, passed on to OpenAI."),
];

impl OpenAiTextgen {
    /// The plugin, calling the API at [`DEFAULT_BASE_URL`] or where
    /// [`BASE_URL_VARIABLE`] points.
    pub fn new() -> Self {
        Self::with_base_url(&crate::http::base_url(BASE_URL_VARIABLE, DEFAULT_BASE_URL))
    }

    /// The plugin, calling the API at `url` (such as `https://api.openai.com/v1`).
    pub fn with_base_url(url: &str) -> Self {
        Self {
            spec: ProcessorSpecification {
                name: "openai.textgen",
                summary: "Replace a field's text with what an OpenAI chat model writes for it.",
                description: "Sends the text of a field (by default `.Payload.After`) to an \
                              OpenAI chat model, with `developer_message` as its instructions, \
                              and replaces the text with the model's answer: to translate, \
                              summarize, classify or reformat records. Failed calls are retried \
                              with a growing wait, as configured; a record whose call fails is \
                              failed.",
                version: VERSION,
                author: AUTHOR,
                parameters: parameters(&OWN_PARAMETERS, &["developer_message", "model"]),
                standalone: false,
            },
            base_url: url.trim_end_matches('/').to_owned(),
        }
    }
}

impl Default for OpenAiTextgen {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for OpenAiTextgen {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let api_key = required(settings, "api_key")?;
        let request = ChatRequest::from_settings(settings)?;
        let retries = Retries::from_settings(settings)?;
        let field = field_setting(settings)?;
        // Read for their errors only: Conduit does not use them.
        bool_setting(settings, "stream")?;
        bool_setting(settings, "strict_output")?;
        let unsendable = request.unsendable();
        Ok(Box::new(AsyncPerRecord(TextgenProcessor {
            api: Api::new(&self.base_url, "chat/completions", api_key)?,
            field,
            retries,
            request,
            unsendable,
        })))
    }
}

/// The models go-openai does not send to the chat completions endpoint.
const COMPLETION_ONLY_MODELS: [&str; 15] = [
    "code-davinci-002",
    "code-cushman-001",
    "code-davinci-001",
    "text-davinci-003",
    "text-davinci-002",
    "text-curie-001",
    "text-babbage-001",
    "text-ada-001",
    "text-davinci-001",
    "davinci-instruct-beta",
    "davinci",
    "curie-instruct-beta",
    "curie",
    "ada",
    "babbage",
];

/// The prefixes of the reasoning models, whose settings go-openai checks.
const REASONING_MODELS: [&str; 4] = ["o1", "o3", "o4", "gpt-5"];

/// What each request carries besides the text; zero or empty values are not sent (but a
/// set `seed` is).
#[derive(Clone, Debug, Default)]
struct ChatRequest {
    model: String,
    developer_message: String,
    max_tokens: i64,
    max_completion_tokens: i64,
    temperature: f32,
    top_p: f32,
    n: i64,
    stop: Vec<String>,
    presence_penalty: f32,
    seed: Option<i64>,
    frequency_penalty: f32,
    logit_bias: BTreeMap<String, i64>,
    log_probs: bool,
    top_log_probs: i64,
    user: String,
    store: bool,
    reasoning_effort: String,
}

impl ChatRequest {
    fn from_settings(settings: &Settings) -> Result<Self, PluginError> {
        let int = |key| int_setting(settings, key, 0);
        let stop = match setting(settings, "stop") {
            "" => vec![],
            // Split as Conduit's configuration decoder splits lists: at each comma.
            text => text.split(',').map(str::to_owned).collect(),
        };
        let seed = match setting(settings, "seed") {
            "" => None,
            _ => Some(int("seed")?),
        };
        let mut logit_bias = BTreeMap::new();
        for key in settings.keys() {
            let Some(token) = key.strip_prefix("logit_bias.") else {
                continue;
            };
            if token.contains('.') {
                return Err(crate::params::invalid(
                    key,
                    "a token id cannot contain a dot",
                ));
            }
            logit_bias.insert(token.to_owned(), int(key)?);
        }
        Ok(Self {
            model: required(settings, "model")?.to_owned(),
            developer_message: required(settings, "developer_message")?.to_owned(),
            max_tokens: int("max_tokens")?,
            max_completion_tokens: int("max_completion_tokens")?,
            temperature: f32_setting(settings, "temperature")?,
            top_p: f32_setting(settings, "top_p")?,
            n: int("n")?,
            stop,
            presence_penalty: f32_setting(settings, "presence_penalty")?,
            seed,
            frequency_penalty: f32_setting(settings, "frequency_penalty")?,
            logit_bias,
            log_probs: bool_setting(settings, "log_probs")?,
            top_log_probs: int("top_log_probs")?,
            user: setting(settings, "user").to_owned(),
            store: bool_setting(settings, "store")?,
            reasoning_effort: setting(settings, "reasoning_effort").to_owned(),
        })
    }

    /// Why go-openai would not send the request, if it would not: a completions-only
    /// model, or a reasoning model with settings it does not take.
    fn unsendable(&self) -> Option<String> {
        let model = self.model.as_str();
        if COMPLETION_ONLY_MODELS.contains(&model) {
            return Some(format!(
                "model {model:?} is a completions model, which the chat completions endpoint \
                 does not serve"
            ));
        }
        if !REASONING_MODELS.iter().any(|p| model.starts_with(p)) {
            return None;
        }
        let fixed = "temperature, top_p and n are fixed at 1 and presence_penalty and \
                     frequency_penalty at 0";
        let problem = if self.max_tokens > 0 {
            "max_tokens is not supported, set max_completion_tokens instead"
        } else if self.log_probs {
            "log_probs is not supported"
        } else if (self.temperature > 0.0 && self.temperature != 1.0)
            || (self.top_p > 0.0 && self.top_p != 1.0)
            || (self.n > 0 && self.n != 1)
            || self.presence_penalty > 0.0
            || self.frequency_penalty > 0.0
        {
            fixed
        } else {
            return None;
        };
        Some(format!("reasoning model {model:?}: {problem}"))
    }

    /// The request body, as go-openai writes it (its members in its order, the empty ones
    /// left out, `stream` always false).
    fn body(&self, input: &str) -> Vec<u8> {
        let mut out = String::from("{\"model\":");
        write_string(&mut out, &self.model, Writer::Std);
        out.push_str(",\"messages\":[");
        for (i, (role, content)) in [
            ("developer", self.developer_message.as_str()),
            ("user", input),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            write!(out, "{{\"role\":\"{role}\"").expect("writing to a string");
            if !content.is_empty() {
                out.push_str(",\"content\":");
                write_string(&mut out, content, Writer::Std);
            }
            out.push('}');
        }
        out.push(']');
        let int = |out: &mut String, name: &str, n: i64| {
            if n != 0 {
                write!(out, ",\"{name}\":{n}").expect("writing to a string");
            }
        };
        let float = |out: &mut String, name: &str, f: f32| {
            if f != 0.0 {
                write!(out, ",\"{name}\":{}", f32_text(f, Writer::Std))
                    .expect("writing to a string");
            }
        };
        int(&mut out, "max_tokens", self.max_tokens);
        int(
            &mut out,
            "max_completion_tokens",
            self.max_completion_tokens,
        );
        float(&mut out, "temperature", self.temperature);
        float(&mut out, "top_p", self.top_p);
        int(&mut out, "n", self.n);
        out.push_str(",\"stream\":false");
        if !self.stop.is_empty() {
            out.push_str(",\"stop\":[");
            for (i, stop) in self.stop.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(&mut out, stop, Writer::Std);
            }
            out.push(']');
        }
        float(&mut out, "presence_penalty", self.presence_penalty);
        if let Some(seed) = self.seed {
            write!(out, ",\"seed\":{seed}").expect("writing to a string");
        }
        float(&mut out, "frequency_penalty", self.frequency_penalty);
        if !self.logit_bias.is_empty() {
            out.push_str(",\"logit_bias\":{");
            for (i, (token, bias)) in self.logit_bias.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(&mut out, token, Writer::Std);
                write!(out, ":{bias}").expect("writing to a string");
            }
            out.push('}');
        }
        if self.log_probs {
            out.push_str(",\"logprobs\":true");
        }
        int(&mut out, "top_logprobs", self.top_log_probs);
        let text = |out: &mut String, name: &str, text: &str| {
            if !text.is_empty() {
                write!(out, ",\"{name}\":").expect("writing to a string");
                write_string(out, text, Writer::Std);
            }
        };
        text(&mut out, "user", &self.user);
        if self.store {
            out.push_str(",\"store\":true");
        }
        text(&mut out, "reasoning_effort", &self.reasoning_effort);
        out.push('}');
        out.into_bytes()
    }
}

/// A configured `openai.textgen`.
struct TextgenProcessor {
    api: Api,
    field: Reference,
    retries: Retries,
    request: ChatRequest,
    /// Why every request would be refused before sending, if it would.
    unsendable: Option<String>,
}

impl TextgenProcessor {
    /// One call: the content of the first choice.
    async fn attempt(&self, input: &str) -> Result<String, Failure> {
        if let Some(problem) = &self.unsendable {
            return Err(Failure::NotSent(problem.clone()));
        }
        let reply = self.api.post(self.request.body(input)).await?;
        first_content(&reply).map_err(Failure::Transient)
    }
}

/// The content of the first choice of a reply, read as go-openai reads it: empty when
/// null, missing, or a list of parts.
fn first_content(reply: &[u8]) -> Result<String, String> {
    let reply = reply_object(reply)?;
    let choices = array_member(&reply, "choices", "choices")?.unwrap_or_default();
    let Some(first) = choices.first() else {
        return Err("the reply has no choices".to_owned());
    };
    let choice = object_value(first, "choices[0]")?.unwrap_or_default();
    let message = match choice.get("message") {
        None => None,
        Some(raw) => object_value(raw, "choices[0].message")?,
    };
    let content: Option<Value> = match message.as_ref().and_then(|m| m.get("content")) {
        None => None,
        Some(raw) => Some(
            serde_json::from_str(raw.get())
                .map_err(|e| format!("the reply's choices[0].message.content: {e}"))?,
        ),
    };
    match content {
        Some(Value::String(text)) => Ok(text),
        None | Some(Value::Null | Value::Array(_)) => Ok(String::new()),
        Some(other) => Err(format!(
            "the reply's choices[0].message.content is {other}, not a string"
        )),
    }
}

#[async_trait::async_trait]
impl AsyncRecordProcessor for TextgenProcessor {
    /// The record with the field's text replaced by the model's answer.
    async fn process_record(&self, record: &Record) -> Result<Record, String> {
        let taken = take(&self.field, record)?;
        let input = taken.input.as_str();
        let answer = self.retries.run(|| self.attempt(input)).await?;
        put(&self.field, taken, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http_server::{ok, Reply, Seen, Server};
    use crate::testing::{assert_parameters, assert_schema_defaults, configure, direct_refusal};
    use crate::testing::{raw, refusal, validated_settings};
    use culvert_domain::{Change, Operation, Position};
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    /// OpenAI's reply with the content.
    fn reply_with(content: Value) -> String {
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        })
        .to_string()
    }

    /// What Conduit's mock answers: the user message in upper case.
    fn uppercase(seen: &Seen, _: usize) -> Reply {
        let body: Value = serde_json::from_str(&seen.body).unwrap();
        let text = body["messages"][1]["content"].as_str().unwrap_or("");
        ok(&reply_with(json!(text.to_uppercase())))
    }

    fn failure(outcome: &Outcome) -> &str {
        match outcome {
            Outcome::Fail(error) => error,
            other => panic!("not failed: {other:?}"),
        }
    }

    fn run(server: &Server, pairs: &[(&str, &str)], records: &mut [Record]) -> Vec<Outcome> {
        let plugin = OpenAiTextgen::with_base_url(&server.url);
        let mut processor = configure(&plugin, pairs).unwrap_or_else(|e| panic!("{e}"));
        server.run(processor.as_mut(), records)
    }

    fn record(operation: Operation, key: &str, before: &str, after: &str) -> Record {
        Record {
            operation,
            key: raw(key),
            payload: Change {
                before: raw(before),
                after: raw(after),
            },
            ..Record::default()
        }
    }

    const BASE: [(&str, &str); 3] = [
        ("api_key", "k"),
        ("model", "gpt-4o-mini"),
        ("developer_message", "d"),
    ];

    #[rustfmt::skip]
    #[test]
    fn parameters_are_conduits() {
        let own = [
            ("api_key", ""), ("backoff_factor", "2.0"), ("developer_message", ""), ("field", ".Payload.After"),
            ("frequency_penalty", ""), ("initial_backoff", "1000"), ("log_probs", ""), ("logit_bias.*", ""),
            ("max_backoff", "30000"), ("max_completion_tokens", ""), ("max_retries", "3"), ("max_tokens", ""),
            ("metadata.*", ""), ("model", ""), ("n", ""), ("presence_penalty", ""), ("reasoning_effort", ""),
            ("seed", ""), ("stop", ""), ("store", ""), ("stream", ""), ("strict_output", "false"),
            ("temperature", ""), ("top_log_probs", ""), ("top_p", ""), ("user", ""),
        ];
        let plugin = OpenAiTextgen::new();
        assert_parameters(&plugin, &own, "true");
        assert_eq!((plugin.spec.name, plugin.spec.version), ("openai.textgen", "v0.1.0"));
        assert!(plugin.spec.parameters.iter().all(|p| !p.description.is_empty()));
        assert_schema_defaults(&validated_settings(&plugin, &BASE), "true");
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_examples() {
        let server = Server::start(uppercase);
        let developer = "You will receive a payload. Your task is to output back the payload in uppercase.";
        // Conduit's example: "Transform text using OpenAI models".
        let pairs = [("api_key", "fake-api-key"), ("model", "gpt-4o-mini"), ("developer_message", developer), ("temperature", "0")];
        let example = |after| Record { position: Position(b"pos-1".to_vec()), payload: Change { before: None, after: raw(after) }, ..Record::default() };
        let mut records = [example("hello world")];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep]);
        assert_eq!(records[0], example("HELLO WORLD"));
        let seen = &server.seen()[0];
        assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/chat/completions"));
        assert_eq!(seen.headers["authorization"], "Bearer fake-api-key");
        assert_eq!(seen.headers["content-type"], "application/json");
        // A temperature of 0 is not sent.
        let want = format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"developer","content":"{developer}"}},{{"role":"user","content":"hello world"}}],"stream":false}}"#);
        assert_eq!(seen.body, want);
        // Conduit's TestProcessor_Process: three records, each transformed.
        let mut records = [
            record(Operation::Create, "key1", "bef-rec-1", "aft-rec-1"),
            record(Operation::Update, "key2", "bef-rec-2", "aft-rec-2"),
            record(Operation::Delete, "key3", "bef-rec-3", "aft-rec-3"),
        ];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep, Outcome::Keep, Outcome::Keep]);
        assert_eq!(records, [
            record(Operation::Create, "key1", "bef-rec-1", "AFT-REC-1"),
            record(Operation::Update, "key2", "bef-rec-2", "AFT-REC-2"),
            record(Operation::Delete, "key3", "bef-rec-3", "AFT-REC-3"),
        ]);
        assert_eq!(server.seen().len(), 4);
    }

    #[rustfmt::skip]
    #[test]
    fn sends_the_settings_as_go_openai_does() {
        let server = Server::start(uppercase);
        let pairs = [
            ("api_key", "k"), ("model", "gpt-4o"), ("developer_message", "Be <brief>."), ("max_tokens", "100"),
            ("max_completion_tokens", "200"), ("temperature", "0.7"), ("top_p", "0.9"), ("n", "2"),
            ("stream", "true"), ("stop", "END,STOP"), ("presence_penalty", "0.5"), ("seed", "42"),
            ("frequency_penalty", "-0.25"), ("logit_bias.50256", "-100"), ("logit_bias.1234", "5"),
            ("log_probs", "true"), ("top_log_probs", "3"), ("user", "u1"), ("store", "true"),
            ("reasoning_effort", "low"), ("metadata.team", "x"), ("strict_output", "true"),
            ("field", ".Payload.After.text"),
        ];
        let input = |text| Record { payload: Change { before: None, after: crate::testing::structured(json!({"text": text})) }, ..Record::default() };
        let mut records = [input("hi")];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep]);
        assert_eq!(records[0], input("HI"));
        let want = r#"{"model":"gpt-4o","messages":[{"role":"developer","content":"Be \u003cbrief\u003e."},{"role":"user","content":"hi"}],"max_tokens":100,"max_completion_tokens":200,"temperature":0.7,"top_p":0.9,"n":2,"stream":false,"stop":["END","STOP"],"presence_penalty":0.5,"seed":42,"frequency_penalty":-0.25,"logit_bias":{"1234":5,"50256":-100},"logprobs":true,"top_logprobs":3,"user":"u1","store":true,"reasoning_effort":"low"}"#;
        assert_eq!(server.seen()[0].body, want);
        // A seed of 0 is sent; an empty text is a user message without content.
        let mut records = [input("")];
        assert_eq!(run(&server, &[&BASE[..], &[("seed", "0"), ("store", "false"), ("field", ".Payload.After.text")]].concat(), &mut records), [Outcome::Keep]);
        let want = r#"{"model":"gpt-4o-mini","messages":[{"role":"developer","content":"d"},{"role":"user"}],"stream":false,"seed":0}"#;
        assert_eq!(server.seen()[1].body, want);
    }

    #[rustfmt::skip]
    #[test]
    fn replies_are_read_as_go_openai_reads_them() {
        // (reply, what the field receives)
        let two = json!({"choices": [{"message": {"content": "first"}}, {"message": {"content": "second"}}]}).to_string();
        let cases = [
            (reply_with(Value::Null), ""),
            (reply_with(json!([{"type": "text", "text": "parts"}])), ""),
            (two, "first"),
            (r#"{"choices": [{"message": null}]} more"#.to_owned(), ""),
            (r#"{"choices": [null]}"#.to_owned(), ""),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(&reply));
            let mut records = [record(Operation::Create, "k", "b", "a")];
            assert_eq!(run(&server, &BASE, &mut records), [Outcome::Keep], "{want}");
            assert_eq!(records[0], record(Operation::Create, "k", "b", want));
        }
        // Replies that cannot be used are tried again, then fail the record.
        let cases = [
            (r#"{"choices": []}"#, "the reply has no choices"),
            ("null", "the reply has no choices"),
            (r#"{"choices": [{"message": {"content": 5}}]}"#, "the reply's choices[0].message.content is 5, not a string"),
            (r#"{"choices": [{"message": "hi"}]}"#, "the reply's choices[0].message is not an object"),
            ("<html>", "the reply is not JSON"),
        ];
        for (reply, want) in cases {
            let server = Server::start(move |_, _| ok(reply));
            let mut records = [record(Operation::Create, "k", "b", "a")];
            let pairs = [&BASE[..], &[("max_retries", "1"), ("initial_backoff", "1"), ("max_backoff", "2")]].concat();
            let outcomes = run(&server, &pairs, &mut records);
            let error = failure(&outcomes[0]);
            assert!(error.starts_with("exceeded maximum retries (1): ") && error.contains(want), "{reply}: {error}");
            assert_eq!((server.seen().len(), &records[0]), (2, &record(Operation::Create, "k", "b", "a")), "{reply}");
        }
    }

    #[rustfmt::skip]
    #[test]
    fn retries_as_conduit_does() {
        // Conduit's TestProcessorWithRetry: a 429, then the answer.
        let rate_limited = r#"{"error":{"message":"rate limit exceeded","type":"requests","code":"rate_limit_exceeded"}}"#;
        let server = Server::start(move |seen, n| if n < 2 { (429, vec![], rate_limited.to_owned()) } else { uppercase(seen, n) });
        let pairs = [("model", "gpt-4o-mini"), ("api_key", "fake api key"), ("developer_message", "Test message"), ("max_retries", "3"), ("initial_backoff", "10"), ("max_backoff", "100"), ("backoff_factor", "2.0")];
        let mut records = [record(Operation::Create, "key1", "bef-rec-1", "aft-rec-1")];
        assert_eq!(run(&server, &pairs, &mut records), [Outcome::Keep]);
        assert_eq!((server.seen().len(), &records[0]), (2, &record(Operation::Create, "key1", "bef-rec-1", "AFT-REC-1")));
        // Always rate limited: 1 call and 2 retries.
        let server = Server::start(move |_, _| (429, vec![], rate_limited.to_owned()));
        let pairs = [&BASE[..], &[("max_retries", "2"), ("initial_backoff", "1"), ("max_backoff", "2")]].concat();
        let outcomes = run(&server, &pairs, &mut [record(Operation::Create, "k", "b", "a")]);
        assert_eq!(failure(&outcomes[0]), "exceeded maximum retries (2): error, status code: 429, status: 429 Too Many Requests, message: rate limit exceeded");
        assert_eq!(server.seen().len(), 3);
        // A 400 is not tried again.
        let server = Server::start(|_, _| (400, vec![], r#"{"error":{"message":"Invalid 'messages[0].role': 'developer'.","type":"invalid_request_error","param":"messages[0].role","code":null}}"#.to_owned()));
        let outcomes = run(&server, &pairs, &mut [record(Operation::Create, "k", "b", "a")]);
        assert_eq!(failure(&outcomes[0]), "OpenAI API call failed with non-retryable error: error, status code: 400, status: 400 Bad Request, message: Invalid 'messages[0].role': 'developer'.");
        assert_eq!(server.seen().len(), 1);
    }

    #[rustfmt::skip]
    #[test]
    fn requests_go_openai_refuses_are_not_sent() {
        let server = Server::start(uppercase);
        let cases = [
            (vec![("model", "davinci")], "model \"davinci\" is a completions model"),
            (vec![("model", "o1-mini"), ("max_tokens", "10")], "reasoning model \"o1-mini\": max_tokens is not supported"),
            (vec![("model", "o3"), ("log_probs", "true")], "reasoning model \"o3\": log_probs is not supported"),
            (vec![("model", "o4-mini"), ("temperature", "0.5")], "reasoning model \"o4-mini\": temperature, top_p and n are fixed"),
            (vec![("model", "gpt-5"), ("n", "2")], "are fixed"),
            (vec![("model", "gpt-5-mini"), ("presence_penalty", "0.1")], "are fixed"),
        ];
        for (mut pairs, want) in cases {
            pairs.extend([("api_key", "k"), ("developer_message", "d")]);
            let outcomes = run(&server, &pairs, &mut [record(Operation::Create, "k", "b", "a")]);
            let error = failure(&outcomes[0]);
            assert!(error.starts_with("OpenAI API call not made: ") && error.contains(want), "{pairs:?}: {error}");
        }
        assert!(server.seen().is_empty());
        // What reasoning models take is sent.
        let pairs = [("api_key", "k"), ("developer_message", "d"), ("model", "o3-mini"), ("temperature", "1"), ("max_completion_tokens", "50"), ("reasoning_effort", "high")];
        assert_eq!(run(&server, &pairs, &mut [record(Operation::Create, "k", "b", "a")]), [Outcome::Keep]);
        assert_eq!(server.seen().len(), 1);
    }

    #[rustfmt::skip]
    #[test]
    fn settings_are_checked() {
        let plugin = OpenAiTextgen::new();
        let with = |extra: (&'static str, &'static str)| vec![BASE[0], BASE[1], BASE[2], extra];
        // (settings, what the error says), validated and given to the plugin directly.
        let cases = [
            (vec![BASE[1], BASE[2]], "setting \"api_key\": required parameter is not provided"),
            (vec![BASE[0], BASE[2]], "setting \"model\": required parameter is not provided"),
            (vec![BASE[0], BASE[1]], "setting \"developer_message\": required parameter is not provided"),
            (with(("temperature", "hot")), "setting \"temperature\": \"hot\" is not a number"),
            (with(("top_p", "x")), "setting \"top_p\": \"x\" is not a number"),
            (with(("max_tokens", "1.5")), "setting \"max_tokens\": \"1.5\" is not an integer"),
            (with(("seed", "random")), "setting \"seed\": \"random\" is not an integer"),
            (with(("n", "two")), "setting \"n\": \"two\" is not an integer"),
            (with(("log_probs", "maybe")), "setting \"log_probs\": \"maybe\" is not a boolean"),
            (with(("stream", "maybe")), "setting \"stream\": \"maybe\" is not a boolean"),
            (with(("logit_bias.50256", "much")), "setting \"logit_bias.50256\": \"much\" is not an integer"),
            (with(("max_retries", "many")), "setting \"max_retries\": \"many\" is not an integer"),
            (with(("field", ".Payload.Foo.x")), "setting \"field\""),
        ];
        for (pairs, want) in cases {
            let validated = refusal(&plugin, &pairs);
            assert!(validated.contains(want), "{pairs:?}: {validated}");
            let direct = direct_refusal(&plugin, &pairs);
            assert!(direct.contains(want), "{pairs:?}: {direct}");
        }
        // Accepted by the parameters' checks, refused by the plugin.
        for (extra, want) in [
            (("temperature", "1e40"), "setting \"temperature\": \"1e40\" is not a finite number that fits a float32"),
            (("frequency_penalty", "NaN"), "setting \"frequency_penalty\""),
            (("logit_bias.a.b", "1"), "setting \"logit_bias.a.b\": a token id cannot contain a dot"),
        ] {
            let error = refusal(&plugin, &with(extra));
            assert!(error.contains(want), "{extra:?}: {error}");
        }
        assert!(refusal(&plugin, &with(("dimensions", "3"))).contains("setting \"dimensions\": unrecognized parameter"));
        // Given directly, without the defaults, the plugin still takes them.
        assert!(plugin.configure(&crate::testing::settings(&BASE)).is_ok());
    }
}
