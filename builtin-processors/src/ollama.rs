//! `ollama`: send each record's field to a model on an Ollama server with a prompt, and
//! store the JSON object the model answers in the field's place.
//!
//! The request is Ollama's `POST {url}/api/generate` with `format: json` and no streaming;
//! the prompt wraps the user's instructions around the field's data, and is checked as
//! Conduit checks it (3 to 4,096 characters, none of a few patterns that look like code
//! injection). Only the model Conduit allows (`llama3.2`) may be named. Where Conduit
//! prints the data into the prompt with Go's `%s` of a map (`map[a:%!s(int=1)]`), the prompt
//! here carries the data as JSON, which a model can read. Each request must finish within
//! [`REQUEST_TIMEOUT`] (Conduit has no limit).

use crate::http::{client, endpoint, post_json, HttpClient};
use crate::params::{
    invalid, reference, setting, setting_or, with_schema_parameters, PAYLOAD_PATTERN,
};
use crate::per_record::{AsyncPerRecord, AsyncRecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::structured_data;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Map, Value};
use std::time::Duration;

/// How long one request to Ollama may take (a model on a CPU is slow).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The models the processor may use (Conduit's list).
const ALLOWED_MODELS: &[&str] = &["llama3.2"];

/// What the prompt tells the model about its answer (after the user's instructions).
const ANSWER_RULES: &str = "Answer with one valid JSON object that follows the instructions, \
                            and nothing else: no explanation.";

/// Patterns a prompt must not contain (compared without case), as Conduit refuses them.
const BLOCKED: &[&str] = &[
    "rm -rf",
    "DROP TABLE",
    "<script>",
    "javascript:",
    "data:text/html",
];

/// The shortest and longest prompt accepted, in bytes.
const PROMPT_BYTES: (usize, usize) = (3, 4096);

/// `ollama`: transform a field with a model on an Ollama server.
pub struct Ollama {
    spec: ProcessorSpecification,
}

impl Ollama {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![
                Parameter::new(
                    "field",
                    ParameterType::String,
                    "The field to send and replace (in the payload, such as `.Payload.After`).",
                )
                .default_value(".Payload.After")
                .validate(Validation::Regex(PAYLOAD_PATTERN.to_owned())),
                Parameter::new(
                    "model",
                    ParameterType::String,
                    "The model on the Ollama server (only `llama3.2` is allowed).",
                )
                .default_value("llama3.2"),
                Parameter::new(
                    "prompt",
                    ParameterType::String,
                    "The instructions: how the model is to transform the data.",
                ),
                Parameter::new(
                    "url",
                    ParameterType::String,
                    "The Ollama server's URL, such as `http://localhost:11434`.",
                )
                .validate(Validation::Required),
            ],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "ollama",
                summary: "Transform records with a model on an Ollama server.",
                description: "Sends the field's structured data (or JSON text) with the prompt \
                              to the model on the Ollama server at `url` \
                              (`POST {url}/api/generate`, JSON output, no streaming) and stores \
                              the JSON object the model answers in the field. A prompt shorter \
                              than 3 or longer than 4,096 characters, or one with patterns such \
                              as `DROP TABLE` or `<script>`, fails the record; so do an answer \
                              that is not a JSON object and a status other than 200.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for Ollama {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for Ollama {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let url = setting(settings, "url");
        if url.is_empty() {
            return Err(invalid("url", "required parameter is not provided"));
        }
        let generate = endpoint(url, "api/generate").map_err(|e| invalid("url", e))?;
        let field_text = setting_or(settings, "field", ".Payload.After");
        if !field_text.starts_with(".Payload") {
            return Err(invalid(
                "field",
                format!("{field_text:?} must match {PAYLOAD_PATTERN:?}"),
            ));
        }
        let field = reference("field", field_text)?;
        Ok(Box::new(AsyncPerRecord(OllamaProcessor {
            client: client(),
            generate,
            field,
            model: setting_or(settings, "model", "llama3.2").to_owned(),
            prompt: setting(settings, "prompt").to_owned(),
        })))
    }
}

