//! The server's secrets key ring: where it comes from, the check at start that every stored
//! secret opens, and `culvert secrets rotate`.
//!
//! Keys come from `CULVERT_SECRETS_KEY` if set, else from the key file (`--secrets.key-file`,
//! by default `secrets.key` in the data directory). A missing key file is created with a
//! fresh key (mode 0600) only while the log holds no sealed secret; otherwise starting
//! without the key is an error that says which key is missing, never a server that cannot
//! read its own settings.

use anyhow::Context as _;
use culvert_commands::{Context, ControlPlaneWriter};
use culvert_domain::{Command, ControlPlane, ResealTarget, Settings};
use culvert_plugins::Registry;
use culvert_processors::ProcessorRegistry;
use culvert_secrets::{is_sealed, KeyRing, Marked, Secrets, SpecSensitivity, KEY_ENV};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// What the plugins' specifications say about settings, once the registries are built
/// (the control plane is opened before them; until then nothing is known).
#[derive(Default)]
pub struct RegistrySpecs {
    connectors: OnceLock<Arc<Registry>>,
    processors: OnceLock<Arc<ProcessorRegistry>>,
}

impl RegistrySpecs {
    /// Use these registries from now on.
    pub fn install(&self, connectors: Arc<Registry>, processors: Arc<ProcessorRegistry>) {
        let _ = self.connectors.set(connectors);
        let _ = self.processors.set(processors);
    }
}

impl SpecSensitivity for RegistrySpecs {
    fn marked(&self, plugin: &str, key: &str) -> Marked {
        let by_spec =
            |standalone: bool,
             params: &mut dyn Iterator<Item = &culvert_plugins::spec::Parameter>| {
                let params: Vec<_> = params.cloned().collect();
                match culvert_plugins::spec::marked(&params, key) {
                    Marked::Sensitive => Marked::Sensitive,
                    // A standalone plugin's specification cannot mark secrets (Conduit's
                    // parameters have no such field): Conduit's broader name rules apply.
                    _ if standalone => Marked::Unknown,
                    other => other,
                }
            };
        if let Some(spec) = self
            .connectors
            .get()
            .and_then(|r| r.lookup(plugin).ok())
            .map(|p| p.specification())
        {
            let mut params = spec
                .source
                .iter()
                .flatten()
                .chain(spec.destination.iter().flatten());
            return by_spec(spec.standalone, &mut params);
        }
        if let Some(spec) = self
            .processors
            .get()
            .and_then(|r| r.lookup(plugin).ok())
            .map(|p| p.specification())
        {
            return by_spec(spec.standalone, &mut spec.parameters.iter());
        }
        Marked::Unknown
    }
}

/// Where the key file is: the flag's path, or `secrets.key` in the data directory.
pub fn key_file(flag: Option<&Path>, data: &Path) -> PathBuf {
    flag.map_or_else(|| data.join("secrets.key"), Path::to_path_buf)
}

/// Whether any setting in the read model is sealed.
fn holds_sealed(state: &ControlPlane) -> bool {
    every_settings(state).any(|(_, _, settings)| settings.values().any(|v| is_sealed(v)))
}

/// Every settings map of the control plane: whose, the plugin, the settings.
fn every_settings(state: &ControlPlane) -> impl Iterator<Item = (ResealTarget, &str, &Settings)> {
    let connectors = state.connectors().map(|c| {
        (
            ResealTarget::Connector(c.id.clone()),
            c.plugin.as_str(),
            &c.settings,
        )
    });
    let processors = state.processors().map(|p| {
        (
            ResealTarget::Processor(p.id.clone()),
            p.plugin.as_str(),
            &p.settings,
        )
    });
    let dlqs = state.pipelines().map(|p| {
        (
            ResealTarget::PipelineDlq(p.id.clone()),
            p.dlq.plugin.as_str(),
            &p.dlq.settings,
        )
    });
    connectors.chain(processors).chain(dlqs)
}

