//! Writing pipelines as a configuration file (version 2.2), the inverse of [`crate::config`]:
//! parsing what this writes gives back the same pipelines.
//!
//! Every string is written double-quoted with YAML's escapes, so no value is mistaken for
//! a number, a boolean or null. One thing cannot round-trip, in Conduit's format too: a
//! `$` in a value is read back as the start of an environment variable.
//!
//! [`to_yaml`] writes settings as it is given them (the server also uses it for documents
//! it reads back itself). An export for people and files must not hold a secret in clear:
//! pass the pipelines through [`protect`] first, with a function that keeps sealed values
//! (a server with the same key opens them on import) and seals, or hides as `***`, a
//! sensitive value still in clear (`culvert_api::redact::Redactor::exported`).

use crate::config::{PipelineConfig, ProcessorConfig, LATEST};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A YAML double-quoted string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Non-printable characters and the line separators YAML would fold.
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn settings(out: &mut String, indent: &str, settings: &BTreeMap<String, String>) {
    if settings.is_empty() {
        let _ = writeln!(out, "{indent}settings: {{}}");
        return;
    }
    let _ = writeln!(out, "{indent}settings:");
    for (key, value) in settings {
        let _ = writeln!(out, "{indent}  {}: {}", quoted(key), quoted(value));
    }
}

fn processors(out: &mut String, indent: &str, list: &[ProcessorConfig]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}processors:");
    for p in list {
        let _ = writeln!(out, "{indent}  - id: {}", quoted(&p.id));
        let _ = writeln!(out, "{indent}    plugin: {}", quoted(&p.plugin));
        if !p.condition.is_empty() {
            let _ = writeln!(out, "{indent}    condition: {}", quoted(&p.condition));
        }
        settings(out, &format!("{indent}    "), &p.settings);
        let _ = writeln!(out, "{indent}    workers: {}", p.workers);
    }
}

/// Replace every settings map of `pipelines` (connectors', processors' and dead-letter
/// queues') by `protect(plugin, settings)`: what an export does before [`to_yaml`] so that
/// no secret is written in clear.
pub fn protect(
    pipelines: &mut [PipelineConfig],
    protect: impl Fn(&str, &BTreeMap<String, String>) -> BTreeMap<String, String>,
) {
    let processors = |list: &mut [ProcessorConfig]| {
        for p in list {
            p.settings = protect(&p.plugin, &p.settings);
        }
    };
    for pipeline in pipelines {
        for c in &mut pipeline.connectors {
            c.settings = protect(&c.plugin, &c.settings);
            processors(&mut c.processors);
        }
        processors(&mut pipeline.processors);
        pipeline.dlq.settings = protect(&pipeline.dlq.plugin, &pipeline.dlq.settings);
    }
}

