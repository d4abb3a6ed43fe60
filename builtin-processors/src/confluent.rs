//! A Confluent schema registry as the server's schema registry (Conduit's
//! `schema-registry.type: confluent`): schemas are registered in and read from an external
//! registry over its REST API instead of the built-in one.
//!
//! The calls: `POST /subjects/{subject}/versions` registers a text (answering its id) and
//! `POST /subjects/{subject}` looks up the version it has there; `GET
//! /subjects/{subject}/versions/{version}` and `GET /schemas/ids/{id}` read. Answers are
//! cached (a registry never changes what an id or a subject's version means), so a pipeline
//! asks once per schema. The [`SchemaRegistry`] trait is synchronous: calls run on a thread
//! of this client's own (with its runtime), each bounded by [`CALL_TIMEOUT`], and the caller
//! waits for the answer.

use crate::http::{chain, client};
use culvert_plugins::schema::{RegisteredSchema, SchemaError, SchemaRegistry, SchemaType};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// How long one call to the registry may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The media type of the registry's API.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How the client authenticates to the registry (its `Debug` shows no credential).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Self::Bearer(_) => f.debug_tuple("Bearer").field(&"***").finish(),
        }
    }
}

/// One HTTP call for the client's thread, and where its answer goes.
struct Call {
    method: Method,
    uri: Uri,
    body: Option<Vec<u8>>,
    authorization: Option<HeaderValue>,
    answer: mpsc::SyncSender<Result<(StatusCode, Bytes), String>>,
}

/// A Confluent schema registry client.
pub struct ConfluentRegistry {
    base: String,
    authorization: Option<HeaderValue>,
    calls: Mutex<mpsc::Sender<Call>>,
    by_id: Mutex<HashMap<u32, (SchemaType, String)>>,
    by_version: Mutex<HashMap<(String, u32), RegisteredSchema>>,
    by_text: Mutex<HashMap<(String, String), RegisteredSchema>>,
}

impl ConfluentRegistry {
    /// A client of the registry at `url` (`http://` or `https://`; a path prefix is kept).
    pub fn new(url: &str, auth: Auth) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_owned();
        crate::http::endpoint(&base, "subjects")?;
        let authorization = match auth {
            Auth::None => None,
            Auth::Basic { username, password } => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Some(
                    HeaderValue::from_str(&format!("Basic {encoded}"))
                        .map_err(|e| e.to_string())?,
                )
            }
            Auth::Bearer(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| "the bearer token is not a valid header value".to_owned())?,
            ),
        };
        let (calls, queue) = mpsc::channel::<Call>();
        std::thread::Builder::new()
            .name("schema-registry-client".into())
            .spawn(move || serve_calls(queue))
            .map_err(|e| format!("cannot start the schema registry client's thread: {e}"))?;
        Ok(Self {
            base,
            authorization,
            calls: Mutex::new(calls),
            by_id: Mutex::new(HashMap::new()),
            by_version: Mutex::new(HashMap::new()),
            by_text: Mutex::new(HashMap::new()),
        })
    }

    /// Make one call and wait for its answer.
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let uri = crate::http::endpoint(&self.base, path).map_err(Failure::Other)?;
        let (answer, reply) = mpsc::sync_channel(1);
        let call = Call {
            method,
            uri: uri.clone(),
            body: body.map(|b| b.to_string().into_bytes()),
            authorization: self.authorization.clone(),
            answer,
        };
        self.calls
            .lock()
            .expect("calls lock")
            .send(call)
            .map_err(|_| Failure::Other("the schema registry client stopped".into()))?;
        // Messages name the URI without a password in it.
        let uri = crate::http::without_password(&uri.to_string());
        let (status, bytes) = reply
            .recv_timeout(CALL_TIMEOUT + Duration::from_secs(1))
            .map_err(|_| Failure::Other(format!("{uri}: no answer within {CALL_TIMEOUT:?}")))?
            .map_err(Failure::Other)?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let code = json.get("error_code").and_then(Value::as_u64).unwrap_or(0);
        let message = json.get("message").and_then(Value::as_str).map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_owned,
        );
        Err(Failure::Status {
            status: status.as_u16(),
            code,
            message: format!("{uri}: {} {message}", status.as_u16()),
        })
    }
}

/// Why a call failed.
enum Failure {
    /// The registry answered with an error status (and its `error_code`).
    Status {
        status: u16,
        code: u64,
        message: String,
    },
    /// No answer.
    Other(String),
}

impl Failure {
    /// As a registry error: Confluent's error codes 40401 (subject), 40402 (version),
    /// 40403 (schema), 42201 (invalid schema) map to their meanings.
    fn into_error(self) -> SchemaError {
        match self {
            Failure::Status { code: 40401, .. } => SchemaError::SubjectNotFound,
            Failure::Status { code: 40402, .. } => SchemaError::VersionNotFound,
            Failure::Status {
                code: 42201 | 42200,
                message,
                ..
            }
            | Failure::Status {
                status: 422,
                message,
                ..
            } => SchemaError::InvalidSchema(message),
            Failure::Status { message, .. } | Failure::Other(message) => {
                SchemaError::Unavailable(message)
            }
        }
    }
}

