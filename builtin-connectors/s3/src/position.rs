//! Source positions, in the text form of Conduit's S3 connector: the object key, `_`, a
//! mode letter (`s` snapshot, `c` changes) and a Unix time in seconds, e.g.
//! `orders/1.json_c1634049397`.
//!
//! What the parts mean here (see the crate docs for how this differs from Conduit):
//!
//! * `KEY_sT`: the snapshot has read every object up to `KEY` (in the bucket's key order);
//!   `T` is the second from which changes are read once the snapshot ends.
//! * `KEY_cT`: changes are read in the order (last-modified second, key); every change up
//!   to and including (`T`, `KEY`) has been read. `_cT` (no key) reads every change of
//!   second `T` and later.

use culvert_domain::Position;
use culvert_plugins::connector::PluginError;

/// Where a source stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// Reading the snapshot: every key up to `after` is read (`None`: none yet); changes
    /// are read from second `from` once it ends.
    Snapshot {
        /// The last key read.
        after: Option<String>,
        /// The first second whose changes the change reader looks at.
        from: i64,
    },
    /// Reading changes: every change up to (`second`, `key`) is read.
    Changes {
        /// The last-modified second of the last change read.
        second: i64,
        /// Its key (empty: before every key of that second).
        key: String,
    },
}

impl Cursor {
    /// The position's text form.
    pub fn to_position(&self) -> Position {
        let text = match self {
            Self::Snapshot { after, from } => {
                format!("{}_s{from}", after.as_deref().unwrap_or_default())
            }
            Self::Changes { second, key } => format!("{key}_c{second}"),
        };
        Position(text.into_bytes())
    }

    /// A position's cursor; positions written by Conduit's connector parse too.
    pub fn parse(position: &Position) -> Result<Self, PluginError> {
        let invalid = |reason: &str| PluginError::InvalidPosition {
            position: String::from_utf8_lossy(&position.0).into_owned(),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(&position.0)
            .map_err(|_| invalid("an S3 position is UTF-8 text"))?;
        let (key, rest) = text
            .rsplit_once('_')
            .ok_or_else(|| invalid("no '_' before the mode and time"))?;
        let mut chars = rest.chars();
        let mode = chars
            .next()
            .ok_or_else(|| invalid("no mode ('s' or 'c') after the last '_'"))?;
        let seconds: i64 = chars
            .as_str()
            .parse()
            .map_err(|_| invalid("the time after the mode is not a number of seconds"))?;
        match mode {
            's' => Ok(Self::Snapshot {
                after: (!key.is_empty()).then(|| key.to_owned()),
                from: seconds,
            }),
            'c' => Ok(Self::Changes {
                second: seconds,
                key: key.to_owned(),
            }),
            _ => Err(invalid(
                "the mode after the last '_' is neither 's' nor 'c'",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_in_conduits_form() {
        for (cursor, text) in [
            (
                Cursor::Snapshot {
                    after: Some("a/b_c.json".into()),
                    from: 17,
                },
                "a/b_c.json_s17",
            ),
            (
                Cursor::Snapshot {
                    after: None,
                    from: 5,
                },
                "_s5",
            ),
            (
                Cursor::Changes {
                    second: 1634049397,
                    key: "thisIsAKey".into(),
                },
                "thisIsAKey_c1634049397",
            ),
            (
                Cursor::Changes {
                    second: 9,
                    key: String::new(),
                },
                "_c9",
            ),
        ] {
            let position = cursor.to_position();
            assert_eq!(position.0, text.as_bytes());
            assert_eq!(Cursor::parse(&position).unwrap(), cursor);
        }
    }

    #[test]
    fn bad_positions_say_why() {
        for (text, why) in [
            ("nokey", "no '_'"),
            ("k_x12", "neither 's' nor 'c'"),
            ("k_c", "not a number"),
            ("k_", "no mode"),
        ] {
            let error = Cursor::parse(&Position(text.as_bytes().to_vec()))
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
