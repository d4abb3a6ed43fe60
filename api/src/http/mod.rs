//! The HTTP API: what grpc-gateway serves for Conduit, on poem + poem-openapi.
//!
//! Every route calls the same in-process [`Api`] the gRPC server runs, so the two can never
//! disagree. Bodies are protojson exactly as grpc-gateway writes them (see [`schema`]).
//! Errors have grpc-gateway's shape, `{"code": <gRPC code>, "message": ..., "details": [...]}`,
//! with its HTTP status for the code; unknown routes answer 404 and a wrong method on a
//! known path 501, as grpc-gateway does. A streaming route's error, even before its first
//! message, is a `{"error": {...}}` line instead, as grpc-gateway streams it.
//!
//! Besides `/v1/...` and `/info` the port serves `/healthz` (`?service=NAME`), `/readyz`,
//! `/metrics` (Prometheus, when [`HttpOptions::metrics`] is given; behind authentication),
//! the OpenAPI document at `/openapi/api/v1/api.swagger.json` and Swagger UI at `/openapi/`
//! (its assets are compiled in, so it works offline). Any route also answers over a
//! WebSocket, and the origins the operator lists may call it from a browser (module
//! `browser`). Every other `GET` serves the built-in web UI (module `ui`).
//!
//! With authentication on ([`crate::auth`]) every request but `/healthz`, `/readyz` and the
//! web UI's page and assets (which hold no data) needs a bearer token or a client
//! certificate: 401 with `WWW-Authenticate: Bearer` and
//! grpc-gateway's error body otherwise (429 over the rate limit). The verified identity is
//! handed to the in-process services in the tonic request's extensions. Connections are
//! accepted by our own loop (module `server`, TLS through [`crate::tls`]), which tells
//! each request its connection's verified client certificate.

mod browser;
mod dead_letters;
mod events;
mod payload;
mod positions;
mod routes;
pub(crate) mod schema;
mod server;
mod ui;

use crate::auth::{Auth, Authenticated, Security};
use crate::error;
use crate::pb::opencdc::v1::Record;
use crate::Api;
pub use browser::{Cors, CorsError};
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type as _;
use poem_openapi::{ApiResponse, Object, OpenApiService};
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use tokio_stream::StreamExt as _;
use tonic::codegen::BoxStream;

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// What `/metrics` serves (`None`: no `/metrics` route).
    pub metrics: Option<MetricsSource>,
    /// The browser origins allowed to call the API from another origin (none by default).
    pub cors: Cors,
    /// Serve the built-in web UI at `/` (on by default, as in Conduit).
    pub ui: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        // The same limit gRPC puts on a received message by default.
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            metrics: None,
            cors: Cors::default(),
            ui: true,
        }
    }
}

/// The Prometheus document `/metrics` serves: its content type and a function that renders
/// it at each scrape (the API knows nothing of the registry behind it).
#[derive(Clone)]
pub struct MetricsSource {
    /// The document's `Content-Type`.
    pub content_type: &'static str,
    /// Renders the document.
    pub render: std::sync::Arc<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSource")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// The OpenAPI document's title and version, as Conduit's.
const TITLE: &str = "Conduit REST API";
const VERSION: &str = "v0.1.0";
/// Where Conduit serves its document (under the Swagger UI's folder).
pub const OPENAPI_PATH: &str = "/openapi/api/v1/api.swagger.json";

/// grpc-gateway's error body: a `google.rpc.Status` in JSON.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(rename = "google.rpc.Status")]
pub struct RpcStatus {
    /// The gRPC status code (not the HTTP status).
    pub code: i32,
    /// What went wrong, naming the entity and field.
    pub message: String,
    /// Structured details: a `google.rpc.ErrorInfo` with a stable `reason`.
    pub details: Vec<serde_json::Value>,
}

/// An error answer of the HTTP API.
#[derive(Debug)]
pub(crate) struct ApiError {
    http: StatusCode,
    body: RpcStatus,
}

impl ApiError {
    fn new(http: StatusCode, code: tonic::Code, message: impl Into<String>) -> Self {
        Self {
            http,
            body: RpcStatus {
                code: code as i32,
                message: message.into(),
                details: vec![],
            },
        }
    }

