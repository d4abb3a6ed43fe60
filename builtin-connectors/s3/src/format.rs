//! The destination's object formats, as Conduit's connector writes them: `json` (one JSON
//! object per record and line) and `parquet` (one row per record, gzip-compressed).
//!
//! Both hold, per record, its operation, position, `payload.after` and key as text (raw
//! data as its bytes, structured data as its JSON) and its metadata. JSON lines use the
//! field names `Operation`, `Position`, `Payload`, `Key`, `Metadata` in that order, with
//! strings escaped as Go's `encoding/json` escapes them; Parquet columns are `operation`,
//! `position`, `payload`, `key` (binary) and `metadata` (a map of UTF-8 strings).

use culvert_domain::{Data, Record};
use culvert_plugins::connector::PluginError;
use parquet::basic::{Compression, GzipLevel};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::fmt::Write as _;
use std::sync::Arc;

/// An object format of the destination (`format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON lines.
    Json,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format a `format` setting names, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The object name's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Parquet => "parquet",
        }
    }

    /// The object's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Parquet => "application/octet-stream",
        }
    }

    /// The object holding `records`.
    pub fn encode(self, records: &[Record]) -> Result<Vec<u8>, PluginError> {
        match self {
            Self::Json => Ok(json_lines(records)),
            Self::Parquet => parquet_file(records)
                .map_err(|e| PluginError::Other(format!("writing a parquet object: {e}"))),
        }
    }
}

/// Data as the text Conduit's connector stores: raw bytes as they are (lossily as UTF-8),
/// structured data as compact JSON; nothing as empty text.
fn text(data: Option<&Data>) -> String {
    match data {
        None => String::new(),
        Some(Data::Raw(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Data::Structured(map)) => {
            serde_json::to_string(map).expect("a JSON object always serialises")
        }
    }
}

fn json_lines(records: &[Record]) -> Vec<u8> {
    let mut out = String::new();
    for record in records {
        out.push_str("{\"Operation\":");
        go_string(&mut out, record.operation.as_str());
        out.push_str(",\"Position\":");
        go_string(&mut out, &String::from_utf8_lossy(&record.position.0));
        out.push_str(",\"Payload\":");
        go_string(&mut out, &text(record.payload.after.as_ref()));
        out.push_str(",\"Key\":");
        go_string(&mut out, &text(record.key.as_ref()));
        out.push_str(",\"Metadata\":{");
        for (n, (key, value)) in record.metadata.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            go_string(&mut out, key);
            out.push(':');
            go_string(&mut out, value);
        }
        out.push_str("}}\n");
    }
    out.into_bytes()
}

/// A JSON string as Go's `encoding/json` writes it: the HTML characters, control
/// characters, U+2028 and U+2029 escaped as `\u00xx`, `\n`, `\r`, `\t`, `\b`, `\f` short.
fn go_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a string");
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The Parquet schema of Conduit's connector (the Go library's root name and layout).
const PARQUET_SCHEMA: &str = "
message parquet_go_root {
  required binary operation;
  required binary position;
  required binary payload;
  required binary key;
  required group metadata (MAP) {
    repeated group key_value (MAP_KEY_VALUE) {
      required binary key (UTF8);
      required binary value (UTF8);
    }
  }
}";

