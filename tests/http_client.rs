//! A small blocking HTTP/1.1 client for the end-to-end tests: one request per connection,
//! the raw status, headers and body back (chunked bodies decoded).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An HTTP response as received.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): status {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send one request. `body` is sent with a `Content-Length` (and no content type unless
/// given in `headers`, as `curl -d` would not set JSON either).
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(address).expect("connect to the HTTP API");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(head(address, method, path, headers, body).as_bytes())
        .unwrap();
    if let Some(body) = body {
        // The server may answer (413) and close before reading a large body.
        let _ = stream.write_all(body);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

/// Send one request over TLS (HTTPS) with `config`, to a server whose certificate names
/// `localhost`. A refused handshake, or a connection closed without an answer, is `Err`.
pub fn request_tls(
    address: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Reply> {
    let tcp = TcpStream::connect(address)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
    let connection = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream.write_all(head(address, method, path, headers, body).as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    stream.flush()?;
    let mut raw = Vec::new();
    if let Err(error) = stream.read_to_end(&mut raw) {
        // A server that closes without TLS's close_notify after a whole answer is fine.
        if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            return Err(error);
        }
    }
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::other("the server closed without answering"));
    }
    Ok(parse(&raw))
}

fn head(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// A JSON request that must answer 200: the reply's JSON (fails the test otherwise, with the
/// body).
pub fn call(
    address: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let (status, reply) = call_any(address, method, path, body);
    assert_eq!(status, 200, "{method} {path}: {reply}");
    reply
}

/// A JSON request: the status and the reply's JSON.
pub fn call_any(
    address: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    let reply = request(address, method, path, &[], bytes.as_deref());
    (reply.status, reply.json())
}

/// A uint64 of a protojson answer (protojson writes 64-bit integers as strings).
pub fn number(value: &serde_json::Value) -> u64 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| value.as_u64())
        .unwrap_or_else(|| panic!("a uint64: {value}"))
}

/// Create a connector of `pipeline` over HTTP (`kind`: `TYPE_SOURCE` or
/// `TYPE_DESTINATION`); its id.
pub fn create_connector(
    address: &str,
    pipeline: &str,
    kind: &str,
    plugin: &str,
    name: &str,
    settings: serde_json::Value,
) -> String {
    let created = call(
        address,
        "POST",
        "/v1/connectors",
        Some(
            serde_json::json!({"type": kind, "plugin": plugin, "pipelineId": pipeline,
            "config": {"name": name, "settings": settings}}),
        ),
    );
    created["id"].as_str().expect("an id").to_owned()
}

/// Create a stopped pipeline `name` whose file source reads `input` and whose file
/// destination writes `out`, over HTTP; its id and the source's and destination's.
pub fn file_to_file_pipeline(
    address: &str,
    name: &str,
    input: &std::path::Path,
    out: &std::path::Path,
) -> (String, String, String) {
    let created = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(serde_json::json!({"config": {"name": name}})),
    );
    let pipeline = created["id"].as_str().expect("an id").to_owned();
    let path = |file: &std::path::Path| serde_json::json!({"path": file.to_str().unwrap()});
    let source = create_connector(
        address,
        &pipeline,
        "TYPE_SOURCE",
        "builtin:file",
        "in",
        path(input),
    );
    let destination = create_connector(
        address,
        &pipeline,
        "TYPE_DESTINATION",
        "builtin:file",
        "out",
        path(out),
    );
    (pipeline, source, destination)
}
