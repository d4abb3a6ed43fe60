//! End-to-end tests of the `culvert` binary, run as a real process on a real data directory.
//! One test binary (modules below) to keep link time down.

mod admin_cli;
mod conduit_parity;
mod config;
mod crash;
mod engine;
mod events_api;
mod export_import;
mod file_oracle;
mod grpc;
mod harness;
mod http;
mod http_client;
mod inspector;
mod logging;
mod metrics;
mod pg;
mod positions;
mod postgres_builtin;
mod postgres_builtin_bench;
mod postgres_builtin_kill;
mod postgres_builtin_parity;
mod postgres_standalone;
mod processors;
mod provisioning;
mod reload;
mod revert;
mod schema_registry;
mod security_auth;
mod security_secrets;
mod server;
mod standalone;
mod tools;
mod top;
mod versions;
mod wasm;