    pub(crate) fn from_status(status: &tonic::Status) -> Self {
        let http = StatusCode::from_u16(error::http_status(status.code()))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let details = error::error_info(status)
            .map(|info| {
                vec![serde_json::json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": info.reason,
                    "domain": info.domain,
                    "metadata": info.metadata,
                })]
            })
            .unwrap_or_default();
        Self {
            http,
            body: RpcStatus {
                code: status.code() as i32,
                message: status.message().to_owned(),
                details,
            },
        }
    }

    /// As 412 Precondition Failed when `condition` holds and the call was ABORTED (a
    /// version mismatch on an `If-Match` request); unchanged otherwise.
    pub(crate) fn precondition_failed_if(mut self, condition: bool) -> Self {
        if condition && self.body.code == tonic::Code::Aborted as i32 {
            self.http = StatusCode::PRECONDITION_FAILED;
        }
        self
    }

    /// A body that is not valid JSON for the request message.
    pub(crate) fn invalid_body(problem: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
            format!("invalid request body: {problem}"),
        )
    }

    pub(crate) fn internal(message: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
            message,
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.body.message, self.http)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        Response::builder()
            .status(self.http)
            .content_type("application/json")
            .body(body)
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "An error: the gRPC status code, a message and details.",
                status: None,
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: RpcStatus::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        RpcStatus::register(registry);
    }
}

impl From<ApiError> for poem::Error {
    fn from(e: ApiError) -> Self {
        let status = e.http;
        poem::Error::new(e, status)
    }
}

/// Await a unary call of the in-process service.
async fn call<T>(
    reply: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    reply
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| ApiError::from_status(&status))
}

/// The gRPC request for an HTTP call, carrying the headers the services read as metadata
/// (the caller's `x-request-id`, `culvert-actor` and `culvert-reason`) and, when
/// authentication is on, the identity the HTTP middleware verified (as an extension, which
/// no client can set).
fn grpc_request<T>(req: &Request, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for name in ["x-request-id", "culvert-actor", "culvert-reason"] {
        if let Some(value) = req.headers().get(name) {
            // The raw bytes (a reason may be UTF-8 text); the service checks them.
            if let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes()) {
                request.metadata_mut().insert(name, value);
            }
        }
    }
    if let Some(identity) = req.extensions().get::<Authenticated>() {
        request.extensions_mut().insert(identity.clone());
    }
    request
}

/// Every value of a query parameter given under any of `names` (grpc-gateway binds a field
/// from its proto name or its JSON name).
fn query_values(req: &Request, names: &[&str]) -> Vec<String> {
    let pairs: Vec<(String, String)> = req.params().unwrap_or_default();
    pairs
        .into_iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v)
        .collect()
}

/// A server stream as grpc-gateway sends it: one JSON object per line, `{"result":
/// message}`, or `{"error": status}` if the stream fails.
pub(crate) struct LineStream<M> {
    status: StatusCode,
    body: poem::Body,
    message: std::marker::PhantomData<M>,
}

/// A stream of OpenCDC records (the Inspect routes).
pub(crate) type RecordStream = LineStream<Record>;

/// Call a server-streaming method and send what it streams as [`LineStream`] lines, each
/// message through `result`. A call that fails before its first message (an unknown id)
/// is answered as grpc-gateway answers it: grpc-go hands that failure to the first read of
/// the stream, not to the call, so the gateway sends the error's HTTP status with one
/// `{"error": status}` line.
async fn open_stream<T: Send + 'static, M: serde::Serialize + Send + 'static>(
    reply: impl Future<Output = Result<tonic::Response<BoxStream<T>>, tonic::Status>>,
    result: fn(T) -> Option<M>,
) -> LineStream<M> {
    let stream = match call(reply).await {
        Ok(stream) => stream,
        Err(error) => {
            return LineStream {
                status: error.http,
                body: error_line(error).into(),
                message: std::marker::PhantomData,
            }
        }
    };
    let lines = stream.map(move |item| {
        let line = match item {
            Ok(message) => {
                let mut bytes =
                    serde_json::to_vec(&serde_json::json!({ "result": result(message) }))
                        .unwrap_or_default();
                bytes.push(b'\n');
                bytes
            }
            Err(status) => error_line(ApiError::from_status(&status)),
        };
        Ok::<_, std::io::Error>(line)
    });
    LineStream {
        status: StatusCode::OK,
        body: poem::Body::from_bytes_stream(lines),
        message: std::marker::PhantomData,
    }
}

