//! Culvert's plugin hosts: the code that runs plugins that are not compiled in.
//!
//! * [`standalone`]: standalone connector plugins — Conduit's Go connectors, unchanged, as
//!   separate processes: discovery, launch, the go-plugin handshake, the connector protocol
//!   (`connector.v2`) over gRPC, lifecycle events, faults reported with the plugin's exit
//!   and last stderr lines; they implement the `culvert_plugins` `Source` and
//!   `Destination` traits, so the engine does not know them from built-ins;
//! * [`connutils`]: the connector-utilities services (the schema registry) the host serves
//!   to its plugins;
//! * [`wasm`]: WASM processors built with Conduit's processor SDK, run by wasmtime in a
//!   sandbox (no filesystem or network, memory and time limits), behind the `Processor`
//!   trait;
//! * [`egress`]: the one way out of that sandbox, Conduit's host-mediated HTTP egress
//!   (`conduit.http_request`), deny-all unless the operator and the processor opt in;
//! * [`stderr`]: what plugins write to stderr, cut into bounded lines and rate-limited
//!   before it reaches our logs;
//! * [`pb`]: the generated protocol types (our copies of Conduit's protos).
//!
//! This is the only crate that links wasmtime and speaks to plugin processes; the API and
//! provisioning see plugins only through `culvert_plugins`' registries.

pub mod connutils;
pub mod egress;
pub mod pb;
pub mod standalone;
pub mod stderr;
pub mod wasm;
