//! The host side of one processor instance's egress: checks a request against the
//! instance's policy, makes the call (connecting only to checked addresses, never through
//! a proxy) and answers with the response or the SDK's error code.

use super::policy::{split_host_port, Policy, Scheme};
use super::{code, wire};
use http::header::{AUTHORIZATION, LOCATION};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Secrets are read from `CONDUIT_SECRET_` + the secret's name, upper-cased, with every
/// character but letters and digits replaced by `_` (as Conduit does); the value is the
/// whole `Authorization` header (e.g. `Bearer sk-…`).
pub const SECRET_ENV_PREFIX: &str = "CONDUIT_SECRET_";

/// `pprocutils.ErrorCodeInternal`: a request the host cannot decode.
const INTERNAL: u32 = u32::MAX - 5;

/// Headers a module may not set: the host derives or controls them.
const RESERVED: [&str; 13] = [
    "host",
    ":authority",
    "authorization",
    "accept-encoding",
    "connection",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
];

/// Connection-scoped response headers, not handed to the module.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Why a call was refused or failed: the SDK's code, a stable label for the audit log and
/// a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The code the module gets.
    pub code: u32,
    /// The audit label (`allowlist_miss`, `ip_refused_v4_private`, `timeout`, …).
    pub reason: String,
    /// What happened, for the log (never a body or a credential).
    pub message: String,
}

fn failure(code: u32, reason: &str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        reason: reason.to_owned(),
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    failure(code::INVALID_REQUEST, "invalid_request", message)
}

/// Why a connection was not made.
#[derive(Debug)]
enum DialError {
    /// The address is refused by the policy.
    Refused(SocketAddr, &'static str),
    /// The name did not resolve.
    Dns(String),
    /// Connecting failed.
    Connect(std::io::Error),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Refused(address, reason) => {
                write!(
                    f,
                    "connection to {address} refused by the egress policy ({reason})"
                )
            }
            DialError::Dns(error) => write!(f, "DNS resolution failed: {error}"),
            DialError::Connect(error) => write!(f, "connecting failed: {error}"),
        }
    }
}

impl std::error::Error for DialError {}

/// The connector: resolves the host once, checks every address, and connects to the
/// first allowed one that answers (the checked address itself, so a name re-pointed
/// after the check changes nothing).
#[derive(Clone)]
struct Dialer {
    policy: Arc<Policy>,
}

impl tower::Service<Uri> for Dialer {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default();
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let default_port = if uri.scheme_str() == Some("http") {
                80
            } else {
                443
            };
            let port = uri.port_u16().unwrap_or(default_port);
            let candidates: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| DialError::Dns(e.to_string()))?
                    .map(|address| address.ip())
                    .collect(),
            };
            let mut last = DialError::Dns(format!("no addresses for {host:?}"));
            for ip in candidates {
                let address = SocketAddr::new(ip, port);
                if let Err(reason) = policy.check_dial(ip, port) {
                    last = DialError::Refused(address, reason);
                    continue;
                }
                match TcpStream::connect(address).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(TokioIo::new(stream));
                    }
                    Err(error) => last = DialError::Connect(error),
                }
            }
            Err(last)
        })
    }
}

/// The runtime egress calls run on: the module's thread is not a runtime thread, so it
/// blocks on this one's handle while a call is under way.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("wasm-egress")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the egress runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// One processor instance's egress: its effective policy and its HTTP client.
pub struct Service {
    policy: Arc<Policy>,
    processor: String,
    client: Client<HttpsConnector<Dialer>, Full<Bytes>>,
}

