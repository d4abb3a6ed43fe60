//! Processor plugins: the trait every processor implements, their specifications, the
//! registry, the `condition` wrapper, and the built-ins `field.set`, `field.exclude`,
//! `field.rename` and `filter`.
//!
//! A processor works on a batch in place: it may change any record and says, for each one,
//! whether it goes on ([`Outcome::Keep`]), is dropped ([`Outcome::Drop`]; the engine acks
//! it, so it is never lost) or failed ([`Outcome::Fail`]; the engine nacks it). The
//! built-ins follow Conduit's: same names, parameters, defaults, validations and errors.
//! Their `sdk.schema.*` parameters are accepted (Conduit's processor SDK adds them) but have
//! no effect: Culvert has no schema registry yet.

use crate::connector::{LookupError, PluginError, Settings};
use crate::reference::Reference;
use crate::spec::{self, InvalidSettings, Parameter, ParameterType, SettingError, Validation};
use culvert_domain::Record;
use culvert_template::{parse_bool, Template};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What became of one record in a processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It goes on to the next node (possibly changed).
    Keep,
    /// It is filtered out: acked, not passed on.
    Drop,
    /// Processing it failed, with this error.
    Fail(String),
}

/// A configured processor instance.
#[async_trait::async_trait]
pub trait Processor: Send {
    /// The processor's id (a standalone processor logs with it); called before `open`.
    fn identify(&mut self, _id: &str) {}
    /// Get ready before the first batch (a standalone processor starts here); an error
    /// keeps the pipeline from starting.
    async fn open(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
    /// Process `records` in place. `outcomes` has one entry per record, all
    /// [`Outcome::Keep`] on entry; set the others. An error means the processor itself
    /// failed (not one record): the pipeline stops with it.
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError>;
}

/// A processor plugin's description (what ListProcessorPlugins shows).
#[derive(Clone, Debug)]
pub struct ProcessorSpecification {
    /// The plugin's name, e.g. `field.set`.
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// More on what it does.
    pub description: &'static str,
    /// Its version (`v0.1.0`).
    pub version: &'static str,
    /// Who wrote it.
    pub author: &'static str,
    /// The settings it accepts.
    pub parameters: Vec<Parameter>,
    /// Whether it is a standalone (WASM) plugin.
    pub standalone: bool,
}

impl ProcessorSpecification {
    /// The name it is listed under: `builtin:NAME@VERSION` or `standalone:NAME@VERSION`.
    pub fn full_name(&self) -> String {
        crate::connector::full_name(self.standalone, self.name, self.version)
    }
}

/// A kind of processor that can be configured into instances.
pub trait ProcessorPlugin: Send + Sync {
    /// What it is and which settings it takes.
    fn specification(&self) -> &ProcessorSpecification;
    /// An instance with these settings (already validated against the parameters, with
    /// defaults applied). Errors say which setting is wrong.
    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError>;
}

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
}

impl ProcessorRegistry {
    /// The built-in processors.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.add(Arc::new(FieldSet::new()));
        registry.add(Arc::new(FieldExclude::new()));
        registry.add(Arc::new(FieldRename::new()));
        registry.add(Arc::new(Filter::new()));
        registry
    }

    /// Add a plugin (replacing one of the same name).
    pub fn add(&mut self, plugin: Arc<dyn ProcessorPlugin>) {
        self.plugins.insert(plugin.specification().name, plugin);
    }

    /// Add a standalone plugin (beside others of the same name with other versions).
    pub fn add_standalone(&mut self, plugin: Arc<dyn ProcessorPlugin>) {
        let versions = self
            .standalone
            .entry(plugin.specification().name)
            .or_default();
        versions.retain(|p| p.specification().version != plugin.specification().version);
        versions.push(plugin);
        versions.sort_by_key(|p| crate::connector::version_key(p.specification().version));
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
        crate::connector::lookup_with_standalone(
            &self.plugins,
            &self.standalone,
            reference,
            |p| p.specification().version,
            |p| p.specification().full_name(),
        )
    }

    /// A processor instance: the plugin exists, the settings fit its parameters and the
    /// plugin accepts them, and the condition (if not blank) parses.
    pub fn configure(
        &self,
        reference: &str,
        settings: &Settings,
        condition: &str,
    ) -> Result<Box<dyn Processor>, ConfigureError> {
        let plugin = self.lookup(reference)?;
        let settings = spec::validate(&plugin.specification().parameters, settings)?;
        let processor = plugin.configure(&settings)?;
        if condition.trim().is_empty() {
            return Ok(processor);
        }
        let condition =
            Template::parse(condition).map_err(|e| ConfigureError::Condition(e.to_string()))?;
        Ok(Box::new(Conditional {
            condition,
            inner: processor,
            chosen: Vec::new(),
            scratch: Vec::new(),
            scratch_outcomes: Vec::new(),
        }))
    }
}

