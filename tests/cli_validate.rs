//! `culvert pipelines validate` and `lint`, offline: each broken pipeline file under
//! `tests/fixtures/broken-pipelines/` (one problem each) gives its exit code and one
//! finding naming the right line, column and field, with a suggestion; a valid file passes.

use crate::harness::culvert;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One broken file and what `validate` must say about it.
struct Case {
    file: &'static str,
    /// The exit code (2 with an error, 0 with warnings only).
    exit: i32,
    severity: &'static str,
    line: usize,
    column: usize,
    /// The field, as a JSON pointer.
    field: &'static str,
    /// Part of the message.
    message: &'static str,
    /// Part of the suggestion.
    suggestion: &'static str,
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { file: "01-bad-yaml.yaml", exit: 2, severity: "error", line: 7, column: 14, field: "", message: "malformed YAML", suggestion: "indentation" },
    Case { file: "02-wrong-version.yaml", exit: 2, severity: "error", line: 1, column: 10, field: "/version", message: "unrecognized version \"3.0\"", suggestion: "version: \"2.2\"" },
    Case { file: "03-missing-pipeline-id.yaml", exit: 2, severity: "error", line: 3, column: 5, field: "/pipelines/0/id", message: "id is mandatory", suggestion: "add \"id\"" },
    Case { file: "04-duplicate-pipeline-id.yaml", exit: 2, severity: "error", line: 5, column: 5, field: "/pipelines/1/id", message: "pipeline id \"twice\" is used 2 times", suggestion: "its own id" },
    Case { file: "05-duplicate-connector-id.yaml", exit: 2, severity: "error", line: 9, column: 9, field: "/pipelines/0/connectors/1/id", message: "must be unique: \"out\"", suggestion: "its own id" },
    Case { file: "06-unknown-connector-type.yaml", exit: 2, severity: "error", line: 7, column: 15, field: "/pipelines/0/connectors/0/type", message: "\"type\" is invalid: \"sink\"", suggestion: "\"source\" or \"destination\"" },
    Case { file: "07-unknown-plugin.yaml", exit: 2, severity: "error", line: 8, column: 9, field: "/pipelines/0/connectors/0/plugin", message: "plugin \"builtin:generater\" not found", suggestion: "did you mean \"builtin:generator\"?" },
    Case { file: "08-unknown-processor-plugin.yaml", exit: 2, severity: "error", line: 7, column: 9, field: "/pipelines/0/processors/0/plugin", message: "plugin \"field.sett\" not found", suggestion: "did you mean \"field.set\"?" },
    Case { file: "09-bad-status.yaml", exit: 2, severity: "error", line: 4, column: 13, field: "/pipelines/0/status", message: "\"status\" is invalid: \"paused\"", suggestion: "\"running\" or \"stopped\"" },
    Case { file: "10-misspelt-field.yaml", exit: 0, severity: "warning", line: 5, column: 5, field: "/pipelines/0/descripton", message: "unknown field \"descripton\"", suggestion: "rename \"descripton\" to \"description\"" },
    Case { file: "11-wrong-field-type.yaml", exit: 2, severity: "error", line: 9, column: 19, field: "/pipelines/0/connectors/0/settings", message: "want a mapping, found a sequence", suggestion: "as a mapping" },
    Case { file: "12-bad-dlq-window.yaml", exit: 2, severity: "error", line: 7, column: 20, field: "/pipelines/0/dead-letter-queue/window-size", message: "\"window-size\" can't be negative", suggestion: "0 or more" },
    Case { file: "13-negative-workers.yaml", exit: 2, severity: "error", line: 8, column: 9, field: "/pipelines/0/processors/0/workers", message: "\"workers\" can't be negative", suggestion: "1 or more" },
    Case { file: "14-empty-settings-key.yaml", exit: 2, severity: "error", line: 10, column: 11, field: "/pipelines/0/connectors/0/settings/", message: "setting's name can't be empty", suggestion: "remove the entry" },
    Case { file: "15-unknown-top-level-key.yaml", exit: 0, severity: "warning", line: 2, column: 1, field: "/kind", message: "unknown field \"kind\"", suggestion: "version, pipelines" },
    Case { file: "16-env-var-syntax.yaml", exit: 0, severity: "warning", line: 10, column: 20, field: "/pipelines/0/connectors/0/settings/message", message: "without a closing", suggestion: "${NAME}" },
    Case { file: "17-missing-plugin.yaml", exit: 2, severity: "error", line: 6, column: 9, field: "/pipelines/0/connectors/0/plugin", message: "\"plugin\" is mandatory", suggestion: "add \"plugin\"" },
    Case { file: "18-missing-destination.yaml", exit: 2, severity: "error", line: 4, column: 5, field: "/pipelines/0/connectors", message: "at least one destination connector", suggestion: "status: stopped" },
    Case { file: "19-bad-setting-value.yaml", exit: 2, severity: "error", line: 10, column: 11, field: "/pipelines/0/connectors/0/settings/format.type", message: "\"xml\" must be one of", suggestion: "valid values: raw, structured, file" },
    Case { file: "20-unknown-setting.yaml", exit: 2, severity: "error", line: 10, column: 11, field: "/pipelines/0/connectors/0/settings/levle", message: "unrecognized parameter", suggestion: "did you mean \"level\"?" },
    Case { file: "21-version-1.yaml", exit: 2, severity: "error", line: 2, column: 1, field: "/pipelines", message: "version 1.x wants a mapping of id to entry here, found a sequence", suggestion: "key each entry by its id" },
    Case { file: "22-duplicate-processor-id.yaml", exit: 2, severity: "error", line: 9, column: 9, field: "/pipelines/0/processors/1/id", message: "must be unique: \"tag\"", suggestion: "its own id" },
];

