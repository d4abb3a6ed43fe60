//! `webhook.http`: send an HTTP request for each record and keep the reply in the record.
//!
//! The URL and the body are Go templates rendered with the record. The reply's body goes
//! into `response.body` (by default `.Payload.After`) and, if `response.status` names a
//! field, the status code goes there as text. A transport error or a status of 500 and
//! above is an error: the request is tried again up to `backoffRetry.count` times, waiting
//! `backoffRetry.min` times `backoffRetry.factor` to the power of the attempt (at most
//! `backoffRetry.max`); a record whose last attempt fails is failed, the others go on.
//! As with Conduit's Go client, redirects are followed (up to 10), user information in the
//! URL becomes basic authentication, and a templated URL's query is re-encoded Go's way.
//!
//! `http://` and `https://` URLs are supported (TLS by rustls, with the Mozilla CA roots
//! built in). Each attempt must finish within [`REQUEST_TIMEOUT`] (Conduit has no limit). Processing needs a Tokio
//! runtime with I/O and timers, as the engine's.

use crate::http::{chain, client, Backoff, HttpClient};
use crate::params::{invalid, reference, setting, setting_or, with_schema_parameters};
use crate::per_record::{AsyncPerRecord, AsyncRecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use culvert_template::Template;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one attempt (the request, its redirects and reading the reply) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many redirects an attempt follows (Go's client's limit).
const MAX_REDIRECTS: usize = 10;

/// `webhook.http`: an HTTP request per record, the reply stored in the record.
pub struct WebhookHttp {
    spec: ProcessorSpecification,
}

/// The parameters (name, type, default, description); validations are added in `new`.
#[rustfmt::skip]
const PARAMETERS: [(&str, ParameterType, &str, &str); 11] = [
    ("backoffRetry.count", ParameterType::Float, "0", "How many times a failed request of a record is tried again (0: never)."),
    ("backoffRetry.factor", ParameterType::Float, "2", "By how much the wait grows from one retry to the next."),
    ("backoffRetry.max", ParameterType::Duration, "5s", "The longest wait before a retry."),
    ("backoffRetry.min", ParameterType::Duration, "100ms", "The wait before the first retry."),
    ("headers.*", ParameterType::String, "", "A header sent with each request: `headers.NAME` set to its value (e.g. `headers.Authorization: \"Bearer token\"`)."),
    ("request.body", ParameterType::String, "", "A Go template rendered with the record that gives the request's body; empty by default. `{{ toJson . }}` sends the whole record as JSON."),
    ("request.contentType", ParameterType::String, "", "Deprecated, set `headers.Content-Type` instead: the request's content type."),
    ("request.method", ParameterType::String, "GET", "The request's HTTP method."),
    ("request.url", ParameterType::String, "", "Where to send the request: a Go template rendered with the record (with the sprig functions), e.g. `http://host/items/{{ .Payload.After.id }}`. Only http:// for now."),
    ("response.body", ParameterType::String, ".Payload.After", "The field (a reference such as `.Payload.After.reply`) that receives the response's body."),
    ("response.status", ParameterType::String, "", "The field that receives the response's status code, as text; not stored when empty."),
];

impl WebhookHttp {
    /// The plugin.
    pub fn new() -> Self {
        let own = PARAMETERS.iter().map(|&(name, ty, default, description)| {
            let parameter = Parameter::new(name, ty, description).default_value(default);
            match name {
                "backoffRetry.count" => parameter.validate(Validation::GreaterThan(-1.0)),
                "backoffRetry.factor" => parameter.validate(Validation::GreaterThan(0.0)),
                "request.url" => parameter.validate(Validation::Required),
                // Headers carry credentials (`Authorization`, `Cookie`, API keys): every
                // header value is sealed at rest and never shown.
                "headers.*" => parameter.sensitive(),
                _ => parameter,
            }
        });
        Self {
            spec: ProcessorSpecification {
                name: "webhook.http",
                summary: "Send an HTTP request for each record and keep the response.",
                description: "Sends an HTTP request built from each record (URL and body are \
                              templates) and stores the response's body and, optionally, its \
                              status code in the record. Transport errors and statuses of 500 \
                              and above are retried with a growing wait, as configured; a \
                              record whose last attempt fails is failed. Plain http:// only.",
                version: VERSION,
                author: AUTHOR,
                parameters: with_schema_parameters(own.collect(), "true"),
                standalone: false,
            },
        }
    }
}

impl Default for WebhookHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for WebhookHttp {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let url_text = setting(settings, "request.url");
        if url_text.is_empty() {
            return Err(invalid("request.url", "required parameter is not provided"));
        }
        let backoff = Backoff::from_settings(settings)?;
        let headers = headers(settings)?;
        let body_ref = setting_or(settings, "response.body", ".Payload.After");
        let status_ref = setting(settings, "response.status");
        if body_ref == status_ref {
            return Err(invalid(
                "response.status",
                "invalid configuration: response.body and response.status set to same field",
            ));
        }
        let body = match setting(settings, "request.body") {
            "" => None,
            text => Some(Template::parse(text).map_err(|e| {
                invalid("request.body", format!("failed parsing request.body: {e}"))
            })?),
        };
        let response_body = reference("response.body", body_ref)?;
        let response_status = match status_ref {
            "" => None,
            text => Some(reference("response.status", text)?),
        };
        let url = url_setting(url_text).map_err(|e| invalid("request.url", e))?;
        let method_text = setting_or(settings, "request.method", "GET");
        let method = Method::from_bytes(method_text.as_bytes()).map_err(|_| {
            invalid(
                "request.method",
                format!("configuration check failed: invalid method {method_text:?}"),
            )
        })?;
        Ok(Box::new(AsyncPerRecord(HttpProcessor {
            client: client(),
            method,
            url,
            headers,
            body,
            response_body,
            response_status,
            backoff,
        })))
    }
}

