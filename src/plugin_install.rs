//! `culvert connector-plugins ...` and `culvert processor-plugins ...`, Conduit's verbs:
//! `list` and `describe` ask a running server (as `culvert plugins ls`, one kind only);
//! `install` and `uninstall` work offline on the plugin directory a server loads
//! standalone plugins from (`--connectors.path`, `--processors.path`), resolved as
//! `culvert run` resolves it (flag, `CULVERT_*` variable, config file, default), or given
//! with `--path`. A server loads what is installed the next time it starts.
//!
//! `install` takes a local file (a connector binary, a `.wasm` processor module), a
//! directory of them, or `NAME[@VERSION]` from an index (`--index`: a path, `file://` or
//! `http(s)://` URL of the JSON or YAML document docs/plugins-install.md describes). Every
//! artifact is first written to a temporary file inside the plugin directory while its
//! SHA-256 is computed; a digest that differs from the index's (or `--sha256`) deletes it.
//! The file is then checked to be a plugin — a connector is started and asked for its
//! specification, a WASM module is compiled and asked for its — and only then renamed into
//! place, atomically, as `DIR/NAME` (connectors) or `DIR/NAME.wasm` (processors), NAME
//! being the name in the plugin's specification. An installed plugin is never replaced
//! without `--force`.
//!
//! Exit codes: 0 ok; 1 a runtime error; 2 bad usage or validation (not a plugin, not in
//! the index, already installed, not installed); 3 the environment (the index or artifact
//! cannot be fetched, a digest mismatch, a directory that cannot be written).

use culvert_plugins::ConnectorPlugin as _;
use http_body_util::BodyExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Which kind of plugin a verb handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A standalone connector (a binary speaking Conduit's connector protocol).
    Connector,
    /// A standalone processor (a WASM module built with Conduit's processor SDK).
    Processor,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::Processor => "processor",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::Connector => "connectors.path",
            Self::Processor => "processors.path",
        }
    }

    /// The file a plugin called `name` is installed as.
    fn file_name(self, name: &str) -> String {
        match self {
            Self::Connector => name.to_owned(),
            Self::Processor => format!("{name}.wasm"),
        }
    }

    /// The installed plugin name a file of the directory stands for (`None`: a file the
    /// server does not load as this kind, or one of ours in progress).
    pub(crate) fn installed_name(self, file: &Path) -> Option<String> {
        let name = file.file_name()?.to_str()?;
        if name.starts_with('.') || !file.is_file() {
            return None;
        }
        match self {
            Self::Connector => Some(name.to_owned()),
            Self::Processor => name.strip_suffix(".wasm").map(str::to_owned),
        }
    }
}

/// `culvert connector-plugins ...` and `culvert processor-plugins ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PluginsCommand {
    /// List a running server's plugins of this kind (as `culvert plugins ls`).
    ///
    /// Example: culvert connector-plugins list --name 'standalone:.*'
    #[command(alias = "ls")]
    List {
        /// Only plugins whose full name matches this regular expression.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: crate::cli::Remote,
    },
    /// Show one of a running server's plugins: its summary, description and parameters.
    ///
    /// Example: culvert connector-plugins describe builtin:file@v0.10.8
    #[command(alias = "desc")]
    Describe {
        /// The plugin: `TYPE:NAME@VERSION` (`builtin:file@v0.10.8`), or `TYPE:NAME` or
        /// `NAME` when only one version is there.
        id: String,
        #[command(flatten)]
        remote: crate::cli::Remote,
    },
    /// Install a standalone plugin into the plugin directory (offline: no server is
    /// contacted; a server loads it when it next starts): a local file or directory, or
    /// NAME[@VERSION] from an index (--index). The artifact's SHA-256 is checked before it
    /// is kept, and it must be a plugin (a connector is started and asked for its
    /// specification, a WASM processor compiled). Never replaces one without --force.
    ///
    /// Example: culvert connector-plugins install file@v0.10.8 --index https://example.com/index.json
    Install(InstallArgs),
    /// Remove an installed standalone plugin from the plugin directory (offline).
    ///
    /// Example: culvert processor-plugins uninstall ai.embed
    Uninstall(UninstallArgs),
    /// Check every installed plugin against an index again (offline): its SHA-256 and
    /// version, yanked versions (exit 2), files that changed or that the index does not
    /// list (warnings).
    ///
    /// Example: culvert connector-plugins audit --index https://example.com/index.json
    Audit(crate::plugin_audit::AuditArgs),
}

