//! Structured data (a JSON object) that need not be a map until something reads a field.
//!
//! A record's structured key or payload side is a [`Structured`]. It is one of:
//!
//! * a map (`serde_json::Map`), as data read from JSON, a database row or a plugin is;
//! * the object's JSON text in canonical form: exactly what serde_json writes for the map
//!   (keys sorted and unique, no whitespace). A source that makes records itself, such as
//!   the generator, writes that text directly. This costs one allocation per record instead
//!   of one per key and value.
//!
//! The text is parsed into the map the first time anything reads a field (through
//! [`Deref`]). The map is then cached next to the text. Changing the data (through
//! [`DerefMut`]) drops the text, so it can never be stale. Writing the data as JSON copies
//! the text when there is one. Data that only passes through (source -> file destination)
//! is therefore never built as a map, and never walked again to be encoded. The JSON form
//! is byte for byte the same either way.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

/// A JSON object: a map, its canonical JSON text, or both (see the module docs).
///
/// Reads go through `Deref` to the map (`data.get("id")`, `data.len()`, iteration);
/// changes through `DerefMut`.
#[derive(Default)]
pub struct Structured {
    /// The canonical text, while the data is unchanged since it was written.
    text: Option<Box<RawValue>>,
    /// The map: parsed from `text` when first read, or given. Set whenever `text` is not.
    map: OnceLock<Map<String, Value>>,
}

impl Structured {
    /// The data `value` serialises to, kept as its JSON text until a field is read.
    ///
    /// `value` must serialise as a map with its keys sorted (as `String`'s `Ord` sorts them)
    /// and unique: the text is then exactly what serde_json writes for the same data as a
    /// `Map`. Debug builds check this. An error if `value` cannot be serialised, if it is
    /// not an object, or if it nests deeper than serde_json reads back (128 levels): the
    /// text must always parse when a field is read.
    pub fn from_serialized<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let text = serde_json::value::to_raw_value(value)?;
        if !text.get().starts_with('{') {
            return Err(serde::ser::Error::custom(
                "structured data must serialise as a JSON object",
            ));
        }
        // Fewer opening brackets than serde_json's depth limit (counting any inside strings
        // too) cannot nest too deep. Text with more is parsed now, to be sure it reads back;
        // the map parsed is kept.
        let map = OnceLock::new();
        if memchr::memchr2_iter(b'{', b'[', text.get().as_bytes()).count() >= READ_DEPTH_LIMIT {
            let parsed = try_parse(&text).map_err(|e| {
                serde::ser::Error::custom(format!("structured data cannot be read back: {e}"))
            })?;
            let _ = map.set(parsed);
        }
        let data = Self {
            text: Some(text),
            map,
        };
        #[cfg(debug_assertions)]
        if let Some(text) = &data.text {
            let map = parse(text);
            let canonical = serde_json::to_string(&map).unwrap_or_default();
            debug_assert_eq!(
                canonical,
                text.get(),
                "structured text is not canonical (keys sorted and unique)"
            );
        }
        Ok(data)
    }

    /// The canonical JSON text, if the data has not been changed since it was written.
    pub fn json_text(&self) -> Option<&str> {
        self.text.as_deref().map(RawValue::get)
    }

    /// The map, parsing the text if it has not been parsed yet.
    pub fn as_map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| match &self.text {
            Some(text) => parse(text),
            // Unreachable by the type's invariant (the map is set whenever the text is not);
            // an empty map is the safe answer if it were ever broken.
            None => Map::new(),
        })
    }

    /// The map, owned.
    pub fn into_map(mut self) -> Map<String, Value> {
        self.as_map();
        self.map.take().unwrap_or_default()
    }
}

/// serde_json refuses to read arrays and objects nested this deep.
const READ_DEPTH_LIMIT: usize = 128;

/// The map of canonical text. It was written by serde_json and checked to read back (see
/// [`Structured::from_serialized`]), so it parses; a failure would be a broken invariant,
/// and gives an empty map.
///
/// The fields are read into a list and the map built from it in one go: they come sorted,
/// so the map is built without a search down the tree per field (as inserting one by one,
/// serde_json's way, does).
fn parse(text: &RawValue) -> Map<String, Value> {
    try_parse(text).unwrap_or_default()
}

/// The map of `text`, or why it does not read.
fn try_parse(text: &RawValue) -> Result<Map<String, Value>, serde_json::Error> {
    serde_json::from_str::<Fields>(text.get()).map(|fields| fields.0.into_iter().collect())
}

/// A JSON object's fields in the order of its text.
struct Fields(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(reader: D) -> Result<Self, D::Error> {
        reader.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(field) = map.next_entry()? {
            fields.push(field);
        }
        Ok(Fields(fields))
    }
}

impl From<Map<String, Value>> for Structured {
    fn from(map: Map<String, Value>) -> Self {
        Self {
            text: None,
            map: OnceLock::from(map),
        }
    }
}

impl From<Structured> for Map<String, Value> {
    fn from(data: Structured) -> Self {
        data.into_map()
    }
}

impl FromIterator<(String, Value)> for Structured {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Map::from_iter(iter).into()
    }
}

