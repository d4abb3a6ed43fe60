//! The connector contract: what every source and destination implements, built in or
//! standalone, and the registry the engine and the API look plugins up in.

use crate::spec::{self, InvalidSettings, Parameter};
use culvert_domain::{Position, Record};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A connector's settings, as the user gave them (keys and values are strings).
pub type Settings = BTreeMap<String, String>;

/// How long a source's `read` should wait for records before it returns an empty batch, so
/// that the engine can deliver acks between reads (see [`Source`]).
pub const IDLE_READ: std::time::Duration = std::time::Duration::from_millis(500);

/// What went wrong inside a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The settings do not fit the plugin's parameters.
    #[error("invalid settings: {0}")]
    InvalidSettings(#[from] InvalidSettings),
    /// A position this plugin cannot resume from.
    #[error("invalid position {position:?}: {reason}")]
    InvalidPosition {
        /// The position, lossily as text.
        position: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Input/output failed (file, network, ...), with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the plugin was doing.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// Whether retrying can help: what a supervisor should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// It may pass by itself (a network or disk hiccup, a restarted peer): retry later.
    Transient,
    /// Retrying the same thing fails the same way (a record a processor refuses, a
    /// position the plugin cannot resume from): needs a human.
    Permanent,
    /// The configuration is wrong (a setting the plugin refuses): needs a human to change it.
    Config,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Config => "configuration",
        })
    }
}

impl PluginError {
    /// Whether retrying can help. I/O failures and undescribed errors count as transient
    /// (Conduit retries every failure; we stop retrying only what cannot pass by itself).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidSettings(_) => ErrorKind::Config,
            Self::InvalidPosition { .. } => ErrorKind::Permanent,
            Self::Io { .. } | Self::Other(_) => ErrorKind::Transient,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// A source: reads records from a system.
///
/// The contract the engine relies on:
///
/// * `open` is called once, then `read` and `ack` alternate (never concurrently: both take
///   `&mut self`), then `teardown` last.
/// * `read` returns up to `max` records, in order. When nothing is available it may wait,
///   but should return (with an empty batch if nothing came) within about
///   [`IDLE_READ`]: the engine delivers acks between reads, so a read that never returns
///   holds back the acks of everything before it.
/// * The engine never drops a pending `read` while the pipeline runs (acks wait for it, see
///   `engine::run`); it drops one only when the pipeline stops or fails, and then tears the
///   source down. Even so `read` must be cancel-safe: nothing it has taken from its input
///   may be lost when its future is dropped (keep what was taken in `self`, not in a local,
///   until it is returned). [`crate::testing::check_cancel_safety`] proves it for a source;
///   every built-in source runs under it.
/// * `ack` gets positions in the order the records were read, once every destination has
///   handled them; acks are cumulative (a position acks every record before it too) and
///   may skip positions. The position is persisted before `ack` is called.
#[async_trait::async_trait]
pub trait Source: Send {
    /// Start reading after `position` (`None`: from the beginning).
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError>;
    /// Up to `max` records; an empty batch when none came within about [`IDLE_READ`].
    /// Cancel-safe (see the trait's contract).
    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError>;
    /// Every record up to and including `position` has been delivered.
    async fn ack(&mut self, position: Position) -> Result<(), PluginError>;
    /// Release everything.
    async fn teardown(&mut self) -> Result<(), PluginError>;
    /// Which connector this instance serves and the lifecycle event to announce when
    /// opening (between configuring and opening, as Conduit does); called before `open`.
    /// Built-ins have no lifecycle hooks and ignore it.
    fn prepare(&mut self, _context: Prepare) {}
    /// The connector was deleted after it had run with `config`: let the plugin clean up
    /// (e.g. a replication slot). Called on a fresh instance, never opened.
    async fn on_deleted(&mut self, _config: Settings) -> Result<(), PluginError> {
        Ok(())
    }
    /// Hand over the work `read` does on each batch after taking it from the system (the
    /// connector SDK's schema extraction, for the built-ins), so that the caller runs it
    /// beside the next read: from then on `read` leaves it undone, and the caller runs the
    /// stage on every batch `read` returns, in order, before anything else sees the batch.
    /// Called at most once, after `prepare` and before `open`. `None` (the default): `read`
    /// does everything.
    fn detach_stage(&mut self) -> Option<Box<dyn ReadStage>> {
        None
    }
}

/// Work on a source's batches that needs nothing of the source itself (see
/// [`Source::detach_stage`]).
pub trait ReadStage: Send {
    /// Finish `records`, a batch as `read` returned it. Called on every batch, in order.
    fn apply(&mut self, records: &mut [Record]) -> Result<(), PluginError>;
}

/// What an instance is told before it opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prepare {
    /// The connector's id (standalone plugins log with it).
    pub connector_id: String,
    /// The lifecycle event to announce, if the configuration changed since it last ran.
    pub lifecycle: Option<Lifecycle>,
    /// Whether processors run on the records (a source's own, the pipeline's or a
    /// destination's), so their fields will be read. A source that can make structured
    /// data either as a map or as JSON text (the generator) builds the map then: parsing
    /// text it has just written costs more than building the map would.
    pub records_processed: bool,
}