/// The pipelines as one version-2.2 document, settings as given (see [`protect`]).
pub fn to_yaml(pipelines: &[PipelineConfig]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "version: {}", quoted(LATEST));
    let _ = writeln!(out, "pipelines:");
    for p in pipelines {
        let _ = writeln!(out, "  - id: {}", quoted(&p.id));
        let status = if p.running { "running" } else { "stopped" };
        let _ = writeln!(out, "    status: {status}");
        let _ = writeln!(out, "    name: {}", quoted(&p.name));
        let _ = writeln!(out, "    description: {}", quoted(&p.description));
        if !p.connectors.is_empty() {
            let _ = writeln!(out, "    connectors:");
        }
        for c in &p.connectors {
            let _ = writeln!(out, "      - id: {}", quoted(&c.id));
            let kind = if c.source { "source" } else { "destination" };
            let _ = writeln!(out, "        type: {kind}");
            let _ = writeln!(out, "        plugin: {}", quoted(&c.plugin));
            let _ = writeln!(out, "        name: {}", quoted(&c.name));
            settings(&mut out, "        ", &c.settings);
            processors(&mut out, "        ", &c.processors);
        }
        processors(&mut out, "    ", &p.processors);
        let _ = writeln!(out, "    dead-letter-queue:");
        let _ = writeln!(out, "      plugin: {}", quoted(&p.dlq.plugin));
        settings(&mut out, "      ", &p.dlq.settings);
        let _ = writeln!(out, "      window-size: {}", p.dlq.window_size);
        let _ = writeln!(
            out,
            "      window-nack-threshold: {}",
            p.dlq.window_nack_threshold
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ConnectorConfig, DlqConfig, Severity};
    use crate::yaml::Location;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Anything but `$` (read back as an environment variable, by design).
        "[^$]{0,12}"
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.:-]{0,10}"
    }

    fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map("[a-z.*]{1,8}", text(), 0..4)
    }

    fn processor() -> impl Strategy<Value = ProcessorConfig> {
        (name(), name(), text(), map(), 1i32..8).prop_map(
            |(id, plugin, condition, settings, workers)| ProcessorConfig {
                at: Location::default(),
                path: String::new(),
                id,
                plugin,
                condition,
                settings,
                workers,
            },
        )
    }

    fn pipeline() -> impl Strategy<Value = PipelineConfig> {
        (
            name(),
            any::<bool>(),
            text(),
            proptest::collection::vec(
                (
                    name(),
                    any::<bool>(),
                    name(),
                    map(),
                    proptest::collection::vec(processor(), 0..3),
                ),
                0..3,
            ),
            proptest::collection::vec(processor(), 0..3),
            (name(), map(), 0u64..10, 0u64..10),
        )
            .prop_map(|(id, running, description, connectors, processors, dlq)| {
                PipelineConfig {
                    file: "export.yaml".into(),
                    at: Location::default(),
                    path: String::new(),
                    name: format!("{id}-name"),
                    id,
                    running,
                    description,
                    connectors: connectors
                        .into_iter()
                        .map(
                            |(id, source, plugin, settings, processors)| ConnectorConfig {
                                at: Location::default(),
                                path: String::new(),
                                name: format!("{id} name"),
                                id,
                                source,
                                plugin,
                                settings,
                                processors,
                            },
                        )
                        .collect(),
                    processors,
                    dlq: DlqConfig {
                        plugin: dlq.0,
                        settings: dlq.1,
                        window_size: dlq.2,
                        // Under the window, as the parser requires (any, with no window).
                        window_nack_threshold: if dlq.2 == 0 { dlq.3 } else { dlq.3 % dlq.2 },
                    },
                }
            })
    }

    /// Forget where things were written (the positions differ, by nature).
    fn strip(mut p: PipelineConfig) -> PipelineConfig {
        p.at = Location::default();
        p.path = String::new();
        for c in &mut p.connectors {
            c.at = Location::default();
            c.path = String::new();
            for q in &mut c.processors {
                q.at = Location::default();
                q.path = String::new();
            }
        }
        for q in &mut p.processors {
            q.at = Location::default();
            q.path = String::new();
        }
        p
    }

    #[test]
    fn protect_reaches_every_settings_map_and_sealed_text_reads_back() {
        let settings = |value: &str| BTreeMap::from([("password".to_owned(), value.to_owned())]);
        let processor = |id: &str| ProcessorConfig {
            at: Location::default(),
            path: String::new(),
            id: id.into(),
            plugin: format!("builtin:{id}"),
            condition: String::new(),
            settings: settings("clear"),
            workers: 1,
        };
        let mut pipelines = vec![PipelineConfig {
            file: "export.yaml".into(),
            at: Location::default(),
            path: String::new(),
            id: "p".into(),
            name: "p".into(),
            running: false,
            description: String::new(),
            connectors: vec![ConnectorConfig {
                at: Location::default(),
                path: String::new(),
                id: "c".into(),
                name: "c".into(),
                source: true,
                plugin: "builtin:c".into(),
                settings: settings("clear"),
                processors: vec![processor("q1")],
            }],
            processors: vec![processor("q2")],
            dlq: DlqConfig {
                plugin: "builtin:log".into(),
                settings: settings("clear"),
                window_size: 1,
                window_nack_threshold: 0,
            },
        }];
        // What a server's sealing looks like: a prefix, a key id and base64 text.
        let sealed = "culvert:sealed:v1:k1:AbC+/dEf==";
        protect(&mut pipelines, |plugin, s| {
            assert!(plugin.starts_with("builtin:"), "{plugin}");
            s.keys().map(|k| (k.clone(), sealed.to_owned())).collect()
        });
        let text = to_yaml(&pipelines);
        assert!(!text.contains("clear"), "{text}");
        assert_eq!(text.matches(sealed).count(), 4, "{text}");
        let parsed = config::parse("export.yaml", &text, &|_| None);
        let p = &parsed.pipelines[0];
        assert_eq!(p.connectors[0].settings["password"], sealed);
        assert_eq!(p.connectors[0].processors[0].settings["password"], sealed);
        assert_eq!(p.processors[0].settings["password"], sealed);
        assert_eq!(p.dlq.settings["password"], sealed);
    }

    /// Fuzz finding (target `pipeline_file`): an unterminated `${` in a setting. A document
    /// parsed verbatim (as the API parses one) exports to text that parses verbatim to the
    /// same pipelines; only where things were written (file, line, pointer) differs.
    #[test]
    fn unterminated_variable_reads_back_verbatim() {
        let text = "version: \"2.2\"\npipelines:\n  - id: env-syntax\n    status: stopped\n    \
                    connectors:\n      - id: out\n        type: destination\n        \
                    plugin: builtin:log\n        settings:\n          message: \"${LOG_MESSAGE\"\n";
        let parsed = config::parse_verbatim("import.yaml", text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(
            parsed.pipelines[0].connectors[0].settings["message"],
            "${LOG_MESSAGE"
        );
        let exported = to_yaml(&parsed.pipelines);
        let again = config::parse_verbatim("import.yaml", &exported);
        assert!(again.problems.is_empty(), "{:?}", again.problems);
        let again: Vec<_> = again.pipelines.into_iter().map(strip).collect();
        let parsed: Vec<_> = parsed.pipelines.into_iter().map(strip).collect();
        assert_eq!(again, parsed, "{exported}");
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back_the_same(pipeline in pipeline()) {
            // A running pipeline must have a source and a destination to be valid.
            let has = |source: bool| pipeline.connectors.iter().any(|c| c.source == source);
            let mut ids: Vec<&str> = pipeline.connectors.iter().map(|c| c.id.as_str()).collect();
            ids.sort();
            ids.dedup();
            prop_assume!(ids.len() == pipeline.connectors.len());
            prop_assume!(!pipeline.running || (has(true) && has(false)));
            let unique = |list: &[ProcessorConfig]| {
                let mut ids: Vec<&str> = list.iter().map(|p| p.id.as_str()).collect();
                ids.sort();
                ids.dedup();
                ids.len() == list.len()
            };
            prop_assume!(unique(&pipeline.processors));
            prop_assume!(pipeline.connectors.iter().all(|c| unique(&c.processors)));
            let text = to_yaml(std::slice::from_ref(&pipeline));
            let parsed = config::parse("export.yaml", &text, &|_| None);
            let errors: Vec<_> = parsed.problems.iter().filter(|p| p.severity == Severity::Error).collect();
            prop_assert!(errors.is_empty(), "{errors:?}\n{text}");
            prop_assert_eq!(parsed.pipelines.len(), 1);
            prop_assert_eq!(strip(parsed.pipelines[0].clone()), pipeline);
        }
    }
}
