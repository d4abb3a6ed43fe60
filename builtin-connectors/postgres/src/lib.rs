//! Conduit's `builtin:postgres` connector, native: a snapshot + logical-replication (pgoutput)
//! source and a batched destination. Registered in `culvert-connectors`' registry.