impl Deref for Structured {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        self.as_map()
    }
}

impl DerefMut for Structured {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.as_map();
        // The map is about to change: the text would be stale.
        self.text = None;
        match self.map.get_mut() {
            Some(map) => map,
            None => unreachable!("`as_map` initialised it"),
        }
    }
}

impl Clone for Structured {
    fn clone(&self) -> Self {
        match &self.text {
            // The text alone: one copy, and the clone parses only if it is read.
            Some(text) => Self {
                text: Some(text.clone()),
                map: OnceLock::new(),
            },
            None => Self::from(self.as_map().clone()),
        }
    }
}

impl PartialEq for Structured {
    fn eq(&self, other: &Self) -> bool {
        match (self.json_text(), other.json_text()) {
            // Canonical texts are equal exactly when the data is.
            (Some(a), Some(b)) => a == b,
            _ => self.as_map() == other.as_map(),
        }
    }
}

impl std::fmt::Debug for Structured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_map().fmt(f)
    }
}

impl Serialize for Structured {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            // serde_json (to text or to a `Value`) takes the text as it is.
            Some(text) => text.serialize(serializer),
            None => self.as_map().serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn text_is_read_as_the_map_and_written_as_it_is() {
        let fields = BTreeMap::from([("b", json!("x")), ("a", json!(1)), ("c", json!(null))]);
        let data = Structured::from_serialized(&fields).unwrap();
        assert_eq!(data.json_text(), Some(r#"{"a":1,"b":"x","c":null}"#));
        assert_eq!(data.get("a"), Some(&json!(1)));
        assert_eq!(data.len(), 3);
        // Reading keeps the text: it still says the same.
        assert!(data.json_text().is_some());
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"a":1,"b":"x","c":null}"#
        );
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            json!({"a": 1, "b": "x", "c": null})
        );
    }

    #[test]
    fn a_change_drops_the_text() {
        let mut data = Structured::from_serialized(&BTreeMap::from([("a", 1), ("b", 2)])).unwrap();
        data.insert("c".into(), json!(3));
        assert_eq!(data.json_text(), None);
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"a":1,"b":2,"c":3}"#
        );
        // A change before any read parses first: nothing of the text is lost.
        let mut data = Structured::from_serialized(&BTreeMap::from([("a", 1)])).unwrap();
        data.remove("zz");
        assert_eq!(*data, object(json!({"a": 1})));
    }

    #[test]
    fn only_objects_are_structured() {
        let e = Structured::from_serialized(&[1, 2]).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
    }

    #[test]
    fn data_nested_deeper_than_reads_back_is_refused() {
        let nested = |depth: usize| {
            let mut value = json!(1);
            for _ in 0..depth {
                value = json!([value]);
            }
            BTreeMap::from([("deep", value)])
        };
        // Brackets inside strings do not count: a flat object with many is accepted as is.
        let brackets = BTreeMap::from([("s", "{[".repeat(200))]);
        let data = Structured::from_serialized(&brackets).unwrap();
        assert_eq!(data.get("s"), Some(&json!("{[".repeat(200))));
        // Deep, but not too deep: parsed at once (the map is kept) and written as text.
        let data = Structured::from_serialized(&nested(120)).unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            serde_json::to_value(nested(120)).unwrap()
        );
        let e = Structured::from_serialized(&nested(200)).unwrap_err();
        assert!(e.to_string().contains("cannot be read back"), "{e}");
    }

    #[test]
    fn clones_and_comparisons_do_not_depend_on_the_form() {
        let text = Structured::from_serialized(&BTreeMap::from([("k", "v")])).unwrap();
        let map = Structured::from(object(json!({"k": "v"})));
        assert_eq!(text, map);
        assert_eq!(map, text);
        let copy = text.clone();
        assert_eq!(copy.json_text(), text.json_text());
        assert_eq!(copy, map);
        assert_ne!(text, Structured::from(object(json!({"k": "w"}))));
        assert_eq!(format!("{text:?}"), format!("{map:?}"));
        assert_eq!(text.into_map(), object(json!({"k": "v"})));
    }

    proptest! {
        /// Any map given as canonical text reads, compares and writes as the map itself.
        #[test]
        fn text_and_map_agree(
            fields in proptest::collection::btree_map(
                "[a-z\"\\\\é]{0,6}",
                prop_oneof![
                    any::<i64>().prop_map(Value::from),
                    any::<bool>().prop_map(Value::from),
                    "[ -~\n\u{7f}-\u{2000}]{0,8}".prop_map(Value::from),
                    (-1e12f64..1e12).prop_map(Value::from),
                ],
                0..6,
            )
        ) {
            let map: Map<String, Value> = fields.clone().into_iter().collect();
            let text = Structured::from_serialized(&fields).unwrap();
            prop_assert_eq!(text.json_text().map(str::to_owned), Some(serde_json::to_string(&map).unwrap()));
            prop_assert_eq!(&*text, &map);
            let from_map = Structured::from(map.clone());
            prop_assert_eq!(serde_json::to_string(&text).unwrap(), serde_json::to_string(&from_map).unwrap());
            prop_assert_eq!(text, from_map);
        }
    }
}
