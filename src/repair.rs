//! `culvert pipelines repair FILE`: the machine-appliable fixes for a pipeline
//! configuration file's findings, shown as a plan and, on request, written into the file.
//! As Conduit's verb of the same name (its `cmd/conduit/internal/repair`), offline: it reads
//! and edits the file only, never a server's store or a running pipeline (getting the
//! repaired file into a server is `pipelines apply`, or a restart with `--pipelines.path`).
//!
//! The fixes are Conduit's starter set, derived from `validate`'s findings:
//! - `/status` written in another case or with spaces (`" Running "`) becomes `running` or
//!   `stopped` (class `safe`);
//! - `/description` longer than 8192 bytes is cut to 8192 (`safe`);
//! - a processor's `workers` below 0 becomes 1 (`restart`: a running pipeline would have
//!   to restart to take it);
//! - a processor's deprecated `type` key is renamed to `plugin` (`safe`).
//!
//! Every fix is classified by its path, default-deny: connector settings, a connector's own
//! `plugin`/`type`, the DLQ and any `id` are `data_path` (records' delivery depends on
//! them); so is any path not known to be harmless. `--apply` applies the `safe` fixes, or
//! the ones `--fix PATH` names; a `data_path` one named with `--fix` also needs
//! `--escalate` (else the whole run is refused and nothing is written).
//!
//! The read (the default) prints the plan and its hash: a SHA-256 over the file's bytes and
//! the fixes. `--apply` recomputes the plan and refuses (`repair.plan_stale`) unless the
//! hash given with `--plan-hash` still matches, so what is applied is what was reviewed;
//! `--yes` binds to the recomputed plan instead.
//!
//! The file is edited as text: only the bytes of each fixed value (or renamed key) change,
//! so comments, order and formatting stay. Before anything is written the result is proved
//! twice: parsed again, it must be the original tree with exactly the planned changes, and
//! validated again, no applied fix's finding may remain. Then it replaces the file
//! atomically (a synced temporary file renamed over it, with the file's permissions).
//!
//! Limits, as Conduit's: one file holding one version-2 pipeline document.

use crate::envelope::{CommandError as RepairError, Done};
use crate::validate::Finding;
use culvert_provisioning::config;
use culvert_provisioning::yaml::{self, Location, Node, Value};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The longest description a pipeline may have, in bytes (Conduit's limit).
const DESCRIPTION_LIMIT: usize = 8192;

/// How the outcome is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairOutput {
    /// The plan (or what was applied) for a person.
    Text,
    /// Conduit's result envelope: `{command, ok, summary, result, error}`.
    Json,
}

/// `culvert pipelines repair`'s arguments.
#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    /// The pipeline configuration file (one version-2 pipeline).
    pub path: PathBuf,
    /// Apply the plan instead of only showing it: the safe fixes, or those `--fix` names.
    #[arg(long)]
    pub apply: bool,
    /// The hash a prior read printed; `--apply` refuses unless the plan still has it.
    #[arg(long = "plan-hash", value_name = "HASH")]
    pub plan_hash: Option<String>,
    /// With `--apply`: apply the plan as it is now, without `--plan-hash`.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Apply only the fix at this path (as the plan lists it); may be repeated.
    #[arg(long = "fix", value_name = "PATH")]
    pub fix: Vec<String>,
    /// Allow a `--fix`-named fix of class `data_path` (a person's decision, never a
    /// default).
    #[arg(long)]
    pub escalate: bool,
    /// Plain output (the text output has no colour or glyphs anyway; accepted as
    /// Conduit's).
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// `text` (default) or `json`.
    #[arg(long, short = 'o', value_enum, default_value_t = RepairOutput::Text)]
    pub output: RepairOutput,
    /// Same as `--output json` (Conduit's flag).
    #[arg(long)]
    pub json: bool,
}

/// How safe a fix is to apply unattended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixClass {
    /// Metadata or structure with no effect on records' delivery.
    Safe,
    /// Harmless to the file, but a running pipeline must restart to take it.
    Restart,
    /// Touches what records' delivery depends on: never applied without `--escalate`.
    DataPath,
}

/// A machine-appliable change: Conduit's `{configPath, op, value}`. For a rename, `op` is
/// `remove` of the old key and `value` the new key's name (as Conduit encodes it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    /// JSON pointer of the field.
    pub config_path: String,
    /// `set` or `remove`.
    pub op: String,
    /// The new value (`set`), or the new key (a rename).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// One fix of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposedFix {
    /// The finding's reason code (`config.field_invalid`, ...).
    pub code: String,
    /// The finding's message.
    pub message: String,
    /// Where (also `fix.configPath`).
    pub config_path: String,
    /// The change.
    pub fix: Fix,
    /// How safe it is.
    pub class: FixClass,
    /// The value now (never shown for a `data_path` fix: it may be a secret).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub before: String,
    /// The value after.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub after: String,
    /// Where the finding is in the file (not part of the hash).
    #[serde(skip)]
    at: Location,
    /// What to change in the document.
    #[serde(skip)]
    edit: Edit,
}