struct OllamaProcessor {
    client: HttpClient,
    generate: Uri,
    field: Reference,
    model: String,
    prompt: String,
}

#[async_trait::async_trait]
impl AsyncRecordProcessor for OllamaProcessor {
    async fn process_record(&self, record: &Record) -> Result<Record, String> {
        if !ALLOWED_MODELS.contains(&self.model.as_str()) {
            return Err(format!(
                "model {{{}}} not allowed by processor. Allowed models: [{}]",
                self.model,
                ALLOWED_MODELS.join(" ")
            ));
        }
        let value = match self.field.get(record) {
            Ok(FieldValue::Data(None) | FieldValue::Json(Value::Null)) => None,
            Ok(value) => Some(value),
            Err(e) => return Err(format!("failed resolving reference: {e}")),
        };
        let data = structured_data(value, "field to unmarshal nil")
            .map_err(|e| format!("cannot process field: {e}"))?;
        let prompt =
            prompt(&self.prompt, &data).map_err(|e| format!("creating the ollama request: {e}"))?;
        let body = serde_json::json!({
            "model": self.model,
            "prompt": prompt,
            "format": "json",
            "stream": false,
        });
        let (status, reply) = post_json(
            &self.client,
            &self.generate,
            HeaderMap::new(),
            body.to_string().into_bytes(),
            REQUEST_TIMEOUT,
        )
        .await
        .map_err(|e| format!("error sending the ollama request: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!(
                "error sending the ollama request: ollama request returned status code {}",
                status.as_u16()
            ));
        }
        let answer = answer(&reply).map_err(|e| format!("cannot process response: {e}"))?;
        let mut out = record.clone();
        self.field
            .set_value(&mut out, FieldValue::Json(Value::Object(answer)))
            .map_err(|e| format!("error setting the designated field: {e}"))?;
        Ok(out)
    }
}

/// The prompt for one record, checked.
fn prompt(instructions: &str, data: &Map<String, Value>) -> Result<String, String> {
    let record = serde_json::to_string(data).map_err(|e| e.to_string())?;
    let prompt = format!(
        "Instructions: {{{instructions}}}\n Record: {{{record}}} \n Suffix {{{ANSWER_RULES}}}"
    );
    let (min, max) = PROMPT_BYTES;
    if prompt.len() < min {
        return Err(format!(
            "prompt validation failed: prompt with length {} is too short, must be {min} characters",
            prompt.len()
        ));
    }
    if prompt.len() > max {
        return Err(format!(
            "prompt validation failed: prompt with length {} exceeds context window allowance, must be less than {max} characters",
            prompt.len()
        ));
    }
    let lower = prompt.to_lowercase();
    if let Some(pattern) = BLOCKED.iter().find(|p| lower.contains(&p.to_lowercase())) {
        return Err(format!(
            "prompt validation failed: potentially malicious pattern: {pattern}"
        ));
    }
    Ok(prompt)
}