/// A change of a connector's configuration since it last ran, announced to its plugin
/// (Conduit's lifecycle events; the last configuration a connector ran with is kept next to
/// its position).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// It runs for the first time.
    Created {
        /// Its settings.
        config: Settings,
    },
    /// Its settings changed since it last ran.
    Updated {
        /// The settings it last ran with.
        before: Settings,
        /// The settings it runs with now.
        after: Settings,
    },
}

impl Lifecycle {
    /// The event for a connector that last ran with `last` and now runs with `now`, if any.
    pub fn between(last: Option<&Settings>, now: &Settings) -> Option<Self> {
        match last {
            None => Some(Self::Created {
                config: now.clone(),
            }),
            Some(last) if last != now => Some(Self::Updated {
                before: last.clone(),
                after: now.clone(),
            }),
            Some(_) => None,
        }
    }
}

/// How many batches a destination's [`Destination::submit`] may have under way at once:
/// one being written while the next is prepared.
pub const SUBMITTED: usize = 2;

/// Records a destination refused, by index in the batch, with why (Conduit's per-record
/// nack).
pub type Refusals = Vec<(usize, String)>;

/// A batch being written by a destination (see [`Destination::submit`]): completes with the
/// records the destination refused once the others are handed over for good.
pub type Receipt =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Refusals, PluginError>> + Send>>;

/// A destination: writes records to a system.
#[async_trait::async_trait]
pub trait Destination: Send {
    /// Prepare to write.
    async fn open(&mut self) -> Result<(), PluginError>;
    /// Write every record, in order; when this returns `Ok` they are handed over for good.
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError>;
    /// Write every record, in order, and name the ones the system refused (by index in
    /// `records`, with why; Conduit's per-record nack): the others are handed over for
    /// good. The engine sends refused records to the pipeline's dead-letter queue. By
    /// default every record is written or the whole call fails, as [`Self::write`].
    async fn write_each(
        &mut self,
        records: &[Record],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        self.write(records).await.map(|()| Vec::new())
    }
    /// Start writing every record, in order after every batch submitted before, and return
    /// once the destination has taken them, with a [`Receipt`] that completes as
    /// [`Self::write_each`] returns: `Ok` with the refused records once the others are handed
    /// over for good. The engine keeps up to [`SUBMITTED`] batches submitted, so a
    /// destination that waits on a remote system (the Kafka destination, for the brokers'
    /// acknowledgements) is handed the next batch meanwhile. It awaits receipts in the order
    /// of their submissions, reports a batch written (so its records acked) only when its
    /// receipt completes, and stops at the first that fails, so no later batch is reported
    /// written. By default the whole write happens here, as [`Self::write_each`], and the
    /// receipt is ready.
    async fn submit(&mut self, records: &[Record]) -> Result<Receipt, PluginError> {
        let refused = self.write_each(records).await?;
        Ok(Box::pin(std::future::ready(Ok(refused))))
    }
    /// Release everything (flushing what is buffered).
    async fn teardown(&mut self) -> Result<(), PluginError>;
    /// Completes, with why, if the destination can no longer write although nothing was
    /// asked of it (a plugin process that died while idle); never, by default. The engine
    /// waits on it beside its input between writes, so an idle destination's failure is
    /// seen at once rather than at its next write. Must be cancel-safe.
    async fn gone(&mut self) -> PluginError {
        std::future::pending().await
    }
    /// As [`Source::prepare`].
    fn prepare(&mut self, _context: Prepare) {}
    /// As [`Source::on_deleted`].
    async fn on_deleted(&mut self, _config: Settings) -> Result<(), PluginError> {
        Ok(())
    }
}