/// What a fix changes, addressed from the document's root.
#[derive(Clone, Debug, PartialEq)]
enum Edit {
    /// Replace the value at `path` by a plain (or, `quoted`, a double-quoted) scalar.
    Set {
        path: Vec<String>,
        text: String,
        quoted: bool,
    },
    /// Rename the key of the field at `path` to `to`.
    Rename { path: Vec<String>, to: String },
}

/// The read's result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The file.
    pub path: String,
    /// SHA-256 of the file's bytes and the fixes (hex).
    pub hash: String,
    /// Every fix, by path.
    pub fixes: Vec<ProposedFix>,
}

/// What became of one selected fix.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedFix {
    /// The fix's path.
    pub config_path: String,
    /// `applied` or `skipped`.
    pub outcome: &'static str,
    /// Why it was skipped (a reason code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The apply's result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The file.
    pub path: String,
    /// The repaired text.
    pub content: String,
    /// Each selected fix's outcome.
    pub fixes: Vec<AppliedFix>,
}

const FIX_NO_LONGER_APPLIES: &str = "repair.fix_no_longer_applies";
const DATA_PATH_FIX_REFUSED: &str = "repair.data_path_fix_refused";

/// Run the verb.
pub fn run(args: RepairArgs) -> ExitCode {
    let json = args.json || args.output == RepairOutput::Json;
    let outcome = execute(&args).map(|outcome| match outcome {
        Outcome::Plan(plan) => Done {
            text: render_plan(&plan),
            summary: plan_summary(&plan),
            result: serde_json::to_value(&plan).expect("a plan serialises"),
        },
        Outcome::Applied(applied) => Done {
            text: render_applied(&applied),
            summary: applied_summary(&applied),
            result: serde_json::to_value(&applied).expect("a result serialises"),
        },
    });
    crate::envelope::finish("pipelines.repair", json, outcome)
}

enum Outcome {
    Plan(Plan),
    Applied(Applied),
}

fn execute(args: &RepairArgs) -> Result<Outcome, RepairError> {
    let raw = std::fs::read_to_string(&args.path).map_err(|e| {
        RepairError::new(
            "config.invalid_argument",
            format!(
                "could not read pipeline config file {}: {e}",
                args.path.display()
            ),
            "check that the file exists and is readable",
        )
    })?;
    let name = args.path.display().to_string();
    let plan = collect(&name, &raw)?;
    if !args.apply {
        return Ok(Outcome::Plan(plan));
    }
    let hash = match (&args.plan_hash, args.yes) {
        (Some(hash), _) => hash.clone(),
        (None, true) => plan.hash.clone(),
        (None, false) => {
            return Err(RepairError::new(
                "config.invalid_argument",
                "repair --apply needs --plan-hash (from a prior 'culvert pipelines repair' read), or --yes to apply the plan as it is now",
                format!(
                    "run 'culvert pipelines repair {name}' first, review the plan, then pass its hash"
                ),
            ))
        }
    };
    let applied = apply(&plan, &raw, &hash, &args.fix, args.escalate)?;
    // A fix named with --fix that is data-path and was not escalated refuses the run.
    if !args.fix.is_empty() {
        if let Some(refused) = applied
            .fixes
            .iter()
            .find(|f| f.reason == Some(DATA_PATH_FIX_REFUSED))
        {
            let mut error = RepairError::new(
                DATA_PATH_FIX_REFUSED,
                format!(
                    "the fix at {:?} touches what records' delivery depends on and needs --escalate",
                    refused.config_path
                ),
                "re-run with --escalate to apply it (a person's decision), or leave it out of --fix",
            );
            error.config_path = Some(refused.config_path.clone());
            return Err(error);
        }
    }
    if applied.fixes.iter().any(|f| f.outcome == "applied") {
        write_atomically(&args.path, &applied.content).map_err(|e| RepairError {
            code: "io.write_failed",
            message: format!("could not write the repaired file {name}: {e}"),
            suggestion: Some("check the directory is writable; the file was left as it was".into()),
            config_path: None,
        })?;
    }
    Ok(Outcome::Applied(applied))
}

