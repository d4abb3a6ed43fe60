//! Pipeline configuration files (provisioning): arbitrary UTF-8 through the YAML reader and
//! both parsers must never panic; what parses exports (`to_yaml`) to a document that parses
//! back to the same pipelines.
#![no_main]

use culvert_provisioning::{config, export, yaml};
use libfuzzer_sys::fuzz_target;

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
    assert_eq!(
        again.pipelines, parsed.pipelines,
        "export of a parsed file parses differently:\n{exported}\nproblems: {:?}",
        again.problems
    );
});
