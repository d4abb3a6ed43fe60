//! Calling the OpenAI API as go-openai (Conduit's client) does: a JSON POST with the key as
//! a bearer token; a reply with a status below 200 or from 400 up is an error, an OpenAI
//! error object (`{"error": {"message": ...}}`) when it holds one; any other reply is read
//! as Go's decoder reads it (the first JSON value, `null` an empty reply). Which errors are
//! worth another attempt is Conduit's rule, see [`Failure`].

use super::{BASE_URL_VARIABLE, REQUEST_TIMEOUT};
use crate::http::{client, endpoint, post_json, HttpClient};
use crate::params::invalid;
use culvert_plugins::PluginError;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use hyper::body::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// Why an attempt failed, and whether Conduit tries again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// Tried again: an error reply of status 429, 500, 502, 503 or 504, and everything that
    /// is not an OpenAI error reply (no connection, no reply in time, an error reply
    /// without an OpenAI error object, a reply that cannot be read).
    Transient(String),
    /// Not tried again: an OpenAI error reply of any other status (or with an error object
    /// that cannot be read).
    Permanent(String),
    /// The request cannot be sent as configured (go-openai refuses it before sending).
    NotSent(String),
}

/// One endpoint of the API, with the headers every request carries.
pub(super) struct Api {
    client: HttpClient,
    url: Uri,
    headers: HeaderMap,
}

impl Api {
    /// `path` under `base_url`, called with `api_key`.
    pub(super) fn new(base_url: &str, path: &str, api_key: &str) -> Result<Self, PluginError> {
        let url = endpoint(base_url, path).map_err(|e| {
            PluginError::Other(format!(
                "the OpenAI API's base URL (set by {BASE_URL_VARIABLE}): {e}"
            ))
        })?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {api_key}")).map_err(|_| {
            invalid(
                "api_key",
                "cannot be sent in an HTTP header (it holds control characters)",
            )
        })?;
        bearer.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            client: client(),
            url,
            headers,
        })
    }

    /// POST `body` and return the body of a successful reply.
    pub(super) async fn post(&self, body: Vec<u8>) -> Result<Bytes, Failure> {
        let (status, reply) = post_json(
            &self.client,
            &self.url,
            self.headers.clone(),
            body,
            REQUEST_TIMEOUT,
        )
        .await
        .map_err(Failure::Transient)?;
        if !(200..400).contains(&status.as_u16()) {
            return Err(error_reply(status, &reply));
        }
        Ok(reply)
    }
}

/// The status codes of OpenAI error replies that are tried again.
const RETRIED_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// The failure an error reply stands for, described as go-openai describes it.
pub(super) fn error_reply(status: StatusCode, body: &[u8]) -> Failure {
    let code = status.as_u16();
    let shown = match status.canonical_reason() {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    };
    let text = String::from_utf8_lossy(body);
    let unreadable = |problem: &str| {
        format!("error, status code: {code}, status: {shown}, message: {problem}, body: {text}")
    };
    let error = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut reply)) => reply.remove("error").unwrap_or(Value::Null),
        Ok(_) => return Failure::Transient(unreadable("the reply is not a JSON object")),
        Err(e) => return Failure::Transient(unreadable(&format!("the reply is not JSON: {e}"))),
    };
    if error.is_null() {
        return Failure::Transient(unreadable("the reply holds no error object"));
    }
    match api_error_message(&error) {
        Ok(message) => {
            let described =
                format!("error, status code: {code}, status: {shown}, message: {message}");
            if RETRIED_STATUSES.contains(&code) {
                Failure::Transient(described)
            } else {
                Failure::Permanent(described)
            }
        }
        // go-openai keeps what it read of the error object, without the status, and
        // Conduit then counts the reply as an OpenAI error of no retried status.
        Err(partial) => Failure::Permanent(unreadable(&partial)),
    }
}

/// The message of an OpenAI error object, read as go-openai reads it (`message` a string
/// or a list of strings; `type`, `param` and `innererror.code` strings if present); what
/// was read so far when it cannot be read.
fn api_error_message(error: &Value) -> Result<String, String> {
    let Value::Object(error) = error else {
        return Err(String::new());
    };
    let message = match error.get("message") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) => String::new(),
        Some(Value::Array(items)) if items.iter().all(|i| i.is_string() || i.is_null()) => {
            let texts: Vec<&str> = items.iter().map(|i| i.as_str().unwrap_or("")).collect();
            texts.join(", ")
        }
        _ => return Err(String::new()),
    };
    let text_or_null =
        |value: Option<&Value>| matches!(value, None | Some(Value::Null | Value::String(_)));
    let inner_ok = match error.get("innererror") {
        None | Some(Value::Null) => true,
        Some(Value::Object(inner)) => text_or_null(inner.get("code")),
        Some(_) => false,
    };
    if text_or_null(error.get("type")) && text_or_null(error.get("param")) && inner_ok {
        Ok(message)
    } else {
        Err(message)
    }
}