/// The plan for the file `name` holding `raw`: every finding with a machine-appliable
/// fix, classified, with the hash binding it. Pure: reads nothing else, writes nothing.
pub fn collect(name: &str, raw: &str) -> Result<Plan, RepairError> {
    let env = |var: &str| std::env::var(var).ok();
    let parsed = config::parse(name, raw, &env);
    let findings = crate::validate::text_findings(name, raw);
    let (documents, syntax) = yaml::parse(raw);
    if let Some(syntax) = syntax {
        return Err(RepairError {
            code: "config.parse_error",
            message: format!(
                "repair could not read {name}: {} at line {}, column {}",
                syntax.message, syntax.at.line, syntax.at.column
            ),
            suggestion: Some(format!(
                "fix the YAML first ('culvert pipelines validate {name}' shows where)"
            )),
            config_path: None,
        });
    }
    if parsed.mentioned.is_empty() {
        let why = findings
            .iter()
            .find(|f| f.severity == "error")
            .map(|f| format!(": {}", f.message))
            .unwrap_or_default();
        return Err(RepairError::new(
            "config.invalid_argument",
            format!("repair found no pipeline definition in {name}{why}"),
            format!("run 'culvert pipelines validate {name}' to see why"),
        ));
    }
    if parsed.mentioned.len() > 1 {
        return Err(RepairError::new(
            "config.invalid_argument",
            format!(
                "repair needs exactly one pipeline definition per file (found {})",
                parsed.mentioned.len()
            ),
            "split the file into one pipeline per file: repair, like apply, edits one pipeline document",
        ));
    }
    let root = match documents.as_slice() {
        [root] => root,
        _ => {
            return Err(RepairError::new(
                "config.invalid_argument",
                "repair only edits a file with a single YAML document",
                "keep one document (no '---' separators) per file",
            ))
        }
    };
    if node_at(root, &["pipelines", "0"]).is_none() {
        return Err(RepairError::new(
            "config.parse_error",
            "repair only edits a version-2.x pipeline config file (pipelines as a list)",
            format!("set version: \"{}\"; version 1 files (pipelines keyed by id) are not edited automatically", config::LATEST),
        ));
    }
    let mut fixes: Vec<ProposedFix> = findings
        .iter()
        .filter_map(|finding| fix_for(root, finding))
        .collect();
    fixes.sort_by(|a, b| a.config_path.cmp(&b.config_path));
    fixes.dedup_by(|a, b| a.config_path == b.config_path && a.fix == b.fix);
    let hash = plan_hash(raw, &fixes);
    Ok(Plan {
        path: name.to_owned(),
        hash,
        fixes,
    })
}

/// The fix for a finding, if it is one of the set that has one.
fn fix_for(root: &Node, finding: &Finding) -> Option<ProposedFix> {
    let pointer = finding.field.strip_prefix("/pipelines/0/")?;
    let document_path: Vec<String> = finding
        .field
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let relative = format!("/{pointer}");
    let segments: Vec<&str> = pointer.split('/').collect();
    let current = node_at(root, &document_path);
    let scalar = |node: Option<&Node>| match node.map(|n| &n.value) {
        Some(Value::Scalar { text, .. }) => Some(text.clone()),
        _ => None,
    };
    let last = *segments.last()?;
    let in_processor = segments.len() >= 3 && segments[segments.len() - 3] == "processors";
    let (code, fix, edit, before, after) = if finding.severity == "error" && segments == ["status"]
    {
        let value = scalar(current)?;
        let normalized = value.trim().to_lowercase();
        if normalized != "running" && normalized != "stopped" {
            return None;
        }
        (
            "config.field_invalid",
            Fix {
                config_path: relative.clone(),
                op: "set".into(),
                value: normalized.clone(),
            },
            Edit::Set {
                path: document_path,
                text: normalized.clone(),
                quoted: false,
            },
            value,
            normalized,
        )
    } else if finding.severity == "error" && segments == ["description"] {
        let value = scalar(current)?;
        if value.len() <= DESCRIPTION_LIMIT {
            return None;
        }
        let mut cut = DESCRIPTION_LIMIT;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        let truncated = value[..cut].to_owned();
        (
            "config.field_too_long",
            Fix {
                config_path: relative.clone(),
                op: "set".into(),
                value: truncated.clone(),
            },
            Edit::Set {
                path: document_path,
                text: truncated.clone(),
                quoted: true,
            },
            one_line(&value),
            one_line(&truncated),
        )
    } else if finding.severity == "error"
        && in_processor
        && last == "workers"
        && finding.message.contains("can't be negative")
    {
        let value = scalar(current)?;
        (
            "config.field_invalid",
            Fix {
                config_path: relative.clone(),
                op: "set".into(),
                value: "1".into(),
            },
            Edit::Set {
                path: document_path,
                text: "1".into(),
                quoted: false,
            },
            value,
            "1".into(),
        )
    } else if finding.severity == "warning"
        && in_processor
        && last == "type"
        && finding.message.contains("deprecated")
    {
        // Conduit's rename fix is addressed from the document's root.
        (
            "config.field_renamed",
            Fix {
                config_path: finding.field.clone(),
                op: "remove".into(),
                value: "plugin".into(),
            },
            Edit::Rename {
                path: document_path,
                to: "plugin".into(),
            },
            "type".into(),
            "plugin".into(),
        )
    } else {
        return None;
    };
    let config_path = fix.config_path.clone();
    let class = classify(&config_path);
    let (before, after) = if class == FixClass::DataPath {
        (String::new(), String::new())
    } else {
        (before, after)
    };
    Some(ProposedFix {
        code: code.into(),
        message: finding.message.clone(),
        config_path,
        fix,
        class,
        before,
        after,
        at: Location {
            line: finding.line,
            column: finding.column,
        },
        edit,
    })
}

/// A value shown on one line: its first 60 characters, newlines escaped.
fn one_line(value: &str) -> String {
    let mut shown: String = value.chars().take(60).collect();
    if shown.len() < value.len() {
        shown.push_str(&format!("... ({} bytes)", value.len()));
    }
    shown.replace('\n', "\\n")
}