/// A stream's last line: `{"error": status}`.
fn error_line(error: ApiError) -> Vec<u8> {
    let mut bytes =
        serde_json::to_vec(&serde_json::json!({ "error": error.body })).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

impl<M: Send> IntoResponse for LineStream<M> {
    fn into_response(self) -> Response {
        Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(self.body)
    }
}

impl<M: payload::Described + Send> ApiResponse for LineStream<M> {
    fn meta() -> MetaResponses {
        let mut line = poem_openapi::registry::MetaSchema::new("object");
        line.title = Some("a line of the stream".to_owned());
        line.properties = vec![("result", M::schema_ref())];
        MetaResponses {
            responses: vec![MetaResponse {
                description: "A stream of messages, one JSON object per line.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: MetaSchemaRef::Inline(Box::new(line)),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        M::register(registry);
    }
}

/// The OpenAPI service for the routes (used for the document and the Swagger UI).
fn openapi(
    api: Api,
) -> OpenApiService<
    (
        routes::Routes,
        events::EventRoutes,
        positions::PositionRoutes,
        dead_letters::DeadLetterRoutes,
    ),
    (),
> {
    OpenApiService::new(
        (
            routes::Routes { api: api.clone() },
            events::EventRoutes { api: api.clone() },
            positions::PositionRoutes { api: api.clone() },
            dead_letters::DeadLetterRoutes { api },
        ),
        TITLE,
        VERSION,
    )
    .description("Culvert's HTTP API, compatible with Conduit's (grpc-gateway) REST API.")
}

/// The OpenAPI 3 document of the HTTP API, as JSON.
pub fn openapi_document(api: Api) -> String {
    openapi(api).spec()
}

/// The whole HTTP application: API routes, health, OpenAPI document and UI, behind `auth`.
pub fn app(api: Api, options: &HttpOptions, auth: Auth) -> impl Endpoint<Output = Response> {
    let service = openapi(api.clone());
    let docs_api = api.clone();
    let health_api = api.clone();
    let ready_api = api;
    let route = poem::Route::new()
        .nest("/", service)
        .at(
            "/healthz",
            poem::get(poem::endpoint::make(move |req: Request| {
                let api = health_api.clone();
                async move { healthz(&api, &req).await }
            })),
        )
        .at(
            "/readyz",
            poem::get(poem::endpoint::make(move |_req: Request| {
                let api = ready_api.clone();
                async move { readyz(&api).await }
            })),
        )
        .nest("/openapi", openapi_ui(docs_api));
    let route = match options.metrics.clone() {
        // Rendering reads /proc and walks the registry: off the async workers.
        Some(metrics) => route.at(
            "/metrics",
            poem::get(poem::endpoint::make(move |_req: Request| {
                let metrics = metrics.clone();
                async move {
                    let render = metrics.render.clone();
                    let body = tokio::task::spawn_blocking(move || render())
                        .await
                        .unwrap_or_default();
                    Response::builder()
                        .content_type(metrics.content_type)
                        .body(body)
                }
            })),
        ),
        None => route,
    };
    let cors = options.cors.clone();
    let websocket_cors = options.cors.clone();
    route
        .around(gateway_error)
        .around({
            let limit = options.max_body_bytes;
            move |ep, req| body_limit(ep, req, limit)
        })
        // Any route over a WebSocket, once the caller is authenticated.
        .around(move |ep, req| browser::websocket(ep, req, websocket_cors.clone()))
        // One dynamic call here keeps the nested middleware types within the compiler's
        // depth limit.
        .boxed()
        // Before the body is read: an unauthenticated client's body is never buffered.
        .around(move |ep, req| authenticate(ep, req, auth.clone()))
        // The UI's page holds no data: open, so a browser can load it and sign in.
        .around({
            let enabled = options.ui;
            move |ep, req| ui::serve(ep, req, enabled)
        })
        // Outside authentication: a browser's preflight carries no credentials.
        .around(move |ep, req| browser::cors(ep, req, cors.clone()))
        .around(request_id)
        .around(pretty)
}

/// `/openapi`: a redirect to `/openapi/`, the Swagger UI there, and the document under it.
///
/// Both are built for each request rather than kept: the UI page embeds Swagger UI's script
/// (1.5 MB) and the document, and is rarely asked for, so a server does not hold it (nor
/// touch the script's pages) for its whole life. Building takes a few milliseconds, on a
/// blocking thread.
fn openapi_ui(api: Api) -> impl Endpoint {
    let document = OPENAPI_PATH
        .strip_prefix("/openapi")
        .expect("the document lives under /openapi");
    let document_api = api.clone();
    poem::Route::new()
        .at(
            document,
            poem::get(poem::endpoint::make(move |_req: Request| {
                let api = document_api.clone();
                async move {
                    let spec = tokio::task::spawn_blocking(move || openapi(api).spec())
                        .await
                        .map_err(internal_error)?;
                    Ok::<_, poem::Error>(
                        Response::builder()
                            .content_type("application/json")
                            .body(spec),
                    )
                }
            })),
        )
        .nest(
            "/",
            poem::endpoint::make(move |req: Request| {
                let api = api.clone();
                async move {
                    // Only the UI's own pages are built; any other path is not found at once.
                    if !matches!(req.uri().path(), "/" | "" | "/oauth-receiver.html") {
                        return Err(poem::error::NotFoundError.into());
                    }
                    // The UI endpoint borrows its service; both live on the blocking thread,
                    // whose runtime handle drives the (immediate) call.
                    tokio::task::spawn_blocking(move || {
                        let service = openapi(api);
                        let ui = service.swagger_ui();
                        tokio::runtime::Handle::current()
                            .block_on(ui.call(req))
                            .map(IntoResponse::into_response)
                    })
                    .await
                    .map_err(internal_error)?
                }
            }),
        )
        .around(|ep, req: Request| async move {
            if req.original_uri().path() == "/openapi" {
                return Ok(Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, "/openapi/")
                    .finish());
            }
            ep.call(req).await.map(IntoResponse::into_response)
        })
}

/// A blocking task that did not finish (it panicked), as a 500.
fn internal_error(e: tokio::task::JoinError) -> poem::Error {
    poem::Error::from_string(e.to_string(), StatusCode::INTERNAL_SERVER_ERROR)
}

/// Serve the HTTP API on `listener` until `shutdown` completes, without authentication or
/// TLS; requests in flight finish first (for at most 30 s).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    api: Api,
    options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_http_secured(listener, api, options, &Security::default(), shutdown).await
}

/// As [`serve_http`], with `security`'s authentication, rate limit and TLS.
pub async fn serve_http_secured(
    listener: tokio::net::TcpListener,
    api: Api,
    options: HttpOptions,
    security: &Security,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    tracing::debug!(address = ?listener.local_addr(), "HTTP API serving");
    let tls = security
        .tls
        .as_ref()
        .map(crate::tls::TlsSettings::http_acceptor);
    server::serve(
        listener,
        app(api, &options, security.auth.clone()),
        tls,
        shutdown,
        Duration::from_secs(30),
    )
    .await
}

/// The paths open to everyone when authentication is on (load balancers' health checks).
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Let a request in (with its [`Authenticated`] identity in its extensions) or answer 401
/// (`WWW-Authenticate: Bearer`) or 429 (`Retry-After`) with grpc-gateway's error body.
async fn authenticate<E: Endpoint>(ep: E, mut req: Request, auth: Auth) -> poem::Result<Response> {
    if OPEN_PATHS.contains(&req.uri().path()) {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let subject = req
        .extensions()
        .get::<server::Connection>()
        .and_then(|c| c.certificate_subject.clone());
    let peer = match req.remote_addr().0 {
        poem::Addr::SocketAddr(address) => Some(address.ip()),
        _ => None,
    };
    // A browser's WebSocket carries its token as a subprotocol (module `browser`).
    let websocket_bearer = if req.headers().contains_key(header::AUTHORIZATION) {
        None
    } else {
        browser::websocket_bearer(&req)
    };
    let admitted = auth.admit(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .or(websocket_bearer.as_deref().map(str::as_bytes)),
        subject.as_deref(),
        peer,
    );
    match admitted {
        Ok(identity) => {
            if let Some(identity) = identity {
                req.extensions_mut().insert(identity);
            }
            ep.call(req).await.map(IntoResponse::into_response)
        }
        Err(refusal) => {
            tracing::debug!(path = %req.uri().path(), ?peer, ?refusal, "HTTP request refused");
            let mut response = ApiError::from_status(&refusal.status()).into_response();
            let headers = response.headers_mut();
            if let Some(seconds) = refusal.retry_after_secs() {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            } else {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"culvert\""),
                );
            }
            Ok(response)
        }
    }
}

/// Turn errors raised before or around a handler (unknown route, wrong method, unreadable
/// body) into grpc-gateway's answers.
async fn gateway_error<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    match ep.call(req).await {
        Ok(response) => Ok(response.into_response()),
        Err(err) => Ok(error_response(err)),
    }
}