/// A processor run by several instances at once (Conduit's `workers`): each batch is cut
/// into as many runs of consecutive records, the runs are processed concurrently, and the
/// records and outcomes are put back in their places, so the order is kept.
pub struct Parallel {
    /// The instances; each is out (in its task) only while a batch is processed.
    instances: Vec<Option<Box<dyn Processor>>>,
}

impl Parallel {
    /// Run `instances` (at least one) as workers of one processor.
    pub fn new(instances: Vec<Box<dyn Processor>>) -> Self {
        assert!(
            !instances.is_empty(),
            "a processor needs at least one worker"
        );
        Self {
            instances: instances.into_iter().map(Some).collect(),
        }
    }

    fn instance(&mut self, index: usize) -> Result<Box<dyn Processor>, PluginError> {
        self.instances[index]
            .take()
            .ok_or_else(|| PluginError::Other("a worker of the processor was lost".into()))
    }
}

#[async_trait::async_trait]
impl Processor for Parallel {
    fn identify(&mut self, id: &str) {
        for instance in self.instances.iter_mut().flatten() {
            instance.identify(id);
        }
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        for instance in self.instances.iter_mut().flatten() {
            instance.open().await?;
        }
        Ok(())
    }

    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        let workers = self.instances.len().min(records.len());
        if workers <= 1 {
            let mut instance = self.instance(0)?;
            let result = instance.process(records, outcomes).await;
            self.instances[0] = Some(instance);
            return result;
        }
        let run = records.len().div_ceil(workers);
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (records, outcomes)) in records
            .chunks_mut(run)
            .zip(outcomes.chunks(run))
            .enumerate()
        {
            let mut instance = self.instance(index)?;
            let mut records: Vec<Record> = records.iter_mut().map(std::mem::take).collect();
            let mut outcomes = outcomes.to_vec();
            tasks.spawn(async move {
                let result = instance.process(&mut records, &mut outcomes).await;
                (index, instance, records, outcomes, result)
            });
        }
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            let (index, instance, processed, processed_outcomes, result) = joined.map_err(|e| {
                PluginError::Other(format!("a worker of the processor failed: {e}"))
            })?;
            self.instances[index] = Some(instance);
            let start = index * run;
            for (offset, (record, outcome)) in
                processed.into_iter().zip(processed_outcomes).enumerate()
            {
                records[start + offset] = record;
                outcomes[start + offset] = outcome;
            }
            if let Err(error) = result {
                failure.get_or_insert(error);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// A processor that only sees the records its condition is true for; the others pass
/// through unchanged, in place.
struct Conditional {
    condition: Template,
    inner: Box<dyn Processor>,
    chosen: Vec<usize>,
    scratch: Vec<Record>,
    scratch_outcomes: Vec<Outcome>,
}

#[async_trait::async_trait]
impl Processor for Conditional {
    fn identify(&mut self, id: &str) {
        self.inner.identify(id);
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }

    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        self.chosen.clear();
        for (i, record) in records.iter().enumerate() {
            let verdict = self
                .condition
                .render(record)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    parse_bool(&text).ok_or_else(|| {
                        format!(
                            "error converting the condition go-template output to boolean, \
                             strconv.ParseBool: parsing {text:?}: invalid syntax"
                        )
                    })
                });
            match verdict {
                Ok(true) => self.chosen.push(i),
                Ok(false) => {}
                Err(error) => {
                    outcomes[i] = Outcome::Fail(format!("failed evaluating condition: {error}"))
                }
            }
        }
        if self.chosen.len() == records.len() {
            return self.inner.process(records, outcomes).await;
        }
        if self.chosen.is_empty() {
            return Ok(());
        }
        // Move the chosen records out, process them as one batch, move them back.
        self.scratch.clear();
        self.scratch
            .extend(self.chosen.iter().map(|&i| std::mem::take(&mut records[i])));
        self.scratch_outcomes.clear();
        self.scratch_outcomes
            .resize(self.scratch.len(), Outcome::Keep);
        self.inner
            .process(&mut self.scratch, &mut self.scratch_outcomes)
            .await?;
        for ((&i, record), outcome) in self
            .chosen
            .iter()
            .zip(self.scratch.drain(..))
            .zip(self.scratch_outcomes.drain(..))
        {
            records[i] = record;
            outcomes[i] = outcome;
        }
        Ok(())
    }
}