/// Members of a JSON object, unparsed.
pub(super) type Object = BTreeMap<String, Box<RawValue>>;

/// The top-level object of a successful reply, read as Go's decoder reads it: the first
/// JSON value (what follows is ignored); `null` is an empty object.
pub(super) fn reply_object(body: &[u8]) -> Result<Object, String> {
    let text = String::from_utf8_lossy(body);
    let first = serde_json::Deserializer::from_str(&text)
        .into_iter::<Box<RawValue>>()
        .next();
    let raw = match first {
        None => return Err("the reply is empty".to_owned()),
        Some(Err(e)) => return Err(format!("the reply is not JSON: {e}")),
        Some(Ok(raw)) => raw,
    };
    let object: Option<Object> = serde_json::from_str(raw.get())
        .map_err(|e| format!("the reply is not a JSON object: {e}"))?;
    Ok(object.unwrap_or_default())
}

/// An array member of a reply object (`None` when missing or null).
pub(super) fn array_member(
    object: &Object,
    name: &str,
    what: &str,
) -> Result<Option<Vec<Box<RawValue>>>, String> {
    match object.get(name) {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| format!("the reply's {what} is not a list: {e}")),
    }
}

/// An object in a reply (`None` when null).
pub(super) fn object_value(raw: &RawValue, what: &str) -> Result<Option<Object>, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("the reply's {what} is not an object: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> Failure {
        error_reply(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn error_replies_are_retried_as_conduit_retries_them() {
        let api = |message: &str| {
            format!(r#"{{"error":{{"message":"{message}","type":"x","param":null,"code":"c"}}}}"#)
        };
        for status in [429, 500, 502, 503, 504] {
            let failure = classify(status, &api("busy"));
            let Failure::Transient(text) = failure else {
                panic!("{status}: {failure:?}")
            };
            assert!(
                text.starts_with(&format!("error, status code: {status}, status: {status} ")),
                "{text}"
            );
            assert!(text.ends_with(", message: busy"), "{text}");
        }
        assert_eq!(
            classify(400, &api("bad")),
            Failure::Permanent(
                "error, status code: 400, status: 400 Bad Request, message: bad".to_owned()
            )
        );
        for status in [401, 403, 404, 422, 501, 505] {
            assert!(
                matches!(classify(status, &api("no")), Failure::Permanent(_)),
                "{status}"
            );
        }
        // A list of messages is joined.
        let joined = classify(400, r#"{"error":{"message":["a","b"],"code":400}}"#);
        assert!(
            matches!(&joined, Failure::Permanent(t) if t.ends_with("message: a, b")),
            "{joined:?}"
        );
        // Not an OpenAI error reply: tried again, whatever the status.
        for (status, body) in [
            (400, "plain text"),
            (404, "[1]"),
            (500, "{}"),
            (503, r#"{"error":null}"#),
        ] {
            let failure = classify(status, body);
            assert!(
                matches!(&failure, Failure::Transient(t) if t.ends_with(&format!(", body: {body}"))),
                "{status} {body}: {failure:?}"
            );
        }
        // An error object go-openai cannot read: not tried again, even for a 429.
        for body in [
            r#"{"error":"busy"}"#,
            r#"{"error":{"code":429}}"#,
            r#"{"error":{"message":"m","type":5}}"#,
        ] {
            assert!(
                matches!(classify(429, body), Failure::Permanent(_)),
                "{body}"
            );
        }
    }

    #[test]
    fn replies_are_read_as_go_reads_them() {
        assert!(reply_object(br#"{"a": 1} trailing"#)
            .unwrap()
            .contains_key("a"));
        assert!(reply_object(b"null").unwrap().is_empty());
        assert_eq!(reply_object(b"  ").unwrap_err(), "the reply is empty");
        assert!(reply_object(b"nope")
            .unwrap_err()
            .starts_with("the reply is not JSON"));
        assert!(reply_object(b"[1]")
            .unwrap_err()
            .starts_with("the reply is not a JSON object"));
    }
}