/// The `request.url` setting: parsed now when it is not a template; a template's scheme is
/// checked now when it is written out before the first action.
fn url_setting(url: &str) -> Result<Url, String> {
    let check = |e| format!("configuration check failed: {e}");
    let Some(action) = url.find("{{") else {
        return parse_target(url, false).map(Url::Fixed).map_err(check);
    };
    match split_scheme(&url[..action]) {
        Err(problem) => {
            let url = crate::http::without_password(url);
            return Err(check(format!("parse {url:?}: {problem}")));
        }
        Ok((scheme, _)) if !scheme.is_empty() => check_scheme(scheme).map_err(check)?,
        Ok(_) => {}
    }
    Template::parse(url)
        .map(Url::Templated)
        .map_err(|e| format!("error while parsing the URL template: {e}"))
}

/// The `headers.*` settings, with the content type Conduit derives: `request.contentType`
/// (deprecated) if given, else `application/json` unless a header sets it.
fn headers(settings: &Settings) -> Result<HeaderMap, PluginError> {
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static("culvert"));
    for (key, value) in settings {
        let Some(name) = key.strip_prefix("headers.") else {
            continue;
        };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(key, format!("{name:?} is not a valid header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(key, "the value is not a valid header value"))?;
        headers.insert(name, value);
    }
    let content_type = match setting(settings, "request.contentType") {
        "" if headers.contains_key(CONTENT_TYPE) => return Ok(headers),
        "" => "application/json",
        _ if headers.contains_key(CONTENT_TYPE) => {
            return Err(invalid("request.contentType", "configuration error, cannot provide both \"request.contentType\" and \"headers.Content-Type\", use \"headers.Content-Type\" only"));
        }
        text => text,
    };
    let value = HeaderValue::from_str(content_type)
        .map_err(|_| invalid("request.contentType", "not a valid header value"))?;
    headers.insert(CONTENT_TYPE, value);
    Ok(headers)
}

/// The request URL: parsed once, or rendered per record.
enum Url {
    Fixed(Target),
    Templated(Template),
}

/// A parsed `http://` or `https://` URL, ready to request.
#[derive(Clone, Debug)]
struct Target {
    /// Absolute, without user information or fragment.
    uri: Uri,
    /// Basic authentication from the URL's user information.
    basic_auth: Option<HeaderValue>,
}

/// A configured `webhook.http`.
struct HttpProcessor {
    client: HttpClient,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Template>,
    response_body: Reference,
    response_status: Option<Reference>,
    backoff: Backoff,
}

#[async_trait::async_trait]
impl AsyncRecordProcessor for HttpProcessor {
    async fn process_record(&self, record: &Record) -> Result<Record, String> {
        Box::pin(self.process_with_retries(record)).await
    }
}

impl HttpProcessor {
    /// The record with the reply stored, after as many attempts as allowed.
    async fn process_with_retries(&self, record: &Record) -> Result<Record, String> {
        self.backoff.run(|| self.attempt(record), |_| true).await
    }

    /// One attempt: build the request, send it, store the reply in a copy of the record.
    async fn attempt(&self, record: &Record) -> Result<Record, String> {
        let body = match &self.body {
            None => String::new(),
            Some(template) => template.render(record).map_err(|e| {
                format!("cannot create HTTP request: failed getting request body: error while evaluating request body template: {e}")
            })?,
        };
        let target = match &self.url {
            Url::Fixed(target) => target.clone(),
            Url::Templated(template) => {
                let url = template.render(record).map_err(|e| {
                    format!("cannot create HTTP request: error while evaluating URL template: {e}")
                })?;
                parse_target(&url, true)
                    .map_err(|e| format!("cannot create HTTP request: error parsing URL: {e}"))?
            }
        };
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.send(target, Bytes::from(body)));
        let (status, reply) = sent.await.map_err(|_| {
            format!("error executing HTTP request: no complete response within {REQUEST_TIMEOUT:?}")
        })??;
        let (code, text) = (status.as_u16(), String::from_utf8_lossy(&reply));
        if code >= 500 {
            return Err(format!("error status code {code} (body: {text:?})"));
        }
        let mut out = record.clone();
        let stored = self
            .response_body
            .set_value(&mut out, FieldValue::Bytes(reply.to_vec()));
        stored.map_err(|e| format!("failed setting response body: {e}"))?;
        if let Some(field) = &self.response_status {
            let stored = field.set_value(&mut out, FieldValue::Text(code.to_string()));
            stored.map_err(|e| format!("failed setting response status: {e}"))?;
        }
        Ok(out)
    }

    /// Send the request, following redirects as Go's client does, and read the reply.
    async fn send(&self, mut target: Target, body: Bytes) -> Result<(StatusCode, Bytes), String> {
        let (mut method, mut body) = (self.method.clone(), body);
        let first = target.uri.clone();
        for hop in 0..=MAX_REDIRECTS {
            let mut headers = self.headers.clone();
            if !same_site(&first, &target.uri) {
                // Credentials only go to the first host and its subdomains.
                headers.remove(AUTHORIZATION);
                headers.remove(COOKIE);
            }
            if let Some(auth) = &target.basic_auth {
                headers.entry(AUTHORIZATION).or_insert_with(|| auth.clone());
            }
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = target.uri.clone();
            *request.headers_mut() = headers;
            let shown = format!("{} {:?}", go_method(&method), target.uri.to_string());
            let failed =
                |e: &dyn std::fmt::Display| format!("error executing HTTP request: {shown}: {e}");
            let response = self.client.request(request).await;
            let response = response.map_err(|e| failed(&chain(&e)))?;
            let status = response.status();
            let location = match status.as_u16() {
                301 | 302 | 303 | 307 | 308 => response.headers().get(LOCATION).cloned(),
                _ => None,
            };
            let Some(location) = location else {
                let reply = response.into_body().collect().await;
                let reply =
                    reply.map_err(|e| format!("error reading response body: {}", chain(&e)))?;
                return Ok((status, reply.to_bytes()));
            };
            if hop == MAX_REDIRECTS {
                return Err(failed(&format!("stopped after {MAX_REDIRECTS} redirects")));
            }
            target = resolve(&target, &String::from_utf8_lossy(location.as_bytes()))
                .map_err(|e| failed(&e))?;
            if matches!(status.as_u16(), 301..=303) {
                // The body is not sent again; a request other than GET or HEAD becomes GET.
                body = Bytes::new();
                if method != Method::GET && method != Method::HEAD {
                    method = Method::GET;
                }
            }
        }
        unreachable!("the loop returns by its last hop")
    }
}