/// Where the plugin directory is: `--path`, else the server's own setting.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PluginDirs {
    /// The plugin directory to use, instead of the server's --connectors.path or
    /// --processors.path.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// The server's config file (as `culvert run`'s; default ./culvert.yaml), read for
    /// `connectors.path` and `processors.path`.
    #[arg(long = "config.path", env = "CULVERT_CONFIG_PATH")]
    pub config_path: Option<PathBuf>,
    /// The server's standalone connector directory (default ./connectors).
    #[arg(long = "connectors.path", env = "CULVERT_CONNECTORS_PATH")]
    pub connectors_path: Option<PathBuf>,
    /// The server's standalone processor directory (default ./processors).
    #[arg(long = "processors.path", env = "CULVERT_PROCESSORS_PATH")]
    pub processors_path: Option<PathBuf>,
}

impl PluginDirs {
    /// The directory of `kind`'s plugins: `--path`, else as `culvert run` resolves it (a
    /// flag, its `CULVERT_*` variable, the config file, the default).
    pub fn dir(&self, kind: Kind) -> Result<PathBuf, Failure> {
        if let Some(path) = &self.path {
            return Ok(path.clone());
        }
        let given = match kind {
            Kind::Connector => &self.connectors_path,
            Kind::Processor => &self.processors_path,
        };
        if let Some(path) = given {
            return Ok(path.clone());
        }
        let (file, explicit) = match &self.config_path {
            Some(path) => (path.clone(), true),
            None => (crate::conduit_config::default_config_file(), false),
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
            Err(e) => {
                return Err(Failure(
                    2,
                    format!("reading the config file {}: {e}", file.display()),
                ))
            }
        };
        if let Some(text) = text {
            let documents = yaml_rust2::YamlLoader::load_from_str(&text).map_err(|e| {
                Failure(
                    2,
                    format!("parsing the config file {}: {e}", file.display()),
                )
            })?;
            let mut values = Vec::new();
            if let Some(document) = documents.first() {
                crate::flatten("", document, &mut values).map_err(|e| {
                    Failure(2, format!("in the config file {}: {e:#}", file.display()))
                })?;
            }
            if let Some((_, value)) = values.into_iter().find(|(k, _)| k == kind.flag()) {
                return Ok(PathBuf::from(value));
            }
        }
        Ok(PathBuf::from(match kind {
            Kind::Connector => "./connectors",
            Kind::Processor => "./processors",
        }))
    }
}

/// `install`'s arguments.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// A plugin file or a directory of them; with --index, NAME[@VERSION] (the newest
    /// version for this OS and architecture when no version is given).
    pub plugin: String,
    /// The index to look NAME up in: a file path, a file:// or an http(s):// URL of a JSON
    /// or YAML document (see docs/plugins-install.md).
    #[arg(long, visible_alias = "index-url", alias = "index-file")]
    pub index: Option<String>,
    /// The SHA-256 (hex) a local file must have (an index gives its own).
    #[arg(long)]
    pub sha256: Option<String>,
    /// Replace a plugin of the same name that is already installed.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub dirs: PluginDirs,
}

/// `uninstall`'s arguments.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// The installed plugin's name (`standalone:NAME@VERSION` is accepted too).
    pub name: String,
    #[command(flatten)]
    pub dirs: PluginDirs,
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure(pub u8, pub String);

