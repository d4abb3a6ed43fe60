//! A record's metadata: string keys to string values, in key order.
//!
//! Every record carries a few entries (`opencdc.createdAt`, `opencdc.readAt`, the source
//! connector, often the collection), so their in-memory form is on the hot path of every
//! pipeline. [`Metadata`] keeps them in one vector sorted by key, and each key and value is
//! a [`MetaText`]: text of up to 24 bytes is held inline (the timestamps, `v1`, most
//! collection names) and a `&'static str` made with [`MetaText::const_new`] is borrowed (the
//! standard keys, see [`crate::opencdc::metadata`]), so a typical record's metadata is one
//! allocation instead of a B-tree node and a string per key and value.
//!
//! It reads and writes as a JSON object with the keys in byte order, as Go's
//! `encoding/json` writes Conduit's `map[string]string`; the last of repeated keys wins.
//! Lookups are binary searches; an insert of a new key shifts the entries after it, which
//! is cheap for the handful a record has (building from an iterator sorts once).

use compact_str::CompactString;
/// `.to_compact_string()`: [`MetaText`] from a number (or anything `Display`) with no
/// intermediate `String`.
pub use compact_str::ToCompactString;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A metadata key or value: inline up to 24 bytes, borrowed when made from a static string
/// with [`MetaText::const_new`], allocated otherwise. Derefs to `str`.
pub type MetaText = CompactString;

/// A record's metadata: unique string keys to string values, iterated in key order.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// Sorted by key, keys unique.
    entries: Vec<(MetaText, MetaText)>,
}

impl Metadata {
    /// No entries (allocates nothing).
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// No entries, with room for `capacity` before reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Where `key` is: `Ok` with its index, or `Err` with where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        match self.position(key) {
            Some(i) => Ok(i),
            None => Err(self.entries.partition_point(|(k, _)| k.as_str() < key)),
        }
    }

    /// The index of `key`. A record has a handful of entries whose keys mostly differ in
    /// length (and share prefixes such as `opencdc.`), so up to [`SCAN`] entries a scan
    /// comparing lengths first beats a binary search comparing bytes.
    fn position(&self, key: &str) -> Option<usize> {
        /// Up to this many entries, a scan.
        const SCAN: usize = 16;
        if self.entries.len() <= SCAN {
            self.entries.iter().position(|(k, _)| k.as_str() == key)
        } else {
            self.entries
                .binary_search_by(|(k, _)| k.as_str().cmp(key))
                .ok()
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.entries[i].1.as_str())
    }

    /// The value under `key`, to change in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut MetaText> {
        let i = self.position(key)?;
        Some(&mut self.entries[i].1)
    }

    /// Whether `key` has a value (possibly empty).
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Set `key` to `value`; the value it replaces, if any.
    pub fn insert(
        &mut self,
        key: impl Into<MetaText> + AsRef<str>,
        value: impl Into<MetaText>,
    ) -> Option<MetaText> {
        match self.find(key.as_ref()) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value.into())),
            Err(i) => {
                self.entries.insert(i, (key.into(), value.into()));
                None
            }
        }
    }

    /// Remove `key`; its value, if it had one.
    pub fn remove(&mut self, key: &str) -> Option<MetaText> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v.as_str())
    }

    /// The entries whose key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        let start = self.entries.partition_point(|(k, _)| k.as_str() < prefix);
        self.entries[start..]
            .iter()
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Keep only the entries `keep` is true for; it may change their values.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut MetaText) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// Sort by key and keep the last value of each repeated key.
    fn normalise(&mut self) {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
    }

    /// As a map of owned strings (for APIs that take one, such as generated protobuf).
    pub fn to_string_map<M: FromIterator<(String, String)>>(&self) -> M {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The value under a key that must be there (panics otherwise, as a map's index does).
impl std::ops::Index<&str> for Metadata {
    type Output = MetaText;

    fn index(&self, key: &str) -> &MetaText {
        match self.position(key) {
            Some(i) => &self.entries[i].1,
            None => panic!("no metadata under {key:?}"),
        }
    }
}

/// The entries of a [`Metadata`] in key order, as `(key, value)`.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (MetaText, MetaText)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Metadata {
    type Item = (MetaText, MetaText);
    type IntoIter = std::vec::IntoIter<(MetaText, MetaText)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Into<MetaText>, V: Into<MetaText>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut metadata = Self {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        };
        metadata.normalise();
        metadata
    }
}

