//! Conduit's pipeline configuration files (versions 2.x and 1.x): parsing with environment
//! interpolation, defaults, and validation, every problem with its line, column and field.
//!
//! A file holds one or more YAML documents, each `version` plus a `pipelines` list:
//!
//! ```yaml
//! version: "2.2"
//! pipelines:
//!   - id: orders          # required; status defaults to running, name to the id
//!     connectors:
//!       - id: in
//!         type: source    # or destination
//!         plugin: builtin:generator
//!         settings: { format.type: structured, format.options.id: int }
//!         processors: [ { id: tag, plugin: field.set, settings: {...} } ]
//!     processors: [ ... ]           # on the pipeline
//!     dead-letter-queue: { plugin: builtin:log, window-size: 1, window-nack-threshold: 0 }
//! ```
//!
//! As in Conduit: a missing `version` is read as 2.2 with a warning; an unknown 2.x (or a
//! bare `2`) as 2.2 with a warning; processor `condition` came with 2.1 and `plugin`
//! (replacing `type`) with 2.2, using them earlier is a warning; unknown fields are warnings
//! (with the field probably meant); `$VAR` and `${VAR}` in any string are replaced by the
//! environment variable (unset: empty); YAML merge keys (`<<: *anchor`) are applied. A
//! document with an error is skipped; the others in the file still count.
//!
//! Version 1.x (1.0, 1.1; an unknown 1.x or a bare `1` is read as 1.1 with a warning) keys
//! pipelines, connectors and processors by id in mappings, and names a processor's plugin
//! `type`: such a document is rewritten into the 2.x shape (each key becomes the entry's
//! `id`, in the order written) and read as 2.x. Conduit runs a 1.x file's processors in no
//! fixed order (Go's map iteration); here they run in the order written, and a warning
//! says the format is deprecated.

use crate::yaml::{self, Location, Node, Value};
use std::collections::BTreeMap;
use std::fmt;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The pipeline (or document) it is in is not provisioned.
    Error,
    /// Reported; the configuration is used anyway.
    Warning,
}

/// One problem found in a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// Where in it.
    pub at: Location,
    /// Error or warning.
    pub severity: Severity,
    /// The field, as a JSON pointer from the document (`/pipelines/0/connectors/1/plugin`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}: {severity}: {}: {}",
            self.file, self.at, self.path, self.message
        )
    }
}

/// A pipeline as a file describes it, with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// The file it came from.
    pub file: String,
    /// Where its entry starts.
    pub at: Location,
    /// Its JSON pointer in the document (`/pipelines/0`).
    pub path: String,
    /// Its id.
    pub id: String,
    /// `running` (the default) or `stopped`.
    pub running: bool,
    /// Its name (default: the id).
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its connectors, in order.
    pub connectors: Vec<ConnectorConfig>,
    /// Its own processors, in order.
    pub processors: Vec<ProcessorConfig>,
    /// Its dead-letter queue.
    pub dlq: DlqConfig,
}

/// A connector of a pipeline in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorConfig {
    /// Where its entry starts.
    pub at: Location,
    /// Its JSON pointer.
    pub path: String,
    /// Its id as written (stored as `<pipeline id>:<id>`).
    pub id: String,
    /// `true` for a source, `false` for a destination.
    pub source: bool,
    /// The plugin reference.
    pub plugin: String,
    /// Its name (default: the id as written).
    pub name: String,
    /// Its settings.
    pub settings: BTreeMap<String, String>,
    /// Its processors, in order.
    pub processors: Vec<ProcessorConfig>,
}

/// A processor in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessorConfig {
    /// Where its entry starts.
    pub at: Location,
    /// Its JSON pointer.
    pub path: String,
    /// Its id as written (stored as `<parent id>:<id>`).
    pub id: String,
    /// The plugin reference.
    pub plugin: String,
    /// Its condition (empty: always).
    pub condition: String,
    /// Its settings.
    pub settings: BTreeMap<String, String>,
    /// Workers (default 1).
    pub workers: i32,
}

