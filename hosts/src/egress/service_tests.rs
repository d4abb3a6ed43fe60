//! The egress service against a tiny HTTP server on loopback (allowed through the exact
//! address-and-port exception) and against destinations it must refuse.

use super::*;
use crate::egress::policy::KEY_ALLOW;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Mutex;

/// A loopback HTTP/1.1 server answering by path; it keeps the request heads it saw.
struct TestServer {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn serve(stream: std::net::TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head.push_str(&String::from_utf8_lossy(&body));
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        seen.lock().unwrap().push(head);
        let answer = match path.as_str() {
            "/ok" => "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-custom: a\r\n\
                      x-custom: b\r\nconnection: keep-alive\r\ncontent-length: 5\r\n\r\nhello"
                .to_owned(),
            "/big" => format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}",
                "x".repeat(100)
            ),
            "/redirect" => "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\n\
                            content-length: 0\r\n\r\n"
                .to_owned(),
            "/slow" => {
                // Never answer: hold the connection until the client gives up and closes.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                return;
            }
            _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned(),
        };
        let mut stream = reader.get_ref();
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

impl TestServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn policy(settings: &[(&str, &str)]) -> Policy {
    let asked =
        Policy::requested(|key| settings.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)).unwrap();
    let open = Policy::ceiling(true, &[], &[], Duration::ZERO, 0).unwrap();
    asked.resolve(&open).0
}

fn request(url: &str) -> wire::HttpRequest {
    wire::HttpRequest {
        method: "GET".into(),
        url: url.into(),
        ..Default::default()
    }
}

fn call(policy: Policy, request: wire::HttpRequest) -> Result<wire::HttpResponse, Failure> {
    let service = Service::new(policy, "test").unwrap();
    service
        .handle(&request.encode_to_vec(), Duration::from_secs(10))
        .map(|bytes| wire::HttpResponse::decode(bytes.as_slice()).unwrap())
}

fn code_of(result: Result<wire::HttpResponse, Failure>) -> (u32, String) {
    let failure = result.unwrap_err();
    (failure.code, failure.reason)
}

#[test]
fn deny_all_refuses_as_disabled() {
    let (code, _) = code_of(call(Policy::deny_all(), request("https://example.com/")));
    assert_eq!(code, code::EGRESS_DISABLED);
}

#[test]
fn an_allow_listed_loopback_pair_is_reached() {
    let server = TestServer::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    let mut asked = request(&server.url("/ok"));
    asked.method = "post".into();
    asked.body = b"ping".to_vec();
    asked.headers = vec![wire::HttpHeader {
        key: "x-trace".into(),
        values: vec!["1".into()],
    }];
    let answer = call(policy(&[(KEY_ALLOW, &allow)]), asked).unwrap();
    assert_eq!(answer.status_code, 200);
    assert_eq!(answer.body, b"hello");
    let header = |key: &str| answer.headers.iter().find(|h| h.key == key).cloned();
    assert_eq!(header("Content-Type").unwrap().values, ["text/plain"]);
    assert_eq!(header("X-Custom").unwrap().values, ["a", "b"]);
    assert!(header("Connection").is_none(), "{:?}", answer.headers);
    let seen = server.seen.lock().unwrap().join("\n");
    assert!(seen.starts_with("POST /ok HTTP/1.1"), "{seen}");
    assert!(seen.contains("x-trace: 1"), "{seen}");
    assert!(seen.contains("ping"), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("accept-encoding"),
        "{seen}"
    );
}

#[test]
fn destinations_off_the_list_are_forbidden() {
    let server = TestServer::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    let allowed = || policy(&[(KEY_ALLOW, &allow)]);
    // Another port on the same address, another host, another scheme.
    for url in [
        format!("http://127.0.0.1:{}/ok", server.port + 1),
        format!("http://localhost:{}/ok", server.port),
        format!("https://127.0.0.1:{}/ok", server.port),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let (code, reason) = code_of(call(allowed(), request(&url)));
        assert_eq!(
            (code, reason.as_str()),
            (code::FORBIDDEN, "allowlist_miss"),
            "{url}"
        );
    }
    assert!(server.seen.lock().unwrap().is_empty());
}

#[test]
fn a_name_allowed_by_name_that_resolves_to_loopback_is_refused_at_dial() {
    let server = TestServer::start();
    let allow = format!("localhost:{}", server.port);
    let (code, reason) = code_of(call(
        policy(&[(KEY_ALLOW, &allow)]),
        request(&format!("https://localhost:{}/ok", server.port)),
    ));
    assert_eq!(code, code::FORBIDDEN);
    assert!(reason.starts_with("ip_refused_"), "{reason}");
    // An address literal allowed by name only (https) is refused the same way.
    let allow = format!("127.0.0.1:{}", server.port);
    let (code, reason) = code_of(call(
        policy(&[(KEY_ALLOW, &allow)]),
        request(&format!("https://127.0.0.1:{}/ok", server.port + 1)),
    ));
    assert_eq!((code, reason.as_str()), (code::FORBIDDEN, "allowlist_miss"));
    assert!(server.seen.lock().unwrap().is_empty());
}