/// The JSON object in Ollama's answer (`response`, once `done`).
fn answer(reply: &[u8]) -> Result<Map<String, Value>, String> {
    let generated: Value = serde_json::from_slice(reply)
        .map_err(|e| format!("invalid JSON in ollama response: {e}"))?;
    if generated.get("done").and_then(Value::as_bool) != Some(true) {
        return Err("error response from ollama: the answer is not done".into());
    }
    let response = generated
        .get("response")
        .and_then(Value::as_str)
        .unwrap_or_default();
    serde_json::from_str(response).map_err(|e| format!("invalid JSON in response: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http_server::{ok, Server};
    use crate::testing::*;
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    const REPLY: &str = r#"{"model":"llama3.2","created_at":"2025-04-09T04:18:57.239864Z",
        "response":"{\"test-field\": 124}","done":true,"done_reason":"stop","context":[1,2]}"#;

    #[test]
    fn conduits_example() {
        let server = Server::start(|_, _| ok(REPLY));
        let prompt = "Take the incoming record in JSON format, with a structure of {'test-field': integer}. Add one to the value of the integer and return that field.";
        let pairs = [
            ("prompt", prompt),
            ("model", "llama3.2"),
            ("url", "URL"),
            ("field", ".Payload.After"),
        ];
        let input = example(structured(json!({"test-field": 123})), raw("test-key"));
        let want = example(structured(json!({"test-field": 124})), raw("test-key"));
        assert_eq!(
            server.process(&Ollama::new(), &pairs, input),
            (want, Outcome::Keep)
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("POST", "/api/generate")
        );
        let body: Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(body["model"], "llama3.2");
        assert_eq!(body["format"], "json");
        assert_eq!(body["stream"], false);
        let sent = body["prompt"].as_str().unwrap();
        assert!(sent.contains(prompt), "{sent}");
        assert!(
            sent.contains(r#"{"test-field":123}"#),
            "the data as JSON: {sent}"
        );
    }

    #[test]
    fn settings_are_checked() {
        let plugin = Ollama::new();
        assert_refused(
            &plugin,
            [
                (vec![], "\"url\": required parameter is not provided"),
                (vec![("url", "ftp://h")], "not an http:// or https:// URL"),
                (
                    vec![("url", "http://h"), ("field", ".Key")],
                    "setting \"field\"",
                ),
                (
                    vec![("url", "http://h"), ("field", ".Payload.Atfer")],
                    "setting \"field\"",
                ),
            ],
        );
        assert!(direct_refusal(&plugin, &[]).contains("\"url\""));
        assert!(
            direct_refusal(&plugin, &[("url", "http://h"), ("field", ".Key")])
                .contains("\"field\"")
        );
    }

    #[test]
    fn records_fail_with_conduits_reasons() {
        let server = Server::start(|seen, _| match seen.body.contains("{fail}") {
            true => (500, vec![], String::new()),
            false => ok("hello"),
        });
        let record = |value: Value| example(structured(value), None);
        let cases = [
            (
                vec![("url", "URL"), ("prompt", "fail")],
                record(json!({"a": 1})),
                "ollama request returned status code 500",
            ),
            (
                vec![("url", "URL"), ("model", "chatgpt")],
                record(json!({"a": 1})),
                "model {chatgpt} not allowed by processor. Allowed models: [llama3.2]",
            ),
            (
                vec![("url", "URL")],
                record(json!({"a": 1})),
                "cannot process response: invalid JSON in ollama response",
            ),
            (
                vec![("url", "URL"), ("prompt", "then DROP TABLE users")],
                record(json!({"a": 1})),
                "potentially malicious pattern: DROP TABLE",
            ),
            (
                vec![("url", "URL")],
                record(json!({"a": "x".repeat(5000)})),
                "exceeds context window allowance",
            ),
            (
                vec![("url", "URL")],
                example(None, None),
                "cannot process field: field to unmarshal nil",
            ),
            (
                vec![("url", "URL")],
                example(raw("not json"), None),
                "cannot process field: failed unmarshalling JSON",
            ),
        ];
        for (pairs, input, reason) in cases {
            let (out, outcome) = server.process(&Ollama::new(), &pairs, input.clone());
            let error = failure(outcome);
            assert!(error.contains(reason), "{pairs:?}: {error}");
            assert_eq!(out, input, "a failed record is left as it was");
        }
    }

    #[test]
    fn an_answer_that_is_not_done_or_not_an_object_fails() {
        for (reply, reason) in [
            (r#"{"response":"{}","done":false}"#, "not done"),
            (
                r#"{"response":"[1]","done":true}"#,
                "invalid JSON in response",
            ),
        ] {
            let server = Server::start(move |_, _| ok(reply));
            let input = example(structured(json!({"a": 1})), None);
            let error = failure(server.process(&Ollama::new(), &[("url", "URL")], input).1);
            assert!(error.contains(reason), "{error}");
        }
    }
}