#[test]
fn each_broken_file_is_reported_at_its_line_and_field() {
    let dir = fixtures().join("broken-pipelines");
    let mut failures = Vec::new();
    for case in CASES {
        let path = dir.join(case.file);
        let path = path.to_str().unwrap();
        // Text: `file:line:column: severity: field: message`, then the suggestion.
        let (code, out, err) = culvert(&["pipelines", "validate", path]);
        let head = format!(
            "{path}:{}:{}: {}: {}",
            case.line,
            case.column,
            case.severity,
            if case.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", case.field)
            }
        );
        let lines: Vec<&str> = out.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&head) && l.contains(case.message));
        let suggested = at.and_then(|i| lines.get(i + 1)).is_some_and(|next| {
            next.starts_with("  suggestion: ") && next.contains(case.suggestion)
        });
        if code != case.exit || at.is_none() || !suggested {
            failures.push(format!(
                "{}: exit {code} (want {}), want a line starting {head:?} with {:?} and a \
                 suggestion with {:?}; got:\n{out}{err}",
                case.file, case.exit, case.message, case.suggestion
            ));
        }
        // JSON: the same finding, as the only one of its severity.
        let (code, out, _) = culvert(&["pipelines", "validate", path, "--output", "json"]);
        let findings: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON array");
        let same: Vec<&serde_json::Value> = findings
            .iter()
            .filter(|f| f["severity"] == case.severity)
            .collect();
        let ok = code == case.exit
            && same.iter().any(|f| {
                f["line"] == case.line
                    && f["column"] == case.column
                    && f["field"] == case.field
                    && f["file"] == path
                    && f["message"].as_str().unwrap().contains(case.message)
                    && f["suggestion"]
                        .as_str()
                        .is_some_and(|s| s.contains(case.suggestion))
            });
        if !ok {
            failures.push(format!("{} (json): exit {code}; got {out}", case.file));
        }
        // One problem per file (a duplicate pipeline id is reported at both copies).
        let want = if case.file.starts_with("04-") { 2 } else { 1 };
        if findings.len() != want {
            failures.push(format!(
                "{}: {} findings, want {want}: {out}",
                case.file,
                findings.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(CASES.len() >= 20);
}

#[test]
fn a_valid_file_passes_and_a_directory_is_read_whole() {
    let valid = fixtures().join("valid-pipelines");
    let valid = valid.to_str().unwrap();
    let (code, out, err) = culvert(&["pipelines", "validate", valid]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok.yaml: valid (1 pipeline(s): valid-one)"),
        "{out}"
    );
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
    let (code, out, _) = culvert(&["pipelines", "validate", valid, "--output", "json"]);
    assert_eq!((code, out.trim()), (0, "[]"));

    // The whole broken directory: every file is checked, a bad one never stops the rest.
    let broken = fixtures().join("broken-pipelines");
    let (code, out, err) = culvert(&[
        "pipelines",
        "validate",
        broken.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 2, "{err}");
    let findings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let files: std::collections::BTreeSet<&str> = findings
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), CASES.len(), "{files:?}");
    assert!(err.contains("error(s) found"), "{err}");
}

#[test]
fn the_same_pipeline_id_in_two_files_is_an_error_in_both() {
    let dir = tempfile::tempdir().unwrap();
    let valid = fixtures().join("valid-pipelines/ok.yaml");
    for name in ["a.yaml", "b.yml"] {
        std::fs::copy(&valid, dir.path().join(name)).unwrap();
    }
    let (code, out, _) = culvert(&["pipelines", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    for name in ["a.yaml", "b.yml"] {
        assert!(
            out.contains(&format!(
                "{name}:3:5: error: /pipelines/0/id: pipeline id \"valid-one\" is used 2 times"
            )),
            "{out}"
        );
    }
}

#[test]
fn lint_adds_style_warnings_and_strict_fails_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("style.yaml");
    std::fs::write(
        &file,
        "version: \"2.2\"\npipelines:\n  - id: My Pipeline\n    status: stopped\n    processors:\n      - id: tag\n        type: field.set\n        settings: { field: .Metadata.a, value: x }\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // validate: valid (the deprecated `type` is the parser's own warning).
    let (code, out, _) = culvert(&["pipelines", "validate", file]);
    assert_eq!(code, 2, "an id with a space is an error: {out}");
    assert!(
        out.contains("3:5: error: /pipelines/0/id: id \"My Pipeline\" contains ' '"),
        "{out}"
    );

    std::fs::write(
        file,
        "version: \"2.2\"\npipelines:\n  - id: MyPipeline\n    status: stopped\n    processors:\n      - id: tag.one\n        type: field.set\n        settings: { field: .Metadata.a, value: x }\n",
    )
    .unwrap();
    let (code, out, _) = culvert(&["pipelines", "validate", file]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("7:9: warning: /pipelines/0/processors/0/type: field type is deprecated"),
        "{out}"
    );
    assert!(
        !out.contains("no description"),
        "validate has no style warnings: {out}"
    );

    let (code, out, _) = culvert(&["pipelines", "lint", file]);
    assert_eq!(code, 0, "warnings alone pass: {out}");
    for want in [
        "3:5: warning: /pipelines/0/description: pipeline \"MyPipeline\" has no description",
        "3:5: warning: /pipelines/0/id: pipeline id \"MyPipeline\" has upper-case letters",
        "6:9: warning: /pipelines/0/processors/0/id: processor id \"tag.one\" contains '.'",
        "  suggestion: use letters, digits, '-' and '_' only, e.g. \"tag-one\"",
    ] {
        assert!(out.contains(want), "want {want:?} in:\n{out}");
    }
    let (code, _, err) = culvert(&["pipelines", "lint", "--strict", file]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("warning(s) treated as errors (--strict)"),
        "{err}"
    );
}

#[test]
fn a_missing_path_exits_2() {
    let (code, _, err) = culvert(&["pipelines", "validate", "/no/such/pipelines"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("could not resolve path /no/such/pipelines"),
        "{err}"
    );
}