impl Service {
    /// The egress of processor `processor` under `policy`.
    pub fn new(policy: Policy, processor: &str) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| format!("TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(Dialer {
                policy: policy.clone(),
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Self {
            policy,
            processor: processor.to_owned(),
            client,
        })
    }

    /// The effective policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Serve an encoded `HTTPRequest` and answer the encoded `HTTPResponse`, blocking the
    /// calling thread (which must not be an async runtime's) for at most `budget` (the
    /// policy's time limit bounds it too). Every call is logged, without bodies or
    /// credentials.
    pub fn handle(&self, request: &[u8], budget: Duration) -> Result<Vec<u8>, Failure> {
        use prost::Message;
        let request = wire::HttpRequest::decode(request).map_err(|e| {
            failure(
                INTERNAL,
                "undecodable_request",
                format!("not an HTTPRequest: {e}"),
            )
        })?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(failure(
                INTERNAL,
                "internal",
                "http_request was called on an async runtime thread",
            ));
        }
        let method = request.method.trim().to_uppercase();
        let host = request
            .url
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_lowercase))
            .unwrap_or_default();
        let started = Instant::now();
        let limit = budget.min(if self.policy.timeout.is_zero() {
            super::DEFAULT_TIMEOUT
        } else {
            self.policy.timeout
        });
        let result = runtime()
            .map_err(|e| failure(INTERNAL, "internal", e))
            .and_then(|runtime| {
                runtime.block_on(async {
                    match tokio::time::timeout(limit, self.execute(request)).await {
                        Ok(result) => result,
                        Err(_) => Err(failure(
                            code::TIMEOUT,
                            "timeout",
                            format!("no complete answer within {limit:?}"),
                        )),
                    }
                })
            });
        match &result {
            Ok(response) => tracing::info!(
                processor = %self.processor,
                decision = "allow",
                method = %method,
                request_host = %host,
                status = response.status_code,
                response_bytes = response.body.len(),
                latency_ms = started.elapsed().as_millis() as u64,
                "egress call"
            ),
            Err(failure) => tracing::warn!(
                processor = %self.processor,
                decision = "deny",
                method = %method,
                request_host = %host,
                reason = %failure.reason,
                "egress call denied: {}",
                failure.message
            ),
        }
        result.map(|response| response.encode_to_vec())
    }

    /// Check and make one call.
    async fn execute(&self, request: wire::HttpRequest) -> Result<wire::HttpResponse, Failure> {
        if !self.policy.enabled {
            return Err(failure(
                code::EGRESS_DISABLED,
                "egress_disabled",
                format!(
                    "egress is not enabled for this processor; add an allowlist entry \
                     ({}) and open the ceiling (--processors.egress.enabled)",
                    super::KEY_ALLOW
                ),
            ));
        }
        let method = request.method.trim().to_uppercase();
        let method = if method.is_empty() {
            Method::GET
        } else if valid_token(&method) {
            Method::from_bytes(method.as_bytes()).map_err(|_| invalid("invalid HTTP method"))?
        } else {
            return Err(invalid("invalid HTTP method"));
        };
        let uri: Uri = request
            .url
            .parse()
            .map_err(|_| invalid("unparseable request URL"))?;
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            other => {
                return Err(invalid(format!(
                    "unsupported URL scheme: {}",
                    other.unwrap_or_default()
                )))
            }
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| invalid("request URL has a bad host"))?;
        if host.is_empty() {
            return Err(invalid("request URL has no host"));
        }
        let port = port.unwrap_or(scheme.default_port());
        if !self.policy.matches(scheme, host, port) {
            return Err(failure(
                code::FORBIDDEN,
                "allowlist_miss",
                "destination not in the processor's egress allowlist",
            ));
        }
        let mut outgoing = Request::new(Full::new(Bytes::from(request.body)));
        *outgoing.method_mut() = method;
        *outgoing.uri_mut() = uri;
        let headers = outgoing.headers_mut();
        for header in request.headers {
            if !valid_token(&header.key) {
                return Err(invalid("invalid header name"));
            }
            let name = header.key.to_ascii_lowercase();
            if RESERVED.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "header is host-reserved and cannot be set by the guest: {}",
                    canonical_key(&header.key)
                )));
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("invalid header name"))?;
            for value in header.values {
                if value.contains(['\r', '\n', '\0']) {
                    return Err(invalid(
                        "invalid header value (control characters not allowed)",
                    ));
                }
                let value =
                    HeaderValue::from_str(&value).map_err(|_| invalid("invalid header value"))?;
                headers.append(name.clone(), value);
            }
        }
        if !request.auth_secret_ref.is_empty() {
            let name = request.auth_secret_ref;
            if !self.policy.secret_refs.contains(&name) {
                return Err(failure(
                    code::FORBIDDEN,
                    "secret_not_granted",
                    format!("secret reference not granted to this processor: {name}"),
                ));
            }
            let mut value = resolve_secret(&name)
                .and_then(|v| HeaderValue::from_str(&v).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "failed to resolve secret reference {name:?} (expected {})",
                        secret_variable(&name)
                    ))
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let response = self
            .client
            .request(outgoing)
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status();
        let redirect = matches!(
            status,
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        );
        if redirect && response.headers().contains_key(LOCATION) {
            return Err(failure(
                code::FORBIDDEN,
                "redirect_blocked",
                "redirects are not followed",
            ));
        }
        let mut answer = wire::HttpResponse {
            status_code: i32::from(status.as_u16()),
            headers: vec![],
            body: vec![],
        };
        for name in response.headers().keys() {
            if HOP_BY_HOP.contains(&name.as_str()) {
                continue;
            }
            answer.headers.push(wire::HttpHeader {
                key: canonical_key(name.as_str()),
                values: response
                    .headers()
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
            });
        }
        let cap = usize::try_from(self.policy.max_response_bytes)
            .unwrap_or(usize::MAX)
            .max(1);
        let body = Limited::new(response.into_body(), cap)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    failure(
                        code::RESPONSE_TOO_LARGE,
                        "size_cap",
                        format!("response body exceeded the host size cap ({cap} bytes)"),
                    )
                } else {
                    failure(
                        code::TRANSPORT,
                        "transport_error",
                        format!("failed reading response body: {error}"),
                    )
                }
            })?;
        answer.body = body.to_bytes().to_vec();
        Ok(answer)
    }
}

/// The failure a client error stands for.
fn classify(error: &hyper_util::client::legacy::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(dial) = current.downcast_ref::<DialError>() {
            return match dial {
                DialError::Refused(address, reason) => failure(
                    code::FORBIDDEN,
                    &format!("ip_refused_{reason}"),
                    format!("resolved IP refused by egress policy: {address}"),
                ),
                DialError::Dns(e) => failure(
                    code::DNS,
                    "dns_failure",
                    format!("DNS resolution failed: {e}"),
                ),
                DialError::Connect(e) => failure(
                    code::TRANSPORT,
                    "transport_error",
                    format!("connecting failed: {e}"),
                ),
            };
        }
        source = current.source();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    failure(code::TRANSPORT, "transport_error", text)
}

/// The environment variable holding secret `name`.
fn secret_variable(name: &str) -> String {
    let normalized: String = name
        .to_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{SECRET_ENV_PREFIX}{normalized}")
}

/// Secret `name`'s value (missing or empty: none).
fn resolve_secret(name: &str) -> Option<String> {
    std::env::var(secret_variable(name))
        .ok()
        .filter(|v| !v.is_empty())
}

/// An HTTP token (a method or header name): no controls, spaces or separators.
fn valid_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|c| c > 0x20 && c < 0x7f && !b"()<>@,;:\\\"/[]?={}".contains(&c))
}

/// A header name in its canonical form (`content-type` → `Content-Type`), as Go's
/// `net/http` hands them over; a name that is not a token is left as it is.
fn canonical_key(name: &str) -> String {
    if !valid_token(name) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
