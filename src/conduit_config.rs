//! Conduit's own configuration, taken as it is: a server configured for Conduit — with
//! `CONDUIT_*` environment variables, a `./conduit.yaml` (as `conduit init` writes it) and
//! settings Culvert has no counterpart for — starts under `culvert run` unchanged.
//!
//! * Every setting read from a `CULVERT_<KEY>` variable is also read from `CONDUIT_<KEY>`
//!   (Conduit's prefix, the same key); when both are set, `CULVERT_<KEY>` wins. This holds
//!   for every command, so `CONDUIT_API_GRPC_ADDRESS` reaches the CLI's client commands too.
//! * Without `--config.path`, `./culvert.yaml` is read, or else `./conduit.yaml`.
//! * An address given as `:PORT` (Go's spelling, Conduit's default) listens on every
//!   interface, as Go's does (the API then needs authentication, as any address beyond
//!   loopback does).
//! * Conduit's settings whose subject Culvert does differently are accepted, and the server
//!   says at start what it does instead ([`notes`]): `db.type` `badger` or `sqlite` (Conduit's
//!   embedded stores) run on Culvert's embedded store, RocksDB; `db.badger.*`, `db.sqlite.*`
//!   and `db.postgres.*` are read only with their `db.type`; `preview.pipeline-arch-v2*`
//!   (Culvert's one engine already has what it previews); `dev.cpuprofile`,
//!   `dev.memprofile`, `dev.blockprofile` (Go's profiles); `dev.json`; and `install.*` (the
//!   policy of Conduit's signed connector registry, which Culvert's installer does not use).
//!   `db.type: postgres` is refused: Culvert cannot keep its state in a PostgreSQL
//!   database, and starting elsewhere would silently leave that state behind.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Culvert's own config file, read from the working directory by default.
pub(crate) const CULVERT_FILE: &str = "./culvert.yaml";
/// Conduit's config file, read when there is no `./culvert.yaml`.
pub(crate) const CONDUIT_FILE: &str = "./conduit.yaml";

/// The config file read when none is named: `./culvert.yaml`, or else `./conduit.yaml` if
/// that one exists (a Conduit working directory).
pub(crate) fn default_config_file() -> PathBuf {
    let culvert = PathBuf::from(CULVERT_FILE);
    let conduit = PathBuf::from(CONDUIT_FILE);
    if !culvert.exists() && conduit.is_file() {
        conduit
    } else {
        culvert
    }
}

/// The `CULVERT_*` variables this process set from `CONDUIT_*` ones ([`adopt_environment`]).
static ADOPTED: OnceLock<BTreeSet<String>> = OnceLock::new();

/// Whether `culvert_name` (a `CULVERT_*` variable) was set from its `CONDUIT_*` twin.
pub(crate) fn adopted(culvert_name: &str) -> bool {
    ADOPTED
        .get()
        .is_some_and(|names| names.contains(culvert_name))
}

/// The `CONDUIT_*` spelling of a `CULVERT_*` variable.
pub(crate) fn conduit_name(culvert_name: &str) -> String {
    match culvert_name.strip_prefix("CULVERT_") {
        Some(key) => format!("CONDUIT_{key}"),
        None => culvert_name.to_owned(),
    }
}

/// Which `CULVERT_<KEY>` variables to set from `CONDUIT_<KEY>` ones in `vars` (the
/// process's environment): those a setting reads (`known`) that are not set themselves.
pub(crate) fn adoptions(
    known: &BTreeSet<String>,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(String, OsString)> {
    let vars: BTreeMap<String, OsString> = vars
        .into_iter()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        .collect();
    vars.iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("CONDUIT_")?;
            let culvert = format!("CULVERT_{key}");
            (known.contains(&culvert) && !vars.contains_key(&culvert))
                .then(|| (culvert, value.clone()))
        })
        .collect()
}

/// Every `CULVERT_*` variable an argument of `command` or of its subcommands reads.
fn environment_names(command: &clap::Command, into: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(name) = arg.get_env().and_then(|name| name.to_str()) {
            if name.starts_with("CULVERT_") {
                into.insert(name.to_owned());
            }
        }
    }
    for sub in command.get_subcommands() {
        environment_names(sub, into);
    }
}