const AUTHOR: &str = "Culvert";
const VERSION: &str = "v0.1.0";

/// The parameters Conduit's processor SDK adds to every processor (decoding and encoding
/// with a schema registry), with the plugin's default.
fn schema_parameters(default: &'static str) -> Vec<Parameter> {
    let param = |name, description| {
        Parameter::new(name, ParameterType::Bool, description).default_value(default)
    };
    vec![
        param(
            "sdk.schema.decode.key.enabled",
            "Whether to decode the record key using its corresponding schema from the schema registry.",
        ),
        param(
            "sdk.schema.decode.payload.enabled",
            "Whether to decode the record payload using its corresponding schema from the schema registry.",
        ),
        param(
            "sdk.schema.encode.key.enabled",
            "Whether to encode the record key using its corresponding schema from the schema registry.",
        ),
        param(
            "sdk.schema.encode.payload.enabled",
            "Whether to encode the record payload using its corresponding schema from the schema registry.",
        ),
    ]
}

fn setting<'s>(settings: &'s Settings, key: &str) -> &'s str {
    settings.get(key).map(String::as_str).unwrap_or("")
}

fn invalid(key: &str, problem: impl std::fmt::Display) -> PluginError {
    PluginError::InvalidSettings(InvalidSettings(vec![SettingError {
        key: key.to_owned(),
        problem: problem.to_string(),
    }]))
}

/// Conduit's comma-separated list settings: items trimmed, empty ones skipped.
fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `field.set`: set a field to a Go template's output.
pub struct FieldSet {
    spec: ProcessorSpecification,
}

impl FieldSet {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![
            Parameter::new(
                "field",
                ParameterType::String,
                "The field to set (a reference such as `.Payload.After.name`); `.Position` cannot be set.",
            )
            .validate(Validation::Required)
            .validate(Validation::Exclusion(vec![".Position".to_owned()])),
            Parameter::new(
                "value",
                ParameterType::String,
                "A Go template evaluated with the record; its output is stored in `field` (e.g. `{{ .Payload.After.id }}`).",
            )
            .validate(Validation::Required),
        ];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "field.set",
                summary: "Set the value of a certain field.",
                description: "Sets a field to the output of a Go template evaluated with the \
                              record, creating the field if it does not exist. `.Position` \
                              cannot be set. Works on structured data.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldSet {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldSet {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field =
            Reference::parse(setting(settings, "field")).map_err(|e| invalid("field", e))?;
        let value = Template::parse(setting(settings, "value")).map_err(|e| invalid("value", e))?;
        Ok(Box::new(SetProcessor { field, value }))
    }
}

struct SetProcessor {
    field: Reference,
    value: Template,
}

#[async_trait::async_trait]
impl Processor for SetProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            let result = self
                .value
                .render(record)
                .map_err(|e| e.to_string())
                .and_then(|value| self.field.set(record, value).map_err(|e| e.0));
            if let Err(error) = result {
                *outcome = Outcome::Fail(error);
            }
        }
        Ok(())
    }
}

/// `field.exclude`: remove fields.
pub struct FieldExclude {
    spec: ProcessorSpecification,
}

impl FieldExclude {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "fields",
            ParameterType::String,
            "A comma-separated list of fields to remove (references such as `.Metadata.x`); `.Position` and `.Operation` cannot be excluded.",
        )
        .validate(Validation::Required)];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "field.exclude",
                summary: "Remove a subset of fields from the record.",
                description: "Removes the listed fields, leaving the others untouched; a field \
                              holding nested data is removed with all of it. `.Position` and \
                              `.Operation` cannot be excluded. Works on structured data.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldExclude {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldExclude {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let mut fields = Vec::new();
        for field in list(setting(settings, "fields")) {
            if field == ".Position" || field == ".Operation" {
                return Err(invalid(
                    "fields",
                    "it is not allowed to exclude the fields \".Operation\" and \".Position\"",
                ));
            }
            fields.push(Reference::parse(field).map_err(|e| invalid("fields", e))?);
        }
        if fields.is_empty() {
            return Err(invalid("fields", "no field to exclude"));
        }
        Ok(Box::new(ExcludeProcessor { fields }))
    }
}