/// The client's thread: make each call on its own runtime.
fn serve_calls(queue: mpsc::Receiver<Call>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "schema registry client: no runtime");
            return;
        }
    };
    let client = runtime.block_on(async { client() });
    while let Ok(call) = queue.recv() {
        let Call {
            method,
            uri,
            body,
            authorization,
            answer,
        } = call;
        let mut request = Request::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        }
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        let uri = crate::http::without_password(&uri.to_string());
        let result = runtime.block_on(async {
            let exchange = async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| format!("{uri}: {}", chain(&e)))?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("{uri}: {}", chain(&e)))?;
                Ok((status, body.to_bytes()))
            };
            tokio::time::timeout(CALL_TIMEOUT, exchange)
                .await
                .map_err(|_| format!("{uri}: no answer within {CALL_TIMEOUT:?}"))?
        });
        let _ = answer.send(result);
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn type_of(json: &Value) -> Result<SchemaType, SchemaError> {
    match json.get("schemaType").and_then(Value::as_str) {
        None | Some("AVRO") => Ok(SchemaType::Avro),
        Some(other) => Err(SchemaError::Unavailable(format!(
            "the registry's schema is of type {other}; only Avro schemas are supported"
        ))),
    }
}

fn number(json: &Value, key: &str) -> Result<u32, SchemaError> {
    json.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| SchemaError::Unavailable(format!("the registry's answer has no {key:?}")))
}

fn text(json: &Value) -> Result<String, SchemaError> {
    json.get("schema")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| SchemaError::Unavailable("the registry's answer has no \"schema\"".into()))
}