fn describe(target: &ResealTarget) -> String {
    match target {
        ResealTarget::Connector(id) => format!("connector {id}"),
        ResealTarget::Processor(id) => format!("processor {id}"),
        ResealTarget::PipelineDlq(id) => format!("the dead-letter queue of pipeline {id}"),
    }
}

/// The key ring for a server on `state`: from `CULVERT_SECRETS_KEY`, else the key file,
/// else (only when nothing is sealed yet, and `persist`) a new key written to the file.
///
/// # Errors
/// The keys cannot be read or written, or the log holds secrets but the key is missing.
pub fn load_ring(path: &Path, state: &ControlPlane, persist: bool) -> anyhow::Result<KeyRing> {
    if let Ok(text) = std::env::var(KEY_ENV) {
        if !text.trim().is_empty() {
            tracing::info!("secrets are sealed with the key in {KEY_ENV}");
            return Ok(KeyRing::from_env_text(&text)?);
        }
    }
    if path.exists() {
        return Ok(KeyRing::load(path)?);
    }
    if holds_sealed(state) {
        anyhow::bail!(
            "the event log holds sealed secrets, but the secrets key file {} does not exist: \
             restore it from your backup (or set {KEY_ENV}, or point --secrets.key-file at \
             it); without it the stored secrets cannot be read",
            path.display()
        );
    }
    let ring = KeyRing::generate();
    if persist {
        ring.save(path)?;
        tracing::info!(
            path = %path.display(),
            key = ring.current_id(),
            "generated a new secrets key; back this file up apart from the data directory"
        );
    }
    Ok(ring)
}

/// Check that every sealed setting of the control plane opens with the ring.
///
/// # Errors
/// The first that does not, naming whose setting it is and what to do.
pub fn check(secrets: &Secrets, state: &ControlPlane) -> anyhow::Result<()> {
    for (target, _, settings) in every_settings(state) {
        secrets
            .check_settings(settings)
            .with_context(|| format!("{}: a stored secret cannot be opened", describe(&target)))?;
    }
    Ok(())
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The new current key.
    pub key: String,
    /// How many settings maps were sealed again.
    pub resealed: usize,
    /// Whether the old keys were dropped from the key file.
    pub dropped_old: bool,
}

/// Rotate the key: add a fresh key to the key file (as the current one), then seal every
/// stored secret again with it, and seal sensitive values stored in clear by older
/// versions, by appending events (`ConnectorSecretsResealed`, ...; history is never
/// rewritten). With `drop_old`, the old keys are removed from the key file once every
/// current secret is sealed with the new one (events recorded before keep their old
/// sealing; they are never shown in clear anyway).
///
/// # Errors
/// The key file cannot be written, a secret does not open, or an append fails. What was
/// appended before a failure stays, and running the rotation again finishes it.
pub fn rotate(
    log: Arc<dyn culvert_store::EventLog>,
    projections: Arc<culvert_projections::Projections>,
    secrets: &Secrets,
    path: &Path,
    drop_old: bool,
    actor: &str,
) -> anyhow::Result<Rotation> {
    if std::env::var(KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        anyhow::bail!(
            "the keys come from {KEY_ENV}; this command rotates a key file: unset {KEY_ENV} \
             and point --secrets.key-file at a file holding the same keys"
        );
    }
    let rotated = secrets.with_ring(secrets.ring().rotated());
    // The new key is durable before anything is sealed with it.
    rotated.ring().save(path)?;
    let writer = ControlPlaneWriter::with_secrets(log, projections, true, rotated.clone());
    let context = Context::new(actor);
    let targets: Vec<(ResealTarget, String, Settings)> = {
        let state = writer.projections().read();
        every_settings(&state)
            .map(|(target, plugin, settings)| (target, plugin.to_owned(), settings.clone()))
            .collect()
    };
    let mut commands = Vec::new();
    for (target, plugin, settings) in targets {
        if let Some(settings) = rotated
            .reseal_settings(&plugin, &settings)
            .with_context(|| describe(&target))?
        {
            commands.push(Command::ResealSecrets { target, settings });
        }
    }
    let resealed = commands.len();
    for command in commands {
        writer
            .execute(&context, &command, None)
            .context("recording a resealed setting")?;
    }
    if drop_old {
        let current = rotated.with_ring(rotated.ring().current_only());
        check(&current, &writer.projections().read())?;
        current.ring().save(path)?;
    }
    Ok(Rotation {
        key: rotated.ring().current_id().to_owned(),
        resealed,
        dropped_old: drop_old,
    })
}

