//! The Cohere processors: `cohere.command` ([`CohereCommand`], a chat model's reply to a
//! prompt made from each record), `cohere.embed` ([`CohereEmbed`], embeddings of a field,
//! stored zstd-compressed) and `cohere.rerank` ([`CohereRerank`], the relevance of each
//! record's text to a query).
//!
//! They call Cohere's v2 API as Conduit does through Cohere's Go client: a JSON `POST` to
//! `{base}/v2/chat`, `{base}/v2/embed` or `{base}/v2/rerank` with `Authorization: Bearer
//! <apiKey>`. The base is `https://api.cohere.com`, or the `CO_API_URL` environment
//! variable when set (a proxy, a compatible server). Each request must be answered within
//! [`REQUEST_TIMEOUT`].
//!
//! Failures are retried in two layers, as in Conduit. First, as Cohere's Go client (which
//! Conduit uses) does by itself, a reply with status 408, 429 or 500 and above is tried
//! once more after [`CLIENT_RETRY_WAIT`]. Then, if the reply is still 500, 503 or 504, the
//! call is made again as the `backoffRetry.*` settings say. Any other failure (another
//! status, a network error, a reply that cannot be read) fails the records at once, with
//! the error as Cohere's client words it (`503: <the reply's body>`).
//!
//! In Conduit the second layer never comes into play: its processors look for the client's
//! errors by value (`errors.As(err, &cohere.ServiceUnavailableError{})`) while the client
//! returns pointers, so the check never matches and `backoffRetry.*` has no effect there.
//! Culvert does what those settings say. (The Go client also waits again after its second
//! failed attempt before reporting it; Culvert reports it at once.)
//!
//! Records a processor cannot read its input from fail alone; the others go on (Conduit's
//! default engine hands processors one record at a time, with the same effect). A batch is
//! sent in one request where Conduit's processor would do so with a batch: `cohere.embed`
//! in requests of up to `maxTextsPerRequest` texts, `cohere.rerank` in one request whose
//! documents are the batch's texts (each record gets the result of its own document).

mod command;
mod embed;
mod rerank;
mod sprintf;
mod zstd;

pub use command::CohereCommand;
pub use embed::{CohereEmbed, EMBED_MODEL_METADATA};
pub use rerank::CohereRerank;

use crate::gofmt::{go_type, Numbers};
use crate::http::{base_url, client, endpoint, post_json, Backoff, HttpClient};
use crate::params::{invalid, setting};
use crate::reference::FieldValue;
use culvert_domain::Data;
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use http::header::{AUTHORIZATION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Uri};
use hyper::body::Bytes;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one request to Cohere may take, reply included (Conduit sets no limit).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The environment variable that overrides [`DEFAULT_API_URL`].
pub const API_URL_VARIABLE: &str = "CO_API_URL";

/// Where Cohere's API is.
pub const DEFAULT_API_URL: &str = "https://api.cohere.com";

/// The wait before Cohere's client tries a request again (after a reply with status 408,
/// 429 or 500 and above), which it does once.
pub const CLIENT_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Where a plugin's processors call Cohere, and how long its client waits before trying
/// again.
#[derive(Clone, Debug)]
struct Endpoint {
    base_url: String,
    client_retry_wait: Duration,
}

impl Endpoint {
    /// The API at `url` (without a trailing slash).
    fn new(url: &str) -> Self {
        Self {
            base_url: url.trim_end_matches('/').to_owned(),
            client_retry_wait: CLIENT_RETRY_WAIT,
        }
    }
}

/// The base URL the plugins of [`CohereCommand::new`] and the others call.
fn default_base_url() -> String {
    base_url(API_URL_VARIABLE, DEFAULT_API_URL)
}

