//! The built-in web UI, as Conduit's (`--api.http.ui.enabled`, on by default): observe and
//! operate. It lists the pipelines with their status and throughput, shows a pipeline's
//! sources, processors and destinations and its history (its events, followed live),
//! starts and stops it, and follows records through any connector or processor live (the
//! inspect routes over a WebSocket). It is a page of
//! its own (`ui/index.html`, `ui/app.js`, `ui/app.css`, compiled in) that calls only the
//! public HTTP API, so it can do nothing another client cannot; it authors nothing
//! (pipelines stay config).
//!
//! Every `GET`/`HEAD` outside the API's own paths ([`RESERVED`]) answers the page, so a
//! reloaded or shared deep link (`/pipelines/ID`) works; a path whose last segment has a
//! file extension is not a page and goes on to the API (its JSON 404). The page and its
//! assets hold no data, so they stay open when authentication is on: the page then asks
//! for a bearer token (kept in the tab's `sessionStorage`) and sends it with every call,
//! and on its WebSockets as the subprotocol `culvert.bearer.<token>` (a client
//! certificate works without asking). The page may load only its own script and style and
//! talk only to its own server (its `Content-Security-Policy`).

use poem::http::{header, HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Request, Response};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// Paths the API owns, with everything under them: the UI never answers there. (Conduit's
/// list lacks `/info`, so with its UI on, `GET /info` answers the page there.)
const RESERVED: [&str; 6] = [
    "/v1", "/openapi", "/healthz", "/readyz", "/metrics", "/info",
];

/// `path` with empty and `.` segments dropped and `..` applied (Go's `path.Clean`), so
/// `//v1/x` or `/a/../v1` cannot slip past [`RESERVED`].
fn clean(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

fn is_reserved(path: &str) -> bool {
    RESERVED.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The UI middleware: the page and its two assets for `GET`/`HEAD` outside the API's
/// paths when `enabled`; everything else goes on to the API.
pub(super) async fn serve<E: Endpoint>(
    ep: E,
    req: Request,
    enabled: bool,
) -> poem::Result<Response> {
    if !enabled || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let path = clean(req.uri().path());
    if is_reserved(&path) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let (content_type, body) = match path.as_str() {
        "/assets/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/assets/app.css" => ("text/css; charset=utf-8", STYLE),
        // A file the page does not have: not a page either.
        _ if path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('.')) =>
        {
            return ep.call(req).await.map(IntoResponse::into_response);
        }
        _ => ("text/html; charset=utf-8", INDEX),
    };
    let mut response = Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .body(body);
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&req)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    Ok(response)
}

/// Only the page's own script, style and server: WebSockets to the host the page came from
/// (named by the request's `Host`, when it is a plain host[:port]).
fn content_security_policy(req: &Request) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        });
    let sockets = host.map_or(String::new(), |h| format!(" ws://{h} wss://{h}"));
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_before_the_reserved_check() {
        assert_eq!(clean("//v1//pipelines"), "/v1/pipelines");
        assert_eq!(clean("/a/../v1/./x"), "/v1/x");
        assert_eq!(clean("/../.."), "/");
        assert_eq!(clean(""), "/");
        for reserved in [
            "/v1",
            "/v1/pipelines",
            "/openapi/",
            "/healthz",
            "/info",
            "/metrics",
        ] {
            assert!(is_reserved(&clean(reserved)), "{reserved}");
        }
        for page in [
            "/",
            "/pipelines/x",
            "/v1foo",
            "/information",
            "/assets/app.js",
        ] {
            assert!(!is_reserved(&clean(page)), "{page}");
        }
    }

    #[test]
    fn the_policy_names_only_a_plain_host() {
        let with =
            |host: &str| content_security_policy(&Request::builder().header("host", host).finish());
        assert!(with("127.0.0.1:8080")
            .contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(with("[::1]:8080").contains("ws://[::1]:8080"));
        assert!(with("evil; script-src *").contains("connect-src 'self';"));
        assert!(!with("evil; script-src *").contains("evil"));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(INDEX.contains("src=\"/assets/app.js\""));
        assert!(INDEX.contains("href=\"/assets/app.css\""));
        assert!(
            !INDEX.contains("<script>"),
            "inline scripts would need the policy opened"
        );
        assert!(
            !SCRIPT.contains("innerHTML"),
            "server text is only ever set as text"
        );
    }
}