/// Run a `connector-plugins` or `processor-plugins` verb.
pub fn run(kind: Kind, command: PluginsCommand) -> ExitCode {
    let result = match command {
        PluginsCommand::List { name, remote } => {
            return crate::cli::run_plugins_of(kind == Kind::Connector, name, None, remote)
        }
        PluginsCommand::Describe { id, remote } => {
            return crate::cli::run_plugins_of(kind == Kind::Connector, None, Some(id), remote)
        }
        PluginsCommand::Install(args) => runtime().and_then(|rt| rt.block_on(install(kind, args))),
        PluginsCommand::Uninstall(args) => uninstall(kind, &args),
        PluginsCommand::Audit(args) => {
            runtime().and_then(|rt| rt.block_on(crate::plugin_audit::audit(kind, args)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure(1, format!("starting the async runtime: {e}")))
}

/// How long fetching the index may take.
const INDEX_TIMEOUT: Duration = Duration::from_secs(60);
/// How long downloading one artifact may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest index accepted.
const MAX_INDEX_BYTES: u64 = 16 << 20;
/// The largest artifact accepted.
const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// An index document (docs/plugins-install.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// The format's version (1).
    #[serde(default = "one")]
    pub version: u32,
    /// Every artifact on offer.
    pub plugins: Vec<Entry>,
}

fn one() -> u32 {
    1
}

/// One artifact of an index.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The plugin's name, as its specification gives it.
    pub name: String,
    /// Its version (`v0.10.8`).
    pub version: String,
    /// `connector` or `processor`.
    pub kind: Kind,
    /// The OS it runs on, in Go's terms (`linux`, `darwin`); absent for any (WASM).
    #[serde(default)]
    pub os: Option<String>,
    /// The architecture, in Go's terms (`amd64`, `arm64`); absent for any (WASM).
    #[serde(default)]
    pub arch: Option<String>,
    /// Where the artifact is: an http(s):// or file:// URL, or a path relative to the
    /// index's own location.
    pub url: String,
    /// The artifact's SHA-256, hex.
    pub sha256: String,
    /// One line about it (shown only).
    #[serde(default)]
    pub summary: Option<String>,
    /// Withdrawn by its publisher: never installed, and `audit` fails an installed copy.
    #[serde(default)]
    pub yanked: bool,
    /// Why it was withdrawn (shown with the refusal).
    #[serde(default)]
    pub yanked_reason: Option<String>,
}

impl Entry {
    /// Whether it runs on `os`/`arch` (Go's names; an absent or `any` field fits all).
    pub(crate) fn fits(&self, os: &str, arch: &str) -> bool {
        self.os.as_deref().is_none_or(|o| o == os || o == "any")
            && self.arch.as_deref().is_none_or(|a| a == arch || a == "any")
    }

    /// `NAME@VERSION was yanked[: reason]`.
    pub(crate) fn yanked_text(&self) -> String {
        match &self.yanked_reason {
            Some(reason) => format!("{}@{} was yanked: {reason}", self.name, self.version),
            None => format!("{}@{} was yanked", self.name, self.version),
        }
    }
}

/// Where an artifact comes from.
enum Origin {
    Local(PathBuf),
    Remote(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote(url) => f.write_str(url),
        }
    }
}

/// One artifact to install.
struct Candidate {
    origin: Origin,
    sha256: Option<String>,
    /// The name (and version) the index gives it, which its specification must match.
    expected: Option<(String, String)>,
}

async fn install(kind: Kind, args: InstallArgs) -> Result<(), Failure> {
    let dir = args.dirs.dir(kind)?;
    let sha256 = args.sha256.as_deref().map(hex_digest).transpose()?;
    let candidates = match &args.index {
        Some(index) => {
            if sha256.is_some() {
                return Err(Failure(
                    2,
                    "--sha256 is for a local file; an index gives each artifact's digest"
                        .to_owned(),
                ));
            }
            vec![from_index(kind, index, &args.plugin).await?]
        }
        None => local(kind, &args.plugin, sha256)?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure(
            3,
            format!("cannot create the plugin directory {}: {e}", dir.display()),
        )
    })?;
    if let [candidate] = candidates.as_slice() {
        println!(
            "{}",
            Box::pin(install_one(kind, &dir, candidate, args.force)).await?
        );
        return Ok(());
    }
    // A directory: every file is tried; each failure is printed, the worst code returned.
    let mut failures = Vec::new();
    for candidate in candidates {
        match Box::pin(install_one(kind, &dir, &candidate, args.force)).await {
            Ok(line) => println!("{line}"),
            Err(Failure(code, message)) => {
                eprintln!("error: {message}");
                failures.push(code);
            }
        }
    }
    match failures.iter().max() {
        None => Ok(()),
        Some(code) => Err(Failure(
            *code,
            format!("{} plugin(s) not installed", failures.len()),
        )),
    }
}

