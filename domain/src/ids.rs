//! Identifier newtypes and the event-log stream naming.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// Identifies a pipeline. Generated (a UUID) for pipelines created over the API, chosen
    /// by the user for pipelines provisioned from configuration files.
    PipelineId
);
string_id!(
    /// Identifies a connector (a source or a destination of one pipeline).
    ConnectorId
);
string_id!(
    /// Identifies a processor (attached to a connector or to a pipeline).
    ProcessorId
);

/// A global sequence number in the event log: the first event has sequence 1, and every
/// appended event gets the next number, without gaps. `Seq(0)` means "before any event".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The position before the first event.
    pub const ZERO: Seq = Seq(0);

    /// The sequence number after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of an event stream: one stream per entity, `pipeline/<id>`, `connector/<id>`,
/// `processor/<id>` or `schema/<subject>`. A stream's version is the number of events in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(pub String);

impl StreamId {
    /// The stream of a pipeline.
    pub fn pipeline(id: &PipelineId) -> Self {
        Self(format!("pipeline/{id}"))
    }
    /// The stream of a connector.
    pub fn connector(id: &ConnectorId) -> Self {
        Self(format!("connector/{id}"))
    }
    /// The stream of a processor.
    pub fn processor(id: &ProcessorId) -> Self {
        Self(format!("processor/{id}"))
    }
    /// The stream of a schema-registry subject (every version registered under it).
    pub fn schema_subject(subject: &str) -> Self {
        Self(format!("schema/{subject}"))
    }
    /// The stream name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