/// Go's name of a method in client errors (`Get`, `Post`).
fn go_method(method: &Method) -> String {
    let lower = method.as_str().to_ascii_lowercase();
    lower.get(..1).unwrap_or("").to_ascii_uppercase() + lower.get(1..).unwrap_or("")
}

/// Whether credentials meant for `first`'s host may go to `next`'s: the same host or a
/// subdomain of it.
fn same_site(first: &Uri, next: &Uri) -> bool {
    let host = |uri: &Uri| uri.host().unwrap_or("").to_ascii_lowercase();
    let (first, next) = (host(first), host(next));
    next == first || next.ends_with(&format!(".{first}"))
}

/// Split off a URL's scheme as Go's URL parser does: `("", url)` when it has none.
fn split_scheme(url: &str) -> Result<(&str, &str), &'static str> {
    for (i, c) in url.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme"),
            ':' => return Ok((&url[..i], &url[i + 1..])),
            _ => return Ok(("", url)),
        }
    }
    Ok(("", url))
}

/// Only `http` and `https` can be requested.
fn check_scheme(scheme: &str) -> Result<(), String> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(()),
        other => Err(format!("unsupported protocol scheme {other:?}")),
    }
}

/// Parse an `http://` or `https://` URL as Go's client would send it: the path escaped where needed,
/// the fragment dropped, and, for a URL rendered from a template, the query re-encoded.
fn parse_target(url: &str, reencode_query: bool) -> Result<Target, String> {
    let shown = crate::http::without_password(url);
    let fail = |problem: &str| format!("parse {shown:?}: {problem}");
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(fail("net/url: invalid control character in URL"));
    }
    let without_fragment = url.split_once('#').map_or(url, |(u, _)| u);
    let (scheme, rest) = split_scheme(without_fragment).map_err(fail)?;
    check_scheme(scheme)?;
    let (rest, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let Some(rest) = rest.strip_prefix("//") else {
        return Err("http: no Host in request URL".to_owned());
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (userinfo, host) = authority
        .rsplit_once('@')
        .map_or((None, authority), |(u, h)| (Some(u), h));
    if host.is_empty() {
        return Err("http: no Host in request URL".to_owned());
    }
    let path = escaped_path(path).map_err(|e| fail(&e))?;
    let query = match query {
        Some(query) if reencode_query => encode_query(query).map_err(|e| fail(&e))?,
        Some(query) => query.to_owned(),
        None => String::new(),
    };
    let path = if path.is_empty() { "/" } else { &path };
    let query = if query.is_empty() {
        query
    } else {
        format!("?{query}")
    };
    let scheme = scheme.to_ascii_lowercase();
    let text = format!("{scheme}://{host}{path}{query}");
    let uri = text.parse::<Uri>().map_err(|e| fail(&e.to_string()))?;
    let basic_auth = match userinfo {
        None => None,
        Some(userinfo) => {
            use base64::Engine as _;
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let mut credentials = unescape(user, false).map_err(|e| fail(&e))?;
            credentials.push(b':');
            credentials.extend(unescape(password, false).map_err(|e| fail(&e))?);
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            Some(HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a header"))
        }
    };
    Ok(Target { uri, basic_auth })
}

/// The URL a redirect's `Location` points to, relative to the request's (`.` and `..`
/// segments are not resolved).
fn resolve(base: &Target, location: &str) -> Result<Target, String> {
    let authority = base.uri.authority().map_or("", |a| a.as_str());
    let scheme = base.uri.scheme_str().unwrap_or("http");
    let absolute = match split_scheme(location) {
        Ok((scheme, _)) if !scheme.is_empty() => return parse_target(location, false),
        _ if location.starts_with("//") => {
            return parse_target(&format!("{scheme}:{location}"), false)
        }
        _ if location.starts_with('/') => format!("{scheme}://{authority}{location}"),
        _ => {
            let path = base.uri.path();
            format!(
                "{scheme}://{authority}{}{location}",
                &path[..path.rfind('/').map_or(0, |i| i + 1)]
            )
        }
    };
    let mut target = parse_target(&absolute, false)?;
    target.basic_auth.clone_from(&base.basic_auth);
    Ok(target)
}

/// Whether Go escapes the byte in a path (`query` false) or a query component (true).
fn should_escape(b: u8, query: bool) -> bool {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@' => query,
        _ => true,
    }
}

/// Percent-decode (`+` is a space in a query component); a bad escape is Go's error.
fn unescape(text: &str, query: bool) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        let (byte, width) = match bytes[i] {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => ((high * 16 + low) as u8, 3),
                _ => {
                    let bad = String::from_utf8_lossy(&bytes[i..(i + 3).min(bytes.len())]);
                    return Err(format!("invalid URL escape {bad:?}"));
                }
            },
            b'+' if query => (b' ', 1),
            b => (b, 1),
        };
        out.push(byte);
        i += width;
    }
    Ok(out)
}