/// What a plugin says about itself (shown by ListConnectorPlugins).
#[derive(Clone, Debug)]
pub struct Specification {
    /// The plugin's name, e.g. `generator`.
    pub name: &'static str,
    /// One line about it.
    pub summary: &'static str,
    /// More about it.
    pub description: &'static str,
    /// Its version, e.g. `v0.1.0`.
    pub version: &'static str,
    /// Who wrote it.
    pub author: &'static str,
    /// Parameters of its source (`None`: it has no source).
    pub source: Option<Vec<Parameter>>,
    /// Parameters of its destination (`None`: it has no destination).
    pub destination: Option<Vec<Parameter>>,
    /// A separate process (`standalone:`), not compiled in (`builtin:`).
    pub standalone: bool,
}

impl Specification {
    /// The name it is listed under, as Conduit lists plugins: `builtin:NAME@VERSION` or
    /// `standalone:NAME@VERSION`.
    pub fn full_name(&self) -> String {
        full_name(self.standalone, self.name, self.version)
    }
}

/// A connector plugin: makes sources and destinations from settings.
pub trait ConnectorPlugin: Send + Sync {
    /// What the plugin is and which settings it takes.
    fn specification(&self) -> &Specification;
    /// A source with these settings (validated, defaults applied). Only called for
    /// plugins whose specification has a source.
    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError>;
    /// A destination with these settings (validated, defaults applied). Only called for
    /// plugins whose specification has a destination.
    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError>;
}

/// Which side of a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// A source.
    Source,
    /// A destination.
    Destination,
}

impl LookupError {
    /// No plugin answers the reference: it names no plugin, or a version that does not
    /// exist (NOT_FOUND in the API), rather than being malformed or naming a missing side.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::VersionNotFound { .. })
    }
}

/// Why a plugin reference could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// No plugin by that name (and kind and version).
    #[error("plugin {reference:?} not found (built-in plugins: {available})")]
    NotFound {
        /// The reference given.
        reference: String,
        /// The names that exist.
        available: String,
    },
    /// The plugin exists, but not in the version asked for.
    #[error("plugin {reference:?} not found; available versions: [{versions}]")]
    VersionNotFound {
        /// The reference given, as a full name (`builtin:NAME@VERSION`).
        reference: String,
        /// The versions that exist, space-separated as Conduit prints them.
        versions: String,
    },
    /// The plugin exists but has no source (or destination).
    #[error("plugin {name:?} has no {side}")]
    NoSuchSide {
        /// The plugin's name.
        name: String,
        /// `source` or `destination`.
        side: &'static str,
    },
    /// The reference is not `[builtin|standalone|any:]NAME[@VERSION]`.
    #[error("invalid plugin reference {0:?}: want [builtin:|standalone:|any:]NAME[@VERSION]")]
    Malformed(String),
}

