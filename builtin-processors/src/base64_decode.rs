//! `base64.decode`: replace a field's base64 text (standard alphabet, padded) with what it
//! encodes.
//!
//! Also home to what the base64 and JSON processors share: reading a field the way
//! Conduit's reference resolver hands it to a processor (`resolve`) and Go's names for
//! value types in errors (`go_type`).

use crate::reference::{FieldValue, Reference, ReferenceError};
use crate::{invalid, schema_parameters, setting, AUTHOR, VERSION};
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `base64.decode`: decode a field from base64.
pub struct Base64Decode {
    spec: ProcessorSpecification,
}

impl Base64Decode {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "field",
            ParameterType::String,
            "The field holding base64 text (a reference such as `.Payload.After.token`); \
             `.Position` cannot be decoded.",
        )
        .validate(Validation::Required)
        .validate(Validation::Exclusion(vec![".Position".to_owned()]))];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "base64.decode",
                summary: "Decode a field's base64 text.",
                description: "Reads the field as base64 (standard alphabet, with padding; line \
                              breaks are ignored) and stores the decoded value back in the same \
                              field: raw data stays raw data, text stays text. A missing or \
                              null field is left alone. `.Position` cannot be decoded.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for Base64Decode {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for Base64Decode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = field_setting(settings, "decoding")?;
        Ok(Box::new(DecodeProcessor { field }))
    }
}

/// The `field` setting of the base64 processors: required, a valid reference, not
/// `.Position` (the parameter's validations say so too; checked again for callers that
/// skip them). `action` names what the processor does, for the error (`decoding`).
pub(crate) fn field_setting(settings: &Settings, action: &str) -> Result<Reference, PluginError> {
    let field = setting(settings, "field");
    if field.is_empty() {
        return Err(invalid("field", "required parameter is not provided"));
    }
    if field == ".Position" {
        return Err(invalid(
            "field",
            format!("{action} \".Position\" is not allowed"),
        ));
    }
    Reference::parse(field).map_err(|e| invalid("field", e))
}

struct DecodeProcessor {
    field: Reference,
}

impl DecodeProcessor {
    fn decode(&self, record: &mut Record) -> Result<(), String> {
        let value = resolve(&self.field, record)
            .map_err(|e| format!("failed to resolve the field: {e}"))?;
        let (input, raw) = match value {
            None => return Ok(()),
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => (bytes, true),
            Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
                (text.into_bytes(), false)
            }
            Some(other) => return Err(format!("unexpected data type {}", go_type(&other))),
        };
        let decoded = decode_go(&input).map_err(|offset| {
            format!("failed to decode the value: illegal base64 data at input byte {offset}")
        })?;
        // Raw data takes the bytes as they are; text fields and metadata hold text.
        let value = if raw {
            FieldValue::Bytes(decoded)
        } else {
            FieldValue::Text(String::from_utf8_lossy(&decoded).into_owned())
        };
        self.field
            .set_value(record, value)
            .map_err(|e| format!("failed to set the decoded value into the record: {e}"))
    }
}

#[async_trait::async_trait]
impl Processor for DecodeProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            if let Err(error) = self.decode(record) {
                *outcome = Outcome::Fail(error);
            }
        }
        Ok(())
    }
}

/// Decode base64 as Go's `base64.StdEncoding.Decode` does: the standard alphabet with `=`
/// padding required, `\r` and `\n` skipped wherever they are, unused low bits of the last
/// character not checked. An error is the offset of the offending input byte, counted as
/// Go counts it.
fn decode_go(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn sextet(c: u8) -> Option<u8> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let skip_newlines = |mut i: usize| {
        while i < src.len() && newline(src[i]) {
            i += 1;
        }
        i
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut i = 0;
    while i < src.len() {
        // One quantum: four characters, or fewer before padding.
        let mut quantum = [0u8; 4];
        let mut have = 0;
        let mut trailing = None;
        while have < 4 {
            if i == src.len() {
                if have == 0 {
                    // Only line breaks were left.
                    return Ok(out);
                }
                return Err(i - have);
            }
            let c = src[i];
            i += 1;
            if let Some(value) = sextet(c) {
                quantum[have] = value;
                have += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' || have < 2 {
                return Err(i - 1);
            }
            if have == 2 {
                // `xx==`: the second `=` must follow (line breaks aside).
                i = skip_newlines(i);
                if i == src.len() {
                    return Err(src.len());
                }
                if src[i] != b'=' {
                    return Err(i - 1);
                }
                i += 1;
            }
            i = skip_newlines(i);
            if i < src.len() {
                trailing = Some(i);
            }
            break;
        }
        let bits = quantum
            .iter()
            .fold(0u32, |acc, &sextet| (acc << 6) | u32::from(sextet));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..have]);
        if let Some(offset) = trailing {
            return Err(offset);
        }
    }
    Ok(out)
}

