//! Conduit's `builtin:s3` connector, native: an object source and a batched object
//! destination. Registered in `culvert-connectors`' registry.
