//! `base64.decode`: replace a field's base64 text (standard alphabet, padded) with what it
//! encodes.

use crate::params::{field_except_position, field_except_position_setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::{resolve, unexpected_type};
use crate::{AUTHOR, VERSION};
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `base64.decode`: decode a field from base64.
pub struct Base64Decode {
    spec: ProcessorSpecification,
}

impl Base64Decode {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![field_except_position(
                "The field holding base64 text (a reference such as `.Payload.After.token`); \
                 `.Position` cannot be decoded.",
            )],
            "true",
        );
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
        let field = field_except_position_setting(settings, "decoding")?;
        Ok(Box::new(PerRecord(DecodeProcessor { field })))
    }
}

struct DecodeProcessor {
    field: Reference,
}

impl RecordProcessor for DecodeProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let value = resolve(&self.field, record)
            .map_err(|e| format!("failed to resolve the field: {e}"))?;
        let (input, raw) = match value {
            None => return Ok(()),
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => (bytes, true),
            Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
                (text.into_bytes(), false)
            }
            Some(other) => return Err(unexpected_type(&other)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    #[test]
    fn conduits_examples() {
        // (description, settings, input, expected output)
        assert_kept(
            &Base64Decode::new(),
            [(
                "decode a base64 encoded string",
                ".Payload.After.foo",
                example(structured(json!({"foo": "YmFy"})), raw("test-key")),
                example(structured(json!({"foo": "bar"})), raw("test-key")),
            )],
        );
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
                    metadata: meta(&[("key1", "dmFsMQ==")]),
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
        assert_kept(&Base64Decode::new(), cases);
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
        assert_failed(&Base64Decode::new(), cases);
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
        assert_field_settings(
            &plugin,
            ".Key",
            &[],
            [
                (".Position", "\".Position\" must not be one of .Position"),
                (".Nope", "invalid reference"),
            ],
        );
        assert_refused(
            &plugin,
            [(
                vec![("field", ".Key"), ("other", "x")],
                "setting \"other\": unrecognized parameter",
            )],
        );
        // Refused by the plugin too when asked directly.
        let error = direct_refusal(&plugin, &[("field", ".Position")]);
        assert!(
            error.contains("\"field\"") && error.contains(".Position"),
            "{error}"
        );
    }
}