struct ExcludeProcessor {
    fields: Vec<Reference>,
}

#[async_trait::async_trait]
impl Processor for ExcludeProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            for field in &self.fields {
                if let Err(error) = field.delete(record) {
                    *outcome = Outcome::Fail(error.0);
                    break;
                }
            }
        }
        Ok(())
    }
}

/// `field.rename`: give fields new names.
pub struct FieldRename {
    spec: ProcessorSpecification,
}

impl FieldRename {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "mapping",
            ParameterType::String,
            "A comma-separated list of `field:newName` pairs, e.g. `.Metadata.key:id,.Payload.After.foo:bar`.",
        )
        .validate(Validation::Required)];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "field.rename",
                summary: "Rename a group of fields.",
                description: "Renames fields to new names within the same object. Top-level \
                              fields (`.Operation`, `.Position`, `.Key`, `.Metadata`, \
                              `.Payload.Before`, `.Payload.After`) cannot be renamed. Works on \
                              structured data.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldRename {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldRename {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        const TOP_LEVEL: [&str; 7] = [
            ".Metadata",
            ".Payload",
            ".Payload.Before",
            ".Payload.After",
            ".Position",
            ".Key",
            ".Operation",
        ];
        let mut mapping = Vec::new();
        for pair in list(setting(settings, "mapping")) {
            let Some((field, name)) = pair.split_once(':').filter(|(_, n)| !n.contains(':')) else {
                return Err(invalid(
                    "mapping",
                    "wrong format, should be a comma separated list of keys and values, \
                     ex: .Metadata.key:id,.Payload.After.foo:bar",
                ));
            };
            let (field, name) = (field.trim(), name.trim());
            if TOP_LEVEL.contains(&field) {
                return Err(invalid(
                    "mapping",
                    format!("cannot rename one of the top-level fields {field:?}"),
                ));
            }
            if name.is_empty() {
                return Err(invalid(
                    "mapping",
                    format!("cannot rename the key {field:?} to an empty string"),
                ));
            }
            let field = Reference::parse(field).map_err(|e| invalid("mapping", e))?;
            mapping.push((field, name.to_owned()));
        }
        if mapping.is_empty() {
            return Err(invalid("mapping", "no field to rename"));
        }
        Ok(Box::new(RenameProcessor { mapping }))
    }
}

struct RenameProcessor {
    mapping: Vec<(Reference, String)>,
}

#[async_trait::async_trait]
impl Processor for RenameProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            for (field, name) in &self.mapping {
                if let Err(error) = field.rename(record, name) {
                    *outcome = Outcome::Fail(error.0);
                    break;
                }
            }
        }
        Ok(())
    }
}

/// `filter`: drop every record it sees (used with a condition).
pub struct Filter {
    spec: ProcessorSpecification,
}

impl Filter {
    /// The plugin.
    pub fn new() -> Self {
        Self {
            spec: ProcessorSpecification {
                name: "filter",
                summary: "Acknowledges all records that get passed to the filter.",
                description: "Drops (acknowledges without passing on) every record it \
                              receives, so with a condition it filters out the records the \
                              condition is true for. Without a condition every record is \
                              dropped.",
                version: VERSION,
                author: AUTHOR,
                parameters: schema_parameters("false"),
                standalone: false,
            },
        }
    }
}

impl Default for Filter {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for Filter {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, _settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        Ok(Box::new(FilterProcessor))
    }
}

struct FilterProcessor;

#[async_trait::async_trait]
impl Processor for FilterProcessor {
    async fn process(
        &mut self,
        _records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        outcomes.fill(Outcome::Drop);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::{Change, Data, Operation, Position};
    use serde_json::{json, Value};

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn record(n: i64, table: &str) -> Record {
        let Value::Object(after) = json!({"id": n, "name": format!("user-{n}"), "secret": "s"})
        else {
            unreachable!()
        };
        Record {
            position: Position(n.to_string().into_bytes()),
            operation: Operation::Create,
            metadata: BTreeMap::from([("table".to_owned(), table.to_owned())]),
            key: None,
            payload: Change {
                before: None,
                after: Some(Data::Structured(after)),
            },
        }
    }

    fn run(processor: &mut dyn Processor, records: &mut [Record]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Keep; records.len()];
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(processor.process(records, &mut outcomes))
            .unwrap();
        outcomes
    }

