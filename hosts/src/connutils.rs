//! The connector utilities the host serves to its standalone plugins: the schema service
//! (`connutils.v1.SchemaService`) that Conduit's SDK calls to register the schemas of
//! structured keys and payloads (`CreateSchema`) and to read them back (`GetSchema`).
//!
//! It listens on a loopback TCP port (plaintext gRPC, as Conduit serves it), on a thread
//! and runtime of its own so it outlives any one pipeline; each plugin gets its address in
//! `CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET` and a token that must come back in the
//! `conduit-connector-token` metadata of every call. Errors carry the exact messages the
//! protocol's client maps to its error values (`schema subject not found`, `schema version
//! not found`, `invalid schema`).
//!
//! Schemas follow a schema registry's rules: versions count from 1 per subject, the same
//! text registered again under a subject answers the existing version, and one text has one
//! id across subjects. The registry lives in memory: a source registers its schemas again
//! when it runs, so a restart needs nothing from a previous one.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use crate::pb;
use pb::connutils::v1 as api;
use pb::schema::v1::{schema::Type, Schema};

/// The metadata key a plugin's calls carry its token in.
pub const TOKEN_METADATA: &str = "conduit-connector-token";

/// One registered schema text.
#[derive(Clone)]
struct Stored {
    id: i32,
    kind: i32,
    text: Vec<u8>,
}

/// Subjects and their versions.
#[derive(Default)]
pub struct SchemaRegistry {
    /// Every distinct (type, text), by id - 1.
    schemas: Vec<Stored>,
    /// (type, text) -> id.
    ids: HashMap<(i32, Vec<u8>), i32>,
    /// subject -> ids of its versions, in order (version n at index n - 1).
    subjects: HashMap<String, Vec<i32>>,
}

/// Why a schema call failed; the messages are the protocol's.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// No such subject.
    #[error("schema subject not found")]
    SubjectNotFound,
    /// The subject has no such version.
    #[error("schema version not found")]
    VersionNotFound,
    /// The schema is not a schema of its type.
    #[error("invalid schema")]
    InvalidSchema,
}

impl SchemaRegistry {
    /// Register `text` of `kind` under `subject`; the same text again answers the version it
    /// has.
    pub fn create(&mut self, subject: &str, kind: i32, text: &[u8]) -> Result<Schema, SchemaError> {
        // Conduit registers Avro schemas only; an Avro schema is JSON (a name, an object or
        // a union array).
        if kind != Type::Avro as i32
            || subject.is_empty()
            || serde_json::from_slice::<serde_json::Value>(text).is_err()
        {
            return Err(SchemaError::InvalidSchema);
        }
        let key = (kind, text.to_vec());
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = i32::try_from(self.schemas.len() + 1)
                    .map_err(|_| SchemaError::InvalidSchema)?;
                self.schemas.push(Stored {
                    id,
                    kind,
                    text: text.to_vec(),
                });
                self.ids.insert(key, id);
                id
            }
        };
        let versions = self.subjects.entry(subject.to_owned()).or_default();
        let version = match versions.iter().position(|v| *v == id) {
            Some(index) => index + 1,
            None => {
                versions.push(id);
                versions.len()
            }
        };
        Ok(self.schema(subject, version, id))
    }

    /// `subject`'s schema at `version`.
    pub fn get(&self, subject: &str, version: i32) -> Result<Schema, SchemaError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or(SchemaError::SubjectNotFound)?;
        let index = usize::try_from(version)
            .ok()
            .and_then(|v| v.checked_sub(1))
            .filter(|i| *i < versions.len())
            .ok_or(SchemaError::VersionNotFound)?;
        Ok(self.schema(subject, index + 1, versions[index]))
    }

    fn schema(&self, subject: &str, version: usize, id: i32) -> Schema {
        let stored = &self.schemas[(id - 1) as usize];
        Schema {
            subject: subject.to_owned(),
            version: version as i32,
            id: stored.id,
            r#type: stored.kind,
            bytes: stored.text.clone(),
        }
    }
}

/// The running utilities service: its address, the registry and the valid tokens.
pub struct Utilities {
    address: SocketAddr,
    registry: Mutex<SchemaRegistry>,
    tokens: Mutex<HashSet<String>>,
}

impl Utilities {
    /// The service, started on first use (loopback, a free port, its own thread).
    pub fn get() -> Result<Arc<Self>, String> {
        static UTILITIES: OnceLock<Result<Arc<Utilities>, String>> = OnceLock::new();
        UTILITIES.get_or_init(Self::start).clone()
    }