fn parquet_file(records: &[Record]) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let schema = Arc::new(parse_message_type(PARQUET_SCHEMA)?);
    let properties = WriterProperties::builder()
        .set_compression(Compression::GZIP(GzipLevel::default()))
        .build();
    let bytes = |text: String| ByteArray::from(text.into_bytes());
    // One vector per leaf column, in schema order.
    let operation: Vec<ByteArray> = records
        .iter()
        .map(|r| bytes(r.operation.as_str().to_owned()))
        .collect();
    let position: Vec<ByteArray> = records
        .iter()
        .map(|r| bytes(String::from_utf8_lossy(&r.position.0).into_owned()))
        .collect();
    let payload: Vec<ByteArray> = records
        .iter()
        .map(|r| bytes(text(r.payload.after.as_ref())))
        .collect();
    let key: Vec<ByteArray> = records
        .iter()
        .map(|r| bytes(text(r.key.as_ref())))
        .collect();
    // The map's entries: repetition 0 starts a record's map, 1 continues it; definition 1
    // is an entry, 0 an empty map.
    let (mut map_keys, mut map_values, mut definition, mut repetition) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for record in records {
        if record.metadata.is_empty() {
            definition.push(0);
            repetition.push(0);
        }
        for (n, (k, v)) in record.metadata.iter().enumerate() {
            map_keys.push(ByteArray::from(k.as_bytes().to_vec()));
            map_values.push(ByteArray::from(v.as_bytes().to_vec()));
            definition.push(1);
            repetition.push(i16::from(n > 0));
        }
    }

    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(properties))?;
    let mut group = writer.next_row_group()?;
    let mut leaf = 0;
    while let Some(mut column) = group.next_column()? {
        let typed = column.typed::<ByteArrayType>();
        match leaf {
            0 => typed.write_batch(&operation, None, None)?,
            1 => typed.write_batch(&position, None, None)?,
            2 => typed.write_batch(&payload, None, None)?,
            3 => typed.write_batch(&key, None, None)?,
            4 => typed.write_batch(&map_keys, Some(&definition), Some(&repetition))?,
            _ => typed.write_batch(&map_values, Some(&definition), Some(&repetition))?,
        };
        column.close()?;
        leaf += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::{Change, Operation, Position};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    fn record(n: u32, metadata: &[(&str, &str)]) -> Record {
        Record {
            position: Position(format!("p{n}").into_bytes()),
            operation: Operation::Update,
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            key: Some(Data::Raw(format!("k{n}").into_bytes())),
            payload: Change {
                before: None,
                after: Some(Data::Raw(format!("<v{n}> & \"q\"\n").into_bytes())),
            },
        }
    }

    #[test]
    fn json_lines_are_conduits() {
        let mut structured = record(2, &[]);
        structured.payload.after = Some(Data::Structured(
            serde_json::json!({"b": 1, "a": "x"})
                .as_object()
                .unwrap()
                .clone()
                .into(),
        ));
        structured.key = None;
        let text = Format::Json
            .encode(&[record(1, &[("b", "2"), ("a", "1")]), structured])
            .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "{\"Operation\":\"update\",\"Position\":\"p1\",\"Payload\":\"\\u003cv1\\u003e \\u0026 \\\"q\\\"\\n\",\"Key\":\"k1\",\"Metadata\":{\"a\":\"1\",\"b\":\"2\"}}\n\
             {\"Operation\":\"update\",\"Position\":\"p2\",\"Payload\":\"{\\\"a\\\":\\\"x\\\",\\\"b\\\":1}\",\"Key\":\"\",\"Metadata\":{}}\n"
        );
    }

    #[test]
    fn parquet_rows_read_back() {
        let records = [
            record(1, &[("a", "1"), ("b", "2")]),
            record(2, &[]),
            record(3, &[("c", "3")]),
        ];
        let file = Format::Parquet.encode(&records).unwrap();
        let reader = SerializedFileReader::new(bytes_of(file)).unwrap();
        let rows: Vec<String> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().to_string())
            .collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].contains("operation: [117, 112"), "{}", rows[0]);
        assert!(
            rows[0].contains("metadata: {\"a\" -> \"1\", \"b\" -> \"2\"}"),
            "{}",
            rows[0]
        );
        assert!(rows[1].contains("metadata: {}"), "{}", rows[1]);
        assert!(
            rows[2].contains("metadata: {\"c\" -> \"3\"}"),
            "{}",
            rows[2]
        );
    }

    /// Every leaf column's path, physical type, levels and logical annotation.
    fn layout(file: &[u8]) -> Vec<String> {
        let reader = SerializedFileReader::new(bytes_of(file.to_vec())).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr();
        schema
            .columns()
            .iter()
            .map(|c| {
                format!(
                    "{} {} def={} rep={} {:?}",
                    c.path(),
                    c.physical_type(),
                    c.max_def_level(),
                    c.max_rep_level(),
                    c.converted_type()
                )
            })
            .collect()
    }

    /// The records of an object's rows (metadata as a map: Go writes it in any order).
    fn decode(file: &[u8]) -> Vec<Record> {
        let reader = SerializedFileReader::new(bytes_of(file.to_vec())).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                let row = row.unwrap();
                let text = |i: usize| {
                    String::from_utf8(row.get_bytes(i).unwrap().data().to_vec()).unwrap()
                };
                let string = |f: &parquet::record::Field| match f {
                    parquet::record::Field::Str(s) => s.clone(),
                    other => panic!("a string, got {other:?}"),
                };
                let map = row.get_map(4).unwrap();
                let metadata = map
                    .entries()
                    .iter()
                    .map(|(k, v)| (string(k), string(v)))
                    .collect();
                Record {
                    position: Position(text(1).into_bytes()),
                    operation: match text(0).as_str() {
                        "create" => Operation::Create,
                        other => panic!("a create, got {other}"),
                    },
                    metadata,
                    key: Some(Data::Raw(text(3).into_bytes())),
                    payload: Change {
                        before: None,
                        after: Some(Data::Raw(text(2).into_bytes())),
                    },
                }
            })
            .collect()
    }

    /// An object Conduit's connector v0.9.3 wrote (four generator records, through the
    /// standalone plugin on moto): our object of the same records has its layout and, read
    /// back, the same rows.
    #[test]
    fn parquet_matches_conduits_object() {
        let theirs = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/conduit-v0.9.3.parquet"
        ))
        .unwrap();
        let records = decode(&theirs);
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].metadata.len(), 3, "{:?}", records[0]);
        let ours = Format::Parquet.encode(&records).unwrap();
        assert_eq!(layout(&ours), layout(&theirs));
        assert_eq!(decode(&ours), records);
    }

    fn bytes_of(file: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from(file)
    }
}