impl SchemaRegistry for ConfluentRegistry {
    fn create(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
    ) -> Result<RegisteredSchema, SchemaError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(known) = self.by_text.lock().expect("cache lock").get(&key) {
            return Ok(known.clone());
        }
        crate::avro::parse_schema(schema).map_err(SchemaError::InvalidSchema)?;
        let body = serde_json::json!({"schema": schema, "schemaType": "AVRO"});
        let path = format!("subjects/{}/versions", segment(subject));
        let created = self
            .call(Method::POST, &path, Some(body.clone()))
            .map_err(Failure::into_error)?;
        let id = number(&created, "id")?;
        let lookup = self
            .call(
                Method::POST,
                &format!("subjects/{}", segment(subject)),
                Some(body),
            )
            .map_err(Failure::into_error)?;
        let registered = RegisteredSchema {
            subject: subject.to_owned(),
            version: number(&lookup, "version")?,
            id,
            schema_type,
            text: schema.to_owned(),
        };
        self.by_text
            .lock()
            .expect("cache lock")
            .insert(key, registered.clone());
        Ok(registered)
    }

    fn get(&self, subject: &str, version: u32) -> Result<RegisteredSchema, SchemaError> {
        let key = (subject.to_owned(), version);
        if let Some(known) = self.by_version.lock().expect("cache lock").get(&key) {
            return Ok(known.clone());
        }
        let path = format!("subjects/{}/versions/{version}", segment(subject));
        let json = self
            .call(Method::GET, &path, None)
            .map_err(Failure::into_error)?;
        let registered = RegisteredSchema {
            subject: subject.to_owned(),
            version,
            id: number(&json, "id")?,
            schema_type: type_of(&json)?,
            text: text(&json)?,
        };
        self.by_version
            .lock()
            .expect("cache lock")
            .insert(key, registered.clone());
        Ok(registered)
    }

    fn by_id(&self, id: u32) -> Result<(SchemaType, String), SchemaError> {
        if let Some(known) = self.by_id.lock().expect("cache lock").get(&id) {
            return Ok(known.clone());
        }
        let json = self
            .call(Method::GET, &format!("schemas/ids/{id}"), None)
            .map_err(|failure| match failure {
                Failure::Status { code: 40403, .. } | Failure::Status { status: 404, .. } => {
                    SchemaError::IdNotFound(id)
                }
                other => other.into_error(),
            })?;
        let found = (type_of(&json)?, text(&json)?);
        self.by_id
            .lock()
            .expect("cache lock")
            .insert(id, found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::MemoryRegistry;
    use crate::testing::http_server::{Reply, Seen, Server};
    use std::sync::Arc;

    #[test]
    fn credentials_are_not_in_debug_output() {
        let basic = format!(
            "{:?}",
            Auth::Basic {
                username: "me".into(),
                password: "s3cr3t".into(),
            }
        );
        assert_eq!(basic, "Basic { username: \"me\", password: \"***\" }");
        assert!(!format!("{:?}", Auth::Bearer("t0ken".into())).contains("t0ken"));
    }

    /// A registry answering Confluent's REST API from a registry in memory.
    fn fake() -> Server {
        let registry = Arc::new(MemoryRegistry::default());
        Server::start(move |seen: &Seen, _| {
            let reply = |status: u16, json: Value| -> Reply { (status, vec![], json.to_string()) };
            let missing = |e: SchemaError| {
                let code = match e {
                    SchemaError::SubjectNotFound => 40401,
                    SchemaError::VersionNotFound => 40402,
                    _ => 40403,
                };
                reply(
                    404,
                    serde_json::json!({"error_code": code, "message": e.to_string()}),
                )
            };
            let parts: Vec<&str> = seen.target.trim_start_matches('/').split('/').collect();
            let body: Value = serde_json::from_str(&seen.body).unwrap_or(Value::Null);
            let schema = body["schema"].as_str().unwrap_or_default();
            match (seen.method.as_str(), parts.as_slice()) {
                ("POST", ["subjects", subject, "versions"]) => {
                    match registry.create(subject, SchemaType::Avro, schema) {
                        Ok(s) => reply(200, serde_json::json!({"id": s.id})),
                        Err(e) => reply(
                            422,
                            serde_json::json!({"error_code": 42201, "message": e.to_string()}),
                        ),
                    }
                }
                ("POST", ["subjects", subject]) => {
                    match (1..100)
                        .find_map(|v| registry.get(subject, v).ok().filter(|s| s.text == schema))
                    {
                        Some(s) => reply(
                            200,
                            serde_json::json!({"subject": subject, "id": s.id, "version": s.version, "schema": s.text}),
                        ),
                        None => missing(SchemaError::SubjectNotFound),
                    }
                }
                ("GET", ["subjects", subject, "versions", version]) => {
                    match registry.get(subject, version.parse().unwrap_or(0)) {
                        Ok(s) => reply(
                            200,
                            serde_json::json!({"subject": subject, "id": s.id, "version": s.version, "schema": s.text}),
                        ),
                        Err(e) => missing(e),
                    }
                }
                ("GET", ["schemas", "ids", id]) => match registry.by_id(id.parse().unwrap_or(0)) {
                    Ok((_, text)) => reply(200, serde_json::json!({"schema": text})),
                    Err(e) => missing(e),
                },
                _ => reply(
                    404,
                    serde_json::json!({"error_code": 404, "message": "no route"}),
                ),
            }
        })
    }

    #[test]
    fn schemas_are_registered_read_and_cached() {
        let server = fake();
        let auth = Auth::Basic {
            username: "user".into(),
            password: "secret".into(),
        };
        let registry = ConfluentRegistry::new(&server.url, auth).unwrap();
        let text = r#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}"#;
        let created = registry
            .create("my subject", SchemaType::Avro, text)
            .unwrap();
        assert_eq!((created.id, created.version), (1, 1));
        let again = registry
            .create("my subject", SchemaType::Avro, text)
            .unwrap();
        assert_eq!(again, created);
        let got = registry.get("my subject", 1).unwrap();
        assert_eq!((got.id, got.text.as_str()), (1, text));
        assert_eq!(
            registry.by_id(1).unwrap(),
            (SchemaType::Avro, text.to_owned())
        );
        // Cached: asking again sends nothing.
        let calls = server.seen().len();
        registry.get("my subject", 1).unwrap();
        registry.by_id(1).unwrap();
        assert_eq!(server.seen().len(), calls);
        let seen = server.seen();
        assert_eq!(seen[0].target, "/subjects/my%20subject/versions");
        assert_eq!(seen[0].headers["authorization"], "Basic dXNlcjpzZWNyZXQ=");
        assert_eq!(seen[0].headers["content-type"], MEDIA_TYPE);
    }

    #[test]
    fn errors_map_to_the_registry_errors() {
        let server = fake();
        let registry = ConfluentRegistry::new(&server.url, Auth::Bearer("t".into())).unwrap();
        assert_eq!(registry.get("nope", 1), Err(SchemaError::SubjectNotFound));
        registry
            .create("s", SchemaType::Avro, "\"string\"")
            .unwrap();
        assert_eq!(registry.get("s", 2), Err(SchemaError::VersionNotFound));
        assert_eq!(registry.by_id(9), Err(SchemaError::IdNotFound(9)));
        assert!(matches!(
            registry.create("s", SchemaType::Avro, "{\"type\":\"nope\"}"),
            Err(SchemaError::InvalidSchema(_))
        ));
        assert_eq!(server.seen()[0].headers["authorization"], "Bearer t");
        // Nothing listening: unavailable, saying where.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let down = ConfluentRegistry::new(&format!("http://{closed}"), Auth::None).unwrap();
        match down.by_id(1) {
            Err(SchemaError::Unavailable(message)) => {
                assert!(message.contains(&closed.to_string()), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(ConfluentRegistry::new("ftp://x", Auth::None).is_err());
    }
}
