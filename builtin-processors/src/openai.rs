//! The OpenAI processors: `openai.embeddings` ([`OpenAiEmbeddings`]) replaces a field with
//! the embedding vector of its text, `openai.textgen` ([`OpenAiTextgen`]) with the text a
//! chat model writes for it.
//!
//! Both work as Conduit's do, one record after another:
//!
//! * the `field` setting (`.Payload.After` by default) names the text: the position, raw
//!   data (its bytes), structured data (as compact JSON, keys sorted), a metadata value or
//!   a string field inside structured data; anything else (a missing field among them)
//!   fails the record (`unsupported type <nil>`, `unsupported type int`...);
//! * the result goes back into the same field: raw data for `.Key` and the payload sides,
//!   a string for a metadata value or a field inside structured data (the position cannot
//!   be changed, so `.Position` always fails, after the call);
//! * a failed call is tried again up to `max_retries` times, waiting `initial_backoff`
//!   milliseconds, then each time `backoff_factor` times longer, at most `max_backoff`
//!   milliseconds (a random wait between the first and that one, as Conduit's jitter).
//!   Tried again is what Conduit tries again: an error reply of status 429, 500, 502, 503
//!   or 504, and everything that is not an OpenAI error reply (no connection, no reply in
//!   [`REQUEST_TIMEOUT`], an error reply without OpenAI's error object, a reply that cannot
//!   be read). Other error replies (400, 401, 404...) fail the record at once;
//! * a record that fails is left as it was; the others of the batch go on.
//!
//! The API is at [`DEFAULT_BASE_URL`], or where the environment variable
//! [`BASE_URL_VARIABLE`] points (a proxy or a compatible server). Processing needs a Tokio
//! runtime with I/O and timers, as the engine's.
//!
//! Where Culvert differs from Conduit:
//!
//! * no wait after the last attempt (Conduit waits once more before giving up);
//! * each attempt must finish within [`REQUEST_TIMEOUT`] (Conduit has no limit), and
//!   redirects are not followed (OpenAI sends none);
//! * a chat request go-openai refuses to send (a completions-only model such as `davinci`;
//!   a reasoning model, `o1`, `o3`, `o4` or `gpt-5...`, with `max_tokens`, `log_probs`, or
//!   a sampling setting other than its fixed value) fails the record at once: Conduit
//!   tries it again (that error is not an OpenAI error reply), to no avail;
//! * a chat reply without choices fails the record as a reply that cannot be read (Conduit
//!   panics);
//! * settings Conduit accepts but cannot use are refused when configuring: a float that
//!   is not finite (or does not fit a `float32`), an API key that cannot be sent in an
//!   HTTP header; a negative `max_retries` fails every record without a call, as in
//!   Conduit;
//! * only the parts of a reply that are used are checked (Go's decoder refuses a reply of
//!   which any field has an unexpected type).

mod api;
mod embeddings;
mod textgen;

pub use embeddings::OpenAiEmbeddings;
pub use textgen::OpenAiTextgen;

use crate::gofmt::{go_type, Numbers};
use crate::http::Backoff;
use crate::params::{invalid, reference, setting, setting_or, with_schema_parameters};
use crate::reference::{FieldValue, Reference};
use crate::resolve::resolve;
use api::Failure;
use culvert_domain::{parse_bool, Data, Record};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// The environment variable that overrides the API's base URL.
pub const BASE_URL_VARIABLE: &str = "OPENAI_BASE_URL";