/// The class of a fix at `config_path`: deny first (settings, DLQ, ids, a connector's own
/// plugin or type), then the few shapes known harmless, and `data_path` for the rest.
pub fn classify(config_path: &str) -> FixClass {
    let segments: Vec<&str> = config_path.split('/').filter(|s| !s.is_empty()).collect();
    let n = segments.len();
    if n == 0
        || segments
            .iter()
            .any(|s| matches!(*s, "settings" | "dead-letter-queue" | "dlq"))
        || segments[n - 1] == "id"
        || (n >= 3
            && segments[n - 3] == "connectors"
            && matches!(segments[n - 1], "plugin" | "type"))
    {
        return FixClass::DataPath;
    }
    match (n, segments[n - 1]) {
        (1, "status" | "description") => FixClass::Safe,
        (n, "type") if n >= 3 && segments[n - 3] == "processors" => FixClass::Safe,
        (n, "workers") if n >= 3 && segments[n - 3] == "processors" => FixClass::Restart,
        _ => FixClass::DataPath,
    }
}

/// SHA-256 over the file's bytes and the fixes as JSON, hex.
fn plan_hash(raw: &str, fixes: &[ProposedFix]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(raw.as_bytes());
    hasher.update(serde_json::to_vec(fixes).expect("fixes serialise"));
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Apply the selected fixes of `plan` (computed from `raw` just now) if `hash` is still
/// its hash. Returns the repaired text and each fix's outcome; writes nothing.
fn apply(
    plan: &Plan,
    raw: &str,
    hash: &str,
    select: &[String],
    escalate: bool,
) -> Result<Applied, RepairError> {
    if plan.hash != hash {
        return Err(RepairError::new(
            "repair.plan_stale",
            "the repair plan is stale: the hash given is not the plan's hash now; the file changed since the plan was shown",
            "run the read again ('culvert pipelines repair FILE'), review the fixes, then apply its hash",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for fix in &plan.fixes {
        if !seen.insert(fix.config_path.as_str()) {
            let mut error = RepairError::new(
                "repair.ambiguous_fix",
                format!("more than one fix targets {:?}", fix.config_path),
                "fix this field by hand: repair does not choose between candidates",
            );
            error.config_path = Some(fix.config_path.clone());
            return Err(error);
        }
    }
    // Selected: the safe fixes, or those named (a name matching no fix is reported skipped).
    let selected: Vec<(String, Option<&ProposedFix>)> = if select.is_empty() {
        plan.fixes
            .iter()
            .filter(|f| f.class == FixClass::Safe)
            .map(|f| (f.config_path.clone(), Some(f)))
            .collect()
    } else {
        select
            .iter()
            .map(|path| {
                (
                    path.clone(),
                    plan.fixes.iter().find(|f| &f.config_path == path),
                )
            })
            .collect()
    };
    if selected.is_empty() {
        return Err(RepairError::new(
            "repair.no_fixes_available",
            "no fixes to apply: the plan has no safe fix",
            if plan.fixes.is_empty() {
                "nothing to repair: the file has no finding repair can fix".to_owned()
            } else {
                "name the fixes to apply with --fix PATH (restart-class ones are never applied by default)".to_owned()
            },
        ));
    }
    let (documents, _) = yaml::parse(raw);
    let original = documents.into_iter().next().ok_or_else(|| {
        RepairError::new(
            "internal",
            "repair could not parse the file again for editing",
            "report this as a bug",
        )
    })?;
    let mut expected = original.clone();
    let mut splices: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut outcomes = Vec::new();
    for (path, fix) in selected {
        let skipped = |reason| AppliedFix {
            config_path: path.clone(),
            outcome: "skipped",
            reason: Some(reason),
        };
        let Some(fix) = fix else {
            outcomes.push(skipped(FIX_NO_LONGER_APPLIES));
            continue;
        };
        if fix.class == FixClass::DataPath && !escalate {
            outcomes.push(skipped(DATA_PATH_FIX_REFUSED));
            continue;
        }
        match splice_for(raw, &original, &mut expected, &fix.edit) {
            Some(splice) => {
                splices.push(splice);
                outcomes.push(AppliedFix {
                    config_path: path.clone(),
                    outcome: "applied",
                    reason: None,
                });
            }
            None => outcomes.push(skipped(FIX_NO_LONGER_APPLIES)),
        }
    }
    // Splice from the end so earlier offsets stay valid.
    splices.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut content = raw.to_owned();
    for (range, text) in splices {
        content.replace_range(range, &text);
    }
    verify(&plan.path, &content, &expected, &outcomes, &plan.fixes)?;
    Ok(Applied {
        path: plan.path.clone(),
        content,
        fixes: outcomes,
    })
}

/// The text change for `edit`, made also to `expected` (the tree the result must parse
/// to); `None` if the field is not there as the fix expects (a rename whose new key is
/// already present, a value that is not a scalar).
fn splice_for(
    raw: &str,
    original: &Node,
    expected: &mut Node,
    edit: &Edit,
) -> Option<(std::ops::Range<usize>, String)> {
    match edit {
        Edit::Set { path, text, quoted } => {
            let node = node_at(original, path)?;
            if !matches!(node.value, Value::Scalar { .. }) {
                return None;
            }
            let range = scalar_span(raw, value_start(raw, node)?)?;
            *node_at_mut(expected, path)? = Node {
                value: Value::Scalar {
                    text: text.clone(),
                    quoted: *quoted,
                },
                at: node.at,
            };
            let written = if *quoted {
                // A JSON string is a valid YAML double-quoted scalar.
                serde_json::to_string(text).expect("a string serialises")
            } else {
                text.clone()
            };
            Some((range, written))
        }
        Edit::Rename { path, to } => {
            let (key, parent_path) = path.split_last()?;
            let key = key.as_str();
            let parent = node_at(original, parent_path)?;
            let Value::Map(entries) = &parent.value else {
                return None;
            };
            if entries.iter().any(|(k, _)| scalar_text(k) == Some(to)) {
                return None;
            }
            let (key_node, _) = entries.iter().find(|(k, _)| scalar_text(k) == Some(key))?;
            let range = scalar_span(raw, offset_of(raw, key_node.at)?)?;
            let Value::Map(expected_entries) = &mut node_at_mut(expected, parent_path)?.value
            else {
                return None;
            };
            let (expected_key, _) = expected_entries
                .iter_mut()
                .find(|(k, _)| scalar_text(k) == Some(key))?;
            expected_key.value = Value::Scalar {
                text: to.clone(),
                quoted: false,
            };
            Some((range, to.clone()))
        }
    }
}

/// The repaired text must parse to the expected tree (the original with exactly the
/// planned changes) and no applied fix's finding may remain.
fn verify(
    name: &str,
    content: &str,
    expected: &Node,
    outcomes: &[AppliedFix],
    fixes: &[ProposedFix],
) -> Result<(), RepairError> {
    let internal = |why: String| {
        RepairError::new(
            "internal",
            format!("{why}; nothing was written"),
            "fix the field by hand, and report this as a bug (with the file)",
        )
    };
    let (documents, syntax) = yaml::parse(content);
    if let Some(syntax) = syntax {
        return Err(internal(format!(
            "the repaired text does not parse ({})",
            syntax.message
        )));
    }
    match documents.as_slice() {
        [root] if same(root, expected) => {}
        _ => {
            return Err(internal(
                "the repaired text does not read back as the original with only the planned changes (a value written over several lines?)".into(),
            ))
        }
    }
    let after = crate::validate::text_findings(name, content);
    let root = &documents[0];
    for outcome in outcomes.iter().filter(|o| o.outcome == "applied") {
        let fix = fixes
            .iter()
            .find(|f| f.config_path == outcome.config_path)
            .expect("an applied fix is in the plan");
        if after
            .iter()
            .any(|f| fix_for(root, f).is_some_and(|again| again.fix == fix.fix))
        {
            return Err(internal(format!(
                "the fix at {} did not clear its finding",
                outcome.config_path
            )));
        }
    }
    Ok(())
}

/// Whether two trees are equal, ignoring where their nodes were written.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (
            Value::Scalar {
                text: x,
                quoted: qx,
            },
            Value::Scalar {
                text: y,
                quoted: qy,
            },
        ) => x == y && qx == qy,
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| same(kx, ky) && same(vx, vy))
        }
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => false,
    }
}