/// A pipeline's dead-letter queue in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqConfig {
    /// The destination plugin (default `builtin:log`).
    pub plugin: String,
    /// Its settings (default: level warn, message "record delivery failed").
    pub settings: BTreeMap<String, String>,
    /// Window size (default 1).
    pub window_size: u64,
    /// Nacks tolerated in the window (default 0).
    pub window_nack_threshold: u64,
}

impl Default for DlqConfig {
    /// Conduit's default DLQ (the domain's).
    fn default() -> Self {
        let dlq = culvert_domain::DeadLetterQueue::default();
        Self {
            plugin: dlq.plugin,
            settings: dlq.settings,
            window_size: dlq.window_size,
            window_nack_threshold: dlq.window_nack_threshold,
        }
    }
}

/// What one file gave: its valid pipelines and every problem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Pipelines without errors.
    pub pipelines: Vec<PipelineConfig>,
    /// Errors and warnings.
    pub problems: Vec<Problem>,
    /// The id of every pipeline entry, valid or not (a pipeline whose file still names it
    /// is never deleted because of an error in its entry).
    pub mentioned: Vec<String>,
    /// Whether a YAML syntax error cut the file short (then nothing it provisioned before
    /// is deleted).
    pub truncated: bool,
}

/// The longest pipeline id and name.
const MAX_ID: usize = 128;
/// The longest pipeline description.
const MAX_DESCRIPTION: usize = 8192;
/// The longest connector or processor id and connector name.
const MAX_CONNECTOR: usize = 256;

/// The newest version of the format.
pub const LATEST: &str = "2.2";

/// Parse a file's text. `file` names it in problems; `env` looks up variables.
pub fn parse(file: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Parsed {
    parse_with(file, text, Some(env))
}

/// Parse a document that is not a file on disk (one that came over the API): the same
/// rules, but `$` is taken literally.
pub fn parse_verbatim(file: &str, text: &str) -> Parsed {
    parse_with(file, text, None)
}

/// The text of a scalar node (`None` for a collection).
fn key_text(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// Looks up an environment variable.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn parse_with(file: &str, text: &str, env: Option<Env<'_>>) -> Parsed {
    let (documents, syntax) = yaml::parse(text);
    let mut out = Parsed::default();
    for (index, document) in documents.iter().enumerate() {
        let mut doc = Document {
            file,
            env,
            problems: Vec::new(),
            version: Version::V22,
            prefix: if documents.len() > 1 {
                format!("/{index}")
            } else {
                String::new()
            },
        };
        let (pipelines, mentioned) = doc.document(document);
        out.pipelines.extend(pipelines);
        out.mentioned.extend(mentioned);
        out.problems.extend(doc.problems);
    }
    if let Some(error) = syntax {
        out.truncated = true;
        out.problems.push(Problem {
            file: file.to_owned(),
            at: error.at,
            severity: Severity::Error,
            path: String::new(),
            message: format!("malformed YAML: {}", error.message),
        });
    }
    out.problems.sort();
    out
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    /// 1.0 (maps keyed by id), rewritten into the 2.x shape.
    V10,
    /// 1.1 (1.0 with `dead-letter-queue`).
    V11,
    V20,
    V21,
    V22,
}

struct Document<'a> {
    file: &'a str,
    /// Resolves `$VAR` (`None`: no interpolation).
    env: Option<Env<'a>>,
    problems: Vec<Problem>,
    version: Version,
    /// The document's index in the pointer when the file has several.
    prefix: String,
}

/// A field's name and what a map entry holds.
type Fields<'n> = Vec<(&'n str, &'n Node, &'n Node)>;

