//! Source positions (persisted bytes handed back to a connector when it resumes, and
//! settable over the API): arbitrary bytes through each built-in source's position reader
//! never panic, and where a position is written by an encoder, what decodes encodes to
//! something that decodes to the same position.
//!
//! generator, file and oracle read their positions in `Source::open` (private helpers), so
//! they are driven through the plugin interface: a source made from valid settings, opened
//! at the fuzzed position.
#![no_main]

use culvert_connector_kafka::source::KafkaPosition;
use culvert_connector_postgres::position::{Lsn, SourcePosition};
use culvert_connector_s3::position::Cursor;
use culvert_connectors::{file::File, generator::Generator, oracle::Oracle};
use culvert_domain::Position;
use culvert_plugins::connector::{ConnectorPlugin, Settings};
use culvert_plugins::spec;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// What the position-reading sources need once: a runtime and a small file to resume in.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    file: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let file = std::env::temp_dir().join(format!("culvert-fuzz-{}.txt", std::process::id()));
        std::fs::write(&file, b"one\ntwo\nthree\n").expect("writing the fuzz fixture file");
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime"),
            file,
        }
    })
}

/// Open a source of `plugin` (with `settings`, defaults applied) at `position`.
fn open_at(plugin: &dyn ConnectorPlugin, settings: &[(&str, &str)], position: &Position) {
    let given: Settings = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let params = plugin
        .specification()
        .source
        .as_ref()
        .expect("a source plugin");
    let settings = spec::validate(params, &given).expect("valid fixture settings");
    let mut source = plugin.new_source(&settings).expect("a source");
    let _ = fixture()
        .runtime
        .block_on(source.open(Some(position.clone())));
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let position = Position(rest.to_vec());
    match which % 7 {
        0 => {
            if let Ok(parsed) = SourcePosition::parse(rest) {
                let again = SourcePosition::parse(&parsed.to_bytes())
                    .expect("a postgres position from to_bytes parses");
                assert_eq!(again, parsed, "postgres position round trip");
                let _ = parsed.change_point();
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(lsn) = Lsn::parse(text) {
                    assert_eq!(
                        Lsn::parse(&lsn.to_string()).ok(),
                        Some(lsn),
                        "LSN round trip"
                    );
                }
            }
        }
        2 => {
            if let Ok(parsed) = KafkaPosition::decode(&position) {
                let again = KafkaPosition::decode(&parsed.encode())
                    .expect("a kafka position from encode decodes");
                assert_eq!(again, parsed, "kafka position round trip");
            }
        }
        3 => {
            if let Ok(parsed) = Cursor::parse(&position) {
                let again = Cursor::parse(&parsed.to_position())
                    .expect("an S3 position from to_position parses");
                assert_eq!(again, parsed, "S3 position round trip");
            }
        }
        4 => open_at(
            &Generator::new(),
            &[("format.type", "raw"), ("format.options.id", "int")],
            &position,
        ),
        5 => {
            let path = fixture()
                .file
                .to_str()
                .expect("a UTF-8 temp path")
                .to_owned();
            open_at(&File::new(), &[("path", &path)], &position);
        }
        _ => open_at(&Oracle::new(), &[], &position),
    }
});