fn scalar_text(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// The node at a path of mapping keys and sequence indexes.
fn node_at<'a, S: AsRef<str>>(root: &'a Node, path: &[S]) -> Option<&'a Node> {
    path.iter().try_fold(root, |node, segment| {
        let segment = segment.as_ref();
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| scalar_text(k) == Some(segment))
                .map(|(_, v)| v),
            Value::Seq(items) => items.get(segment.parse::<usize>().ok()?),
            Value::Scalar { .. } => None,
        }
    })
}

fn node_at_mut<'a>(root: &'a mut Node, path: &[String]) -> Option<&'a mut Node> {
    path.iter()
        .try_fold(root, |node, segment| match &mut node.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| scalar_text(k) == Some(segment.as_str()))
                .map(|(_, v)| v),
            Value::Seq(items) => items.get_mut(segment.parse::<usize>().ok()?),
            Value::Scalar { .. } => None,
        })
}

/// The byte offset of a 1-based line and (character) column.
fn offset_of(raw: &str, at: Location) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..at.line {
        line_start += raw[line_start..].find('\n')? + 1;
    }
    let line = &raw[line_start..];
    let column = line
        .char_indices()
        .nth(at.column.checked_sub(1)?)
        .map(|(i, _)| i)?;
    Some(line_start + column)
}