impl Document<'_> {
    fn problem(&mut self, severity: Severity, at: Location, path: &str, message: String) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            at,
            severity,
            path: format!("{}{path}", self.prefix),
            message,
        });
    }

    fn error(&mut self, at: Location, path: &str, message: impl Into<String>) {
        self.problem(Severity::Error, at, path, message.into());
    }

    fn warn(&mut self, at: Location, path: &str, message: impl Into<String>) {
        self.problem(Severity::Warning, at, path, message.into());
    }

    fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// The entries of a mapping, each key checked against `known` (unknown ones are
    /// warnings naming the closest known field). `None` (after an error) if not a mapping.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            if node.is_null() {
                return Some(vec![]);
            }
            self.error(
                node.at,
                path,
                format!("want a mapping, found {}", node.kind()),
            );
            return None;
        };
        let mut fields = Vec::new();
        for (key, value) in entries {
            let Value::Scalar { text, .. } = &key.value else {
                self.error(key.at, path, "a mapping key must be a scalar");
                continue;
            };
            if !known.contains(&text.as_str()) {
                let hint = closest(text, known)
                    .map(|k| format!(" (did you mean {k:?}?)"))
                    .unwrap_or_default();
                self.warn(
                    key.at,
                    &format!("{path}/{text}"),
                    format!("unknown field {text:?}{hint}; it is ignored"),
                );
                continue;
            }
            if fields.iter().any(|(k, _, _)| *k == text.as_str()) {
                self.error(
                    key.at,
                    &format!("{path}/{text}"),
                    format!("field {text:?} is given twice"),
                );
                continue;
            }
            fields.push((text.as_str(), key, value));
        }
        Some(fields)
    }

    /// A string: scalars (numbers and booleans too, as written) with `$VAR` expanded.
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { .. } if node.is_null() => Some(String::new()),
            Value::Scalar { text, .. } => Some(match self.env {
                Some(env) => {
                    if let Some(i) = unterminated_variable(text) {
                        self.warn(
                            node.at,
                            path,
                            format!(
                                "\"${{\" without a closing \"}}\" in {text:?} (at offset {i}): \
                                 the \"${{\" is dropped"
                            ),
                        );
                    }
                    expand(text, env)
                }
                None => text.clone(),
            }),
            _ => {
                self.error(
                    node.at,
                    path,
                    format!("want a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        let text = self.string(node, path)?;
        if text.is_empty() {
            return Some(0);
        }
        match text.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(node.at, path, format!("want an integer, found {text:?}"));
                None
            }
        }
    }

    fn settings(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut settings = BTreeMap::new();
        let Value::Map(entries) = &node.value else {
            if !node.is_null() {
                self.error(
                    node.at,
                    path,
                    format!("want a mapping, found {}", node.kind()),
                );
            }
            return settings;
        };
        for (key, value) in entries {
            let Some(key_text) = self.string(key, path) else {
                continue;
            };
            if key_text.is_empty() {
                self.error(
                    key.at,
                    &format!("{path}/"),
                    "a setting's name can't be empty",
                );
                continue;
            }
            let value_path = format!("{path}/{key_text}");
            if let Some(text) = self.string(value, &value_path) {
                settings.insert(key_text, text);
            }
        }
        settings
    }

    /// The document's valid pipelines, and the ids of all its pipeline entries.
    fn document(&mut self, node: &Node) -> (Vec<PipelineConfig>, Vec<String>) {
        let Some(fields) = self.fields(node, "", &["version", "pipelines"]) else {
            return (vec![], vec![]);
        };
        let mut version = None;
        let mut pipelines = None;
        for (name, _, value) in fields {
            match name {
                "version" => version = self.string(value, "/version").map(|v| (v, value.at)),
                _ => pipelines = Some(value),
            }
        }
        match version {
            None => self.warn(
                node.at,
                "/version",
                format!("no version given; the file is read as version {LATEST}"),
            ),
            Some((ref v, at)) => match v.as_str() {
                "2.0" => self.version = Version::V20,
                "2.1" => self.version = Version::V21,
                "2.2" => self.version = Version::V22,
                "1.0" => self.version = Version::V10,
                "1.1" => self.version = Version::V11,
                // Conduit falls back on the latest version of a major it knows.
                v if v == "2" || v.starts_with("2.") => self.warn(
                    at,
                    "/version",
                    format!("unknown version {v:?}; the file is read as version {LATEST}"),
                ),
                v if v == "1" || v.starts_with("1.") => {
                    self.version = Version::V11;
                    self.warn(
                        at,
                        "/version",
                        format!("unknown version {v:?}; the file is read as version 1.1"),
                    );
                }
                v => {
                    self.error(at, "/version", format!("unrecognized version {v:?}"));
                    return (vec![], vec![]);
                }
            },
        }
        let Some(list) = pipelines else {
            self.warn(node.at, "/pipelines", "no pipelines in this document");
            return (vec![], vec![]);
        };
        let rewritten;
        let list = if self.version <= Version::V11 {
            let before = self.errors();
            rewritten = self.v1_pipelines(list);
            if self.errors() > before {
                return (vec![], vec![]);
            }
            self.warn(
                version.as_ref().map_or(node.at, |(_, at)| *at),
                "/version",
                format!(
                    "version 1.x is deprecated: its processors are run in the order written \
                     (Conduit runs them in no fixed order); convert the file to version {LATEST}"
                ),
            );
            &rewritten
        } else {
            list
        };
        let Value::Seq(items) = &list.value else {
            if !list.is_null() {
                self.error(
                    list.at,
                    "/pipelines",
                    format!("want a list, found {}", list.kind()),
                );
            }
            return (vec![], vec![]);
        };
        let mut out = Vec::new();
        let mut mentioned = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let before = self.errors();
            let Some(pipeline) = self.pipeline(item, &format!("/pipelines/{i}")) else {
                continue;
            };
            if !pipeline.id.is_empty() {
                mentioned.push(pipeline.id.clone());
            }
            if self.errors() == before {
                out.push(pipeline);
            }
        }
        (out, mentioned)
    }

    /// A 1.x `pipelines` mapping rewritten as the 2.x list: each pipeline's key becomes its
    /// `id`, and so do its connectors' and processors' keys.
    fn v1_pipelines(&mut self, node: &Node) -> Node {
        let mut pipelines = self.v1_entries(node, "/pipelines");
        if let Value::Seq(items) = &mut pipelines.value {
            for (i, item) in items.iter_mut().enumerate() {
                let path = format!("/pipelines/{i}");
                if let Value::Map(fields) = &mut item.value {
                    for (key, value) in fields.iter_mut() {
                        match key_text(key) {
                            Some("connectors") => {
                                *value = self.v1_entries(value, &format!("{path}/connectors"));
                                if let Value::Seq(connectors) = &mut value.value {
                                    for (j, connector) in connectors.iter_mut().enumerate() {
                                        let path = format!("{path}/connectors/{j}");
                                        self.v1_processors_in(connector, &path);
                                    }
                                }
                            }
                            Some("processors") => {
                                *value = self.v1_entries(value, &format!("{path}/processors"));
                            }
                            Some("dead-letter-queue") if self.version == Version::V10 => self.warn(
                                key.at,
                                &format!("{path}/dead-letter-queue"),
                                "field dead-letter-queue was introduced in version 1.1, please \
                                 update the pipeline config version",
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
        pipelines
    }

    /// A connector's 1.x `processors` mapping rewritten as a list.
    fn v1_processors_in(&mut self, connector: &mut Node, path: &str) {
        if let Value::Map(fields) = &mut connector.value {
            for (key, value) in fields.iter_mut() {
                if key_text(key) == Some("processors") {
                    *value = self.v1_entries(value, &format!("{path}/processors"));
                }
            }
        }
    }

    /// A 1.x mapping of id to entry as a 2.x list of entries, each with its key as `id`
    /// (first, where the key was written). A null is an empty list; anything but a mapping
    /// is an error.
    fn v1_entries(&mut self, node: &Node, path: &str) -> Node {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            _ if node.is_null() => {
                return Node {
                    value: Value::Seq(vec![]),
                    at: node.at,
                }
            }
            _ => {
                self.error(
                    node.at,
                    path,
                    format!(
                        "version 1.x wants a mapping of id to entry here, found {}",
                        node.kind()
                    ),
                );
                return node.clone();
            }
        };
        let mut items = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let id = Node {
                value: Value::Scalar {
                    text: "id".to_owned(),
                    quoted: false,
                },
                at: key.at,
            };
            let mut fields = vec![(id, key.clone())];
            match &value.value {
                Value::Map(inner) => {
                    for (k, v) in inner {
                        if key_text(k) == Some("id") {
                            self.warn(
                                k.at,
                                &format!("{path}/{}/id", items.len()),
                                "version 1.x has no field \"id\" (the entry's key is its id); \
                                 it is ignored",
                            );
                            continue;
                        }
                        fields.push((k.clone(), v.clone()));
                    }
                }
                _ if value.is_null() => {}
                _ => {
                    self.error(
                        value.at,
                        &format!("{path}/{}", items.len()),
                        format!("want a mapping, found {}", value.kind()),
                    );
                    continue;
                }
            }
            items.push(Node {
                value: Value::Map(fields),
                at: key.at,
            });
        }
        Node {
            value: Value::Seq(items),
            at: node.at,
        }
    }

    fn pipeline(&mut self, node: &Node, path: &str) -> Option<PipelineConfig> {
        const KNOWN: [&str; 7] = [
            "id",
            "status",
            "name",
            "description",
            "connectors",
            "processors",
            "dead-letter-queue",
        ];
        let fields = self.fields(node, path, &KNOWN)?;
        let mut p = PipelineConfig {
            file: self.file.to_owned(),
            at: node.at,
            path: format!("{}{path}", self.prefix),
            id: String::new(),
            running: true,
            name: String::new(),
            description: String::new(),
            connectors: vec![],
            processors: vec![],
            dlq: DlqConfig::default(),
        };
        for (name, _, value) in fields {
            let field_path = format!("{path}/{name}");
            match name {
                "id" => p.id = self.string(value, &field_path).unwrap_or_default(),
                "status" => {
                    let status = self.string(value, &field_path).unwrap_or_default();
                    match status.as_str() {
                        "running" | "" => p.running = true,
                        "stopped" => p.running = false,
                        other => {
                            let hint =
                                if matches!(other.to_lowercase().as_str(), "running" | "stopped") {
                                    format!(" (did you mean {:?}?)", other.to_lowercase())
                                } else {
                                    String::new()
                                };
                            self.error(
                                value.at,
                                &field_path,
                                format!("\"status\" is invalid: {other:?}, want \"running\" or \"stopped\"{hint}"),
                            );
                        }
                    }
                }
                "name" => p.name = self.string(value, &field_path).unwrap_or_default(),
                "description" => {
                    p.description = self.string(value, &field_path).unwrap_or_default()
                }
                "connectors" => {
                    p.connectors = self.list(value, &field_path, |d, n, path| d.connector(n, path))
                }
                "processors" => {
                    p.processors = self.list(value, &field_path, |d, n, path| d.processor(n, path))
                }
                _ => p.dlq = self.dlq(value, &field_path),
            }
        }
        if p.id.is_empty() {
            self.error(node.at, &format!("{path}/id"), "id is mandatory");
        } else {
            if p.id.len() > MAX_ID {
                self.error(
                    node.at,
                    &format!("{path}/id"),
                    format!("id is too long: {} bytes, at most {MAX_ID}", p.id.len()),
                );
            }
            if let Some(c) =
                p.id.chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || "-_:.".contains(*c)))
            {
                self.error(
                    node.at,
                    &format!("{path}/id"),
                    format!("id {:?} contains {c:?}: only letters, digits, '-', '_', ':' and '.' are allowed", p.id),
                );
            }
        }
        if p.name.is_empty() {
            p.name = p.id.clone();
        }
        if p.name.len() > MAX_ID {
            self.error(
                node.at,
                &format!("{path}/name"),
                format!("name is too long: {} bytes, at most {MAX_ID}", p.name.len()),
            );
        }
        if p.description.len() > MAX_DESCRIPTION {
            self.error(
                node.at,
                &format!("{path}/description"),
                format!(
                    "description is too long: {} bytes, at most {MAX_DESCRIPTION}",
                    p.description.len()
                ),
            );
        }
        self.unique(
            p.connectors
                .iter()
                .map(|c| (c.id.as_str(), c.at, c.path.as_str())),
            "connector",
        );
        self.unique(
            p.processors
                .iter()
                .map(|c| (c.id.as_str(), c.at, c.path.as_str())),
            "processor",
        );
        for c in &p.connectors {
            self.unique(
                c.processors
                    .iter()
                    .map(|p| (p.id.as_str(), p.at, p.path.as_str())),
                "processor",
            );
        }
        if p.running {
            for (source, side) in [(true, "source"), (false, "destination")] {
                if !p.connectors.iter().any(|c| c.source == source) {
                    self.error(
                        node.at,
                        &format!("{path}/connectors"),
                        format!("a running pipeline needs at least one {side} connector"),
                    );
                }
            }
        }
        Some(p)
    }

    /// Report repeated ids (each after the first).
    fn unique<'c>(
        &mut self,
        items: impl Iterator<Item = (&'c str, Location, &'c str)>,
        kind: &str,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for (id, at, path) in items {
            if !id.is_empty() && !seen.insert(id) {
                let path = path
                    .strip_prefix(self.prefix.as_str())
                    .unwrap_or(path)
                    .to_owned();
                self.error(
                    at,
                    &format!("{path}/id"),
                    format!("{kind} \"id\" must be unique: {id:?} is used more than once"),
                );
            }
        }
    }

    fn list<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Vec<T> {
        let Value::Seq(items) = &node.value else {
            if !node.is_null() {
                self.error(node.at, path, format!("want a list, found {}", node.kind()));
            }
            return vec![];
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| item(self, n, &format!("{path}/{i}")))
            .collect()
    }

    fn connector(&mut self, node: &Node, path: &str) -> Option<ConnectorConfig> {
        const KNOWN: [&str; 6] = ["id", "type", "plugin", "name", "settings", "processors"];
        let fields = self.fields(node, path, &KNOWN)?;
        let mut c = ConnectorConfig {
            at: node.at,
            path: format!("{}{path}", self.prefix),
            id: String::new(),
            source: true,
            plugin: String::new(),
            name: String::new(),
            settings: BTreeMap::new(),
            processors: vec![],
        };
        let mut kind = None;
        for (name, _, value) in fields {
            let field_path = format!("{path}/{name}");
            match name {
                "id" => c.id = self.string(value, &field_path).unwrap_or_default(),
                "type" => kind = self.string(value, &field_path).map(|t| (t, value.at)),
                "plugin" => c.plugin = self.string(value, &field_path).unwrap_or_default(),
                "name" => c.name = self.string(value, &field_path).unwrap_or_default(),
                "settings" => c.settings = self.settings(value, &field_path),
                _ => {
                    c.processors = self.list(value, &field_path, |d, n, path| d.processor(n, path))
                }
            }
        }
        let label = if c.id.is_empty() {
            format!("connector {}", path.rsplit('/').next().unwrap_or_default())
        } else {
            format!("connector {:?}", c.id)
        };
        if c.id.is_empty() {
            self.error(
                node.at,
                &format!("{path}/id"),
                format!("{label}: id is mandatory"),
            );
        } else if c.id.len() > MAX_CONNECTOR {
            self.error(
                node.at,
                &format!("{path}/id"),
                format!("{label}: id is too long (at most {MAX_CONNECTOR} bytes)"),
            );
        }
        if c.plugin.is_empty() {
            self.error(
                node.at,
                &format!("{path}/plugin"),
                format!("{label}: \"plugin\" is mandatory"),
            );
        }
        match kind {
            None => self.error(
                node.at,
                &format!("{path}/type"),
                format!("{label}: \"type\" is mandatory"),
            ),
            Some((t, _)) if t == "source" => c.source = true,
            Some((t, _)) if t == "destination" => c.source = false,
            Some((t, at)) if t.is_empty() => self.error(
                at,
                &format!("{path}/type"),
                format!("{label}: \"type\" is mandatory"),
            ),
            Some((t, at)) => self.error(
                at,
                &format!("{path}/type"),
                format!("{label}: \"type\" is invalid: {t:?}, want \"source\" or \"destination\""),
            ),
        }
        if c.name.is_empty() {
            c.name = c.id.clone();
        }
        if c.name.len() > MAX_CONNECTOR {
            self.error(
                node.at,
                &format!("{path}/name"),
                format!("{label}: name is too long (at most {MAX_CONNECTOR} bytes)"),
            );
        }
        Some(c)
    }

    fn processor(&mut self, node: &Node, path: &str) -> Option<ProcessorConfig> {
        const KNOWN: [&str; 6] = ["id", "plugin", "type", "condition", "settings", "workers"];
        let fields = self.fields(node, path, &KNOWN)?;
        let mut p = ProcessorConfig {
            at: node.at,
            path: format!("{}{path}", self.prefix),
            id: String::new(),
            plugin: String::new(),
            condition: String::new(),
            settings: BTreeMap::new(),
            workers: 1,
        };
        let mut plugin = None;
        let mut legacy_type = None;
        for (name, key, value) in fields {
            let field_path = format!("{path}/{name}");
            match name {
                "id" => p.id = self.string(value, &field_path).unwrap_or_default(),
                "plugin" => {
                    if self.version < Version::V22 {
                        self.warn(
                            key.at,
                            &field_path,
                            format!("field plugin was introduced in version 2.2, please update the pipeline config version to {LATEST}"),
                        );
                    }
                    plugin = self.string(value, &field_path);
                }
                "type" => {
                    if self.version >= Version::V22 {
                        self.warn(
                            key.at,
                            &field_path,
                            "field type is deprecated since version 2.2, please use \"plugin\" instead",
                        );
                    }
                    legacy_type = self.string(value, &field_path);
                }
                "condition" => {
                    if self.version < Version::V21 {
                        self.warn(
                            key.at,
                            &field_path,
                            format!("field condition was introduced in version 2.1, please update the pipeline config version to {LATEST}"),
                        );
                    }
                    p.condition = self.string(value, &field_path).unwrap_or_default();
                }
                "settings" => p.settings = self.settings(value, &field_path),
                _ => {
                    if let Some(n) = self.integer(value, &field_path) {
                        p.workers = i32::try_from(n).unwrap_or(i32::MAX);
                    }
                }
            }
        }
        p.plugin = plugin
            .filter(|s| !s.is_empty())
            .or(legacy_type)
            .unwrap_or_default();
        let label = if p.id.is_empty() {
            format!("processor {}", path.rsplit('/').next().unwrap_or_default())
        } else {
            format!("processor {:?}", p.id)
        };
        if p.id.is_empty() {
            self.error(
                node.at,
                &format!("{path}/id"),
                format!("{label}: id is mandatory"),
            );
        }
        if p.plugin.is_empty() {
            self.error(
                node.at,
                &format!("{path}/plugin"),
                format!("{label}: \"plugin\" is mandatory"),
            );
        }
        if p.workers < 0 {
            self.error(
                node.at,
                &format!("{path}/workers"),
                format!("{label}: \"workers\" can't be negative"),
            );
        } else if p.workers == 0 {
            p.workers = 1;
        }
        Some(p)
    }

    fn dlq(&mut self, node: &Node, path: &str) -> DlqConfig {
        const KNOWN: [&str; 4] = ["plugin", "settings", "window-size", "window-nack-threshold"];
        let mut dlq = DlqConfig::default();
        let Some(fields) = self.fields(node, path, &KNOWN) else {
            return dlq;
        };
        let mut settings_given = false;
        for (name, _, value) in fields {
            let field_path = format!("{path}/{name}");
            match name {
                "plugin" => {
                    if let Some(plugin) = self.string(value, &field_path).filter(|p| !p.is_empty())
                    {
                        dlq.plugin = plugin;
                    }
                }
                "settings" => {
                    // An empty mapping counts as none given (Conduit normalises it so).
                    let settings = self.settings(value, &field_path);
                    if !settings.is_empty() {
                        dlq.settings = settings;
                        settings_given = true;
                    }
                }
                size => {
                    let Some(n) = self.integer(value, &field_path) else {
                        continue;
                    };
                    let Ok(n) = u64::try_from(n) else {
                        self.error(
                            value.at,
                            &field_path,
                            format!("\"{size}\" can't be negative"),
                        );
                        continue;
                    };
                    if size == "window-size" {
                        dlq.window_size = n;
                    } else {
                        dlq.window_nack_threshold = n;
                    }
                }
            }
        }
        if !settings_given && dlq.plugin != "builtin:log" {
            dlq.settings.clear();
        }
        if dlq.window_size > 0 && dlq.window_nack_threshold >= dlq.window_size {
            self.error(
                node.at,
                &format!("{path}/window-nack-threshold"),
                format!(
                    "\"window-nack-threshold\" ({}) must be lower than \"window-size\" ({})",
                    dlq.window_nack_threshold, dlq.window_size
                ),
            );
        }
        dlq
    }
}