fn error_response(err: poem::Error) -> Response {
    if let Some(api_error) = err.downcast_ref::<ApiError>() {
        return ApiError {
            http: api_error.http,
            body: api_error.body.clone(),
        }
        .into_response();
    }
    let (http, code, message) = if err.is::<poem::error::NotFoundError>() {
        (
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
            "Not Found".to_owned(),
        )
    } else if err.is::<poem::error::MethodNotAllowedError>() {
        (
            StatusCode::NOT_IMPLEMENTED,
            tonic::Code::Unimplemented,
            "Method Not Allowed".to_owned(),
        )
    } else if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            err.to_string(),
        )
    } else if err.status().is_client_error() {
        (
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
            err.to_string(),
        )
    } else {
        tracing::error!(error = %err, "HTTP request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
            err.to_string(),
        )
    };
    ApiError::new(http, code, message).into_response()
}

/// Bodies over the limit are refused with 413 before any handler sees them; the body is
/// buffered here (it is small by then), so a lying `Content-Length` cannot get past.
async fn body_limit<E: Endpoint>(ep: E, mut req: Request, limit: usize) -> poem::Result<Response> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(too_large().into_response());
    }
    let body = req.take_body();
    if !body.is_empty() {
        match body.into_bytes_limit(limit).await {
            Ok(bytes) => req.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return Ok(too_large().into_response())
            }
            Err(e) => {
                return Ok(
                    ApiError::invalid_body(&format!("reading the body failed: {e}"))
                        .into_response(),
                )
            }
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Every request gets an `x-request-id` (the caller's, or a new UUID); it is passed to the
/// services as the correlation id of any event recorded, and echoed on the response.
async fn request_id<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<Response> {
    let id = match req.headers().get("x-request-id") {
        Some(value) if !value.is_empty() => value.clone(),
        _ => {
            let value = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value");
            req.headers_mut().insert("x-request-id", value.clone());
            value
        }
    };
    let mut response = ep.call(req).await?.into_response();
    response.headers_mut().insert("x-request-id", id);
    Ok(response)
}

/// `?pretty` (any value) or `Accept: application/json+pretty` indents JSON answers, as
/// Conduit's gateway does.
async fn pretty<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let wanted = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "pretty" || p.starts_with("pretty="))
    }) || req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json+pretty"));
    let response = ep.call(req).await?.into_response();
    let is_json = response
        .content_type()
        .is_some_and(|t| t.starts_with("application/json"));
    if !wanted || !is_json {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = body.into_vec().await.unwrap_or_default();
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) => serde_json::to_vec_pretty(&value).unwrap_or(bytes),
        // A record stream is several values; leave it as it is.
        Err(_) => bytes,
    };
    Ok(Response::from_parts(parts, body.into()))
}