/// The plugins this server can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<&'static str, Arc<dyn ConnectorPlugin>>,
    /// Standalone plugins by name, every version.
    standalone: BTreeMap<&'static str, Vec<Arc<dyn ConnectorPlugin>>>,
}

impl Registry {
    /// Add a plugin (replacing one of the same name).
    pub fn add(&mut self, plugin: Arc<dyn ConnectorPlugin>) {
        self.plugins.insert(plugin.specification().name, plugin);
    }

    /// Add a standalone plugin (a name may have several versions; the same name and
    /// version again replaces the earlier one).
    pub fn add_standalone(&mut self, plugin: Arc<dyn ConnectorPlugin>) {
        let spec = plugin.specification();
        let versions = self.standalone.entry(spec.name).or_default();
        versions.retain(|p| p.specification().version != spec.version);
        versions.push(plugin);
        versions.sort_by(|a, b| {
            version_key(a.specification().version).cmp(&version_key(b.specification().version))
        });
    }

    /// Every plugin's specification: the built-ins by name, then the standalone ones by
    /// name and version.
    pub fn specifications(&self) -> impl Iterator<Item = &Specification> {
        self.plugins
            .values()
            .chain(self.standalone.values().flatten())
            .map(|p| p.specification())
    }

    /// The plugin a reference (`builtin:generator`, `generator@v0.10.4`, `any:log`) names.
    ///
    /// As in Conduit, a reference without a kind tries the standalone plugins first, and a
    /// missing version (or `latest`) means the highest one.
    pub fn lookup(&self, reference: &str) -> Result<&Arc<dyn ConnectorPlugin>, LookupError> {
        lookup_with_standalone(
            &self.plugins,
            &self.standalone,
            reference,
            |p| p.specification().version,
            |p| p.specification().full_name(),
        )
    }

    /// Check settings for one side of a plugin: the plugin exists, has that side, and the
    /// settings fit its parameters. Returns the settings with defaults applied.
    pub fn validate(
        &self,
        reference: &str,
        side: Side,
        settings: &Settings,
    ) -> Result<Settings, ValidateError> {
        let plugin = self.lookup(reference)?;
        let spec = plugin.specification();
        let params = match side {
            Side::Source => spec.source.as_ref(),
            Side::Destination => spec.destination.as_ref(),
        };
        let Some(params) = params else {
            return Err(LookupError::NoSuchSide {
                name: spec.name.to_owned(),
                side: match side {
                    Side::Source => "source",
                    Side::Destination => "destination",
                },
            }
            .into());
        };
        let settings = spec::validate(params, settings)?;
        if spec.standalone {
            // Conduit also calls a standalone plugin's Configure in a process of its own;
            // this build checks standalone settings against the specification only.
            return Ok(settings);
        }
        // The plugin's own checks (Conduit calls the plugin's Configure): settings the
        // specification allows may still not fit together.
        let configured = match side {
            Side::Source => plugin.new_source(&settings).map(drop),
            Side::Destination => plugin.new_destination(&settings).map(drop),
        };
        match configured {
            Ok(()) => Ok(settings),
            Err(PluginError::InvalidSettings(invalid)) => Err(invalid.into()),
            Err(other) => Err(ValidateError::Plugin(other)),
        }
    }
}

/// The built-in plugin a reference names in `plugins` (by name), if its kind and version
/// (`None`/`latest`: any) fit; `version` gives a plugin's version.
pub(crate) fn find<'p, P: ?Sized>(
    plugins: &'p BTreeMap<&'static str, Arc<P>>,
    reference: &str,
    version: impl Fn(&P) -> &str,
) -> Result<&'p Arc<P>, LookupError> {
    let (kind, name, wanted) = parse_reference(reference)?;
    let not_found = || LookupError::NotFound {
        reference: reference.to_owned(),
        available: plugins.keys().copied().collect::<Vec<_>>().join(", "),
    };
    if kind == "standalone" {
        return Err(not_found());
    }
    let plugin = plugins.get(name).ok_or_else(not_found)?;
    match wanted {
        None | Some("latest") => Ok(plugin),
        Some(v) if v == version(plugin) => Ok(plugin),
        Some(v) => Err(LookupError::VersionNotFound {
            reference: full_name(false, name, v),
            versions: version(plugin).to_owned(),
        }),
    }
}

