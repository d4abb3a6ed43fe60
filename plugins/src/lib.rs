//! Connector and processor plugins: the contract, and the built-ins.
//!
//! Built-in connectors run in process behind the same traits that standalone plugins (Go
//! connectors spoken to over gRPC, WASM processors; both in the `culvert-hosts` crate)
//! implement, so the engine never knows which is which. What is here:
//!
//! * [`connector`]: the [`Source`] and [`Destination`] traits, plugin specifications, and
//!   the [`Registry`] that resolves references like `builtin:generator@v0.1.0` and
//!   validates settings;
//! * [`spec`]: parameter specifications and the validation of connector settings against
//!   them, with conduit-commons' semantics, each error naming the setting;
//! * the built-in connectors: [`generator`], [`file`] and [`log`];
//! * [`processor`]: the processor trait, the processor registry, `condition` handling and
//!   the built-in processors `field.set`, `field.exclude`, `field.rename` and `filter`;
//! * [`reference`]: field references (`.Payload.After.name`) as processors use them;
//! * [`testing`]: the cancel-safety harness that every source's tests run it under.
//!
//! The Go-template engine that conditions and `field.set` values are written in is the
//! `culvert-template` crate.

pub mod connector;
pub mod file;
pub mod generator;
pub mod log;
pub mod processor;
pub mod reference;
pub mod spec;
pub mod testing;

pub use connector::{
    ConnectorPlugin, Destination, ErrorKind, Lifecycle, LookupError, PluginError, Prepare,
    Registry, Settings, Side, Source, Specification, ValidateError, IDLE_READ,
};
