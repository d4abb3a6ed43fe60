//! Browser access to the HTTP API, as Conduit's gateway gives it: CORS for the origins the
//! operator allows, and WebSocket streams.
//!
//! - **CORS.** A request whose `Origin` is in the allowlist ([`Cors`],
//!   `--api.http.cors.allowed-origins`; empty by default, so no other origin may call the
//!   API) is answered with `Access-Control-Allow-Origin` set to that origin (never a literal
//!   `*`) and `Vary: Origin`. Its preflight (`OPTIONS` with `Access-Control-Request-Method`)
//!   is answered here, before authentication (a browser's preflight carries no credentials).
//!   A same-origin request needs none of this. A request that would change something
//!   (any method but `GET`, `HEAD` and `OPTIONS`) from a page of another origin that is
//!   not allowed is refused (403): the browser would send it without asking (a form, a
//!   `no-cors` fetch), and the API takes any content type.
//! - **WebSockets.** Any route asked for with a WebSocket upgrade answers over the socket:
//!   each line of its body is one text message (the `{"result": ...}` lines of an inspect
//!   stream, or an answer's JSON), then a close frame. Browsers cannot read a streamed
//!   `fetch` body line by line everywhere, so Conduit's UI and scripts use this. The
//!   handshake's `Origin` must be absent (a non-browser client), the server's own, or
//!   allowed. A browser, which cannot set `Authorization` on a handshake, may offer its
//!   bearer token as the subprotocol `culvert.bearer.<token>` beside `culvert` (the one
//!   chosen); authentication reads it there ([`websocket_bearer`]). The server pings every 54 s and drops a peer silent for 60 s or not taking a
//!   message within 10 s, as Conduit does; closing the socket ends the call behind it.

use super::ApiError;
use futures_util::{SinkExt as _, StreamExt as _};
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::web::websocket::{Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::{Endpoint, FromRequest as _, IntoResponse, Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// How often the server pings a WebSocket peer.
const PING_EVERY: Duration = Duration::from_secs(54);
/// How long a WebSocket peer may stay silent (not even a pong) before it is dropped.
const PEER_SILENCE: Duration = Duration::from_secs(60);
/// How long one message may take to be written to a WebSocket peer.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// The largest message a WebSocket peer may send (it has nothing to say but control
/// frames; Conduit's limit).
const READ_LIMIT: usize = 512;
/// The WebSocket subprotocol the server chooses when a client offers it.
const PROTOCOL: &str = "culvert";
/// A browser cannot set `Authorization` on a WebSocket handshake; it offers its bearer
/// token as the subprotocol `culvert.bearer.<token>` instead (beside [`PROTOCOL`], the one
/// the server chooses, so the token is never echoed back).
const BEARER_PROTOCOL: &str = "culvert.bearer.";

/// The browser origins allowed to call the HTTP API from another origin (CORS) and to open
/// its WebSocket streams.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Arc<[String]>,
}

/// Why `--api.http.cors.allowed-origins` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorsError {
    /// An entry that a browser's `Origin` header could never equal.
    #[error(
        "--api.http.cors.allowed-origins: {0:?} is not an origin; write scheme://host[:port] \
         with no path, query or trailing slash, as a browser's Origin header has it \
         (e.g. http://localhost:3000)"
    )]
    NotAnOrigin(String),
    /// `*` while the HTTP API is reachable beyond loopback with no authentication.
    #[error(
        "--api.http.cors.allowed-origins: '*' (any web page) is refused while the HTTP API \
         listens on {0}, beyond loopback, without authentication: any site open in a browser \
         on this network could read and change every pipeline. List exact origins, listen on \
         loopback, or turn authentication on"
    )]
    WildcardExposed(String),
}

impl Cors {
    /// The allowlist `origins` (`*`: any origin), checked: every entry must be an origin
    /// (`scheme://host[:port]`), and `*` needs the HTTP API on loopback (`http_address`) or
    /// `authenticated` callers.
    pub fn new(
        origins: &[String],
        http_address: &str,
        authenticated: bool,
    ) -> Result<Self, CorsError> {
        for origin in origins {
            if origin != "*" && !is_origin(origin) {
                return Err(CorsError::NotAnOrigin(origin.clone()));
            }
        }
        let cors = Cors {
            origins: origins.iter().cloned().collect(),
        };
        if cors.allows_any()
            && !authenticated
            && !crate::auth::is_loopback(http_address).unwrap_or(false)
        {
            return Err(CorsError::WildcardExposed(http_address.to_owned()));
        }
        Ok(cors)
    }

    /// Whether the list holds `*`.
    pub fn allows_any(&self) -> bool {
        self.origins.iter().any(|o| o == "*")
    }

