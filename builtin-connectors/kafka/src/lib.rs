//! Conduit's `builtin:kafka` connector, native: a consumer-group source and an idempotent
//! producer destination. Registered in `culvert-connectors`' registry.