/// Go's `os.ExpandEnv`: `${NAME}` and `$NAME` replaced by the variable (unset: empty).
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                let name = &braced[..end];
                if !name.is_empty() {
                    out.push_str(&env(name).unwrap_or_default());
                }
                rest = &braced[end + 1..];
                continue;
            }
            // No closing brace: Go drops the `${` and goes on with what follows.
            rest = braced;
            continue;
        }
        let first = after.chars().next();
        match first {
            // Go's special one-character names: `$1`, `$*`, `$$` ...
            Some(c) if "*#$@!?-".contains(c) || c.is_ascii_digit() => {
                out.push_str(&env(&c.to_string()).unwrap_or_default());
                rest = &after[c.len_utf8()..];
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let end = after
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(after.len());
                out.push_str(&env(&after[..end]).unwrap_or_default());
                rest = &after[end..];
            }
            // A lone `$` stays.
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where a `${` with no closing `}` starts in `text` (Go's `os.ExpandEnv` drops those two
/// characters and expands the rest as usual), if anywhere.
fn unterminated_variable(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("${") {
        let start = from + i;
        match text[start + 2..].find('}') {
            Some(end) => from = start + 2 + end + 1,
            None => return Some(start),
        }
    }
    None
}

/// The known word closest to `word` (a likely typo) by edit distance, if any is close.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (distance(&word.to_lowercase(), k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            current[j] = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse("t.yaml", text, &|_| None)
            .problems
            .iter()
            .map(|p| format!("{} {}", p.at, p.path))
            .collect()
    }

    const HEAD: &str = "version: \"2.2\"\npipelines:\n  - id: p\n    status: stopped\n    connectors:\n      - id: s\n        type: source\n        plugin: builtin:generator\n";

    #[test]
    fn an_empty_setting_name_is_an_error_at_its_key() {
        let text = format!("{HEAD}        settings:\n          \"\": x\n");
        assert_eq!(
            problems(&text),
            ["10:11 /pipelines/0/connectors/0/settings/"]
        );
    }

    #[test]
    fn an_unterminated_variable_is_a_warning() {
        let text = format!(
            "{HEAD}        settings:\n          a: \"${{HOME\"\n          b: \"${{A}}-$B\"\n"
        );
        assert_eq!(
            problems(&text),
            ["10:14 /pipelines/0/connectors/0/settings/a"]
        );
        assert_eq!(unterminated_variable("x${A}y${B"), Some(6));
        assert_eq!(unterminated_variable("${A}${B}"), None);
    }

    #[test]
    fn closest_finds_a_typo() {
        assert_eq!(
            closest("conectors", &["connectors", "id"]),
            Some("connectors")
        );
        assert_eq!(closest("zzzzzz", &["connectors", "id"]), None);
    }
}