/// Set each `CULVERT_<KEY>` a setting reads from its `CONDUIT_<KEY>` twin, when only the
/// twin is set, so that the command line parser reads Conduit's variables as its own.
///
/// Call it first thing in `main`, before any other thread exists: it changes the process
/// environment.
pub(crate) fn adopt_environment(command: &clap::Command) {
    let mut known = BTreeSet::new();
    environment_names(command, &mut known);
    let mut names = BTreeSet::new();
    for (name, value) in adoptions(&known, std::env::vars_os()) {
        std::env::set_var(&name, value);
        names.insert(name);
    }
    let _ = ADOPTED.set(names);
}

/// A listen address as the server binds it: Go's `:PORT` (every interface, Conduit's
/// default spelling) becomes `[::]:PORT` (every interface, IPv4 too) where the machine
/// has IPv6, else `0.0.0.0:PORT`; anything else is kept.
pub(crate) fn listen_address(address: &str) -> String {
    match address.strip_prefix(':') {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            // Whether this machine has IPv6, found out once.
            static IPV6: OnceLock<bool> = OnceLock::new();
            if *IPV6.get_or_init(|| std::net::TcpListener::bind("[::]:0").is_ok()) {
                format!("[::]:{port}")
            } else {
                format!("0.0.0.0:{port}")
            }
        }
        _ => address.to_owned(),
    }
}

/// An address a client dials: Go's `:PORT` (this machine, as Go dials it) becomes
/// `127.0.0.1:PORT`; anything else is kept.
pub(crate) fn dial_address(address: &str) -> String {
    match address.strip_prefix(':') {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("127.0.0.1:{port}")
        }
        _ => address.to_owned(),
    }
}

/// The server's gRPC address as the server config file in the working directory gives it
/// (`api.grpc.address` of `./culvert.yaml`, else `./conduit.yaml`): where Conduit's CLI looks
/// when no flag or variable says. None when there is no file, it does not parse, or it has
/// no such key (as Conduit, the client then uses its default).
pub(crate) fn config_file_grpc_address() -> Option<String> {
    crate::effective_config::file_values(&default_config_file())
        .ok()?
        .into_iter()
        .find(|(key, _)| key == "api.grpc.address")
        .map(|(_, address)| address)
        .filter(|address| !address.trim().is_empty())
}

/// Conduit's settings Culvert accepts and answers with what it does instead (see the
/// module's documentation). Hidden from `--help`; `culvert config` lists those given.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ConduitArgs {
    /// Conduit's Badger directory (with `db.type badger`).
    #[arg(long = "db.badger.path", env = "CULVERT_DB_BADGER_PATH", hide = true)]
    pub badger_path: Option<String>,
    /// Conduit's SQLite file (with `db.type sqlite`).
    #[arg(long = "db.sqlite.path", env = "CULVERT_DB_SQLITE_PATH", hide = true)]
    pub sqlite_path: Option<String>,
    /// Conduit's SQLite table (with `db.type sqlite`).
    #[arg(long = "db.sqlite.table", env = "CULVERT_DB_SQLITE_TABLE", hide = true)]
    pub sqlite_table: Option<String>,
    /// Conduit's PostgreSQL store (with `db.type postgres`, which Culvert refuses).
    #[arg(
        long = "db.postgres.connection-string",
        env = "CULVERT_DB_POSTGRES_CONNECTION_STRING",
        hide = true
    )]
    pub postgres_connection_string: Option<String>,
    /// Conduit's PostgreSQL table (with `db.type postgres`).
    #[arg(
        long = "db.postgres.table",
        env = "CULVERT_DB_POSTGRES_TABLE",
        hide = true
    )]
    pub postgres_table: Option<String>,
    /// Conduit's preview of multiple sources and destinations per pipeline.
    #[arg(
        long = "preview.pipeline-arch-v2",
        env = "CULVERT_PREVIEW_PIPELINE_ARCH_V2",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub pipeline_arch_v2: Option<bool>,
    /// Conduit's switch for that preview's byte metrics.
    #[arg(
        long = "preview.pipeline-arch-v2-disable-metrics",
        env = "CULVERT_PREVIEW_PIPELINE_ARCH_V2_DISABLE_METRICS",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub pipeline_arch_v2_disable_metrics: Option<bool>,
    /// Go's CPU profile file.
    #[arg(long = "dev.cpuprofile", env = "CULVERT_DEV_CPUPROFILE", hide = true)]
    pub cpu_profile: Option<String>,
    /// Go's memory profile file.
    #[arg(long = "dev.memprofile", env = "CULVERT_DEV_MEMPROFILE", hide = true)]
    pub mem_profile: Option<String>,
    /// Go's block profile file.
    #[arg(
        long = "dev.blockprofile",
        env = "CULVERT_DEV_BLOCKPROFILE",
        hide = true
    )]
    pub block_profile: Option<String>,
    /// Conduit's JSON lines from its pipeline watcher.
    #[arg(
        long = "dev.json",
        env = "CULVERT_DEV_JSON",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub dev_json: Option<bool>,
    /// Conduit's registry policy: unsigned connector installs.
    #[arg(
        long = "install.allow-unsigned",
        env = "CULVERT_INSTALL_ALLOW_UNSIGNED",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub allow_unsigned: Option<bool>,
    /// Conduit's registry policy: the oldest index accepted.
    #[arg(
        long = "install.max-staleness",
        env = "CULVERT_INSTALL_MAX_STALENESS",
        hide = true,
        value_parser = crate::duration
    )]
    pub max_staleness: Option<std::time::Duration>,
    /// Conduit's registry policy: stale offline bundles.
    #[arg(
        long = "install.allow-stale-bundle",
        env = "CULVERT_INSTALL_ALLOW_STALE_BUNDLE",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub allow_stale_bundle: Option<bool>,
}

