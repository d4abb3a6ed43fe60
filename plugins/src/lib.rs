//! The plugin contract: what every connector and processor implements, built-in or not.
//!
//! Built-in connectors (`culvert-connectors`) and processors (`culvert-processors`) run in
//! process behind the same traits that standalone plugins (Go connectors spoken to over
//! gRPC, WASM processors; both in `culvert-hosts`) implement, so the engine never knows
//! which is which. What is here:
//!
//! * [`connector`]: the [`Source`] and [`Destination`] traits, plugin specifications,
//!   [`PluginError`] with its retry class ([`ErrorKind`]), and the [`Registry`] that
//!   resolves references like `builtin:generator@v0.10.4` and validates settings;
//! * [`processor`]: the [`processor::Processor`] trait and processor specifications;
//! * [`schema`]: the [`schema::SchemaRegistry`] connectors and processors register and read
//!   schemas in;
//! * [`spec`]: parameter specifications and the validation of settings against them, with
//!   conduit-commons' semantics, each error naming the setting;
//! * [`testing`]: the cancel-safety harness every source's tests run it under.
//!
//! This crate is small on purpose: the API and provisioning validate settings through it
//! without compiling any connector, processor or WASM runtime.

pub mod connector;
pub mod processor;
pub mod schema;
pub mod spec;
pub mod testing;

pub use connector::{
    ConnectorPlugin, Destination, ErrorKind, Lifecycle, LookupError, PluginError, Prepare,
    ReadStage, Receipt, Refusals, Registry, Settings, Side, Source, Specification, ValidateError,
    IDLE_READ, SUBMITTED,
};