#[test]
fn malformed_requests_and_reserved_headers_are_invalid() {
    let server = TestServer::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    let header = |key: &str, value: &str| {
        let mut asked = request(&server.url("/ok"));
        asked.headers = vec![wire::HttpHeader {
            key: key.into(),
            values: vec![value.into()],
        }];
        asked
    };
    for (what, asked) in [
        ("file scheme", request("file:///etc/passwd")),
        ("gopher scheme", request("gopher://127.0.0.1/")),
        ("no URL", request("")),
        (
            "credentials",
            request(&format!("http://u:p@127.0.0.1:{}/", server.port)),
        ),
        ("host", header("Host", "evil.example")),
        ("authorization", header("authorization", "Bearer x")),
        ("accept-encoding", header("Accept-Encoding", "gzip")),
        ("content-length", header("Content-Length", "1")),
        ("crlf", header("X-A", "a\r\nX-Injected: 1")),
        ("bad name", header("X A", "1")),
        ("pseudo header", header(":authority", "x")),
    ] {
        let (code, _) = code_of(call(policy(&[(KEY_ALLOW, &allow)]), asked));
        assert_eq!(code, code::INVALID_REQUEST, "{what}");
    }
    let mut bad_method = request(&server.url("/ok"));
    bad_method.method = "GET /x".into();
    let (code, _) = code_of(call(policy(&[(KEY_ALLOW, &allow)]), bad_method));
    assert_eq!(code, code::INVALID_REQUEST);
    assert!(server.seen.lock().unwrap().is_empty());
}

#[test]
fn large_bodies_redirects_and_slow_servers_fail_with_their_codes() {
    let server = TestServer::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    let capped = policy(&[(KEY_ALLOW, &allow), ("sdk.egress.maxResponseBytes", "99")]);
    let (code, _) = code_of(call(capped, request(&server.url("/big"))));
    assert_eq!(code, code::RESPONSE_TOO_LARGE);
    let exact = policy(&[(KEY_ALLOW, &allow), ("sdk.egress.maxResponseBytes", "100")]);
    assert_eq!(
        call(exact, request(&server.url("/big")))
            .unwrap()
            .body
            .len(),
        100
    );
    let (code, reason) = code_of(call(
        policy(&[(KEY_ALLOW, &allow)]),
        request(&server.url("/redirect")),
    ));
    assert_eq!(
        (code, reason.as_str()),
        (code::FORBIDDEN, "redirect_blocked")
    );
    let quick = policy(&[(KEY_ALLOW, &allow), ("sdk.egress.timeout", "200ms")]);
    let started = Instant::now();
    let (code, _) = code_of(call(quick, request(&server.url("/slow"))));
    assert_eq!(code, code::TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The caller's budget (what is left of the module's call time) bounds it too.
    let service = Service::new(policy(&[(KEY_ALLOW, &allow)]), "test").unwrap();
    let failed = service
        .handle(
            &request(&server.url("/slow")).encode_to_vec(),
            Duration::from_millis(100),
        )
        .unwrap_err();
    assert_eq!(failed.code, code::TIMEOUT);
}

#[test]
fn a_refused_connection_is_a_transport_error() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let allow = format!("http://127.0.0.1:{port}");
    let (code, _) = code_of(call(
        policy(&[(KEY_ALLOW, &allow)]),
        request(&format!("http://127.0.0.1:{port}/")),
    ));
    assert_eq!(code, code::TRANSPORT);
}

#[test]
fn secrets_are_injected_only_when_granted_and_set() {
    let server = TestServer::start();
    let allow = format!("http://127.0.0.1:{}", server.port);
    // A name no other test uses; set once, before any request reads it.
    std::env::set_var("CONDUIT_SECRET_CULVERT_TEST_KEY", "Bearer s3cret");
    let granted = || {
        policy(&[
            (KEY_ALLOW, &allow),
            ("sdk.egress.secretRefs", "culvert-test.key,culvert_missing"),
        ])
    };
    let mut asked = request(&server.url("/ok"));
    asked.auth_secret_ref = "culvert-test.key".into();
    assert_eq!(call(granted(), asked.clone()).unwrap().status_code, 200);
    let seen = server.seen.lock().unwrap().join("\n");
    assert!(seen.contains("authorization: Bearer s3cret"), "{seen}");
    let (code, _) = code_of(call(policy(&[(KEY_ALLOW, &allow)]), asked));
    assert_eq!(code, code::FORBIDDEN);
    let mut missing = request(&server.url("/ok"));
    missing.auth_secret_ref = "culvert_missing".into();
    let failed = call(granted(), missing).unwrap_err();
    assert_eq!(failed.code, code::INVALID_REQUEST);
    assert!(
        failed.message.contains("CONDUIT_SECRET_CULVERT_MISSING"),
        "{}",
        failed.message
    );
}

#[test]
fn undecodable_requests_are_internal_errors() {
    let service = Service::new(Policy::deny_all(), "test").unwrap();
    let failed = service
        .handle(&[0xff, 0xff, 0xff], Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(failed.code, INTERNAL);
}

#[test]
fn header_names_are_canonical() {
    assert_eq!(canonical_key("content-type"), "Content-Type");
    assert_eq!(canonical_key("X-REQUEST-ID"), "X-Request-Id");
    assert_eq!(canonical_key("bad name"), "bad name");
    assert_eq!(
        secret_variable("openai.key-1"),
        "CONDUIT_SECRET_OPENAI_KEY_1"
    );
}