/// Conduit's default `install.max-staleness` (seven days).
const CONDUIT_MAX_STALENESS: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Conduit's store types, as `db.type` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConduitStore {
    /// Conduit's default embedded store.
    Badger,
    /// Conduit's other embedded store.
    Sqlite,
    /// Conduit's PostgreSQL store.
    Postgres,
}

/// What the server says at start about the Conduit settings it was given, or why it
/// refuses them (`db.type postgres`). `store` is the `db.type` given when it is one of
/// Conduit's; `data` is where Culvert's own store is.
pub(crate) fn notes(
    conduit: &ConduitArgs,
    store: Option<ConduitStore>,
    data: &std::path::Path,
) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    match store {
        Some(ConduitStore::Postgres) => {
            return Err(format!(
                "\"db.type\" config value is invalid: postgres is Conduit's PostgreSQL store, \
                 which Culvert cannot use; Culvert keeps its state in its embedded store \
                 (db.type rocksdb, at db.rocksdb.path) or in memory (db.type inmemory){}",
                if conduit.postgres_connection_string.is_some() {
                    "; db.postgres.connection-string is not read"
                } else {
                    ""
                }
            ));
        }
        Some(kind @ (ConduitStore::Badger | ConduitStore::Sqlite)) => {
            let (name, path) = match kind {
                ConduitStore::Badger => ("badger", conduit.badger_path.as_deref()),
                _ => ("sqlite", conduit.sqlite_path.as_deref()),
            };
            notes.push(format!(
                "db.type {name} is Conduit's embedded store: Culvert keeps its state in its own \
                 embedded store, RocksDB, at {} (db.rocksdb.path){}; pipeline configuration \
                 files are provisioned as usual, and pipelines created through Conduit's API \
                 are not carried over",
                data.display(),
                match path {
                    Some(path) => format!("; Conduit's {name} data at {path} is not read"),
                    None => String::new(),
                }
            ));
        }
        None => {}
    }
    // `conduit init` writes every setting at its default: only a setting turned on, or
    // away from Conduit's default, is answered.
    if conduit.pipeline_arch_v2 == Some(true)
        || conduit.pipeline_arch_v2_disable_metrics == Some(true)
    {
        notes.push(
            "preview.pipeline-arch-v2 has no effect: Culvert's engine always runs any number \
             of sources and destinations per pipeline, and always counts bytes"
                .to_owned(),
        );
    }
    let profiles: Vec<&str> = [
        ("dev.cpuprofile", &conduit.cpu_profile),
        ("dev.memprofile", &conduit.mem_profile),
        ("dev.blockprofile", &conduit.block_profile),
    ]
    .into_iter()
    .filter(|(_, value)| value.as_deref().is_some_and(|v| !v.is_empty()))
    .map(|(key, _)| key)
    .collect();
    if !profiles.is_empty() {
        notes.push(format!(
            "{} not written: they are Go runtime profiles; profile Culvert with perf or \
             valgrind --tool=callgrind (BENCHMARKS.md shows how)",
            profiles.join(", ")
        ));
    }
    if conduit.dev_json == Some(true) {
        notes.push(
            "dev.json has no effect: the pipeline watcher (--dev) reports through the log, \
             one JSON object a line with --log.format json"
                .to_owned(),
        );
    }
    if conduit.allow_unsigned == Some(true)
        || conduit.allow_stale_bundle == Some(true)
        || conduit
            .max_staleness
            .is_some_and(|age| age != CONDUIT_MAX_STALENESS)
    {
        notes.push(
            "install.* has no effect: it is the policy of Conduit's signed connector registry; \
             `culvert connector-plugins install` checks every artifact's SHA-256 against its \
             index (or --sha256) and never installs an unverified one"
                .to_owned(),
        );
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn conduit_variables_fill_only_known_unset_settings() {
        let known: BTreeSet<String> =
            ["CULVERT_LOG_LEVEL", "CULVERT_LOG_FORMAT", "CULVERT_DB_TYPE"]
                .into_iter()
                .map(str::to_owned)
                .collect();
        let adopted = adoptions(
            &known,
            vars(&[
                ("CONDUIT_LOG_LEVEL", "debug"),
                // Culvert's own variable wins.
                ("CONDUIT_LOG_FORMAT", "json"),
                ("CULVERT_LOG_FORMAT", "cli"),
                // No setting reads it (a secret for egress, say).
                ("CONDUIT_SECRET_TOKEN", "x"),
                ("CONDUIT_DB_TYPE", ""),
                ("PATH", "/bin"),
            ]),
        );
        assert_eq!(
            adopted,
            vec![
                ("CULVERT_DB_TYPE".to_owned(), OsString::from("")),
                ("CULVERT_LOG_LEVEL".to_owned(), OsString::from("debug")),
            ]
        );
        assert_eq!(conduit_name("CULVERT_LOG_LEVEL"), "CONDUIT_LOG_LEVEL");
    }

    #[test]
    fn a_bare_port_listens_everywhere() {
        let address = listen_address(":8080");
        assert!(
            address == "[::]:8080" || address == "0.0.0.0:8080",
            "{address}"
        );
        assert_eq!(listen_address("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(listen_address(":"), ":");
        assert_eq!(listen_address(":http"), ":http");
        assert_eq!(listen_address("localhost:0"), "localhost:0");
    }

    #[test]
    fn a_bare_port_is_dialled_on_this_machine() {
        assert_eq!(dial_address(":8084"), "127.0.0.1:8084");
        assert_eq!(dial_address("db.example:8084"), "db.example:8084");
        assert_eq!(dial_address("https://h:1"), "https://h:1");
    }

    #[test]
    fn conduit_stores_are_named_and_postgres_is_refused() {
        let data = std::path::Path::new("./data");
        let conduit = ConduitArgs {
            badger_path: Some("/srv/conduit.db".into()),
            ..ConduitArgs::default()
        };
        let notes = notes(&conduit, Some(ConduitStore::Badger), data).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("RocksDB") && notes[0].contains("/srv/conduit.db"),
            "{notes:?}"
        );
        let refused =
            super::notes(&ConduitArgs::default(), Some(ConduitStore::Postgres), data).unwrap_err();
        assert!(
            refused.starts_with("\"db.type\" config value is invalid"),
            "{refused}"
        );
        assert!(super::notes(&ConduitArgs::default(), None, data)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn each_conduit_only_setting_is_answered() {
        let conduit = ConduitArgs {
            pipeline_arch_v2: Some(true),
            cpu_profile: Some("cpu.out".into()),
            mem_profile: Some(String::new()),
            dev_json: Some(true),
            max_staleness: Some(std::time::Duration::from_secs(3600)),
            ..ConduitArgs::default()
        };
        let notes = notes(&conduit, None, std::path::Path::new("./data")).unwrap();
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[1].starts_with("dev.cpuprofile not written"),
            "{notes:?}"
        );
        // What `conduit init` writes (every setting at Conduit's default) says nothing.
        let defaults = ConduitArgs {
            pipeline_arch_v2: Some(false),
            pipeline_arch_v2_disable_metrics: Some(false),
            cpu_profile: Some(String::new()),
            dev_json: Some(false),
            allow_unsigned: Some(false),
            max_staleness: Some(CONDUIT_MAX_STALENESS),
            allow_stale_bundle: Some(false),
            ..ConduitArgs::default()
        };
        assert!(
            super::notes(&defaults, None, std::path::Path::new("./data"))
                .unwrap()
                .is_empty()
        );
    }
}