/// The value `reference` points at in `record`, as Conduit's resolver hands it to a
/// processor: `None` stands for Go's nil (no data, a missing or null data field, a
/// missing metadata key). As in Conduit, resolving a data field creates the objects on
/// the way to it, so a nil field leaves them behind: `.Payload.After.a.b` on a record
/// without `.Payload.After` makes it `{"a": {}}`.
pub(crate) fn resolve(
    reference: &Reference,
    record: &mut Record,
) -> Result<Option<FieldValue>, ReferenceError> {
    match reference.get(record)? {
        FieldValue::Data(None) => Ok(None),
        FieldValue::Text(text) if text.is_empty() => {
            // A metadata key: empty, or missing (nil).
            let mut without = record.clone();
            reference.delete(&mut without)?;
            Ok((without != *record).then_some(FieldValue::Text(text)))
        }
        FieldValue::Json(Value::Null) => {
            // Null stays null; a missing field stays missing, its parents created.
            let mut with_null = record.clone();
            reference.set_value(&mut with_null, FieldValue::Json(Value::Null))?;
            if with_null != *record {
                reference.delete(record)?;
            }
            Ok(None)
        }
        value => Ok(Some(value)),
    }
}

/// Go's name for the type of a value (`%T`), as Conduit's errors show it.
pub(crate) fn go_type(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::Position(_) => "opencdc.Position",
        FieldValue::Operation(_) => "opencdc.Operation",
        FieldValue::Metadata(_) => "opencdc.Metadata",
        FieldValue::Text(_) | FieldValue::Json(Value::String(_)) => "string",
        FieldValue::Bytes(_) => "[]uint8",
        FieldValue::Payload(_) => "opencdc.Change",
        FieldValue::Data(None) | FieldValue::Json(Value::Null) => "<nil>",
        FieldValue::Data(Some(Data::Raw(_))) => "opencdc.RawData",
        FieldValue::Data(Some(Data::Structured(_))) => "opencdc.StructuredData",
        FieldValue::Json(Value::Bool(_)) => "bool",
        FieldValue::Json(Value::Number(n)) if n.is_f64() => "float64",
        FieldValue::Json(Value::Number(_)) => "int",
        FieldValue::Json(Value::Array(_)) => "[]interface {}",
        FieldValue::Json(Value::Object(_)) => "map[string]interface {}",
    }
}

