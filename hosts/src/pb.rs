//! The generated protocol types (Culvert's copies of the protos under `proto/`): the
//! connector protocol, OpenCDC records, parameter specifications, go-plugin's controller,
//! the WASM processors' commands, schemas and the connector-utilities service.
#![allow(missing_docs, clippy::all)]

/// The connector protocol.
pub mod connector {
    /// Version 2.
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/connector.v2.rs"));
    }
}
/// OpenCDC records.
pub mod opencdc {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/opencdc.v1.rs"));
    }
}
/// Parameter specifications.
pub mod config {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/config.v1.rs"));
    }
}
/// go-plugin's own services.
pub mod plugin {
    include!(concat!(env!("OUT_DIR"), "/plugin.rs"));
}
/// The WASM processors' commands.
pub mod processor {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/processor.v1.rs"));
    }
}
/// Schemas.
pub mod schema {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/schema.v1.rs"));
    }
}
/// The connector utilities (served to standalone connectors).
pub mod connutils {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/connutils.v1.rs"));
    }
}
