//! What the processors that call web services share (`webhook.http`, the AI processors):
//! an HTTP/1.1 client for `http://` and `https://` (rustls with the ring provider and the
//! Mozilla CA roots built in, so no system certificate store is needed), a JSON POST with
//! a time limit, Conduit's `backoffRetry.*` retry settings, and the base URL of a hosted
//! service (overridable by an environment variable, for a proxy, a compatible server, or a
//! test server on loopback).

use crate::params::{invalid, setting_or};
use culvert_plugins::spec::parse_duration;
use culvert_plugins::{PluginError, Settings};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// An HTTP client for `http://` and `https://` URLs.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A new client (connections are pooled per client).
pub(crate) fn client() -> HttpClient {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .expect("the ring provider supports the default protocol versions")
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The chain of an error's sources, for messages.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

/// `url` as messages show it: the password of its user information (`user:password@`)
/// as `***`, so an error or a log line never carries it (Go's `url.Redacted` does the same).
pub fn without_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// POST `body` as JSON to `url` with `headers`, and read the reply; the whole exchange
/// must finish within `limit`.
pub(crate) async fn post_json(
    client: &HttpClient,
    url: &Uri,
    mut headers: HeaderMap,
    body: Vec<u8>,
    limit: Duration,
) -> Result<(StatusCode, Bytes), String> {
    headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.clone();
    *request.headers_mut() = headers;
    let shown = without_password(&url.to_string());
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("request to {shown} failed: {}", chain(&e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the reply from {shown} failed: {}", chain(&e)))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("request to {shown}: no complete reply within {limit:?}"))?
}

/// The base URL of a hosted service: `variable` from the environment if set, else
/// `default`; without a trailing slash.
pub(crate) fn base_url(variable: &str, default: &str) -> String {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// `base` joined with `path`, as a request URI.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<Uri, String> {
    let text = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let shown = without_password(&text);
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("{shown:?} is not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("{shown:?} is not an http:// or https:// URL")),
    }
}

/// Conduit's `backoffRetry.*` settings, and the waits they give (those of the Go backoff
/// library Conduit uses, without jitter).
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    /// How many retries after the first attempt.
    pub(crate) count: f64,
    /// The growth of the wait per attempt.
    pub(crate) factor: f64,
    /// The first wait.
    pub(crate) min: Duration,
    /// The longest wait.
    pub(crate) max: Duration,
}

impl Backoff {
    /// From `backoffRetry.count`, `.factor`, `.min` and `.max`, with Conduit's defaults (no
    /// retry, 2, 100ms, 5s); each wrong one is an error naming it.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Self, PluginError> {
        let number = |key: &str, default: &str, above: f64| {
            let text = setting_or(settings, key, default);
            let problem = match text.parse::<f64>() {
                Ok(n) if n > above => return Ok(n),
                Ok(_) => format!("{text:?} must be greater than {above}"),
                Err(_) => format!("{text:?} is not a number"),
            };
            Err(invalid(key, problem))
        };
        let duration = |key: &str, default: &str| {
            let text = setting_or(settings, key, default);
            parse_duration(text).ok_or_else(|| invalid(key, format!("{text:?} is not a duration")))
        };
        Ok(Self {
            count: number("backoffRetry.count", "0", -1.0)?,
            factor: number("backoffRetry.factor", "2", 0.0)?,
            min: duration("backoffRetry.min", "100ms")?,
            max: duration("backoffRetry.max", "5s")?,
        })
    }

    /// The wait after failed attempt number `attempt` (from 0).
    pub(crate) fn delay(&self, attempt: f64) -> Duration {
        let or = |d: Duration, default| if d.is_zero() { default } else { d };
        let (min, max) = (
            or(self.min, Duration::from_millis(100)),
            or(self.max, Duration::from_secs(10)),
        );
        let nanos = min.as_nanos() as f64 * self.factor.powf(attempt);
        if min >= max || nanos.is_nan() || nanos >= i64::MAX as f64 {
            return max;
        }
        Duration::from_nanos(nanos as u64).clamp(min, max)
    }

    /// Run `attempt` until it succeeds or the retries are used up (the last error is
    /// returned); `retry` says whether an error is worth another attempt.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        retry: impl Fn(&str) -> bool,
    ) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let mut tried = 0.0;
        loop {
            match attempt().await {
                Ok(done) => return Ok(done),
                Err(error) if tried < self.count && retry(&error) => {
                    tokio::time::sleep(self.delay(tried)).await;
                    tried += 1.0;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_carry_no_password() {
        for (url, shown) in [
            (
                "https://me:s3cr3t@host:8081/x?y=1",
                "https://me:***@host:8081/x?y=1",
            ),
            ("http://me:p@ss:w0rd@host/", "http://me:***@host/"),
            ("http://me@host/a@b", "http://me@host/a@b"),
            ("http://host/a:b@c", "http://host/a:b@c"),
            ("no url at all", "no url at all"),
        ] {
            assert_eq!(without_password(url), shown, "{url}");
        }
        let error = endpoint("ftp://me:s3cr3t@host", "x").unwrap_err();
        assert!(!error.contains("s3cr3t"), "{error}");
    }

    #[test]
    fn waits_grow_by_the_factor_between_min_and_max() {
        let backoff = Backoff {
            count: 3.0,
            factor: 2.0,
            min: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        let waits: Vec<_> = (0..4).map(|a| backoff.delay(f64::from(a))).collect();
        assert_eq!(
            waits,
            [100, 200, 300, 300].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn endpoints_join_and_must_be_http() {
        assert_eq!(
            endpoint("https://api.example.com/", "/v1/x")
                .unwrap()
                .to_string(),
            "https://api.example.com/v1/x"
        );
        assert!(endpoint("ftp://h", "x")
            .unwrap_err()
            .contains("not an http"));
        assert!(endpoint("nope", "x").is_err());
    }

    #[test]
    fn retries_stop_at_the_count_or_at_an_error_not_worth_retrying() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let backoff = Backoff {
            count: 2.0,
            factor: 2.0,
            min: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), String> = rt.block_on(backoff.run(
            || {
                calls += 1;
                async { Err("503".to_owned()) }
            },
            |_| true,
        ));
        assert_eq!((result.unwrap_err().as_str(), calls), ("503", 3));
        let mut calls = 0;
        let result: Result<(), String> = rt.block_on(backoff.run(
            || {
                calls += 1;
                async { Err("400".to_owned()) }
            },
            |e| e != "400",
        ));
        assert_eq!((result.unwrap_err().as_str(), calls), ("400", 1));
    }
}