/// Test helpers shared by the base64 and JSON processors' tests.
#[cfg(test)]
pub(crate) mod testing {
    use culvert_domain::{Change, Data, Operation, Position, Record};
    use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin};
    use culvert_plugins::{PluginError, Settings};
    use serde_json::Value;
    use std::collections::BTreeMap;

    /// Settings from pairs.
    pub fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Structured data from a JSON object.
    pub fn structured(value: Value) -> Option<Data> {
        match value {
            Value::Object(map) => Some(Data::Structured(map)),
            other => panic!("not an object: {other}"),
        }
    }

    /// Raw data.
    pub fn raw(bytes: &str) -> Option<Data> {
        Some(Data::Raw(bytes.as_bytes().to_vec()))
    }

    /// The record of Conduit's examples: position, create, `key1: val1`, raw key `test-key`.
    pub fn example(after: Option<Data>, key: Option<Data>) -> Record {
        Record {
            position: Position(b"test-position".to_vec()),
            operation: Operation::Create,
            metadata: BTreeMap::from([("key1".to_owned(), "val1".to_owned())]),
            key,
            payload: Change {
                before: None,
                after,
            },
        }
    }

    /// A record with only a key.
    pub fn keyed(key: Option<Data>) -> Record {
        Record {
            key,
            ..Record::default()
        }
    }

    /// Validate the settings (applying defaults) and configure the plugin, as the registry
    /// does.
    pub fn configure(
        plugin: &dyn ProcessorPlugin,
        pairs: &[(&str, &str)],
    ) -> Result<Box<dyn Processor>, String> {
        let validated =
            culvert_plugins::spec::validate(&plugin.specification().parameters, &settings(pairs))
                .map_err(|e| e.to_string())?;
        plugin
            .configure(&validated)
            .map_err(|e: PluginError| e.to_string())
    }

    /// Run one batch.
    pub fn run(processor: &mut dyn Processor, records: &mut [Record]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Keep; records.len()];
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(processor.process(records, &mut outcomes))
            .unwrap();
        outcomes
    }

    /// Configure with `field` and process one record.
    pub fn process_one(
        plugin: &dyn ProcessorPlugin,
        field: &str,
        mut record: Record,
    ) -> (Record, Outcome) {
        let mut processor = configure(plugin, &[("field", field)]).unwrap();
        let outcome = run(processor.as_mut(), std::slice::from_mut(&mut record)).remove(0);
        (record, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn conduits_examples() {
        // (description, settings, input, expected output)
        let cases = [(
            "decode a base64 encoded string",
            ".Payload.After.foo",
            example(structured(json!({"foo": "YmFy"})), raw("test-key")),
            example(structured(json!({"foo": "bar"})), raw("test-key")),
        )];
        for (name, field, input, want) in cases {
            let (got, outcome) = process_one(&Base64Decode::new(), field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn decodes_raw_data_text_and_metadata_and_leaves_nil_alone() {
        let cases = [
            ("raw data", ".Key", keyed(raw("Zm9v")), keyed(raw("foo"))),
            (
                "string",
                ".Key.foo",
                keyed(structured(json!({"foo": "YmFy"}))),
                keyed(structured(json!({"foo": "bar"}))),
            ),
            (
                "metadata",
                ".Metadata.key1",
                Record {
                    metadata: [("key1".to_owned(), "dmFsMQ==".to_owned())].into(),
                    ..example(None, None)
                },
                example(None, None),
            ),
            (
                "line breaks are skipped",
                ".Key",
                keyed(raw("Zm\r\n9v\n")),
                keyed(raw("foo")),
            ),
            (
                "non-zero unused bits are accepted",
                ".Key",
                keyed(raw("Zm9=")),
                keyed(raw("fo")),
            ),
            ("empty", ".Key", keyed(raw("")), keyed(raw(""))),
            ("no key", ".Key", keyed(None), keyed(None)),
            (
                "null field",
                ".Key.foo",
                keyed(structured(json!({"foo": null}))),
                keyed(structured(json!({"foo": null}))),
            ),
            (
                "missing field: its parents are created, as in Conduit",
                ".Payload.After.a.b",
                example(None, None),
                example(structured(json!({"a": {}})), None),
            ),
            (
                "missing metadata",
                ".Metadata.nope",
                example(None, None),
                example(None, None),
            ),
        ];
        for (name, field, input, want) in cases {
            let (got, outcome) = process_one(&Base64Decode::new(), field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
        // Raw data keeps bytes that are not UTF-8; text gets replacement characters.
        let (got, _) = process_one(&Base64Decode::new(), ".Key", keyed(raw("/w==")));
        assert_eq!(got.key, Some(Data::Raw(vec![0xff])));
        let (got, _) = process_one(
            &Base64Decode::new(),
            ".Key.foo",
            keyed(structured(json!({"foo": "/w=="}))),
        );
        assert_eq!(got, keyed(structured(json!({"foo": "\u{fffd}"}))));
    }

    #[test]
    fn records_that_cannot_be_decoded_fail_with_the_reason_and_stay_as_they_were() {
        let cases = [
            (
                ".Key",
                keyed(structured(json!({"foo": "bar"}))),
                "unexpected data type opencdc.StructuredData",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": {"bar": "baz"}}))),
                "unexpected data type map[string]interface {}",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": 1}))),
                "unexpected data type int",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": 1.1}))),
                "unexpected data type float64",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": "bar"}))),
                "failed to decode the value: illegal base64 data at input byte 0",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": "YmFy!"}))),
                "failed to decode the value: illegal base64 data at input byte 4",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": ["YmFy"]}))),
                "unexpected data type []interface {}",
            ),
            (
                ".operation",
                keyed(None),
                "unexpected data type opencdc.Operation",
            ),
            (
                ".Key.foo",
                keyed(raw("Zm9v")),
                "failed to resolve the field: .Key does not contain structured data: cannot \
                 resolve reference",
            ),
        ];
        for (field, input, want) in cases {
            let (got, outcome) = process_one(&Base64Decode::new(), field, input.clone());
            assert_eq!(outcome, Outcome::Fail(want.to_owned()), "{field} {input:?}");
            assert_eq!(got, input, "{field}: unchanged");
        }
    }

    #[test]
    fn a_failed_record_does_not_stop_the_others() {
        let mut processor = configure(&Base64Decode::new(), &[("field", ".Key")]).unwrap();
        let mut records = vec![keyed(raw("YQ==")), keyed(raw("%%%%")), keyed(raw("Yg=="))];
        let outcomes = run(processor.as_mut(), &mut records);
        assert_eq!(
            outcomes,
            [
                Outcome::Keep,
                Outcome::Fail(
                    "failed to decode the value: illegal base64 data at input byte 0".into()
                ),
                Outcome::Keep
            ]
        );
        assert_eq!(
            records,
            [keyed(raw("a")), keyed(raw("%%%%")), keyed(raw("b"))]
        );
    }

    #[test]
    fn decoding_follows_go() {
        let ok = |input: &str| decode_go(input.as_bytes());
        assert_eq!(ok("Zm9vYmFy"), Ok(b"foobar".to_vec()));
        assert_eq!(ok("Zm9vYg=="), Ok(b"foob".to_vec()));
        assert_eq!(ok("Zm9vYmE="), Ok(b"fooba".to_vec()));
        assert_eq!(ok("Zm9v\nYmFy\r\n"), Ok(b"foobar".to_vec()));
        assert_eq!(ok("Zg=\n="), Ok(b"f".to_vec()));
        assert_eq!(ok("\n\n"), Ok(vec![]));
        // Errors at the offsets Go reports.
        for (input, offset) in [
            ("Zm9", 0),
            ("Zm9vY", 4),
            ("Zg=", 3),
            ("Zg=x", 2),
            ("Z===", 1),
            ("====", 0),
            ("Zm9v=", 4),
            ("Zg==Zg==", 4),
            ("Zg==\nx", 5),
            ("Zm 9v", 2),
            ("Zm-9", 2),
        ] {
            assert_eq!(decode_go(input.as_bytes()), Err(offset), "{input}");
        }
    }

    #[test]
    fn settings_are_validated() {
        let plugin = Base64Decode::new();
        let validated = culvert_plugins::spec::validate(
            &plugin.specification().parameters,
            &settings(&[("field", ".Key")]),
        )
        .unwrap();
        for key in [
            "sdk.schema.decode.key.enabled",
            "sdk.schema.decode.payload.enabled",
            "sdk.schema.encode.key.enabled",
            "sdk.schema.encode.payload.enabled",
        ] {
            assert_eq!(validated[key], "true", "{key}");
        }
        assert!(plugin.configure(&validated).is_ok());
        for (pairs, want) in [
            (
                vec![],
                "setting \"field\": required parameter is not provided",
            ),
            (
                vec![("field", ".Position")],
                "setting \"field\": \".Position\" must not be one of .Position",
            ),
            (
                vec![("field", ".Nope")],
                "setting \"field\": invalid reference",
            ),
            (
                vec![("field", ".Key"), ("other", "x")],
                "setting \"other\": unrecognized parameter",
            ),
        ] {
            let error = configure(&plugin, &pairs).err().unwrap();
            assert!(error.contains(want), "{pairs:?}: {error}");
        }
        // Refused by the plugin too when asked directly.
        let error = plugin
            .configure(&settings(&[("field", ".Position")]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"field\"") && error.contains(".Position"),
            "{error}"
        );
    }
}