    fn after(record: &Record) -> Value {
        match &record.payload.after {
            Some(Data::Structured(map)) => Value::Object(map.clone()),
            other => panic!("not structured: {other:?}"),
        }
    }

    #[test]
    fn workers_process_runs_of_a_batch_and_keep_the_order() {
        let registry = ProcessorRegistry::builtin();
        let instances = (0..3)
            .map(|_| {
                registry
                    .configure(
                        "field.set",
                        &settings(&[("field", ".Metadata.seen"), ("value", "yes")]),
                        "{{ ne (index .Metadata \"table\") \"skip\" }}",
                    )
                    .unwrap()
            })
            .collect();
        let mut parallel = Parallel::new(instances);
        let mut records: Vec<Record> = (0..10)
            .map(|n| record(n, if n == 4 { "skip" } else { "users" }))
            .collect();
        let outcomes = run(&mut parallel, &mut records);
        assert_eq!(outcomes, vec![Outcome::Keep; 10]);
        for (n, record) in records.iter().enumerate() {
            assert_eq!(record.position.0, n.to_string().into_bytes(), "order kept");
            let seen = record.metadata.get("seen").cloned();
            if n == 4 {
                assert_eq!(seen, None, "its condition was false");
            } else {
                assert_eq!(seen.as_deref(), Some("yes"));
            }
        }
        // Fewer records than workers, and none.
        let mut two: Vec<Record> = (0..2).map(|n| record(n, "users")).collect();
        assert_eq!(run(&mut parallel, &mut two), vec![Outcome::Keep; 2]);
        assert_eq!(run(&mut parallel, &mut []), Vec::<Outcome>::new());
    }

    #[test]
    fn registry_lists_and_finds_the_builtins() {
        let registry = ProcessorRegistry::builtin();
        let names: Vec<_> = registry.specifications().map(|s| s.name).collect();
        assert_eq!(
            names,
            ["field.exclude", "field.rename", "field.set", "filter"]
        );
        for reference in [
            "field.set",
            "builtin:field.set",
            "builtin:filter@v0.1.0",
            "any:filter",
        ] {
            registry
                .lookup(reference)
                .unwrap_or_else(|e| panic!("{reference}: {e}"));
        }
        for reference in ["nope", "standalone:filter", "filter@v9", "bad:filter"] {
            assert!(registry.lookup(reference).is_err(), "{reference}");
        }
    }

    #[test]
    fn settings_are_validated_with_errors_naming_the_setting() {
        let registry = ProcessorRegistry::builtin();
        let error = |plugin: &str, pairs: &[(&str, &str)], condition: &str| match registry
            .configure(plugin, &settings(pairs), condition)
        {
            Ok(_) => panic!("{plugin} {pairs:?} accepted"),
            Err(e) => e.to_string(),
        };
        let e = error("field.set", &[("field", ".Metadata.x")], "");
        assert!(e.contains("\"value\"") && e.contains("required"), "{e}");
        let e = error("field.set", &[("field", ".Position"), ("value", "x")], "");
        assert!(e.contains("\"field\""), "{e}");
        let e = error("field.set", &[("field", ".Nope"), ("value", "x")], "");
        assert!(
            e.contains("\"field\"") && e.contains("unexpected field"),
            "{e}"
        );
        let e = error(
            "field.set",
            &[("field", ".Metadata.x"), ("value", "{{ nofunc }}")],
            "",
        );
        assert!(e.contains("\"value\""), "{e}");
        let e = error(
            "field.exclude",
            &[("fields", ".Metadata.a, .Operation")],
            "",
        );
        assert!(e.contains("not allowed to exclude"), "{e}");
        let e = error("field.rename", &[("mapping", ".Payload.After:x")], "");
        assert!(e.contains("top-level"), "{e}");
        let e = error("field.rename", &[("mapping", ".Metadata.a")], "");
        assert!(e.contains("wrong format"), "{e}");
        let e = error("field.rename", &[("mapping", ".Metadata.a: ")], "");
        assert!(e.contains("empty string"), "{e}");
        let e = error("filter", &[("bogus", "1")], "");
        assert!(e.contains("\"bogus\"") && e.contains("unrecognized"), "{e}");
        let e = error("filter", &[], "{{ if }}");
        assert!(e.starts_with("invalid condition"), "{e}");
        let e = error("nope", &[], "");
        assert!(e.contains("not found"), "{e}");
    }