impl<K: Into<MetaText>, V: Into<MetaText>, const N: usize> From<[(K, V); N]> for Metadata {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<K: Into<MetaText>, V: Into<MetaText>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        self.entries
            .extend(entries.into_iter().map(|(k, v)| (k.into(), v.into())));
        self.normalise();
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> Visitor<'de> for Entries {
            type Value = Metadata;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                // At most 64 reserved up front: a hint is not a promise.
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = map.next_entry::<MetaText, MetaText>()? {
                    entries.push(entry);
                }
                let mut metadata = Metadata { entries };
                metadata.normalise();
                Ok(metadata)
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_and_changes_like_a_map() {
        let mut m = Metadata::from([("b", "2"), ("a", "1")]);
        assert_eq!(m.get("a"), Some("1"));
        assert_eq!(&m["b"], "2");
        assert_eq!(m.get("c"), None);
        assert_eq!(m.insert("c", "3"), None);
        assert_eq!(m.insert("a", "one").as_deref(), Some("1"));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.remove("b").as_deref(), Some("2"));
        assert_eq!(m.remove("b"), None);
        m.get_mut("c").unwrap().push('!');
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [("a", "one"), ("c", "3!")],
            "{m:?}"
        );
        m.retain(|k, _| k != "a");
        assert_eq!(format!("{m:?}"), r#"{"c": "3!"}"#);
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn past_the_scan_limit_every_key_is_still_found_and_kept_in_order() {
        let mut m = Metadata::new();
        for n in (0..40).rev() {
            m.insert(format!("key.{n:02}"), n.to_string());
        }
        for n in 0..40 {
            assert_eq!(m.get(&format!("key.{n:02}")), Some(n.to_string().as_str()));
        }
        assert!(!m.contains_key("key.40") && !m.contains_key("key"));
        assert!(m.keys().is_sorted());
        assert_eq!(m.remove("key.17").as_deref(), Some("17"));
        assert_eq!(m.len(), 39);
    }

    #[test]
    fn static_keys_and_short_values_are_not_allocated() {
        const LONG: MetaText = MetaText::const_new("conduit.source.connector.id");
        let mut m = Metadata::with_capacity(2);
        m.insert(LONG.clone(), "1764851234123456789");
        m.insert(MetaText::const_new("opencdc.readAt"), "1764851234123456789");
        assert!(m
            .entries
            .iter()
            .all(|(k, v)| !k.is_heap_allocated() && !v.is_heap_allocated()));
    }

    #[test]
    fn prefix_finds_exactly_the_keys_that_start_with_it() {
        let m = Metadata::from([
            ("kafka.header.b", "2"),
            ("kafka", "t"),
            ("kafka.header.a", "1"),
            ("kafka.headers", "x"),
            ("z", ""),
        ]);
        assert_eq!(
            m.with_prefix("kafka.header.").collect::<Vec<_>>(),
            [("kafka.header.a", "1"), ("kafka.header.b", "2")]
        );
        assert_eq!(m.with_prefix("nothing").count(), 0);
        assert_eq!(m.with_prefix("").count(), 5);
    }

    #[test]
    fn json_repeats_keep_the_last_and_null_is_refused_here() {
        let m: Metadata = serde_json::from_str(r#"{"b":"1","a":"x","b":"2"}"#).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":"x","b":"2"}"#);
        let e = serde_json::from_str::<Metadata>(r#"{"a":1}"#).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }

    proptest! {
        /// Any sequence of inserts and removes leaves the same entries, in the same order, as
        /// a `BTreeMap` does; JSON and iteration agree with it too.
        #[test]
        fn behaves_as_a_btree_map(ops in proptest::collection::vec(
            (any::<bool>(), "[a-c]{0,3}", ".{0,30}"), 0..40)
        ) {
            let mut ours = Metadata::new();
            let mut model = BTreeMap::new();
            for (insert, key, value) in ops {
                if insert {
                    prop_assert_eq!(
                        ours.insert(key.as_str(), value.as_str()).map(String::from),
                        model.insert(key, value)
                    );
                } else {
                    prop_assert_eq!(ours.remove(&key).map(String::from), model.remove(&key));
                }
                prop_assert_eq!(ours.len(), model.len());
            }
            let pairs: Vec<(&str, &str)> = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(ours.iter().collect::<Vec<_>>(), pairs);
            prop_assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&model).unwrap());
            let back: Metadata = serde_json::from_str(&serde_json::to_string(&model).unwrap()).unwrap();
            prop_assert_eq!(&back, &ours);
            let collected: Metadata = model.clone().into_iter().rev().collect();
            prop_assert_eq!(collected, ours);
        }
    }
}
