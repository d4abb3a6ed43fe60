//! The source's position: Conduit's JSON (`{"type":1,"snapshots":{...}}` during the
//! snapshot, `{"type":2,"last_lsn":"0/16B3748"}` for changes), with two more fields on
//! change positions that make a resume exact.
//!
//! A change's own WAL position (`last_lsn`, as Conduit records it) does not order changes:
//! pgoutput sends transactions in commit order, and a transaction that commits later may
//! hold changes written earlier in the WAL. So a change position also names its
//! transaction's commit LSN (`commit_lsn`, increasing along the stream) and the change's
//! index in it (`tx_index`, from 0). A resume skips every transaction that committed
//! before `commit_lsn` and the first `tx_index + 1` changes of that one. Conduit ignores
//! the extra fields; a Conduit position without them resumes from `last_lsn` (the slot's
//! confirmed position decides), as Conduit does.

use culvert_plugins::connector::PluginError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a position says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// 0 initial, 1 snapshot, 2 CDC (Conduit's numbering).
    #[serde(rename = "type")]
    pub kind: u8,
    /// Snapshot progress per table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<String, SnapshotProgress>,
    /// The change's WAL position.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_lsn: String,
    /// The commit LSN of the change's transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_lsn: Option<String>,
    /// The change's index in its transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_index: Option<u64>,
}

/// How far the snapshot of one table got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// The key of the last row read.
    pub last_read: i64,
    /// The largest key when the snapshot started: rows up to it are read.
    pub snapshot_end: i64,
}

/// Position kinds.
pub const KIND_SNAPSHOT: u8 = 1;
/// A change (logical replication).
pub const KIND_CDC: u8 = 2;

impl SourcePosition {
    /// Parse a position this connector (or Conduit's) wrote.
    pub fn parse(bytes: &[u8]) -> Result<Self, PluginError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let invalid = |reason: String| PluginError::InvalidPosition {
            position: String::from_utf8_lossy(bytes).into_owned(),
            reason,
        };
        let position: Self = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a postgres position: {e}")))?;
        if !position.last_lsn.is_empty() {
            Lsn::parse(&position.last_lsn).map_err(|e| invalid(e.to_string()))?;
        }
        if let Some(commit) = &position.commit_lsn {
            Lsn::parse(commit).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(position)
    }

    /// As bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a position always serialises")
    }

    /// Where a change position sits in the stream: (commit LSN, index), if it says.
    pub fn change_point(&self) -> Option<(Lsn, u64)> {
        let commit = Lsn::parse(self.commit_lsn.as_deref()?).ok()?;
        Some((commit, self.tx_index?))
    }
}

/// A WAL position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parse `X/Y` (hexadecimal halves).
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let bad = || PluginError::Other(format!("invalid LSN {text:?}: want X/Y in hex"));
        let (high, low) = text.split_once('/').ok_or_else(bad)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
        Ok(Self((u64::from(high) << 32) | u64::from(low)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip() {
        let lsn = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert!(Lsn::parse("nope").is_err());
    }

    #[test]
    fn positions_read_conduits_and_ours() {
        let conduit = br#"{"type":1,"snapshots":{"users":{"last_read":5,"snapshot_end":9}}}"#;
        let parsed = SourcePosition::parse(conduit).unwrap();
        assert_eq!(parsed.kind, KIND_SNAPSHOT);
        assert_eq!(
            parsed.snapshots["users"],
            SnapshotProgress {
                last_read: 5,
                snapshot_end: 9
            }
        );
        assert_eq!(parsed.to_bytes(), conduit.to_vec());
        let cdc = SourcePosition {
            kind: KIND_CDC,
            last_lsn: "0/16B3748".into(),
            commit_lsn: Some("0/16B3800".into()),
            tx_index: Some(3),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(cdc.to_bytes()).unwrap(),
            r#"{"type":2,"last_lsn":"0/16B3748","commit_lsn":"0/16B3800","tx_index":3}"#
        );
        assert_eq!(
            SourcePosition::parse(&cdc.to_bytes())
                .unwrap()
                .change_point(),
            Some((Lsn(0x16B3800), 3))
        );
        let conduit_cdc = SourcePosition::parse(br#"{"type":2,"last_lsn":"0/10"}"#).unwrap();
        assert_eq!(conduit_cdc.change_point(), None);
        assert!(SourcePosition::parse(b"garbage").is_err());
        assert!(SourcePosition::parse(br#"{"type":2,"last_lsn":"zz"}"#).is_err());
    }
}