/// The parameters the three processors share: `apiKey`, `model` (with its default and
/// description) and `backoffRetry.*`; the processor's own are added, and all sorted by name.
fn parameters(
    model_default: &'static str,
    model_description: &'static str,
    own: Vec<Parameter>,
) -> Vec<Parameter> {
    let mut parameters = vec![
        Parameter::new(
            "apiKey",
            ParameterType::String,
            "The Cohere API key the requests are authenticated with.",
        )
        .validate(Validation::Required)
        .sensitive(),
        Parameter::new(
            "backoffRetry.count",
            ParameterType::Float,
            "How many times a request that Cohere answers with status 500, 503 or 504 is \
             tried again (0: never).",
        )
        .default_value("0")
        .validate(Validation::GreaterThan(-1.0)),
        Parameter::new(
            "backoffRetry.factor",
            ParameterType::Float,
            "By how much the wait grows from one retry to the next.",
        )
        .default_value("2")
        .validate(Validation::GreaterThan(0.0)),
        Parameter::new(
            "backoffRetry.max",
            ParameterType::Duration,
            "The longest wait before a retry.",
        )
        .default_value("5s"),
        Parameter::new(
            "backoffRetry.min",
            ParameterType::Duration,
            "The wait before the first retry.",
        )
        .default_value("100ms"),
        Parameter::new("model", ParameterType::String, model_description)
            .default_value(model_default),
    ];
    parameters.extend(own);
    parameters.sort_by_key(|p| p.name);
    crate::params::with_schema_parameters(parameters, "true")
}

/// A required setting's value.
fn required<'s>(settings: &'s Settings, key: &str) -> Result<&'s str, PluginError> {
    match setting(settings, key) {
        "" => Err(invalid(key, "required parameter is not provided")),
        value => Ok(value),
    }
}

/// What the processors need to call one of Cohere's endpoints.
struct Api {
    client: HttpClient,
    url: Uri,
    headers: HeaderMap,
    backoff: Backoff,
    client_retry_wait: Duration,
}

impl Api {
    /// From the settings (`apiKey`, `backoffRetry.*`), for `path` at `at`.
    fn new(settings: &Settings, at: &Endpoint, path: &str) -> Result<Self, PluginError> {
        let key = required(settings, "apiKey")?;
        let backoff = Backoff::from_settings(settings)?;
        let url = endpoint(&at.base_url, path).map_err(|e| {
            PluginError::Other(format!(
                "the Cohere API URL (from {API_URL_VARIABLE}, else {DEFAULT_API_URL}): {e}"
            ))
        })?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| invalid("apiKey", "not a valid HTTP header value"))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(USER_AGENT, HeaderValue::from_static("culvert"));
        Ok(Self {
            client: client(),
            url,
            headers,
            backoff,
            client_retry_wait: at.client_retry_wait,
        })
    }

    /// POST `body`; the body of the successful reply. Failures are retried in the two
    /// layers the module documentation describes.
    async fn post(&self, body: &Value) -> Result<Bytes, String> {
        let body = serde_json::to_vec(body).map_err(|e| format!("encoding the request: {e}"))?;
        // Whether the last call's error is worth a retry.
        let retryable = AtomicBool::new(false);
        let call = || {
            let (body, retryable) = (body.clone(), &retryable);
            async move {
                self.call(body).await.map_err(|(retry, error)| {
                    retryable.store(retry, Ordering::Relaxed);
                    error
                })
            }
        };
        self.backoff
            .run(call, |_| retryable.load(Ordering::Relaxed))
            .await
    }

    /// One call, as Cohere's client makes it: a request, and another after a reply with
    /// status 408, 429 or 500 and above. The reply's body, or the error and whether it is
    /// worth calling again (status 500, 503 or 504).
    async fn call(&self, body: Vec<u8>) -> Result<Bytes, (bool, String)> {
        let mut tried = false;
        loop {
            match self.post_once(body.clone()).await {
                Err((code, _)) if !tried && (code == 408 || code == 429 || code >= 500) => {
                    tried = true;
                    tokio::time::sleep(self.client_retry_wait).await;
                }
                Err((code, error)) => return Err((matches!(code, 500 | 503 | 504), error)),
                Ok(reply) => return Ok(reply),
            }
        }
    }

    /// One request: the reply's body, or the error and the reply's status (0 when there
    /// was no reply).
    async fn post_once(&self, body: Vec<u8>) -> Result<Bytes, (u16, String)> {
        let sent = post_json(
            &self.client,
            &self.url,
            self.headers.clone(),
            body,
            REQUEST_TIMEOUT,
        );
        let (status, reply) = sent.await.map_err(|e| (0, e))?;
        if status.is_success() {
            return Ok(reply);
        }
        let code = status.as_u16();
        Err((code, format!("{code}: {}", String::from_utf8_lossy(&reply))))
    }
}