    /// Whether `origin` may call the API from another origin.
    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// `scheme://host[:port]` and nothing more (Go's `url.Parse` would find no path, query or
/// fragment): what a browser sends in `Origin`.
fn is_origin(text: &str) -> bool {
    let Some((scheme, host)) = text.split_once("://") else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !host.is_empty()
        && !host
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
}

/// The CORS middleware (outside authentication).
pub(super) async fn cors<E: Endpoint>(ep: E, req: Request, cors: Cors) -> poem::Result<Response> {
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| origin.to_str().is_ok_and(|o| cors.allows(o)))
        .cloned();
    let Some(origin) = allowed else {
        // Another site's page may not change anything here: a browser sends a form or a
        // `no-cors` fetch without asking, and the API takes any content type (CSRF).
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
            && !origin_allowed(&req, &cors)
        {
            return Ok(ApiError::new(
                StatusCode::FORBIDDEN,
                tonic::Code::PermissionDenied,
                "a browser page of another origin may not change anything here; list its \
                 origin in --api.http.cors.allowed-origins to allow it",
            )
            .into_response());
        }
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    let mut response = if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        preflight(&req)
    } else {
        match ep.call(req).await {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(response)
}

/// The answer to an allowed origin's preflight: the headers it asked for (so a page may
/// send `x-request-id` or `Authorization`), the API's methods, cached for 10 minutes.
fn preflight(req: &Request) -> Response {
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|h| !h.is_empty())
        .cloned()
        .unwrap_or(HeaderValue::from_static("Content-Type,Accept"));
    Response::builder()
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, asked)
        .header(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET,HEAD,POST,PUT,DELETE",
        )
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .finish()
}

/// Whether `req` asks for a WebSocket (`Connection: upgrade` and `Upgrade: websocket`, any
/// case, as gorilla's check).
fn wants_websocket(req: &Request) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// The `Authorization` value a WebSocket handshake carries as a subprotocol
/// ([`BEARER_PROTOCOL`]), if it does.
pub(super) fn websocket_bearer(req: &Request) -> Option<String> {
    if !wants_websocket(req) {
        return None;
    }
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(BEARER_PROTOCOL))
        .map(|token| format!("Bearer {token}"))
}

/// Whether a request's origin may act: none (not a browser), the server's own (`Origin`'s
/// host is the request's `Host`), or an allowed one.
fn origin_allowed(req: &Request, cors: &Cors) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let same = origin
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .zip(
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok()),
        )
        .is_some_and(|(origin_host, host)| {
            !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
        });
    same || cors.allows(origin)
}

/// The WebSocket middleware (inside authentication, outside the routes): an upgrade
/// request is answered `101` and its route's answer goes over the socket.
pub(super) async fn websocket<E: Endpoint + 'static>(
    ep: Arc<E>,
    req: Request,
    cors: Cors,
) -> poem::Result<Response> {
    if !wants_websocket(&req) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    if !origin_allowed(&req, &cors) {
        return Ok(ApiError::new(
            StatusCode::FORBIDDEN,
            tonic::Code::PermissionDenied,
            "websocket: the request's Origin is neither this server nor one of \
             --api.http.cors.allowed-origins",
        )
        .into_response());
    }
    let socket = match WebSocket::from_request_without_body(&req).await {
        Ok(socket) => socket,
        Err(error) => {
            return Ok(ApiError::new(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                format!("websocket: {error}"),
            )
            .into_response())
        }
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(READ_LIMIT))
        .max_frame_size(Some(READ_LIMIT));
    // The upgrade callback must be `Sync`; the call it makes runs once.
    let call = std::sync::Mutex::new(Some((ep, req)));
    Ok(socket
        .protocols([PROTOCOL])
        .config(config)
        .on_upgrade(move |socket| async move {
            let taken = call.lock().ok().and_then(|mut call| call.take());
            if let Some((ep, req)) = taken {
                proxy(ep, req, socket).await;
            }
        })
        .into_response())
}