/// Percent-encode what Go escapes (a space is `+` in a query component).
fn escape(bytes: &[u8], query: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b' ' && query {
            out.push('+');
        } else if should_escape(b, query) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// A path as Go sends it: kept when it is validly escaped, else decoded and re-escaped.
fn escaped_path(path: &str) -> Result<String, String> {
    let decoded = unescape(path, false)?;
    let valid = path
        .bytes()
        .all(|b| b"!$&'()*+,;=:@[]%".contains(&b) || !should_escape(b, false));
    Ok(if valid {
        path.to_owned()
    } else {
        escape(&decoded, false)
    })
}

/// A query parsed and encoded again as Go's `url.ParseQuery` and `Values.Encode` do.
fn encode_query(query: &str) -> Result<String, String> {
    let mut values: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    let mut error = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if pair.contains(';') {
            error.get_or_insert_with(|| "invalid semicolon separator in query".to_owned());
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (unescape(key, true), unescape(value, true)) {
            (Ok(key), Ok(value)) => values.entry(key).or_default().push(value),
            (Err(e), _) | (_, Err(e)) => {
                error.get_or_insert(e);
            }
        }
    }
    if let Some(error) = error {
        return Err(error);
    }
    let mut parts = Vec::new();
    for (key, list) in &values {
        for value in list {
            parts.push(format!("{}={}", escape(key, true), escape(value, true)));
        }
    }
    Ok(parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http_server::{ok, Server};
    use crate::testing::{assert_parameters, assert_refused, configure, meta, payload, raw};
    use crate::testing::{failure, settings, structured};
    use culvert_domain::{Change, Data, Operation, Position};
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    fn record(operation: Operation, before: Option<Data>, after: Option<Data>) -> Record {
        let payload = Change { before, after };
        Record {
            operation,
            payload,
            ..Record::default()
        }
    }

    #[rustfmt::skip]
    #[test]
    fn parameters_are_conduits() {
        let own = [
            ("backoffRetry.count", "0"), ("backoffRetry.factor", "2"), ("backoffRetry.max", "5s"),
            ("backoffRetry.min", "100ms"), ("headers.*", ""), ("request.body", ""),
            ("request.contentType", ""), ("request.method", "GET"), ("request.url", ""),
            ("response.body", ".Payload.After"), ("response.status", ""),
        ];
        assert_parameters(&WebhookHttp::new(), &own, "true");
    }

    #[rustfmt::skip]
    #[test]
    fn settings_are_checked() {
        let plugin = WebhookHttp::new();
        let url = ("request.url", "http://example.com");
        let no_url = "setting \"request.url\": required parameter is not provided";
        assert_refused(&plugin, [
            (vec![], no_url),
            (vec![("request.url", "")], no_url),
            (vec![("request.url", ":not/a/valid/url")], "configuration check failed: parse \":not/a/valid/url\": missing protocol scheme"),
            (vec![url, ("request.method", ":foo")], "configuration check failed: invalid method \":foo\""),
            (vec![url, ("backoffRetry.count", "not-a-number")], "setting \"backoffRetry.count\": \"not-a-number\" is not a number"),
            (vec![url, ("backoffRetry.count", "-1")], "must be greater than -1"),
            (vec![url, ("backoffRetry.min", "not-a-duration")], "setting \"backoffRetry.min\": \"not-a-duration\" is not a duration"),
            (vec![url, ("backoffRetry.max", "not-a-duration")], "setting \"backoffRetry.max\": \"not-a-duration\" is not a duration"),
            (vec![url, ("backoffRetry.factor", "not-a-number")], "setting \"backoffRetry.factor\": \"not-a-number\" is not a number"),
            (vec![url, ("backoffRetry.factor", "0")], "must be greater than 0"),
            (vec![("request.url", "http://example.com/{{.Payload.After.my-key}}")], "error while parsing the URL template: template: :1: bad character"),
            (vec![url, ("request.contentType", "application/json"), ("headers.content-type", "application/json")], "configuration error, cannot provide both \"request.contentType\" and \"headers.Content-Type\", use \"headers.Content-Type\" only"),
            (vec![url, ("response.body", ".Payload.After"), ("response.status", ".Payload.After")], "invalid configuration: response.body and response.status set to same field"),
            (vec![url, ("response.body", ".Foo")], "setting \"response.body\""),
            (vec![url, ("headers.bad name", "x")], "\"bad name\" is not a valid header name"),
            (vec![("request.url", "example.com")], "unsupported protocol scheme \"\""),
            (vec![("request.url", "ftp://example.com")], "unsupported protocol scheme \"ftp\""),
        ]);
        for pairs in [
            vec![url],
            vec![("request.url", "https://example.com")],
            vec![("request.url", "HTTPS://example.com/{{ .Metadata.id }}")],
            vec![("request.url", "http://example.com/{{.Payload.After}}")],
            vec![("request.url", "{{ .Metadata.url }}")],
            vec![url, ("request.method", "GET")],
            vec![url, ("request.contentType", "application/json"), ("backoffRetry.count", "1"), ("backoffRetry.min", "10ms"), ("backoffRetry.max", "1s"), ("backoffRetry.factor", "1.3")],
            vec![url, ("headers.content-type", "application/json")],
            vec![url, ("response.body", ".Payload.After"), ("response.status", ".Metadata[\"response.status\"]")],
        ] {
            configure(&plugin, &pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        }
        // Given without validation, the plugin still names the wrong setting.
        let error = plugin.configure(&settings(&[url, ("backoffRetry.count", "x")])).err().unwrap();
        assert!(error.to_string().contains("\"backoffRetry.count\""), "{error}");
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_examples() {
        // Conduit's example server greets the name in the path, or the body.
        let server = Server::start(|seen, _| match seen.target.as_str() {
            "/" => ok(&format!("hello, {}", seen.body)),
            path => ok(&format!("hello, {}!", &path[1..])),
        });
        let example = |operation, after, metadata| Record {
            position: Position(b"pos-1".to_vec()), metadata, ..record(operation, None, after)
        };
        let cases = [
            (&[("request.url", "URL"), ("request.body", r#"{{ printf "%s" .Payload.After }}"#), ("response.status", r#".Metadata["http_status"]"#), ("headers.content-type", "application/json")][..],
             example(Operation::Update, raw("world"), meta(&[])),
             example(Operation::Update, raw("hello, world"), meta(&[("http_status", "200")]))),
            (&[("request.url", "URL/{{.Payload.After.name}}"), ("response.body", ".Payload.After.response")][..],
             example(Operation::Create, structured(json!({"name": "foo"})), meta(&[])),
             example(Operation::Create, structured(json!({"name": "foo", "response": "aGVsbG8sIGZvbyE="})), meta(&[]))),
        ];
        for (pairs, input, want) in cases {
            assert_eq!(server.process(&WebhookHttp::new(), pairs, input), (want, Outcome::Keep), "{pairs:?}");
        }
        let seen = server.seen();
        assert_eq!((seen[0].method.as_str(), seen[0].body.as_str()), ("GET", "world"));
        assert_eq!((seen[1].target.as_str(), seen[1].body.as_str()), ("/foo", ""));
    }

    /// The JSON `{{ toJson . }}` gives for a record without position or metadata.
    fn record_json(operation: &str, before: &str, after: &str) -> String {
        format!(
            r#"{{"position":"","operation":"{operation}","metadata":{{}},"key":null,"payload":{{"before":{before},"after":{after}}}}}"#
        )
    }

    #[rustfmt::skip]
    #[test]
    fn conduits_success_cases() {
        let reply = "Zm9vLWJhci9yZXNwb25zZQ=="; // foo-bar/response in structured data
        let (to_json, post, at) = (("request.body", "{{ toJson . }}"), ("request.method", "POST"), |field| ("response.body", field));
        let before = || structured(json!({"before-key": "before-data"}));
        let cases = [
            (vec![post, to_json], 200, record(Operation::Create, None, structured(json!({"bar": 123, "baz": null}))),
             record_json("create", "null", r#"{"bar":123,"baz":null}"#), record(Operation::Create, None, raw("foo-bar/response"))),
            (vec![("request.method", "GET"), to_json], 200, record(Operation::Update, None, raw("random data")),
             record_json("update", "null", r#""cmFuZG9tIGRhdGE=""#), record(Operation::Update, None, raw("foo-bar/response"))),
            (vec![at(".Payload.After.body"), ("response.status", ".Payload.After.status"), post, to_json], 404,
             record(Operation::Snapshot, None, structured(json!({"a key": "random data"}))),
             record_json("snapshot", "null", r#"{"a key":"random data"}"#),
             record(Operation::Snapshot, None, structured(json!({"a key": "random data", "body": reply, "status": "404"})))),
            (vec![to_json, at(".Payload.After.httpResponse"), post], 200,
             record(Operation::Delete, before(), structured(json!({"after-key": "after-data"}))),
             record_json("delete", r#"{"before-key":"before-data"}"#, r#"{"after-key":"after-data"}"#),
             record(Operation::Delete, before(), structured(json!({"after-key": "after-data", "httpResponse": reply})))),
            (vec![("request.body", r#"{{ printf "%s" .Payload.Before }}"#), at(".Payload.After.httpResponse"), post], 200,
             record(Operation::Create, raw("uncooked data"), structured(json!({"after-key": "after-data"}))), "uncooked data".into(),
             record(Operation::Create, raw("uncooked data"), structured(json!({"after-key": "after-data", "httpResponse": reply})))),
            (vec![("request.body", "foo"), at(".Payload.After.httpResponse"), post], 200,
             record(Operation::Create, None, structured(json!({"unused": "data"}))), "foo".into(),
             record(Operation::Create, None, structured(json!({"unused": "data", "httpResponse": reply})))),
        ];
        for (mut pairs, status, input, want_body, want) in cases {
            let server = Server::start(move |_, _| (status, vec![], "foo-bar/response".to_owned()));
            pairs.push(("request.url", "URL"));
            assert_eq!(server.process(&WebhookHttp::new(), &pairs, input), (want, Outcome::Keep), "{pairs:?}");
            let method = if pairs.contains(&post) { "POST" } else { "GET" };
            let seen = &server.seen()[0];
            assert_eq!((seen.method.as_str(), seen.body.as_str()), (method, want_body.as_str()));
        }
    }

    #[rustfmt::skip]
    #[test]
    fn url_templates_are_rendered_and_escaped() {
        let server = Server::start(|_, _| ok(""));
        let cases = [
            ("URL/{{.Payload.After.foo}}", payload(None, structured(json!({"foo": 123}))), "/123"),
            (r#"URL/{{index .Payload.After "foo-bar"}}"#, payload(None, structured(json!({"foo-bar": "baz"}))), "/baz"),
            ("URL/{{.Payload.Before.url}}", payload(structured(json!({"url": "what is conduit?id=my id"})), None), "/what%20is%20conduit?id=my+id"),
            ("URL/{{.Payload.After.q}}", payload(None, structured(json!({"q": "p?b=2&a=x%2Fy&a=0#frag"}))), "/p?a=x%2Fy&a=0&b=2"),
            // Written out, the query is sent as it is.
            ("URL/a b?z=1&a=x+y", Record::default(), "/a%20b?z=1&a=x+y"),
        ];
        for (i, (url, input, want)) in cases.into_iter().enumerate() {
            assert_eq!(server.process(&WebhookHttp::new(), &[("request.url", url)], input).1, Outcome::Keep, "{url}");
            assert_eq!(server.seen()[i].target, want, "{url}");
        }
        let input = Record { metadata: meta(&[("p", "x?a=%zz")]), ..Record::default() };
        let error = failure(server.process(&WebhookHttp::new(), &[("request.url", "URL/{{.Metadata.p}}")], input).1);
        assert!(error.contains("error parsing URL: parse \"") && error.ends_with("invalid URL escape \"%zz\""), "{error}");
    }

    #[rustfmt::skip]
    #[test]
    fn retries_then_fails_the_record() {
        let backoff = [("backoffRetry.min", "5ms"), ("backoffRetry.max", "10ms"), ("backoffRetry.factor", "1.2")];
        // Four failures, then success.
        let server = Server::start(|_, n| if n < 5 { (500, vec![], String::new()) } else { ok("foo-bar/response") });
        let pairs = [&backoff[..], &[("request.url", "URL"), ("backoffRetry.count", "4"), ("request.body", "{{ toJson . }}")]].concat();
        let (got, outcome) = server.process(&WebhookHttp::new(), &pairs, payload(None, raw("random data")));
        assert_eq!((got, outcome), (payload(None, raw("foo-bar/response")), Outcome::Keep));
        let sent = record_json("create", "null", r#""cmFuZG9tIGRhdGE=""#);
        let seen = server.seen();
        assert!(seen.len() == 5 && seen.iter().all(|s| s.method == "GET" && s.body == sent), "{seen:?}");
        // Failures only: 1 request and 5 retries, then the record fails, unchanged.
        let server = Server::start(|_, _| (503, vec![], "down".to_owned()));
        let pairs = [&backoff[..], &[("request.url", "URL"), ("backoffRetry.count", "5")]].concat();
        let input = payload(None, raw("something"));
        let want = Outcome::Fail("error status code 503 (body: \"down\")".to_owned());
        assert_eq!(server.process(&WebhookHttp::new(), &pairs, input.clone()), (input, want));
        assert_eq!(server.seen().len(), 6);
        // Without retries, one request each; the other records of the batch go on.
        let server = Server::start(|seen, _| if seen.target == "/bad" { (500, vec![], String::new()) } else { ok("ok") });
        let url = format!("{}/{{{{.Payload.After.p}}}}", server.url);
        let mut processor = configure(&WebhookHttp::new(), &[("request.url", &url), ("response.body", ".Payload.After.reply")]).unwrap();
        let mut records = [payload(None, structured(json!({"p": "bad"}))), payload(None, structured(json!({"p": "good"})))];
        let outcomes = server.run(processor.as_mut(), &mut records);
        assert_eq!((failure(outcomes[0].clone()), &outcomes[1]), ("error status code 500 (body: \"\")".to_owned(), &Outcome::Keep));
        assert_eq!(records[1], payload(None, structured(json!({"p": "good", "reply": "b2s="}))));
        assert_eq!(server.seen().len(), 2);
    }

    #[rustfmt::skip]
    #[test]
    fn backoff_grows_by_the_factor_up_to_the_maximum() {
        let ms = Duration::from_millis;
        let backoff = Backoff { count: 9.0, factor: 2.0, min: ms(100), max: ms(500) };
        let waits: Vec<_> = (0..5).map(|n| backoff.delay(n as f64)).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        assert_eq!(Backoff { min: ms(600), ..backoff }.delay(0.0), ms(500), "a minimum above the maximum");
    }

    #[rustfmt::skip]
    #[test]
    fn sends_method_headers_and_content_type_and_stores_the_status() {
        let server = Server::start(|_, _| (204, vec![], String::new()));
        let cases = [
            (vec![("request.method", "POST"), ("headers.Authorization", "Bearer key"), ("headers.X-Trace", "t1"), ("request.body", "hi")], "POST", "application/json"),
            (vec![("request.contentType", "text/plain")], "GET", "text/plain"),
            (vec![("request.method", "PUT"), ("headers.content-type", "application/xml")], "PUT", "application/xml"),
        ];
        for (i, (mut pairs, method, content_type)) in cases.into_iter().enumerate() {
            pairs.extend([("request.url", "URL"), ("response.status", ".Metadata.status")]);
            // An empty reply is empty raw data.
            let want = Record { metadata: meta(&[("status", "204")]), ..payload(None, raw("")) };
            assert_eq!(server.process(&WebhookHttp::new(), &pairs, payload(None, raw("before"))), (want, Outcome::Keep));
            let seen = &server.seen()[i];
            assert_eq!((seen.method.as_str(), seen.headers["content-type"].as_str()), (method, content_type));
        }
        let first = &server.seen()[0];
        assert_eq!((first.headers["authorization"].as_str(), first.headers["x-trace"].as_str(), first.body.as_str()), ("Bearer key", "t1", "hi"));
        // User information in the URL is sent as basic authentication.
        let url = server.url.replace("http://", "http://user:p%40ss@");
        assert_eq!(server.process(&WebhookHttp::new(), &[("request.url", &url)], Record::default()).1, Outcome::Keep);
        assert_eq!(server.seen()[3].headers["authorization"], "Basic dXNlcjpwQHNz");
    }

    #[rustfmt::skip]
    #[test]
    fn follows_redirects() {
        let server = Server::start(|seen, _| match seen.target.as_str() {
            "/start" => (302, vec![("Location", "/final")], String::new()),
            "/dir/perm" => (308, vec![("Location", "next")], String::new()),
            "/loop" => (301, vec![("Location", "/loop")], String::new()),
            path => ok(&format!("at {path}")),
        });
        let post = |path: &str| server.process(&WebhookHttp::new(), &[("request.url", &format!("URL{path}")), ("request.method", "POST"), ("request.body", "x")], Record::default());
        assert_eq!(post("/start"), (payload(None, raw("at /final")), Outcome::Keep));
        assert_eq!(post("/dir/perm"), (payload(None, raw("at /dir/next")), Outcome::Keep));
        let seen: Vec<_> = server.seen().into_iter().map(|s| format!("{} {} {}", s.method, s.target, s.body)).collect();
        assert_eq!(seen, ["POST /start x", "GET /final ", "POST /dir/perm x", "POST /dir/next x"]);
        let error = failure(post("/loop").1);
        assert!(error.ends_with("stopped after 10 redirects"), "{error}");
        assert_eq!(server.seen().len(), 4 + 11);
    }

    #[rustfmt::skip]
    #[test]
    fn reports_what_cannot_be_sent() {
        let server = Server::start(|_, _| ok(""));
        // A port nothing listens on (bound, then closed).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = failure(server.process(&WebhookHttp::new(), &[("request.url", &format!("http://{closed}/x"))], Record::default()).1);
        assert!(error.starts_with(&format!("error executing HTTP request: Get \"http://{closed}/x\": ")), "{error}");
        // A scheme that comes from the record is checked when sending.
        let input = Record { metadata: meta(&[("url", "ftp://127.0.0.1:1/")]), ..Record::default() };
        let error = failure(server.process(&WebhookHttp::new(), &[("request.url", "{{ .Metadata.url }}")], input).1);
        assert!(error.contains("unsupported protocol scheme \"ftp\""), "{error}");
        // https is spoken: a TLS handshake with a plain-HTTP server fails, and says so.
        let plain = server.url.replace("http://", "https://");
        let error = failure(server.process(&WebhookHttp::new(), &[("request.url", &plain)], Record::default()).1);
        assert!(error.starts_with(&format!("error executing HTTP request: Get \"{plain}/\": ")), "{error}");
        assert!(error.contains("tls handshake"), "{error}");
        // The reply cannot go into a metadata value (Conduit's resolver refuses bytes there).
        let error = failure(server.process(&WebhookHttp::new(), &[("request.url", "URL"), ("response.body", ".Metadata.reply")], Record::default()).1);
        assert!(error.starts_with("failed setting response body: "), "{error}");
    }
}
