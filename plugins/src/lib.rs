//! Connector plugins.
//!
//! Built-in connectors run in process behind the same trait that standalone plugins (Go
//! connectors spoken to over gRPC) will implement, so the engine never knows which is
//! which. What is here so far:
//!
//! * [`connector`]: the [`Source`] and [`Destination`] traits, plugin specifications, and
//!   the [`Registry`] that resolves references like `builtin:generator@v0.1.0` and
//!   validates settings;
//! * [`spec`]: parameter specifications and the validation of connector settings against
//!   them, with conduit-commons' semantics, each error naming the setting;
//! * the built-ins: [`generator`], [`file`] and [`log`].

pub mod connector;
pub mod file;
pub mod generator;
pub mod log;
pub mod spec;

pub use connector::{
    ConnectorPlugin, Destination, LookupError, PluginError, Registry, Settings, Side, Source,
    Specification, ValidateError,
};