/// Run the call and send each line of its answer as a text message, then close. Ends
/// early (dropping the call, which ends an inspect session) when the peer closes, goes
/// silent or stops reading.
async fn proxy<E: Endpoint>(ep: Arc<E>, req: Request, socket: WebSocketStream) {
    let (mut sink, mut incoming) = socket.split();
    let path = req.uri().path().to_owned();
    let response = match ep.call(req).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    let mut body = response.into_body().into_bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let silence = tokio::time::sleep(PEER_SILENCE);
    tokio::pin!(silence);
    loop {
        // Cancel-safety: `next()` on a stream and `tick()` lose nothing when another branch
        // wins; `silence` is pinned outside the loop and only reset; writes happen in the
        // branches' bodies, never raced. Covered by the e2e test
        // `inspector::a_websocket_loses_no_line_while_the_peer_keeps_talking`.
        tokio::select! {
            chunk = body.next() => {
                let ended = match chunk {
                    Some(Ok(bytes)) => {
                        pending.extend_from_slice(&bytes);
                        false
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, %path, "websocket: the answer's body failed");
                        true
                    }
                    None => true,
                };
                let mut lines = complete_lines(&mut pending);
                if ended && !pending.is_empty() {
                    lines.push(std::mem::take(&mut pending));
                }
                for line in lines {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if timed(sink.feed(Message::Text(text))).await.is_err() {
                        return;
                    }
                }
                if timed(sink.flush()).await.is_err() {
                    return;
                }
                if ended {
                    break;
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(error)) => {
                    tracing::debug!(%error, %path, "websocket: reading from the peer failed");
                    return;
                }
                Some(Ok(_)) => silence.as_mut().reset(tokio::time::Instant::now() + PEER_SILENCE),
            },
            _ = ping.tick() => {
                if timed(sink.send(Message::Ping(Vec::new()))).await.is_err() {
                    return;
                }
            }
            () = &mut silence => {
                tracing::debug!(%path, "websocket: the peer went silent; closing");
                return;
            }
        }
    }
    // The answer is complete: say so, and give the peer a moment to close its side.
    if timed(sink.send(Message::Close(None))).await.is_ok() {
        let _ = tokio::time::timeout(WRITE_WAIT, async {
            while let Some(Ok(message)) = incoming.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A write to the peer, given up after [`WRITE_WAIT`].
async fn timed<T>(write: impl std::future::Future<Output = std::io::Result<T>>) -> Result<T, ()> {
    match tokio::time::timeout(WRITE_WAIT, write).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::debug!(%error, "websocket: writing to the peer failed");
            Err(())
        }
        Err(_) => {
            tracing::debug!("websocket: the peer did not take a message in time");
            Err(())
        }
    }
}

/// Take the complete lines out of `pending` (without their `\n` or `\r\n`, empty ones
/// skipped), leaving the unfinished rest.
fn complete_lines(pending: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let Some(last) = pending.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let rest = pending.split_off(last + 1);
    let done = std::mem::replace(pending, rest);
    done.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "http://localhost:3000",
            "https://ui.example.com",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "app+x://host",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "http://localhost:3000/",
            "localhost:3000",
            "http://",
            "://host",
            "http://host/path",
            "http://host?x=1",
            "http://host#x",
            "http://user@host",
            "1http://host",
            "http://ho st",
            "",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn the_wildcard_needs_loopback_or_authentication() {
        let any = ["*".to_owned()];
        assert!(Cors::new(&any, "127.0.0.1:8080", false)
            .unwrap()
            .allows("http://x"));
        assert!(Cors::new(&any, "0.0.0.0:8080", true).is_ok());
        assert_eq!(
            Cors::new(&any, "0.0.0.0:8080", false).unwrap_err(),
            CorsError::WildcardExposed("0.0.0.0:8080".into())
        );
        let bad = ["http://ok".to_owned(), "http://x/".to_owned()];
        assert_eq!(
            Cors::new(&bad, "127.0.0.1:8080", false).unwrap_err(),
            CorsError::NotAnOrigin("http://x/".into())
        );
        let exact = Cors::new(&["http://a:1".to_owned()], "0.0.0.0:8080", false).unwrap();
        assert!(exact.allows("http://a:1"));
        assert!(!exact.allows("http://a:2"));
        assert!(!exact.allows_any());
        assert!(!Cors::default().allows("http://a:1"));
    }

    #[test]
    fn lines_split_at_newlines_keeping_the_unfinished_rest() {
        let mut pending = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\"".to_vec();
        assert_eq!(
            complete_lines(&mut pending),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(pending, b"{\"c\"".to_vec());
        assert!(complete_lines(&mut pending).is_empty());
        pending.extend_from_slice(b":3}\n");
        assert_eq!(complete_lines(&mut pending), vec![b"{\"c\":3}".to_vec()]);
        assert!(pending.is_empty());
    }

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.finish()
    }

    #[test]
    fn a_bearer_token_rides_on_a_websocket_subprotocol() {
        let upgrade = [("connection", "upgrade"), ("upgrade", "websocket")];
        let offered = |protocols: &str| {
            let mut headers = upgrade.to_vec();
            headers.push(("sec-websocket-protocol", protocols));
            websocket_bearer(&request(&headers))
        };
        assert_eq!(
            offered("culvert, culvert.bearer.cvt_abc-_9"),
            Some("Bearer cvt_abc-_9".to_owned())
        );
        assert_eq!(offered("culvert"), None);
        assert_eq!(websocket_bearer(&request(&upgrade)), None);
        // Only on a WebSocket handshake.
        let plain = request(&[("sec-websocket-protocol", "culvert.bearer.cvt_x")]);
        assert_eq!(websocket_bearer(&plain), None);
    }

    #[test]
    fn websocket_requests_and_their_origins() {
        let upgrade = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert!(wants_websocket(&request(&upgrade)));
        assert!(!wants_websocket(&request(&[("upgrade", "websocket")])));
        assert!(!wants_websocket(&request(&[("connection", "upgrade")])));
        let allowed = Cors::new(&["http://ui:3000".to_owned()], "127.0.0.1:1", false).unwrap();
        let with = |origin: &str| request(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
        assert!(origin_allowed(&request(&[("host", "h")]), &allowed));
        assert!(origin_allowed(&with("http://127.0.0.1:8080"), &allowed));
        assert!(origin_allowed(&with("http://ui:3000"), &allowed));
        assert!(!origin_allowed(&with("http://evil:3000"), &allowed));
        assert!(!origin_allowed(&with("http://evil:3000"), &Cors::default()));
    }
}