/// The artifacts of a local file or directory.
fn local(kind: Kind, plugin: &str, sha256: Option<String>) -> Result<Vec<Candidate>, Failure> {
    let path = PathBuf::from(plugin);
    let metadata = std::fs::metadata(&path).map_err(|e| {
        Failure(
            2,
            format!(
                "{plugin}: {e}; give a plugin file or directory, or NAME[@VERSION] with --index"
            ),
        )
    })?;
    if metadata.is_file() {
        return Ok(vec![Candidate {
            origin: Origin::Local(path),
            sha256,
            expected: None,
        }]);
    }
    if sha256.is_some() {
        return Err(Failure(
            2,
            "--sha256 checks one file, not a directory".to_owned(),
        ));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .map_err(|e| Failure(2, format!("reading the directory {plugin}: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| kind.installed_name(p).is_some())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Failure(
            2,
            format!(
                "the directory {plugin} holds no {} plugin files{}",
                kind.name(),
                if kind == Kind::Processor {
                    " (*.wasm)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(files
        .into_iter()
        .map(|file| Candidate {
            origin: Origin::Local(file),
            sha256: None,
            expected: None,
        })
        .collect())
}

/// `NAME[@VERSION]` looked up in the index at `location`.
async fn from_index(kind: Kind, location: &str, plugin: &str) -> Result<Candidate, Failure> {
    let (name, version) = match plugin.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (plugin, None),
    };
    let name = name.strip_prefix("standalone:").unwrap_or(name);
    let text = read_index(location).await?;
    let index = parse_index(location, &text)?;
    let entry = select(&index, kind, name, version, &platform())?;
    if let Some(summary) = &entry.summary {
        eprintln!("{} {}: {summary}", entry.name, entry.version);
    }
    let url = resolve(location, &entry.url);
    Ok(Candidate {
        origin: url,
        sha256: Some(hex_digest(&entry.sha256).map_err(|Failure(_, m)| {
            Failure(
                2,
                format!(
                    "index {location}: {} {}: sha256: {m}",
                    entry.name, entry.version
                ),
            )
        })?),
        expected: Some((entry.name.clone(), entry.version.clone())),
    })
}

/// This machine's OS and architecture, in Go's terms (as Conduit's release artifacts name
/// them).
pub(crate) fn platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    (std::env::consts::OS.to_owned(), arch.to_owned())
}

pub(crate) async fn read_index(location: &str) -> Result<String, Failure> {
    let bytes = if is_http(location) {
        let mut body = Vec::new();
        tokio::time::timeout(
            INDEX_TIMEOUT,
            download(location, MAX_INDEX_BYTES, &mut body),
        )
        .await
        .map_err(|_| {
            Failure(
                3,
                format!("fetching the index {location}: no answer within {INDEX_TIMEOUT:?}"),
            )
        })??;
        body
    } else {
        let path = file_path(location);
        std::fs::read(&path)
            .map_err(|e| Failure(3, format!("reading the index {}: {e}", path.display())))?
    };
    String::from_utf8(bytes)
        .map_err(|_| Failure(2, format!("the index {location} is not UTF-8 text")))
}

/// An index from its text: JSON, or YAML (told by the text not starting with `{`).
pub fn parse_index(location: &str, text: &str) -> Result<Index, Failure> {
    let invalid = |e: &dyn std::fmt::Display| Failure(2, format!("invalid index {location}: {e}"));
    let index: Index = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid(&e))?
    } else {
        let documents = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| invalid(&e))?;
        let document = documents
            .first()
            .ok_or_else(|| invalid(&"the document is empty"))?;
        serde_json::from_value(yaml_to_json(document).map_err(|e| invalid(&e))?)
            .map_err(|e| invalid(&e))?
    };
    if index.version != 1 {
        return Err(invalid(&format!(
            "version {} is not supported (this culvert reads version 1)",
            index.version
        )));
    }
    for (i, entry) in index.plugins.iter().enumerate() {
        if let Err(Failure(_, problem)) = hex_digest(&entry.sha256) {
            return Err(invalid(&format!(
                "plugins[{i}] ({}): sha256: {problem}",
                entry.name
            )));
        }
        if let Err(problem) = valid_name(&entry.name) {
            return Err(invalid(&format!("plugins[{i}]: name: {problem}")));
        }
    }
    Ok(index)
}

/// A YAML document as JSON (scalars by their YAML type).
fn yaml_to_json(value: &yaml_rust2::Yaml) -> Result<serde_json::Value, String> {
    use yaml_rust2::Yaml;
    Ok(match value {
        Yaml::Null => serde_json::Value::Null,
        Yaml::Boolean(b) => serde_json::Value::Bool(*b),
        Yaml::Integer(n) => serde_json::Value::from(*n),
        Yaml::Real(text) | Yaml::String(text) => serde_json::Value::String(text.clone()),
        Yaml::Array(items) => {
            serde_json::Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Hash(map) => {
            let mut object = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(n) => n.to_string(),
                    other => return Err(format!("key {other:?} is not a string")),
                };
                object.insert(key, yaml_to_json(v)?);
            }
            serde_json::Value::Object(object)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("unsupported YAML value".to_owned()),
    })
}