/// Where a scalar node's text starts: its location, except for a block scalar, which the
/// parser places at its first line of content: then its `|` or `>` header.
fn value_start(raw: &str, node: &Node) -> Option<usize> {
    let offset = offset_of(raw, node.at)?;
    let block = matches!(node.value, Value::Scalar { quoted: true, .. })
        && !matches!(raw.as_bytes().get(offset), Some(b'"' | b'\''));
    if !block {
        return Some(offset);
    }
    // The header is on the last line before the content that is not blank.
    let before = &raw[..offset];
    let mut end = before.rfind('\n')?;
    loop {
        let start = before[..end].rfind('\n').map_or(0, |i| i + 1);
        let line = &before[start..end];
        if !line.trim().is_empty() {
            let code = line.find(" #").map_or(line, |i| &line[..i]).trim_end();
            let token = code.rsplit([' ', '\t']).next()?;
            if !token.starts_with(['|', '>'])
                || !token[1..]
                    .chars()
                    .all(|c| matches!(c, '-' | '+' | '1'..='9'))
            {
                return None;
            }
            return Some(start + code.len() - token.len());
        }
        end = start.checked_sub(1)?;
    }
}

/// The bytes of the scalar written at `start`: a quoted one to its closing quote, a block
/// one (`|`, `>`) through its last indented line, a plain one to the end of its line (or
/// a comment).
fn scalar_span(raw: &str, start: usize) -> Option<std::ops::Range<usize>> {
    let bytes = raw.as_bytes();
    match bytes.get(start)? {
        b'"' => {
            let mut i = start + 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(start..i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        b'\'' => {
            let mut i = start + 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return Some(start..i + 1);
                }
                i += 1;
            }
            None
        }
        b'|' | b'>' => {
            let header_end = raw[start..].find('\n').map_or(raw.len(), |i| start + i);
            let mut end = header_end;
            let mut indent = None;
            let mut at = header_end;
            while at < raw.len() {
                let line_start = at + 1;
                let line_end = raw[line_start..]
                    .find('\n')
                    .map_or(raw.len(), |i| line_start + i);
                let line = &raw[line_start..line_end];
                if !line.trim().is_empty() {
                    let this = line.len() - line.trim_start_matches(' ').len();
                    let wanted = *indent.get_or_insert(this);
                    if this < wanted || this == 0 {
                        break;
                    }
                    end = line_end;
                }
                at = line_end;
                if line_end == raw.len() {
                    break;
                }
            }
            Some(start..end)
        }
        _ => {
            let line_end = raw[start..].find('\n').map_or(raw.len(), |i| start + i);
            let line = &raw[start..line_end];
            let cut = line.find(" #").unwrap_or(line.len());
            let value = line[..cut].trim_end();
            // A key's text ends at its ':'.
            let value = match value.find(": ") {
                Some(colon) => &value[..colon],
                None => value.strip_suffix(':').unwrap_or(value),
            };
            Some(start..start + value.len())
        }
    }
}

/// Replace `path` with `content`: a synced temporary file beside it, given its
/// permissions, renamed over it, and the directory synced.
fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{file_name}.repair-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(content.as_bytes())?;
        if let Ok(metadata) = std::fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// The MCP `repair` tool: the plan for a pipeline file's `content` and its counts.
pub(crate) fn plan_content(content: &str) -> Result<serde_json::Value, RepairError> {
    let plan = collect("config", content)?;
    Ok(serde_json::json!({"summary": plan_summary(&plan), "plan": plan}))
}

/// The MCP `repair_apply` tool: the plan for `content` applied if `hash` is still its hash
/// (the safe fixes, or those at `select`); the repaired content and each fix's outcome.
/// Never escalates: a data-path fix is skipped, as Conduit's tool does.
pub(crate) fn apply_content(
    content: &str,
    hash: &str,
    select: &[String],
) -> Result<serde_json::Value, RepairError> {
    let plan = collect("config", content)?;
    let applied = apply(&plan, content, hash, select, false)?;
    Ok(serde_json::json!({"summary": applied_summary(&applied), "result": applied}))
}

impl std::fmt::Display for RepairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(path) = &self.config_path {
            write!(f, " (at {path})")?;
        }
        if let Some(suggestion) = &self.suggestion {
            write!(f, "; {suggestion}")?;
        }
        Ok(())
    }
}

fn plan_summary(plan: &Plan) -> serde_json::Value {
    let count = |class| plan.fixes.iter().filter(|f| f.class == class).count();
    serde_json::json!({
        "safe": count(FixClass::Safe),
        "restart": count(FixClass::Restart),
        "dataPath": count(FixClass::DataPath),
    })
}

fn applied_summary(applied: &Applied) -> serde_json::Value {
    let count = |outcome| {
        applied
            .fixes
            .iter()
            .filter(|f| f.outcome == outcome)
            .count()
    };
    serde_json::json!({"applied": count("applied"), "skipped": count("skipped")})
}

fn class_name(class: FixClass) -> &'static str {
    match class {
        FixClass::Safe => "safe",
        FixClass::Restart => "restart",
        FixClass::DataPath => "data_path",
    }
}