/// `builtin:NAME@VERSION` or `standalone:NAME@VERSION`.
pub fn full_name(standalone: bool, name: &str, version: &str) -> String {
    let kind = if standalone { "standalone" } else { "builtin" };
    format!("{kind}:{name}@{version}")
}

/// Find a plugin among built-ins and standalone ones: `standalone:` looks among the
/// standalone ones only, `builtin:` among the built-ins only, a bare name (or `any:`)
/// among the standalone ones first (the newest version unless one is named), then the
/// built-ins.
pub fn lookup_with_standalone<'p, P: ?Sized>(
    builtins: &'p BTreeMap<&'static str, Arc<P>>,
    standalone: &'p BTreeMap<&'static str, Vec<Arc<P>>>,
    reference: &str,
    version: impl Fn(&P) -> &str,
    full_name: impl Fn(&P) -> String,
) -> Result<&'p Arc<P>, LookupError> {
    let (kind, name, wanted) = parse_reference(reference)?;
    if kind != "builtin" {
        if let Some(versions) = standalone.get(name) {
            let found = match wanted {
                None | Some("latest") => versions.last(),
                Some(v) => versions.iter().find(|p| version(p) == v),
            };
            if let Some(plugin) = found {
                return Ok(plugin);
            }
            if let (Some(v), "standalone") = (wanted, kind) {
                return Err(LookupError::VersionNotFound {
                    reference: crate::connector::full_name(true, name, v),
                    versions: versions
                        .iter()
                        .map(|p| version(p))
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
        }
        if kind == "standalone" {
            let available: Vec<String> = standalone
                .values()
                .flatten()
                .map(|p| full_name(p))
                .collect();
            return Err(LookupError::NotFound {
                reference: reference.to_owned(),
                available: available.join(", "),
            });
        }
    }
    let builtin = match reference.split_once(':') {
        Some(("any", rest)) => rest,
        _ => reference,
    };
    find(builtins, builtin, version)
}

/// A sort key for versions like `v1.2.3`: numeric parts compared as numbers.
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Split a plugin reference `[builtin:|standalone:|any:]NAME[@VERSION]` into its kind
/// (`any` when none is given), name and version.
pub fn parse_reference(reference: &str) -> Result<(&str, &str, Option<&str>), LookupError> {
    let (kind, rest) = match reference.split_once(':') {
        Some((kind, rest)) => (kind, rest),
        None => ("any", reference),
    };
    let (name, version) = match rest.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (rest, None),
    };
    if name.is_empty() || !matches!(kind, "builtin" | "standalone" | "any") {
        return Err(LookupError::Malformed(reference.to_owned()));
    }
    Ok((kind, name, version))
}

/// Why settings for a plugin were refused.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The plugin reference.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The settings.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// The plugin refused the settings for another reason.
    #[error("{0}")]
    Plugin(PluginError),
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_say_whether_a_retry_can_help() {
        use super::{ErrorKind, PluginError};
        let io = PluginError::io("reading", std::io::Error::other("reset"));
        assert_eq!(io.kind(), ErrorKind::Transient);
        assert_eq!(PluginError::Other("?".into()).kind(), ErrorKind::Transient);
        let position = PluginError::InvalidPosition {
            position: "x".into(),
            reason: "no".into(),
        };
        assert_eq!(position.kind(), ErrorKind::Permanent);
        let settings = PluginError::InvalidSettings(crate::spec::InvalidSettings(vec![]));
        assert_eq!(settings.kind(), ErrorKind::Config);
        assert_eq!(ErrorKind::Config.to_string(), "configuration");
    }
}