/// The API's base URL unless [`BASE_URL_VARIABLE`] is set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// How long one attempt (the request and reading the reply) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// A parameter: name, type, default, description.
type ParameterRow = (&'static str, ParameterType, &'static str, &'static str);

/// The parameters both processors have.
#[rustfmt::skip]
const SHARED_PARAMETERS: [ParameterRow; 6] = [
    ("api_key", ParameterType::String, "", "The OpenAI API key, sent as a bearer token."),
    ("backoff_factor", ParameterType::Float, "2.0", "By how much the wait before a retry grows from one retry to the next."),
    ("field", ParameterType::String, ".Payload.After", "The field whose text is sent to OpenAI and replaced by the result (a reference such as `.Payload.After`, `.Payload.After.text` or `.Metadata.text`)."),
    ("initial_backoff", ParameterType::Int, "1000", "The wait before the first retry, in milliseconds."),
    ("max_backoff", ParameterType::Int, "30000", "The longest wait before a retry, in milliseconds."),
    ("max_retries", ParameterType::Int, "3", "How many times a failed call is tried again before the record fails."),
];

/// A processor's parameters: the shared ones and `own`, by name, those in `required`
/// (and `api_key`) required; then the `sdk.schema.*` ones.
fn parameters(own: &[ParameterRow], required: &[&str]) -> Vec<Parameter> {
    let mut parameters: Vec<Parameter> = SHARED_PARAMETERS
        .iter()
        .chain(own)
        .map(|&(name, ty, default, description)| {
            let parameter = Parameter::new(name, ty, description).default_value(default);
            if name == "api_key" {
                // A secret: sealed at rest, never shown.
                parameter.validate(Validation::Required).sensitive()
            } else if required.contains(&name) {
                parameter.validate(Validation::Required)
            } else {
                parameter
            }
        })
        .collect();
    parameters.sort_by_key(|p| p.name);
    with_schema_parameters(parameters, "true")
}

/// A required setting's value.
fn required<'s>(settings: &'s Settings, key: &str) -> Result<&'s str, PluginError> {
    match setting(settings, key) {
        "" => Err(invalid(key, "required parameter is not provided")),
        value => Ok(value),
    }
}

/// An `int` setting (`default` when not set).
fn int_setting(settings: &Settings, key: &str, default: i64) -> Result<i64, PluginError> {
    match setting(settings, key) {
        "" => Ok(default),
        text => text
            .parse()
            .map_err(|_| invalid(key, format!("{text:?} is not an integer"))),
    }
}

/// A `float` setting (`default` when not set); it must be finite.
fn float_setting(settings: &Settings, key: &str, default: f64) -> Result<f64, PluginError> {
    match setting(settings, key) {
        "" => Ok(default),
        text => match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            Ok(_) => Err(invalid(key, format!("{text:?} is not a finite number"))),
            Err(_) => Err(invalid(key, format!("{text:?} is not a number"))),
        },
    }
}

/// A `float` setting that Conduit holds as a `float32` (0 when not set).
fn f32_setting(settings: &Settings, key: &str) -> Result<f32, PluginError> {
    match setting(settings, key) {
        "" => Ok(0.0),
        text => match text.parse::<f32>() {
            Ok(n) if n.is_finite() => Ok(n),
            Ok(_) => Err(invalid(
                key,
                format!("{text:?} is not a finite number that fits a float32"),
            )),
            Err(_) => Err(invalid(key, format!("{text:?} is not a number"))),
        },
    }
}

/// A `bool` setting (false when not set).
fn bool_setting(settings: &Settings, key: &str) -> Result<bool, PluginError> {
    match setting(settings, key) {
        "" => Ok(false),
        text => parse_bool(text).ok_or_else(|| invalid(key, format!("{text:?} is not a boolean"))),
    }
}

/// The `field` setting.
fn field_setting(settings: &Settings) -> Result<Reference, PluginError> {
    reference("field", setting_or(settings, "field", ".Payload.After"))
}

/// The retry settings: how many retries and the waits between them.
#[derive(Clone, Debug)]
struct Retries {
    /// `max_retries` (negative: not even a first attempt, as in Conduit).
    max: i64,
    /// The waits (without jitter).
    backoff: Backoff,
}

impl Retries {
    /// From `max_retries`, `initial_backoff`, `max_backoff` (milliseconds) and
    /// `backoff_factor`. As in Conduit's backoff library, a wait of 0 or less stands for
    /// the library's default (100ms first, 10s longest) and a factor of 0 or less for 2.
    fn from_settings(settings: &Settings) -> Result<Self, PluginError> {
        let max = int_setting(settings, "max_retries", 3)?;
        let initial = int_setting(settings, "initial_backoff", 1000)?;
        let longest = int_setting(settings, "max_backoff", 30000)?;
        let factor = float_setting(settings, "backoff_factor", 2.0)?;
        let millis = |n: i64| Duration::from_millis(u64::try_from(n).unwrap_or(0));
        Ok(Self {
            max,
            backoff: Backoff {
                count: max.max(0) as f64,
                factor: if factor > 0.0 { factor } else { 2.0 },
                min: millis(initial),
                max: millis(longest),
            },
        })
    }

    /// The wait after failed attempt number `attempt` (from 0): random between the first
    /// wait and the exponential one, as Conduit's jittered backoff.
    fn wait(&self, attempt: u64) -> Duration {
        let top = self.backoff.delay(attempt as f64);
        let bottom = self.backoff.delay(0.0).min(top);
        bottom + (top - bottom).mul_f64(random_fraction())
    }

