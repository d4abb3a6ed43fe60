//! `google.protobuf.Timestamp` with protojson's exact JSON form.
//!
//! pbjson-types writes timestamps with a `+00:00` offset; protojson (and so grpc-gateway
//! and every Conduit client) writes `Z` with 0, 3, 6 or 9 fractional digits, e.g.
//! `2024-01-01T10:00:00.123456Z`. This type is the same protobuf message with that JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::Error as _;

/// A point in time: seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second, 0..=999_999_999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.seconds, u32::try_from(self.nanos).ok()?)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(at) = self.to_datetime() else {
            return Err(serde::ser::Error::custom(format!(
                "timestamp out of range: {}s {}ns",
                self.seconds, self.nanos
            )));
        };
        serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let at = DateTime::parse_from_rfc3339(&text)
            .map_err(|e| D::Error::custom(format!("invalid RFC 3339 timestamp {text:?}: {e}")))?
            .with_timezone(&Utc);
        Ok(Self {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn json_uses_z_and_the_fewest_of_0_3_6_9_fraction_digits() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (123_000_000, "1970-01-01T00:00:00.123Z"),
            (123_456_000, "1970-01-01T00:00:00.123456Z"),
            (123_456_789, "1970-01-01T00:00:00.123456789Z"),
        ];
        for (nanos, text) in cases {
            let ts = Timestamp { seconds: 0, nanos };
            assert_eq!(serde_json::to_value(ts).unwrap(), text);
        }
        let parsed: Timestamp = serde_json::from_str("\"2024-01-01T12:00:00.5+02:00\"").unwrap();
        assert_eq!(
            serde_json::to_value(parsed).unwrap(),
            "2024-01-01T10:00:00.500Z"
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::to_value(Timestamp {
            seconds: 0,
            nanos: -1
        })
        .is_err());
    }

    proptest! {
        #[test]
        fn json_round_trips(seconds in -62_135_596_800i64..253_402_300_799, nanos in 0..1_000_000_000i32) {
            let ts = Timestamp { seconds, nanos };
            let json = serde_json::to_string(&ts).unwrap();
            prop_assert!(json.ends_with("Z\""));
            prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
        }
    }
}
