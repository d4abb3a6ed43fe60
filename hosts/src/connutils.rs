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
//! The schemas live in the server's registry (installed with [`install_registry`]):
//! the built-in one keeps them as events in the log, so they survive restarts and replays
//! with their ids.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use culvert_plugins::schema::{RegisteredSchema, SchemaError, SchemaRegistry, SchemaType};

use crate::pb;
use pb::connutils::v1 as api;
use pb::schema::v1::{schema::Type, Schema};

/// The metadata key a plugin's calls carry its token in.
pub const TOKEN_METADATA: &str = "conduit-connector-token";

/// A schema as the protocol carries it.
fn to_proto(schema: RegisteredSchema) -> Schema {
    Schema {
        subject: schema.subject,
        version: schema.version as i32,
        id: schema.id as i32,
        r#type: match schema.schema_type {
            SchemaType::Avro => Type::Avro as i32,
        },
        bytes: schema.text.into_bytes(),
    }
}

/// The registry the service (and the WASM host) answers from.
static REGISTRY: RwLock<Option<Arc<dyn SchemaRegistry>>> = RwLock::new(None);

/// Serve `registry` to plugins from now on. The server installs its registry at start,
/// before any plugin runs; until then schema calls answer UNAVAILABLE.
pub fn install_registry(registry: Arc<dyn SchemaRegistry>) {
    *REGISTRY.write().expect("registry lock") = Some(registry);
}

/// The registry installed with [`install_registry`], if one is.
pub fn installed_registry() -> Option<Arc<dyn SchemaRegistry>> {
    REGISTRY.read().expect("registry lock").clone()
}

/// The running utilities service: its address, the registry and the valid tokens.
pub struct Utilities {
    address: SocketAddr,
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

    fn registry(&self) -> Result<Arc<dyn SchemaRegistry>, SchemaError> {
        REGISTRY
            .read()
            .expect("registry lock")
            .clone()
            .ok_or_else(|| SchemaError::Unavailable("no schema registry configured".into()))
    }

    /// Register a schema (as `CreateSchema`; WASM processors call it through the host).
    /// `kind` is the protocol's schema type; Conduit registers Avro schemas only.
    pub fn create_schema(
        &self,
        subject: &str,
        kind: i32,
        text: &[u8],
    ) -> Result<Schema, SchemaError> {
        if kind != Type::Avro as i32 {
            return Err(SchemaError::InvalidSchema(format!(
                "schema type {kind} is not supported; Conduit registers Avro schemas only"
            )));
        }
        let text = std::str::from_utf8(text)
            .map_err(|_| SchemaError::InvalidSchema("the schema is not UTF-8 text".into()))?;
        self.registry()?
            .create(subject, SchemaType::Avro, text)
            .map(to_proto)
    }

    /// A subject's schema at a version (as `GetSchema`).
    pub fn get_schema(&self, subject: &str, version: i32) -> Result<Schema, SchemaError> {
        let version = u32::try_from(version).map_err(|_| SchemaError::VersionNotFound)?;
        self.registry()?.get(subject, version).map(to_proto)
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

/// A registry error as the protocol's status: the exact messages its client maps to error
/// values (the detail of an invalid schema goes to the log).
fn status(error: SchemaError) -> tonic::Status {
    match error {
        SchemaError::InvalidSchema(detail) => {
            tracing::warn!(%detail, "a plugin registered an invalid schema");
            tonic::Status::invalid_argument("invalid schema")
        }
        SchemaError::SubjectNotFound | SchemaError::VersionNotFound => {
            tonic::Status::not_found(error.to_string())
        }
        SchemaError::IdNotFound(_) => tonic::Status::not_found(error.to_string()),
        SchemaError::Unavailable(_) => tonic::Status::unavailable(error.to_string()),
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
        let utilities = self.0.clone();
        let schema = tokio::task::spawn_blocking(move || {
            utilities.create_schema(&request.subject, request.r#type, &request.bytes)
        })
        .await
        .map_err(|e| tonic::Status::internal(format!("schema registration failed: {e}")))?
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
            .get_schema(&request.subject, request.version)
            .map_err(status)?;
        Ok(tonic::Response::new(api::GetSchemaResponse {
            schema: Some(schema),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_messages_the_protocol_maps() {
        let cases = [
            (SchemaError::SubjectNotFound, "schema subject not found"),
            (SchemaError::VersionNotFound, "schema version not found"),
            (SchemaError::InvalidSchema("bad".into()), "invalid schema"),
        ];
        for (error, message) in cases {
            assert_eq!(status(error).message(), message);
        }
        assert_eq!(
            status(SchemaError::Unavailable("x".into())).code(),
            tonic::Code::Unavailable
        );
    }
}