/// The text a processor sends for a field's value, as Conduit's processors take it: a
/// position, raw data or a string as it is, structured data as its JSON; anything else
/// (no value included) is an error naming its Go type.
fn input_text(value: Option<FieldValue>) -> Result<String, String> {
    let unsupported = |ty: &str| Err(format!("unsupported type {ty}"));
    match value {
        Some(FieldValue::Position(bytes) | FieldValue::Data(Some(Data::Raw(bytes)))) => {
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Some(FieldValue::Data(Some(Data::Structured(object)))) => {
            let mut text = String::new();
            crate::gojson::write_json(&mut text, &Value::Object(object.into_map()));
            Ok(text)
        }
        Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => Ok(text),
        Some(other) => unsupported(go_type(&other, Numbers::AsHeld)),
        None => unsupported("<nil>"),
    }
}

/// A float64 read from a JSON number's text as Go reads it (correctly rounded); `null` is
/// Go's zero value.
fn go_f64(raw: &serde_json::value::RawValue) -> Result<f64, String> {
    match raw.get() {
        "null" => Ok(0.0),
        text => text
            .parse::<f64>()
            .ok()
            .filter(|_| text.starts_with(|c: char| c == '-' || c.is_ascii_digit()))
            .ok_or_else(|| format!("cannot read {text} as a number")),
    }
}

/// A JSON object's members, their values unparsed.
type RawObject<'a> = std::collections::BTreeMap<String, &'a serde_json::value::RawValue>;

/// The members of the JSON object `text` (`null` counts as an empty object, as in Go).
fn raw_object(text: &str) -> Result<RawObject<'_>, String> {
    if text.trim() == "null" {
        return Ok(RawObject::new());
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// A string member (missing or null: empty, as in Go).
fn raw_string(object: &RawObject<'_>, key: &str) -> Result<String, String> {
    match object.get(key) {
        None => Ok(String::new()),
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get())
            .map(Option::unwrap_or_default)
            .map_err(|e| format!("{key}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_read_as_conduit_reads_them() {
        let text = |v| input_text(Some(v));
        assert_eq!(
            text(FieldValue::Position(b"pos-1".to_vec())).unwrap(),
            "pos-1"
        );
        assert_eq!(
            text(FieldValue::Data(Some(Data::Raw(b"raw".to_vec())))).unwrap(),
            "raw"
        );
        let object = json!({"z": 1, "a": "<&>", "f": 1.5e-7, "n": null, "l": [true, -2]});
        let Value::Object(object) = object else {
            unreachable!()
        };
        assert_eq!(
            text(FieldValue::Data(Some(Data::Structured(object.into())))).unwrap(),
            r#"{"a":"\u003c\u0026\u003e","f":1.5e-07,"l":[true,-2],"n":null,"z":1}"#
        );
        assert_eq!(text(FieldValue::Text("meta".into())).unwrap(), "meta");
        assert_eq!(text(FieldValue::Json(json!("field"))).unwrap(), "field");
        for (value, ty) in [
            (FieldValue::Json(json!(1)), "int"),
            (FieldValue::Json(json!(1.5)), "float64"),
            (FieldValue::Json(json!({})), "map[string]interface {}"),
            (
                FieldValue::Operation(culvert_domain::Operation::Create),
                "opencdc.Operation",
            ),
        ] {
            assert_eq!(text(value).unwrap_err(), format!("unsupported type {ty}"));
        }
        assert_eq!(input_text(None).unwrap_err(), "unsupported type <nil>");
    }

    #[test]
    fn numbers_are_read_exactly() {
        let raw = |t: &str| serde_json::value::RawValue::from_string(t.to_owned()).unwrap();
        assert_eq!(go_f64(&raw("0.1")).unwrap(), 0.1);
        assert_eq!(go_f64(&raw("null")).unwrap(), 0.0);
        let long = "0.012345678901234567";
        assert_eq!(go_f64(&raw(long)).unwrap(), long.parse::<f64>().unwrap());
        assert!(go_f64(&raw("\"1\"")).is_err());
    }
}