/// The entry to install: `name` of `kind` for this platform, at `version` or the newest.
fn select<'i>(
    index: &'i Index,
    kind: Kind,
    name: &str,
    version: Option<&str>,
    (os, arch): &(String, String),
) -> Result<&'i Entry, Failure> {
    let named: Vec<&Entry> = index
        .plugins
        .iter()
        .filter(|e| e.kind == kind && e.name == name)
        .collect();
    if named.is_empty() {
        let mut names: Vec<&str> = index
            .plugins
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.name.as_str())
            .collect();
        names.sort();
        names.dedup();
        return Err(Failure(
            2,
            format!(
                "no {} plugin {name:?} in the index; it has: {}",
                kind.name(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    let here: Vec<&Entry> = named.iter().filter(|e| e.fits(os, arch)).copied().collect();
    let platforms = || {
        let mut all: Vec<String> = named
            .iter()
            .map(|e| {
                format!(
                    "{}@{} ({}/{})",
                    e.name,
                    e.version,
                    e.os.as_deref().unwrap_or("any"),
                    e.arch.as_deref().unwrap_or("any")
                )
            })
            .collect();
        all.sort();
        all.join(", ")
    };
    let chosen = match version {
        Some(version) => here
            .iter()
            .find(|e| same_version(&e.version, version))
            .copied(),
        // The newest its publisher has not withdrawn (if every one was, the newest, to
        // be refused below as yanked).
        None => {
            let newest = |yanked_too: bool| {
                here.iter()
                    .filter(|e| yanked_too || !e.yanked)
                    .copied()
                    .max_by(|a, b| compare_versions(&a.version, &b.version))
            };
            newest(false).or_else(|| newest(true))
        }
    };
    if let Some(entry) = chosen.filter(|e| e.yanked) {
        return Err(Failure(
            2,
            format!(
                "{}; not installed (choose another version: {})",
                entry.yanked_text(),
                platforms()
            ),
        ));
    }
    chosen.ok_or_else(|| {
        Failure(
            2,
            format!(
                "no {} {name}{} for {os}/{arch} in the index; it has: {}",
                kind.name(),
                version.map(|v| format!("@{v}")).unwrap_or_default(),
                platforms()
            ),
        )
    })
}

fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// Versions compared by their dot-separated numbers (`v0.10.8` > `v0.9.1`); a
/// pre-release (`-rc1`) before its release; text that is no number, as text.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(v: &str) -> (Vec<u64>, Option<&str>) {
        let v = v.trim_start_matches('v');
        let (core, pre) = match v.split_once(['-', '+']) {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        };
        (
            core.split('.').map(|p| p.parse().unwrap_or(0)).collect(),
            pre,
        )
    }
    let (a_core, a_pre) = parts(a);
    let (b_core, b_pre) = parts(b);
    a_core.cmp(&b_core).then_with(|| match (a_pre, b_pre) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(a), Some(b)) => a.cmp(b),
    })
}

/// An entry's URL, a path relative to the index resolved against the index's location.
fn resolve(index: &str, url: &str) -> Origin {
    if is_http(url) {
        return Origin::Remote(url.to_owned());
    }
    if url.starts_with("file://") || Path::new(url).is_absolute() {
        return Origin::Local(file_path(url));
    }
    if is_http(index) {
        let base = match index.rfind('/') {
            Some(i) if i > index.find("://").map_or(0, |s| s + 2) => &index[..=i],
            _ => index,
        };
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        return Origin::Remote(format!("{base}{url}"));
    }
    let index_path = file_path(index);
    let dir = index_path.parent().unwrap_or(Path::new("."));
    Origin::Local(dir.join(url))
}

fn is_http(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

fn file_path(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

/// A SHA-256 written as 64 hex digits, lower-cased.
pub(crate) fn hex_digest(text: &str) -> Result<String, Failure> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_prefix("sha256:").unwrap_or(&text);
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure(
            2,
            format!("{text:?} is not a SHA-256 digest (64 hex digits)"),
        ));
    }
    Ok(text.to_owned())
}

/// A plugin name that is safe as a file name in the plugin directory.
fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "{name:?} cannot be a file name (no '/', no leading '.')"
        ));
    }
    Ok(())
}

/// Stage, verify, check and place one artifact; the line to print.
async fn install_one(
    kind: Kind,
    dir: &Path,
    candidate: &Candidate,
    force: bool,
) -> Result<String, Failure> {
    let staged = Staged::new(dir)?;
    let digest = staged.fill(&candidate.origin).await?;
    if let Some(expected) = &candidate.sha256 {
        if &digest != expected {
            // `staged` is deleted when dropped.
            return Err(Failure(
                3,
                format!(
                    "checksum mismatch for {}: expected sha256 {expected}, got {digest}; the \
                     download was deleted and nothing was installed",
                    candidate.origin
                ),
            ));
        }
    }
    let (name, version) = Box::pin(check_plugin(kind, &staged.path, &candidate.origin)).await?;
    if let Some((expected, expected_version)) = &candidate.expected {
        if &name != expected {
            return Err(Failure(
                2,
                format!(
                    "{} calls itself {name:?}, but the index lists it as {expected:?}; nothing \
                     was installed",
                    candidate.origin
                ),
            ));
        }
        if !same_version(&version, expected_version) {
            eprintln!(
                "warning: {} says it is {name} {version}, the index lists {expected_version}",
                candidate.origin
            );
        }
    }
    valid_name(&name).map_err(|problem| {
        Failure(
            2,
            format!("{}: its plugin name {problem}", candidate.origin),
        )
    })?;
    let target = dir.join(kind.file_name(&name));
    if target.exists() && !force {
        return Err(Failure(
            2,
            format!(
                "{} plugin {name:?} is already installed at {}; --force replaces it",
                kind.name(),
                target.display()
            ),
        ));
    }
    staged.keep(&target)?;
    Ok(format!(
        "installed standalone:{name}@{version} ({}) at {} (sha256 {digest})",
        kind.name(),
        target.display()
    ))
}