async fn healthz(api: &Api, req: &Request) -> Response {
    let service = query_values(req, &["service"]).into_iter().next();
    if let Some(name) = service.filter(|s| !s.is_empty()) {
        if !crate::grpc::HEALTH_SERVICES.contains(&name.as_str()) {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                tonic::Code::NotFound,
                format!("service '{name}' not found"),
            )
            .into_response();
        }
    }
    let (status, text) = if api.readiness().await.is_ok() {
        (StatusCode::OK, "SERVING")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    };
    json_response(status, &serde_json::json!({ "status": text }))
}

async fn readyz(api: &Api) -> Response {
    let readiness = api.readiness().await;
    // Conduit's body: the pipelines' summary only once ready, its list of degraded ones
    // only when there is one, each with its status as Go's `pipeline.Status` prints it.
    let body = match readiness {
        Ok(()) => {
            let health = api.pipeline_health();
            let mut pipelines = serde_json::json!({
                "total": health.total,
                "running": health.running,
                "degraded": health.degraded.len(),
            });
            if !health.degraded.is_empty() {
                pipelines["degradedPipelines"] = health
                    .degraded
                    .iter()
                    .map(|(id, error)| {
                        let mut entry = serde_json::json!({"id": id, "status": "Degraded"});
                        if !error.is_empty() {
                            entry["error"] = serde_json::Value::String(error.clone());
                        }
                        entry
                    })
                    .collect();
            }
            serde_json::json!({"status": "ready", "pipelines": pipelines})
        }
        Err(reason) => serde_json::json!({"status": "unavailable", "reason": reason}),
    };
    let status = if readiness.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
}