    /// Run `attempt` until it succeeds, fails for good, or the retries are used up; the
    /// error says which, with Conduit's wording.
    async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        if self.max < 0 {
            return Err(format!(
                "exceeded maximum retries ({}): no call is made",
                self.max
            ));
        }
        let mut failed: u64 = 0;
        loop {
            match attempt().await {
                Ok(done) => return Ok(done),
                Err(Failure::Transient(error)) if failed < self.max.unsigned_abs() => {
                    let wait = self.wait(failed);
                    failed += 1;
                    tracing::warn!(
                        attempt = failed, ?wait, %error,
                        "OpenAI API call failed, retrying after backoff"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Transient(error)) => {
                    return Err(format!("exceeded maximum retries ({}): {error}", self.max))
                }
                Err(Failure::Permanent(error)) => {
                    return Err(format!(
                        "OpenAI API call failed with non-retryable error: {error}"
                    ))
                }
                Err(Failure::NotSent(error)) => {
                    return Err(format!("OpenAI API call not made: {error}"))
                }
            }
        }
    }
}

/// A random number in [0, 1), for jitter.
fn random_fraction() -> f64 {
    rand::random::<f64>()
}

/// Where a result goes: as the kind of value the field held.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// The position (which cannot be set).
    Position,
    /// `.Key` or a payload side: raw data.
    Data,
    /// A metadata value or a field inside structured data: a string.
    Text,
}

/// A record's field, read for processing.
struct Taken {
    /// A copy of the record (resolving may create the objects on the way to the field).
    record: Record,
    /// The text to send.
    input: String,
    /// Where the result goes.
    slot: Slot,
}

/// Read `field` of `record` as Conduit's OpenAI processors read it.
fn take(field: &Reference, record: &Record) -> Result<Taken, String> {
    let mut copy = record.clone();
    let value =
        resolve(field, &mut copy).map_err(|e| format!("failed to resolve reference: {e}"))?;
    let lossy = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let (input, slot) = match value {
        Some(FieldValue::Position(bytes)) => (lossy(bytes), Slot::Position),
        Some(FieldValue::Data(Some(Data::Raw(bytes)))) => (lossy(bytes), Slot::Data),
        Some(FieldValue::Data(Some(Data::Structured(object)))) => {
            (crate::gojson::object_text(&object), Slot::Data)
        }
        Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => (text, Slot::Text),
        None => return Err("unsupported type <nil>".to_owned()),
        Some(other) => {
            return Err(format!(
                "unsupported type {}",
                go_type(&other, Numbers::AsHeld)
            ))
        }
    };
    Ok(Taken {
        record: copy,
        input,
        slot,
    })
}

/// The record of `taken` with `output` stored in `field`.
fn put(field: &Reference, taken: Taken, output: String) -> Result<Record, String> {
    let Taken {
        mut record, slot, ..
    } = taken;
    let (value, context) = match slot {
        Slot::Position => (
            FieldValue::Position(output.into_bytes()),
            "failed to set position",
        ),
        Slot::Data => (FieldValue::Bytes(output.into_bytes()), "failed to set data"),
        Slot::Text => (FieldValue::Text(output), "failed to set data"),
    };
    (field.set_value(&mut record, value)).map_err(|e| format!("{context}: {e}"))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_jittered_between_the_first_and_the_exponential_one() {
        let ms = Duration::from_millis;
        let retries = Retries::from_settings(&crate::testing::settings(&[
            ("initial_backoff", "100"),
            ("max_backoff", "500"),
            ("backoff_factor", "2"),
        ]))
        .unwrap();
        assert_eq!(retries.max, 3);
        for _ in 0..50 {
            assert_eq!(retries.wait(0), ms(100));
            assert!((ms(100)..=ms(200)).contains(&retries.wait(1)));
            assert!((ms(100)..=ms(500)).contains(&retries.wait(5)));
        }
        // Conduit's backoff library's defaults for waits and factor of 0 or less.
        let defaults = Retries::from_settings(&crate::testing::settings(&[
            ("initial_backoff", "0"),
            ("max_backoff", "-5"),
            ("backoff_factor", "-1"),
        ]))
        .unwrap();
        assert_eq!(defaults.wait(0), ms(100));
        assert_eq!(defaults.backoff.factor, 2.0);
        assert_eq!(defaults.backoff.delay(10.0), Duration::from_secs(10));
    }
}