/// `culvert secrets ...`
#[derive(clap::Subcommand, Debug)]
pub enum SecretsCommand {
    /// Add a new key to the key file and seal every stored secret with it, by appending
    /// events (history is not rewritten). The server must be stopped.
    ///
    /// Example: culvert secrets rotate --db.rocksdb.path ./data --drop-old-keys
    Rotate {
        /// The server's data directory.
        #[arg(
            long = "db.rocksdb.path",
            env = "CULVERT_DB_ROCKSDB_PATH",
            default_value = "./data"
        )]
        data: PathBuf,
        /// The key file (default: `secrets.key` in the data directory).
        #[arg(long = "secrets.key-file", env = "CULVERT_SECRETS_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// Remove the old keys from the key file once every stored secret is sealed with
        /// the new one.
        #[arg(long)]
        drop_old_keys: bool,
    },
}

/// Run a `secrets` verb; exit 0 on success, 1 on failure, 3 when the data directory cannot
/// be opened.
pub fn run(command: SecretsCommand) -> std::process::ExitCode {
    let SecretsCommand::Rotate {
        data,
        key_file,
        drop_old_keys,
    } = command;
    match rotate_offline(&data, key_file.as_deref(), drop_old_keys) {
        Ok(rotation) => {
            println!(
                "new key {}; {} settings sealed again{}",
                rotation.key,
                rotation.resealed,
                if rotation.dropped_old {
                    "; old keys removed from the key file"
                } else {
                    "; old keys kept in the key file"
                }
            );
            std::process::ExitCode::SUCCESS
        }
        Err((code, error)) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(code)
        }
    }
}

fn rotate_offline(
    data: &Path,
    key_file: Option<&Path>,
    drop_old: bool,
) -> Result<Rotation, (u8, anyhow::Error)> {
    if !data.join("CURRENT").exists() {
        return Err((
            3,
            anyhow::anyhow!("{} is not a culvert data directory", data.display()),
        ));
    }
    let store = culvert_store::RocksStore::open(
        data,
        culvert_store::StoreOptions::default(),
        &culvert_migrations::layout(),
    )
    .map_err(|e| {
        let hint = if e.to_string().contains("lock") {
            " (is the server running? stop it first)"
        } else {
            ""
        };
        (3, anyhow::anyhow!("opening {}: {e}{hint}", data.display()))
    })?;
    let log: Arc<dyn culvert_store::EventLog> = Arc::new(store);
    let (projections, _) = culvert_projections::Projections::open(
        log.as_ref(),
        culvert_projections::ProjectionOptions::default(),
    )
    .map_err(|e| (1, anyhow::Error::new(e)))?;
    let path = self::key_file(key_file, data);
    if !path.exists() && std::env::var(KEY_ENV).is_err() {
        return Err((
            1,
            anyhow::anyhow!("the key file {} does not exist", path.display()),
        ));
    }
    let ring = load_ring(&path, &projections.read(), false).map_err(|e| (1, e))?;
    let specs = RegistrySpecs::default();
    specs.install(
        Arc::new(culvert_connectors::registry()),
        Arc::new(culvert_processors::registry()),
    );
    let secrets = Secrets::new(ring, Arc::new(specs));
    check(&secrets, &projections.read()).map_err(|e| (1, e))?;
    rotate(
        log,
        Arc::new(projections),
        &secrets,
        &path,
        drop_old,
        "cli:secrets-rotate",
    )
    .map_err(|e| (1, e))
}
