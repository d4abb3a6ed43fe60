//! The processor registry: built-in and standalone processor plugins by name, and the
//! making of a configured instance (settings validated, `condition` attached).

use crate::condition::Conditional;
use crate::sdk_schema::{Switches, WithSchemas};
use culvert_plugins::connector::{lookup_with_standalone, version_key};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::schema::SchemaRegistry;
use culvert_plugins::spec::{self, InvalidSettings};
use culvert_plugins::{LookupError, PluginError, Settings};
use culvert_template::Template;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a processor could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// The plugin reference.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The settings, against the parameters.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// The plugin refused the settings.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The condition is not a valid template.
    #[error("invalid condition: {0}")]
    Condition(String),
}

/// The processor plugins this server can run, by name.
#[derive(Clone, Default)]
pub struct ProcessorRegistry {
    plugins: BTreeMap<&'static str, Arc<dyn ProcessorPlugin>>,
    /// Standalone (WASM) plugins by name, oldest version first.
    standalone: BTreeMap<&'static str, Vec<Arc<dyn ProcessorPlugin>>>,
    /// The schema registry the built-ins' `sdk.schema.*` decoding and encoding use.
    schemas: Option<Arc<dyn SchemaRegistry>>,
}

impl ProcessorRegistry {
    /// Add a plugin (replacing one of the same name).
    pub fn add(&mut self, plugin: Arc<dyn ProcessorPlugin>) {
        self.plugins.insert(plugin.specification().name, plugin);
    }

    /// Decode and encode records with schemas from `schemas` around the built-ins (their
    /// `sdk.schema.*` settings).
    pub fn use_schemas(&mut self, schemas: Arc<dyn SchemaRegistry>) {
        self.schemas = Some(schemas);
    }

    /// Add a standalone plugin (beside others of the same name with other versions).
    pub fn add_standalone(&mut self, plugin: Arc<dyn ProcessorPlugin>) {
        let versions = self
            .standalone
            .entry(plugin.specification().name)
            .or_default();
        versions.retain(|p| p.specification().version != plugin.specification().version);
        versions.push(plugin);
        versions.sort_by_key(|p| version_key(p.specification().version));
    }

    /// Every plugin's specification: built-ins by name, then standalone ones.
    pub fn specifications(&self) -> impl Iterator<Item = &ProcessorSpecification> {
        self.plugins
            .values()
            .chain(self.standalone.values().flatten())
            .map(|p| p.specification())
    }

    /// The plugin a reference (`field.set`, `builtin:filter@v0.1.0`,
    /// `standalone:mine@v1.0.0`) names. A bare name finds a standalone plugin first (its
    /// newest version), then a built-in, as connector plugins do.
    pub fn lookup(&self, reference: &str) -> Result<&Arc<dyn ProcessorPlugin>, LookupError> {
        lookup_with_standalone(
            &self.plugins,
            &self.standalone,
            reference,
            |p| p.specification().version,
            |p| p.specification().full_name(),
        )
    }

    /// Whether `reference` names a built-in plugin (not a standalone one); `false` if it
    /// names none.
    pub fn is_builtin(&self, reference: &str) -> bool {
        self.lookup(reference)
            .is_ok_and(|plugin| !plugin.specification().standalone)
    }

    /// A processor instance: the plugin exists, the settings fit its parameters and the
    /// plugin accepts them, and the condition (if not blank) parses. A built-in is wrapped
    /// in the `sdk.schema.*` decoding and encoding its settings ask for (inside the
    /// condition, as in Conduit).
    pub fn configure(
        &self,
        reference: &str,
        settings: &Settings,
        condition: &str,
    ) -> Result<Box<dyn Processor>, ConfigureError> {
        let plugin = self.lookup(reference)?;
        let settings = spec::validate(&plugin.specification().parameters, settings)?;
        let mut processor = plugin.configure(&settings)?;
        let switches = Switches::from_settings(&settings);
        if let (false, true, Some(schemas)) = (
            plugin.specification().standalone,
            switches.any(),
            &self.schemas,
        ) {
            processor = Box::new(WithSchemas::new(processor, switches, schemas.clone()));
        }
        if condition.trim().is_empty() {
            return Ok(processor);
        }
        let condition =
            Template::parse(condition).map_err(|e| ConfigureError::Condition(e.to_string()))?;
        Ok(Box::new(Conditional::new(condition, processor)))
    }
}