    fn start() -> Result<Arc<Self>, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("connector utilities: cannot listen on loopback: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("connector utilities: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("connector utilities: {e}"))?;
        let utilities = Arc::new(Self {
            address,
            registry: Mutex::new(SchemaRegistry::default()),
            tokens: Mutex::new(HashSet::new()),
        });
        let service = Service(utilities.clone());
        std::thread::Builder::new()
            .name("connector-utilities".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "connector utilities: no runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let incoming = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => tokio_stream::wrappers::TcpListenerStream::new(listener),
                        Err(error) => {
                            tracing::error!(%error, "connector utilities: cannot listen");
                            return;
                        }
                    };
                    let server = tonic::transport::Server::builder()
                        .tcp_nodelay(true)
                        .add_service(api::schema_service_server::SchemaServiceServer::new(
                            service,
                        ))
                        .serve_with_incoming(incoming);
                    if let Err(error) = server.await {
                        tracing::error!(%error, "connector utilities: the server failed");
                    }
                });
            })
            .map_err(|e| format!("connector utilities: cannot start its thread: {e}"))?;
        tracing::debug!(%address, "connector utilities listening");
        Ok(utilities)
    }

    /// Where plugins reach the service (`host:port`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Register a schema (as `CreateSchema`; WASM processors call it through the host).
    pub fn create_schema(
        &self,
        subject: &str,
        kind: i32,
        text: &[u8],
    ) -> Result<Schema, SchemaError> {
        self.registry
            .lock()
            .expect("registry lock")
            .create(subject, kind, text)
    }

    /// A subject's schema at a version (as `GetSchema`).
    pub fn get_schema(&self, subject: &str, version: i32) -> Result<Schema, SchemaError> {
        self.registry
            .lock()
            .expect("registry lock")
            .get(subject, version)
    }

    /// Accept calls carrying `token` (until it is withdrawn).
    pub fn register(&self, token: &str) {
        self.tokens
            .lock()
            .expect("tokens lock")
            .insert(token.to_owned());
    }

    /// Refuse calls carrying `token` from now on.
    pub fn withdraw(&self, token: &str) {
        self.tokens.lock().expect("tokens lock").remove(token);
    }

    fn check<T>(&self, request: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let token = request
            .metadata()
            .get(TOKEN_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if self.tokens.lock().expect("tokens lock").contains(token) {
            Ok(())
        } else {
            Err(tonic::Status::unauthenticated(format!(
                "{token:?}: invalid token"
            )))
        }
    }
}

struct Service(Arc<Utilities>);

fn status(error: SchemaError) -> tonic::Status {
    let message = error.to_string();
    match error {
        SchemaError::InvalidSchema => tonic::Status::invalid_argument(message),
        SchemaError::SubjectNotFound | SchemaError::VersionNotFound => {
            tonic::Status::not_found(message)
        }
    }
}

#[tonic::async_trait]
impl api::schema_service_server::SchemaService for Service {
    async fn create_schema(
        &self,
        request: tonic::Request<api::CreateSchemaRequest>,
    ) -> Result<tonic::Response<api::CreateSchemaResponse>, tonic::Status> {
        self.0.check(&request)?;
        let request = request.into_inner();
        let schema = self
            .0
            .registry
            .lock()
            .expect("registry lock")
            .create(&request.subject, request.r#type, &request.bytes)
            .map_err(status)?;
        tracing::debug!(subject = %schema.subject, version = schema.version, "schema registered");
        Ok(tonic::Response::new(api::CreateSchemaResponse {
            schema: Some(schema),
        }))
    }

    async fn get_schema(
        &self,
        request: tonic::Request<api::GetSchemaRequest>,
    ) -> Result<tonic::Response<api::GetSchemaResponse>, tonic::Status> {
        self.0.check(&request)?;
        let request = request.into_inner();
        let schema = self
            .0
            .registry
            .lock()
            .expect("registry lock")
            .get(&request.subject, request.version)
            .map_err(status)?;
        Ok(tonic::Response::new(api::GetSchemaResponse {
            schema: Some(schema),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVRO: i32 = Type::Avro as i32;

    #[test]
    fn versions_count_per_subject_and_texts_share_ids() {
        let mut registry = SchemaRegistry::default();
        let a = br#"{"type":"record","name":"a","fields":[]}"#;
        let b = br#"{"type":"record","name":"b","fields":[]}"#;
        let first = registry.create("s", AVRO, a).unwrap();
        assert_eq!((first.version, first.id), (1, 1));
        assert_eq!(registry.create("s", AVRO, a).unwrap().version, 1);
        let second = registry.create("s", AVRO, b).unwrap();
        assert_eq!((second.version, second.id), (2, 2));
        let other = registry.create("t", AVRO, b).unwrap();
        assert_eq!(
            (other.subject.as_str(), other.version, other.id),
            ("t", 1, 2)
        );
        assert_eq!(registry.get("s", 2).unwrap().bytes, b.to_vec());
        assert_eq!(registry.get("s", 3), Err(SchemaError::VersionNotFound));
        assert_eq!(registry.get("s", 0), Err(SchemaError::VersionNotFound));
        assert_eq!(registry.get("u", 1), Err(SchemaError::SubjectNotFound));
    }

    #[test]
    fn only_avro_json_is_a_schema() {
        let mut registry = SchemaRegistry::default();
        assert_eq!(
            registry.create("s", AVRO, b"not json"),
            Err(SchemaError::InvalidSchema)
        );
        assert_eq!(
            registry.create("s", Type::Unspecified as i32, b"\"string\""),
            Err(SchemaError::InvalidSchema)
        );
        assert!(registry.create("s", AVRO, b"\"string\"").is_ok());
        // The protocol's client maps these exact messages to its errors.
        assert_eq!(
            SchemaError::SubjectNotFound.to_string(),
            "schema subject not found"
        );
        assert_eq!(
            SchemaError::VersionNotFound.to_string(),
            "schema version not found"
        );
        assert_eq!(SchemaError::InvalidSchema.to_string(), "invalid schema");
    }
}