    #[test]
    fn field_set_renders_the_template_into_the_field() {
        let mut p = ProcessorRegistry::builtin()
            .configure(
                "field.set",
                &settings(&[
                    ("field", ".Payload.After.label"),
                    ("value", "{{ .Metadata.table }}-{{ .Payload.After.id }}"),
                ]),
                "",
            )
            .unwrap();
        let mut records = vec![record(1, "users"), record(2, "orders")];
        assert_eq!(
            run(p.as_mut(), &mut records),
            [Outcome::Keep, Outcome::Keep]
        );
        assert_eq!(after(&records[0])["label"], "users-1");
        assert_eq!(after(&records[1])["label"], "orders-2");

        let mut op = ProcessorRegistry::builtin()
            .configure(
                "field.set",
                &settings(&[("field", ".Operation"), ("value", "{{ .Metadata.table }}")]),
                "",
            )
            .unwrap();
        let mut records = vec![record(1, "update"), record(2, "nonsense")];
        let outcomes = run(op.as_mut(), &mut records);
        assert_eq!(records[0].operation, Operation::Update);
        assert_eq!(outcomes[0], Outcome::Keep);
        assert!(matches!(&outcomes[1], Outcome::Fail(e) if e.contains("unknown operation")));
    }

    #[test]
    fn exclude_and_rename() {
        let registry = ProcessorRegistry::builtin();
        let mut exclude = registry
            .configure(
                "field.exclude",
                &settings(&[("fields", ".Payload.After.secret, .Metadata.table")]),
                "",
            )
            .unwrap();
        let mut rename = registry
            .configure(
                "field.rename",
                &settings(&[("mapping", ".Payload.After.name:full_name")]),
                "",
            )
            .unwrap();
        let mut records = vec![record(7, "users")];
        run(exclude.as_mut(), &mut records);
        run(rename.as_mut(), &mut records);
        assert_eq!(after(&records[0]), json!({"id": 7, "full_name": "user-7"}));
        assert!(records[0].metadata.is_empty());

        // Raw data cannot be walked into: the record fails, with the reason.
        let mut raw = record(8, "users");
        raw.payload.after = Some(Data::Raw(b"{}".to_vec()));
        let outcomes = run(exclude.as_mut(), std::slice::from_mut(&mut raw));
        assert!(
            matches!(&outcomes[0], Outcome::Fail(e) if e.contains("does not contain structured data"))
        );
    }

    #[test]
    fn condition_chooses_the_records_and_keeps_order() {
        let registry = ProcessorRegistry::builtin();
        let mut filter = registry
            .configure(
                "filter",
                &Settings::new(),
                "{{ eq .Metadata.table \"orders\" }}",
            )
            .unwrap();
        let mut set = registry
            .configure(
                "field.set",
                &settings(&[("field", ".Metadata.seen"), ("value", "yes")]),
                "{{ ne .Metadata.table \"orders\" }}",
            )
            .unwrap();
        let mut records: Vec<Record> = (0..6)
            .map(|n| record(n, if n % 3 == 0 { "orders" } else { "users" }))
            .collect();
        let outcomes = run(filter.as_mut(), &mut records);
        let dropped: Vec<usize> = (0..6).filter(|&i| outcomes[i] == Outcome::Drop).collect();
        assert_eq!(dropped, [0, 3]);
        run(set.as_mut(), &mut records);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r.position.0,
                i.to_string().into_bytes(),
                "order and identity kept"
            );
            assert_eq!(r.metadata.contains_key("seen"), i % 3 != 0, "record {i}");
        }
        // A condition that does not render a boolean fails the record, not the batch.
        let mut odd = registry
            .configure("filter", &Settings::new(), "{{ .Metadata.table }}")
            .unwrap();
        let outcomes = run(odd.as_mut(), &mut records[..1]);
        assert!(
            matches!(&outcomes[0], Outcome::Fail(e) if e.contains("failed evaluating condition"))
        );
    }

    #[test]
    fn filter_without_condition_drops_everything() {
        let mut filter = ProcessorRegistry::builtin()
            .configure("builtin:filter", &Settings::new(), "  ")
            .unwrap();
        let mut records = vec![record(1, "a"), record(2, "b")];
        assert_eq!(
            run(filter.as_mut(), &mut records),
            [Outcome::Drop, Outcome::Drop]
        );
    }
}
