//! Pipeline configuration files (provisioning): arbitrary UTF-8 through the YAML reader and
//! both parsers must never panic; what parses exports (`to_yaml`) to a document that parses
//! back to the same pipelines.
#![no_main]

use config::{PipelineConfig, ProcessorConfig};
use culvert_provisioning::yaml::Location;
use culvert_provisioning::{config, export, yaml};
use libfuzzer_sys::fuzz_target;

/// The pipelines without where they were written.
fn content(mut pipelines: Vec<PipelineConfig>) -> Vec<PipelineConfig> {
    let processors = |list: &mut Vec<ProcessorConfig>| {
        for p in list {
            p.at = Location::default();
            p.path = String::new();
        }
    };
    for p in &mut pipelines {
        p.file = String::new();
        p.at = Location::default();
        p.path = String::new();
        processors(&mut p.processors);
        for c in &mut p.connectors {
            c.at = Location::default();
            c.path = String::new();
            processors(&mut c.processors);
        }
    }
    pipelines
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = yaml::parse(text);
    // Some variables set, some not: both paths of `${VAR}` expansion are taken.
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!("value of {name}"));
    let _ = config::parse("fuzz.yaml", text, &env);
    let parsed = config::parse_verbatim("fuzz.yaml", text);
    if parsed.pipelines.is_empty() {
        return;
    }
    let exported = export::to_yaml(&parsed.pipelines);
    let again = config::parse_verbatim("export.yaml", &exported);
    // Where each entry was written (file, line and column, JSON pointer) differs by nature:
    // the export has its own layout (every default written out). Only the content must be
    // the same (comparing the positions too failed on every input that parsed).
    assert_eq!(
        content(again.pipelines),
        content(parsed.pipelines),
        "export of a parsed file parses differently:\n{exported}\nproblems: {:?}",
        again.problems
    );
});
