//! Culvert's public APIs.
//!
//! Conduit's `api.v1` gRPC services (PipelineService, ConnectorService, ProcessorService,
//! InformationService and the deprecated PluginService), wire-compatible with Conduit's
//! own `api.proto`, so Conduit clients work unchanged.
//!
//! This layer is thin: it validates the shape of a request, turns it into a call on the
//! orchestrators (writes) or the read model (reads), and turns the result back into
//! protobuf; the HTTP API ([`http`]) calls the very same services in process. Every error
//! goes through one mapping ([`error`]) from domain errors to gRPC status codes. It holds no
//! state of its own. Pipelines, connectors and processors are read only from the
//! projections; the one exception is the event-log service (`culvert.api.v1.EventLogService`
//! and `/v1/events`), which is the log's own API and reads the log (read-only) to list,
//! watch and fold events.
//!
//! Who may call, as whom and how often is [`auth`]'s (bearer tokens, client certificates,
//! the audit actor, rate limits); [`tls`] serves both APIs over TLS. What any answer shows
//! of plugin settings is [`redact`]'s: sealed and sensitive values as `***`, never a secret.

pub mod auth;
mod convert;
mod dead_letters;
mod documents;
pub mod error;
mod events;
pub mod export;
mod grpc;
pub mod http;
mod inspect;
mod limits;
mod plugins;
mod positions;
pub mod redact;
pub mod tls;
pub mod wkt;

pub use auth::{Auth, AuthOptions, RateLimit, Security, TokenFile};
pub use grpc::{grpc_methods, serve_grpc, serve_grpc_secured, Api, GrpcMethod};
pub use http::{
    openapi_document, serve_http, serve_http_secured, Cors, CorsError, HttpOptions, MetricsSource,
};
pub use limits::GrpcOptions;
pub use tls::TlsSettings;

/// The protobuf messages and gRPC stubs generated from `proto/`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    /// Conduit's API (`api.v1`).
    pub mod api {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/api.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/api.v1.serde.rs"));
        }
    }
    /// Culvert's own API (`culvert.api.v1`): the event log and source positions.
    pub mod culvert {
        /// The API.
        pub mod api {
            /// Version 1.
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/culvert.api.v1.rs"));
                include!(concat!(env!("OUT_DIR"), "/culvert.api.v1.serde.rs"));
            }
        }
    }
    /// Parameter specifications (`config.v1`).
    pub mod config {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/config.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/config.v1.serde.rs"));
        }
    }
    /// OpenCDC records (`opencdc.v1`).
    pub mod opencdc {
        /// Version 1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/opencdc.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/opencdc.v1.serde.rs"));
        }
    }
}