/// Start a connector for its specification (made executable first), or compile a WASM
/// module for its; its name and version, or why it is not a plugin of `kind`.
async fn check_plugin(
    kind: Kind,
    path: &Path,
    origin: &Origin,
) -> Result<(String, String), Failure> {
    if kind == Kind::Connector {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Failure(3, format!("making {} executable: {e}", path.display())))?;
    }
    read_spec(kind, path).await.map_err(|why| match why {
        Unreadable::Io(failure) => failure,
        Unreadable::NotAPlugin(why) => Failure(
            2,
            format!(
                "{origin} is not a standalone {} plugin: {why}; nothing was installed",
                kind.name()
            ),
        ),
    })
}

/// Why a file's specification could not be read.
pub(crate) enum Unreadable {
    /// The file could not be read.
    Io(Failure),
    /// It is no plugin of the kind (the reason).
    NotAPlugin(String),
}

/// The name and version in the specification of the plugin at `path`: a connector is
/// started and asked, a WASM module compiled and asked.
pub(crate) async fn read_spec(kind: Kind, path: &Path) -> Result<(String, String), Unreadable> {
    let head = read_head(path).map_err(Unreadable::Io)?;
    match kind {
        Kind::Connector => {
            if head.starts_with(b"\0asm") {
                return Err(Unreadable::NotAPlugin(
                    "it is a WASM module (install processors with `culvert processor-plugins \
                     install`)"
                        .to_owned(),
                ));
            }
            let plugin = Box::pin(culvert_hosts::standalone::StandalonePlugin::load(path))
                .await
                .map_err(|e| Unreadable::NotAPlugin(e.to_string()))?;
            let spec = plugin.specification();
            Ok((spec.name.to_owned(), spec.version.to_owned()))
        }
        Kind::Processor => {
            if !head.starts_with(b"\0asm") {
                return Err(Unreadable::NotAPlugin(
                    "it is not a WASM module (no \\0asm magic bytes)".to_owned(),
                ));
            }
            let plugin = Box::pin(culvert_hosts::wasm::WasmProcessorPlugin::load(
                path,
                culvert_hosts::wasm::Limits::default(),
            ))
            .await
            .map_err(|e| Unreadable::NotAPlugin(e.to_string()))?;
            let spec = culvert_plugins::processor::ProcessorPlugin::specification(&plugin);
            Ok((spec.name.to_owned(), spec.version.to_owned()))
        }
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .map_err(|e| Failure(1, format!("reading {}: {e}", path.display())))?;
    Ok(head)
}

/// A temporary file in the plugin directory (same file system: the final rename is
/// atomic), deleted unless kept. Its name starts with a dot and has no `.wasm` suffix, so a
/// server starting meanwhile does not load it as a processor.
struct Staged {
    path: PathBuf,
    kept: bool,
}

impl Staged {
    fn new(dir: &Path) -> Result<Self, Failure> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = dir.join(format!(
            ".culvert-install-{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Self { path, kept: false })
    }

    /// Copy or download `origin` into the file; its SHA-256.
    async fn fill(&self, origin: &Origin) -> Result<String, Failure> {
        let unwritable =
            |e: std::io::Error| Failure(3, format!("writing {}: {e}", self.path.display()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path)
            .map_err(unwritable)?;
        let mut sink = HashingWriter {
            file,
            hasher: Sha256::new(),
        };
        match origin {
            Origin::Local(path) => {
                let mut source = std::fs::File::open(path)
                    .map_err(|e| Failure(2, format!("reading {}: {e}", path.display())))?;
                std::io::copy(&mut source, &mut sink)
                    .map_err(|e| Failure(3, format!("copying {}: {e}", path.display())))?;
            }
            Origin::Remote(url) => {
                tokio::time::timeout(
                    DOWNLOAD_TIMEOUT,
                    download(url, MAX_ARTIFACT_BYTES, &mut sink),
                )
                .await
                .map_err(|_| {
                    Failure(
                        3,
                        format!("downloading {url}: not done within {DOWNLOAD_TIMEOUT:?}"),
                    )
                })??;
            }
        }
        sink.file.sync_all().map_err(unwritable)?;
        Ok(hex(&sink.hasher.finalize()))
    }

    /// Rename into `target` (replacing what is there).
    fn keep(mut self, target: &Path) -> Result<(), Failure> {
        std::fs::rename(&self.path, target).map_err(|e| {
            Failure(
                3,
                format!("moving the plugin into place at {}: {e}", target.display()),
            )
        })?;
        self.kept = true;
        // The rename is durable once the directory is synced.
        if let Some(dir) = target.parent() {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes to a file and hashes what it writes.
struct HashingWriter {
    file: std::fs::File,
    hasher: Sha256,
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// GET `url` (following up to 5 redirects) into `out`, at most `limit` bytes.
async fn download(url: &str, limit: u64, out: &mut impl std::io::Write) -> Result<(), Failure> {
    let unreachable = |what: String| Failure(3, format!("fetching {url}: {what}"));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .map_err(|e| unreachable(format!("TLS settings: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<hyper::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let mut current = url.to_owned();
    for _ in 0..=5 {
        let uri: http::Uri = current
            .parse()
            .map_err(|e| Failure(2, format!("invalid URL {current:?}: {e}")))?;
        let request = http::Request::get(uri.clone())
            .header(
                http::header::USER_AGENT,
                concat!("culvert/", env!("CARGO_PKG_VERSION")),
            )
            .body(http_body_util::Empty::new())
            .map_err(|e| Failure(2, format!("invalid URL {current:?}: {e}")))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| unreachable(crate::client::chain(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| unreachable(format!("{status} without a Location")))?;
            current = if location.contains("://") {
                location.to_owned()
            } else if location.starts_with('/') {
                let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
                format!(
                    "{}://{authority}{location}",
                    uri.scheme_str().unwrap_or("http")
                )
            } else {
                match resolve(&current, location) {
                    Origin::Remote(next) => next,
                    Origin::Local(_) => location.to_owned(),
                }
            };
            continue;
        }
        if !status.is_success() {
            return Err(unreachable(format!("the server answered {status}")));
        }
        let mut body = response.into_body();
        let mut written: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| unreachable(crate::client::chain(&e)))?;
            if let Ok(data) = frame.into_data() {
                written += data.len() as u64;
                if written > limit {
                    return Err(unreachable(format!("larger than {limit} bytes")));
                }
                out.write_all(&data)
                    .map_err(|e| Failure(3, format!("writing what {url} sent: {e}")))?;
            }
        }
        return Ok(());
    }
    Err(unreachable("more than 5 redirects".to_owned()))
}

/// The plugins of `kind` installed in `dir`: (name, file), by name.
fn installed(kind: Kind, dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| kind.installed_name(&p).map(|name| (name, p)))
        .collect();
    found.sort();
    found
}

fn uninstall(kind: Kind, args: &UninstallArgs) -> Result<(), Failure> {
    let dir = args.dirs.dir(kind)?;
    let name = args.name.strip_prefix("standalone:").unwrap_or(&args.name);
    let name = name.split_once('@').map_or(name, |(name, _)| name);
    valid_name(name).map_err(|problem| Failure(2, format!("plugin name: {problem}")))?;
    let all = installed(kind, &dir);
    let matching: Vec<&PathBuf> = all
        .iter()
        .filter(|(installed, _)| installed == name)
        .map(|(_, file)| file)
        .collect();
    if matching.is_empty() {
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Failure(
            2,
            format!(
                "no {} plugin {name:?} is installed in {}; installed: {}",
                kind.name(),
                dir.display(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    for file in matching {
        std::fs::remove_file(file)
            .map_err(|e| Failure(3, format!("removing {}: {e}", file.display())))?;
        println!(
            "uninstalled {} plugin {name} ({})",
            kind.name(),
            file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: &str, kind: Kind, os: Option<&str>) -> Entry {
        Entry {
            name: name.into(),
            version: version.into(),
            kind,
            os: os.map(Into::into),
            arch: os.map(|_| "amd64".into()),
            url: format!("{name}-{version}"),
            sha256: "0".repeat(64),
            summary: None,
            yanked: false,
            yanked_reason: None,
        }
    }

    #[test]
    fn a_yanked_version_is_never_chosen() {
        let yanked = |version: &str| Entry {
            yanked: true,
            yanked_reason: Some("loses records".into()),
            ..entry("file", version, Kind::Connector, Some("linux"))
        };
        let mut index = Index {
            version: 1,
            plugins: vec![
                entry("file", "v0.9.1", Kind::Connector, Some("linux")),
                yanked("v0.10.8"),
            ],
        };
        let here = ("linux".to_owned(), "amd64".to_owned());
        // The newest that was not yanked; the yanked one only by name, and refused.
        let chosen = select(&index, Kind::Connector, "file", None, &here).unwrap();
        assert_eq!(chosen.version, "v0.9.1");
        let Failure(code, message) =
            select(&index, Kind::Connector, "file", Some("v0.10.8"), &here).unwrap_err();
        assert_eq!(code, 2);
        assert!(
            message.contains("file@v0.10.8 was yanked: loses records"),
            "{message}"
        );
        // Every version yanked: refused, saying so.
        index.plugins[0] = yanked("v0.9.1");
        let Failure(code, message) =
            select(&index, Kind::Connector, "file", None, &here).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("was yanked"), "{message}");
    }

    #[test]
    fn the_newest_version_for_this_platform_is_chosen() {
        let index = Index {
            version: 1,
            plugins: vec![
                entry("file", "v0.9.1", Kind::Connector, Some("linux")),
                entry("file", "v0.10.8", Kind::Connector, Some("linux")),
                entry("file", "v0.11.0", Kind::Connector, Some("darwin")),
                entry("file", "v0.12.0", Kind::Processor, None),
            ],
        };
        let here = ("linux".to_owned(), "amd64".to_owned());
        let chosen = select(&index, Kind::Connector, "file", None, &here).unwrap();
        assert_eq!(chosen.version, "v0.10.8");
        let pinned = select(&index, Kind::Connector, "file", Some("0.9.1"), &here).unwrap();
        assert_eq!(pinned.version, "v0.9.1");
        let Failure(code, message) =
            select(&index, Kind::Connector, "file", Some("v0.11.0"), &here).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("file@v0.11.0 (darwin/amd64)"), "{message}");
        let Failure(code, message) =
            select(&index, Kind::Connector, "s3", None, &here).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("it has: file"), "{message}");
    }

    #[test]
    fn versions_compare_by_number() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("v0.10.8", "v0.9.12"), Greater);
        assert_eq!(compare_versions("v1.0.0-rc1", "v1.0.0"), Less);
        assert_eq!(compare_versions("1.2", "v1.2"), Equal);
    }

    #[test]
    fn relative_urls_resolve_against_the_index() {
        let remote = |o: Origin| match o {
            Origin::Remote(u) => u,
            Origin::Local(p) => panic!("local {}", p.display()),
        };
        assert_eq!(
            remote(resolve("http://h:1/idx/index.json", "bin/file")),
            "http://h:1/idx/bin/file"
        );
        assert_eq!(
            remote(resolve("http://h:1/index.json", "https://x/y")),
            "https://x/y"
        );
        match resolve("/srv/idx/index.yaml", "file") {
            Origin::Local(p) => assert_eq!(p, Path::new("/srv/idx/file")),
            Origin::Remote(u) => panic!("remote {u}"),
        }
        match resolve("file:///srv/index.json", "file:///opt/x") {
            Origin::Local(p) => assert_eq!(p, Path::new("/opt/x")),
            Origin::Remote(u) => panic!("remote {u}"),
        }
    }

    #[test]
    fn an_index_is_json_or_yaml_and_checked() {
        let json = format!(
            r#"{{"version": 1, "plugins": [{{"name": "file", "version": "v1", "kind": "connector", "os": "linux", "arch": "amd64", "url": "f", "sha256": "{}"}}]}}"#,
            "a".repeat(64)
        );
        assert_eq!(parse_index("i", &json).unwrap().plugins[0].name, "file");
        let yaml = format!(
            "version: 1\nplugins:\n  - name: tag\n    version: v2\n    kind: processor\n    url: tag.wasm\n    sha256: {}\n",
            "B".repeat(64)
        );
        let index = parse_index("i", &yaml).unwrap();
        assert_eq!(index.plugins[0].kind, Kind::Processor);
        let bad = json.replace(&"a".repeat(64), "abc");
        let Failure(code, message) = parse_index("i", &bad).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("sha256"), "{message}");
        let Failure(_, message) = parse_index("i", r#"{"plugins": [{"name": "x"}]}"#).unwrap_err();
        assert!(message.contains("missing field"), "{message}");
        let unsafe_name = json.replace("\"file\"", "\"../x\"");
        assert!(parse_index("i", &unsafe_name).is_err());
    }

    #[test]
    fn digests_are_64_hex_digits() {
        assert_eq!(hex_digest(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(hex_digest(&format!("sha256:{}", "0".repeat(64))).is_ok());
        assert!(hex_digest("xyz").is_err());
    }
}