fn render_plan(plan: &Plan) -> String {
    if plan.fixes.is_empty() {
        return format!(
            "No machine-appliable fixes for {:?}: nothing to repair.\n",
            plan.path
        );
    }
    let mut out = format!(
        "Proposed fixes for {:?} (hash {}):\n",
        plan.path,
        &plan.hash[..8]
    );
    for fix in &plan.fixes {
        let shown = |v: &str| {
            if v.is_empty() {
                "<hidden>".to_owned()
            } else {
                v.to_owned()
            }
        };
        out.push_str(&format!(
            "  ~ [{:<9}] {:<32} {} -> {}\n      {}:{}:{}: {}: {}\n",
            class_name(fix.class),
            fix.config_path,
            shown(&fix.before),
            shown(&fix.after),
            plan.path,
            fix.at.line,
            fix.at.column,
            fix.code,
            fix.message
        ));
    }
    let safe = plan
        .fixes
        .iter()
        .filter(|f| f.class == FixClass::Safe)
        .count();
    out.push_str(&format!(
        "\n{} fix(es), {safe} safe (applied by --apply; the others only when named with --fix).\nRun:  culvert pipelines repair {} --apply --plan-hash {}\n",
        plan.fixes.len(),
        plan.path,
        plan.hash
    ));
    out
}

