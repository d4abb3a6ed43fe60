//! A dead letter as Culvert keeps it: a record a pipeline's DLQ took, why, and where in the
//! pipeline it failed, so it can be read back and re-injected where it left off.
//!
//! The letter is stored as JSON by the supervisor (in the store's `dead_letters` column
//! family, see `culvert_store::letters`) and read back by the API.

use crate::Record;
use serde::{Deserialize, Serialize};

/// The part of a pipeline a record failed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stage {
    /// A processor of a source connector (between the source and the fan-in).
    Source {
        /// The source connector.
        connector: String,
    },
    /// A processor of the pipeline (between the fan-in and the fan-out).
    Pipeline,
    /// A processor of a destination connector, or the destination's write.
    Destination {
        /// The destination connector.
        connector: String,
    },
}

/// A record the DLQ took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The node that failed it, as Conduit names it in `conduit.dlq.nack.node.id`
    /// (`processor <id>`, `destination <id>`).
    pub node: String,
    /// The error.
    pub error: String,
    /// Where it failed.
    pub stage: Stage,
    /// The processor that failed it (`None`: the destination refused it on write).
    pub processor: Option<String>,
    /// The failing processor's place in its stage's chain, from 0 (the chain's length for
    /// a destination's write): a re-injected record resumes there.
    pub index: usize,
    /// The record as it reached the node that failed it (its position is its source's).
    pub record: Record,
}

impl DeadLetter {
    /// The letter as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a letter always serialises: string keys, finite data")
    }

    /// A letter as stored.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Change, Data, Operation, Position};

    #[test]
    fn a_letter_roundtrips_with_raw_and_structured_data() {
        let letter = DeadLetter {
            node: "processor p1".into(),
            error: "bad json".into(),
            stage: Stage::Destination {
                connector: "pipe:out".into(),
            },
            processor: Some("p1".into()),
            index: 1,
            record: Record {
                position: Position(vec![0, 159, 255]),
                operation: Operation::Update,
                metadata: [("k".to_owned(), "v".to_owned())].into(),
                key: Some(Data::Raw(b"\x00key".to_vec())),
                payload: Change {
                    before: Some(Data::Raw(b"{not json".to_vec())),
                    after: Some(Data::Structured(
                        serde_json::json!({"a": 1, "b": [true, null]})
                            .as_object()
                            .unwrap()
                            .clone()
                            .into(),
                    )),
                },
            },
        };
        assert_eq!(DeadLetter::decode(&letter.encode()).unwrap(), letter);
        let pipeline = DeadLetter {
            stage: Stage::Pipeline,
            processor: None,
            ..letter
        };
        assert_eq!(DeadLetter::decode(&pipeline.encode()).unwrap(), pipeline);
    }
}