fn render_applied(applied: &Applied) -> String {
    let mut out = String::new();
    for fix in &applied.fixes {
        out.push_str(&format!("  {:<8} {}", fix.outcome, fix.config_path));
        if let Some(reason) = fix.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
    }
    let applied_count = applied
        .fixes
        .iter()
        .filter(|f| f.outcome == "applied")
        .count();
    out.push_str(&format!(
        "\n{applied_count} applied, {} skipped.\n",
        applied.fixes.len() - applied_count
    ));
    if applied_count > 0 {
        out.push_str(&format!("{:?} was updated.\n", applied.path));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROKEN: &str = r#"version: "2.2"
pipelines:
  - id: orders   # the orders pipeline
    status: " Running "
    description: short
    connectors:
      - id: src
        type: source
        plugin: builtin:generator
        settings:
          format.type: raw
          format.options.id: int
          recordCount: "1"
      - id: dst
        type: destination
        plugin: builtin:log
    processors:
      - id: tag
        type: field.set   # deprecated key
        workers: -3
        settings:
          field: .Metadata.x
          value: "y"
"#;

    fn plan(text: &str) -> Plan {
        collect("orders.yaml", text).expect("a plan")
    }

    #[test]
    fn the_plan_lists_each_fix_with_its_class() {
        let plan = plan(BROKEN);
        let listed: Vec<(&str, FixClass, &str, &str)> = plan
            .fixes
            .iter()
            .map(|f| {
                (
                    f.config_path.as_str(),
                    f.class,
                    f.before.as_str(),
                    f.after.as_str(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "/pipelines/0/processors/0/type",
                    FixClass::Safe,
                    "type",
                    "plugin"
                ),
                ("/processors/0/workers", FixClass::Restart, "-3", "1"),
                ("/status", FixClass::Safe, " Running ", "running"),
            ]
        );
        assert_eq!(plan.hash.len(), 64);
        // The hash binds the bytes: a comment changed is a new plan.
        let other = plan_hash(&BROKEN.replace("the orders", "an orders"), &plan.fixes);
        assert_ne!(plan.hash, other);
    }

    #[test]
    fn apply_changes_only_the_fixed_bytes() {
        let plan = plan(BROKEN);
        let applied = apply(&plan, BROKEN, &plan.hash, &[], false).unwrap();
        let outcomes: Vec<(&str, &str)> = applied
            .fixes
            .iter()
            .map(|f| (f.config_path.as_str(), f.outcome))
            .collect();
        // Safe fixes only by default: workers (restart) stays.
        assert_eq!(
            outcomes,
            [
                ("/pipelines/0/processors/0/type", "applied"),
                ("/status", "applied")
            ]
        );
        let expected = BROKEN
            .replace("status: \" Running \"", "status: running")
            .replace("type: field.set", "plugin: field.set");
        assert_eq!(applied.content, expected);
        // Comments survive.
        assert!(applied.content.contains("# the orders pipeline"));
        assert!(applied.content.contains("# deprecated key"));
        // Named, the restart-class one applies too.
        let named = apply(
            &plan,
            BROKEN,
            &plan.hash,
            &["/processors/0/workers".to_owned()],
            false,
        )
        .unwrap();
        assert!(named.content.contains("workers: 1\n"));
        assert!(named.content.contains("status: \" Running \""));
    }

    #[test]
    fn a_repaired_file_has_no_fixes_left() {
        let plan = plan(BROKEN);
        let all: Vec<String> = plan.fixes.iter().map(|f| f.config_path.clone()).collect();
        let applied = apply(&plan, BROKEN, &plan.hash, &all, false).unwrap();
        assert!(applied.fixes.iter().all(|f| f.outcome == "applied"));
        let again = collect("orders.yaml", &applied.content).unwrap();
        assert!(again.fixes.is_empty(), "{:?}", again.fixes);
        let findings = crate::validate::text_findings("orders.yaml", &applied.content);
        assert!(
            findings.iter().all(|f| f.severity != "error"),
            "{findings:?}"
        );
    }

    #[test]
    fn the_mcp_tools_plan_and_apply_content() {
        let planned = plan_content(BROKEN).unwrap();
        let hash = planned["plan"]["hash"].as_str().unwrap().to_owned();
        assert!(
            planned["summary"]["safe"].as_u64().unwrap() >= 1,
            "{planned}"
        );
        // Every fix selected (the restart-class one too).
        let all: Vec<String> = planned["plan"]["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["configPath"].as_str().unwrap().to_owned())
            .collect();
        let applied = apply_content(BROKEN, &hash, &all).unwrap();
        let content = applied["result"]["content"].as_str().unwrap();
        assert_ne!(content, BROKEN);
        assert_eq!(applied["summary"]["applied"], all.len(), "{applied}");
        assert!(plan_content(content).unwrap()["plan"]["fixes"]
            .as_array()
            .unwrap()
            .is_empty());
        let stale = apply_content(BROKEN, "0123", &[]).unwrap_err().to_string();
        assert!(stale.starts_with("repair.plan_stale: "), "{stale}");
    }

    #[test]
    fn a_stale_hash_is_refused() {
        let plan = plan(BROKEN);
        let error = apply(&plan, BROKEN, "0123", &[], false).unwrap_err();
        assert_eq!(error.code, "repair.plan_stale");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn a_long_block_description_is_cut_to_the_limit() {
        let long = "word ".repeat(2000);
        let text = BROKEN.replace(
            "    description: short\n",
            &format!("    description: |\n      {long}\n      second line\n"),
        );
        let plan = plan(&text);
        let fix = plan
            .fixes
            .iter()
            .find(|f| f.config_path == "/description")
            .expect("a description fix");
        assert_eq!(fix.class, FixClass::Safe);
        assert_eq!(fix.fix.value.len(), DESCRIPTION_LIMIT);
        let applied = apply(&plan, &text, &plan.hash, &["/description".into()], false).unwrap();
        let (documents, _) = yaml::parse(&applied.content);
        let description = node_at(&documents[0], &["pipelines", "0", "description"]).unwrap();
        assert_eq!(scalar_text(description).unwrap().len(), DESCRIPTION_LIMIT);
        // What followed the block is intact.
        assert!(applied
            .content
            .contains("    connectors:\n      - id: src\n"));
    }

    #[test]
    fn a_rename_into_an_existing_key_is_skipped() {
        let text = BROKEN.replace(
            "        type: field.set   # deprecated key\n",
            "        type: field.set\n        plugin: field.set\n",
        );
        let plan = plan(&text);
        let rename = "/pipelines/0/processors/0/type".to_owned();
        let applied = apply(
            &plan,
            &text,
            &plan.hash,
            std::slice::from_ref(&rename),
            false,
        )
        .unwrap();
        assert_eq!(applied.fixes[0].outcome, "skipped");
        assert_eq!(applied.fixes[0].reason, Some(FIX_NO_LONGER_APPLIES));
        assert_eq!(applied.content, text);
    }

    #[test]
    fn classification_denies_by_default() {
        assert_eq!(classify("/status"), FixClass::Safe);
        assert_eq!(classify("/description"), FixClass::Safe);
        assert_eq!(classify("/processors/0/workers"), FixClass::Restart);
        assert_eq!(
            classify("/connectors/0/processors/1/workers"),
            FixClass::Restart
        );
        assert_eq!(classify("/pipelines/0/processors/0/type"), FixClass::Safe);
        assert_eq!(classify("/connectors/0/type"), FixClass::DataPath);
        assert_eq!(classify("/connectors/0/plugin"), FixClass::DataPath);
        assert_eq!(classify("/connectors/0/settings/url"), FixClass::DataPath);
        assert_eq!(classify("/dead-letter-queue/plugin"), FixClass::DataPath);
        assert_eq!(classify("/processors/0/id"), FixClass::DataPath);
        assert_eq!(classify("/name"), FixClass::DataPath);
        assert_eq!(classify(""), FixClass::DataPath);
    }

    #[test]
    fn unsupported_files_are_refused_with_a_code() {
        let two = format!("{BROKEN}  - id: second\n");
        assert_eq!(
            collect("x.yaml", &two).unwrap_err().code,
            "config.invalid_argument"
        );
        assert_eq!(
            collect("x.yaml", "pipelines: [\n").unwrap_err().code,
            "config.parse_error"
        );
    }

    #[test]
    fn spans_cover_each_scalar_style() {
        let text =
            "a: \"x\\\"y\" # c\nb: 'it''s'\nc: plain text  # c\nd: |\n  one\n  two\n\ne: 1\n";
        let span = |needle: &str| {
            let start = text.find(needle).unwrap();
            let range = scalar_span(text, start).unwrap();
            &text[range]
        };
        assert_eq!(span("\"x"), "\"x\\\"y\"");
        assert_eq!(span("'it"), "'it''s'");
        assert_eq!(span("plain"), "plain text");
        assert_eq!(span("|"), "|\n  one\n  two");
        assert_eq!(span("a:"), "a");
    }
}
