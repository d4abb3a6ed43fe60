//! What the APIs and tools show of plugin settings: never a secret.
//!
//! Settings are stored with their sensitive values sealed (`culvert-secrets`), but a log
//! written before sealing existed holds them in clear, and the rules (a plugin's
//! specification, the names and values that look like secrets) are what decide. A
//! [`Redactor`] applies them to everything that leaves the server or a tool:
//!
//! * answers (`api.v1` and the event log's API) show sealed and sensitive values as `***`,
//!   as Conduit does, keeping every key ([`Redactor::settings`], [`Redactor::connector`],
//!   [`Redactor::event`], [`Redactor::field_changes`]);
//! * an export keeps sealed values as they are stored (a server with the same key opens
//!   them on import) and seals a sensitive value still in clear, or shows it as `***` when
//!   there is no key to seal with ([`Redactor::exported`]). A gRPC client asks for this
//!   form with the metadata [`EXPORT_METADATA`]`: sealed` (what `culvert pipelines export`
//!   sends); sealed text is ciphertext, so it discloses nothing without the server's key.
//!
//! Redaction works on the decoded structures (settings maps, domain events, entity JSON),
//! never by searching text, and needs no key: [`Redactor::rules`] is what the offline tools
//! use.

use culvert_commands::ControlPlaneWriter;
use culvert_domain::{
    Connector, ConnectorId, ControlPlane, DeadLetterQueue, Event, Pipeline, PipelineId, Processor,
    ProcessorId, Settings,
};
use culvert_plugins::Registry;
use culvert_processors::ProcessorRegistry;
use culvert_projections::history::FieldChange;
use culvert_secrets::{is_sealed, KeyRing, Marked, Secrets, SpecSensitivity, REDACTED};
use serde_json::Value;
use std::sync::Arc;

/// The gRPC metadata with which a client asks for settings in their exported form (value
/// `sealed`): sealed values as stored, sensitive values in clear sealed (or `***`).
pub const EXPORT_METADATA: &str = "culvert-export";

/// What the plugin registries' specifications say about settings: a parameter marked
/// sensitive is [`Marked::Sensitive`]; other parameters of a built-in are
/// [`Marked::NotMarked`]; a standalone plugin (whose specification cannot mark secrets) or
/// an unknown one is [`Marked::Unknown`], so Conduit's broader name rules apply.
pub struct PluginSpecs {
    connectors: Arc<Registry>,
    processors: Arc<ProcessorRegistry>,
}

impl PluginSpecs {
    /// The specifications of these registries.
    pub fn new(connectors: Arc<Registry>, processors: Arc<ProcessorRegistry>) -> Self {
        Self {
            connectors,
            processors,
        }
    }

    /// The built-in connectors' and processors' specifications.
    pub fn builtin() -> Self {
        Self::new(
            Arc::new(culvert_connectors::registry()),
            Arc::new(culvert_processors::registry()),
        )
    }
}

/// What one specification (its parameter lists) says about `key`.
fn marked_in(standalone: bool, lists: &[&[culvert_plugins::spec::Parameter]], key: &str) -> Marked {
    let sensitive = lists
        .iter()
        .any(|params| culvert_plugins::spec::marked(params, key) == Marked::Sensitive);
    if sensitive {
        Marked::Sensitive
    } else if standalone {
        Marked::Unknown
    } else {
        Marked::NotMarked
    }
}

/// What the specification of the connector plugin `plugin` in `connectors` says about
/// `key`; `None` if there is no such plugin.
pub(crate) fn connector_marked(connectors: &Registry, plugin: &str, key: &str) -> Option<Marked> {
    let spec = connectors.lookup(plugin).ok()?.specification();
    let lists: Vec<&[_]> = [spec.source.as_deref(), spec.destination.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    Some(marked_in(spec.standalone, &lists, key))
}

impl SpecSensitivity for PluginSpecs {
    fn marked(&self, plugin: &str, key: &str) -> Marked {
        if plugin.is_empty() {
            return Marked::Unknown;
        }
        if let Some(marked) = connector_marked(&self.connectors, plugin, key) {
            return marked;
        }
        if let Ok(processor) = self.processors.lookup(plugin) {
            let spec = processor.specification();
            return marked_in(spec.standalone, &[&spec.parameters], key);
        }
        Marked::Unknown
    }
}

/// Shows settings without their secrets (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Redactor {
    secrets: Secrets,
    /// Whether `secrets` holds the server's key (so an export may seal with it).
    can_seal: bool,
    /// Whether [`Redactor::shown`] gives the exported form.
    export: bool,
}

impl Redactor {
    /// With the server's secrets: the rules they know, and exports seal sensitive values
    /// stored in clear with their key.
    pub fn sealing(secrets: Secrets) -> Self {
        Self {
            secrets,
            can_seal: true,
            export: false,
        }
    }

    /// The rules only, with no key: exports show sensitive values stored in clear as `***`.
    pub fn rules(specs: Arc<dyn SpecSensitivity>) -> Self {
        Self {
            secrets: Secrets::new(KeyRing::generate(), specs),
            can_seal: false,
            export: false,
        }
    }

    /// The same, with [`Redactor::shown`] giving the exported form (for a client that sent
    /// [`EXPORT_METADATA`]).
    #[must_use]
    pub fn for_export(&self) -> Self {
        Self {
            export: true,
            ..self.clone()
        }
    }

    /// The settings as an answer shows them: [`Redactor::exported`] for an export, else
    /// [`Redactor::settings`].
    pub fn shown(&self, plugin: &str, settings: &Settings) -> Settings {
        if self.export {
            self.exported(plugin, settings)
        } else {
            self.settings(plugin, settings)
        }
    }

    /// For an API over `writer`: its secrets if it seals settings, else the rules of the
    /// plugins' specifications.
    pub fn for_writer(
        writer: &ControlPlaneWriter,
        connectors: Arc<Registry>,
        processors: Arc<ProcessorRegistry>,
    ) -> Self {
        match writer.secrets() {
            Some(secrets) => Self::sealing(secrets.clone()),
            None => Self::rules(Arc::new(PluginSpecs::new(connectors, processors))),
        }
    }

    /// The settings of `plugin` as shown: sealed and sensitive values `***`, keys kept.
    pub fn settings(&self, plugin: &str, settings: &Settings) -> Settings {
        self.secrets.redact_settings(plugin, settings)
    }

    /// The settings of `plugin` as exported: sealed values as stored, a sensitive value in
    /// clear sealed with the server's key (or `***` without one), the rest as they are.
    pub fn exported(&self, plugin: &str, settings: &Settings) -> Settings {
        settings
            .iter()
            .map(|(key, value)| {
                let shown = if is_sealed(value)
                    || value.is_empty()
                    || !self.secrets.is_sensitive(plugin, key, value)
                {
                    value.clone()
                } else if self.can_seal {
                    self.secrets.ring().seal(key, value)
                } else {
                    REDACTED.to_owned()
                };
                (key.clone(), shown)
            })
            .collect()
    }

    /// A dead-letter queue as shown.
    pub fn dlq(&self, dlq: &DeadLetterQueue) -> DeadLetterQueue {
        DeadLetterQueue {
            settings: self.settings(&dlq.plugin, &dlq.settings),
            ..dlq.clone()
        }
    }

    /// A pipeline as shown (its dead-letter queue's settings redacted).
    pub fn pipeline(&self, pipeline: &Pipeline) -> Pipeline {
        Pipeline {
            dlq: self.dlq(&pipeline.dlq),
            ..pipeline.clone()
        }
    }

    /// A connector as shown.
    pub fn connector(&self, connector: &Connector) -> Connector {
        Connector {
            settings: self.settings(&connector.plugin, &connector.settings),
            ..connector.clone()
        }
    }

    /// A processor as shown.
    pub fn processor(&self, processor: &Processor) -> Processor {
        Processor {
            settings: self.settings(&processor.plugin, &processor.settings),
            ..processor.clone()
        }
    }

    /// Redact the settings an event carries. Events that name their plugin are redacted
    /// with it; the `*SecretsResealed` events (and an update that left its plugin empty)
    /// take the entity's plugin from `state` when given and the entity is there, else
    /// Conduit's broader rules for a plugin without a specification apply.
    pub fn event(&self, event: &mut Event, state: Option<&ControlPlane>) {
        let connector_plugin = |id: &ConnectorId| {
            state
                .and_then(|s| s.connector(id))
                .map(|c| c.plugin.clone())
                .unwrap_or_default()
        };
        let processor_plugin = |id: &ProcessorId| {
            state
                .and_then(|s| s.processor(id))
                .map(|p| p.plugin.clone())
                .unwrap_or_default()
        };
        let dlq_plugin = |id: &PipelineId| {
            state
                .and_then(|s| s.pipeline(id))
                .map(|p| p.dlq.plugin.clone())
                .unwrap_or_default()
        };
        match event {
            Event::PipelineCreated { dlq, .. } | Event::PipelineDlqUpdated { dlq, .. } => {
                *dlq = self.dlq(dlq);
            }
            Event::ConnectorCreated {
                plugin, settings, ..
            } => *settings = self.settings(plugin, settings),
            Event::ConnectorUpdated {
                id,
                plugin,
                settings,
                ..
            } => {
                let plugin = if plugin.is_empty() {
                    connector_plugin(id)
                } else {
                    plugin.clone()
                };
                *settings = self.settings(&plugin, settings);
            }
            Event::ProcessorCreated {
                plugin, settings, ..
            } => *settings = self.settings(plugin, settings),
            Event::ProcessorUpdated {
                id,
                plugin,
                settings,
                ..
            } => {
                let plugin = if plugin.is_empty() {
                    processor_plugin(id)
                } else {
                    plugin.clone()
                };
                *settings = self.settings(&plugin, settings);
            }
            Event::ConnectorSecretsResealed { id, settings } => {
                *settings = self.settings(&connector_plugin(id), settings);
            }
            Event::ProcessorSecretsResealed { id, settings } => {
                *settings = self.settings(&processor_plugin(id), settings);
            }
            Event::PipelineDlqSecretsResealed { id, settings } => {
                *settings = self.settings(&dlq_plugin(id), settings);
            }
            Event::PipelineUpdated { .. }
            | Event::PipelineProvisioned { .. }
            | Event::PipelineDeleted { .. }
            | Event::PipelineConnectorAdded { .. }
            | Event::PipelineConnectorRemoved { .. }
            | Event::PipelineProcessorAdded { .. }
            | Event::PipelineProcessorRemoved { .. }
            | Event::PipelineStartRequested { .. }
            | Event::PipelineStopRequested { .. }
            | Event::PipelineStarted { .. }
            | Event::PipelineStopped { .. }
            | Event::PipelineRecovering { .. }
            | Event::PipelineDegraded { .. }
            | Event::ConnectorDeleted { .. }
            | Event::SourcePositionSet { .. }
            | Event::DeadLettersReinjected { .. }
            | Event::ConnectorProcessorAdded { .. }
            | Event::ConnectorProcessorRemoved { .. }
            | Event::ProcessorDeleted { .. }
            | Event::SchemaRegistered { .. } => {}
        }
    }

    /// The fields that differ between two states of an entity (its JSON, as
    /// `culvert_projections::history::entity_json` gives it), with the values of sealed and
    /// sensitive settings (`settings.KEY`, `dlq.settings.KEY`) shown as `***`. The diff is
    /// taken before redaction, so a secret that changed is still listed as changed.
    pub fn field_changes(&self, before: Option<&Value>, after: Option<&Value>) -> Vec<FieldChange> {
        let plugin_at = |pointer: &str| {
            after
                .and_then(|v| v.pointer(pointer))
                .or_else(|| before.and_then(|v| v.pointer(pointer)))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let plugin = plugin_at("/plugin");
        let dlq_plugin = plugin_at("/dlq/plugin");
        culvert_projections::history::field_changes(before, after)
            .into_iter()
            .map(|mut change| {
                let setting = if let Some(key) = change.field.strip_prefix("settings.") {
                    Some((plugin.as_str(), key.to_owned()))
                } else {
                    change
                        .field
                        .strip_prefix("dlq.settings.")
                        .map(|key| (dlq_plugin.as_str(), key.to_owned()))
                };
                if let Some((plugin, key)) = setting {
                    for value in [&mut change.before, &mut change.after]
                        .into_iter()
                        .flatten()
                    {
                        if let Value::String(text) = value {
                            if self.hides(plugin, &key, text) {
                                *text = REDACTED.to_owned();
                            }
                        }
                    }
                }
                change
            })
            .collect()
    }

    /// Redact every settings map inside a JSON value whose shape is not known (an event
    /// that does not decode, data from another server): wherever an object has a
    /// `settings` object, its string values are redacted with the object's `plugin` (if it
    /// has one; Conduit's broader rules otherwise), at any depth.
    pub fn json(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                let plugin = map
                    .get("plugin")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if let Some(Value::Object(settings)) = map.get_mut("settings") {
                    for (key, value) in settings.iter_mut() {
                        match value {
                            Value::String(text) => {
                                if self.hides(&plugin, key, text) {
                                    *text = REDACTED.to_owned();
                                }
                            }
                            // Settings are strings; anything else is not shown at all.
                            Value::Null => {}
                            other => *other = Value::String(REDACTED.to_owned()),
                        }
                    }
                }
                for (key, child) in map.iter_mut() {
                    if key != "settings" {
                        self.json(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.json(item)),
            _ => {}
        }
    }

    /// The data of an event of type `event_type` as shown: decoded as the domain's event
    /// and redacted as [`Redactor::event`] does (with `state` for the plugin of events that
    /// do not name it), or, if it does not decode as the current schema, redacted as
    /// [`Redactor::json`] does.
    pub fn event_data(&self, event_type: &str, data: Value, state: Option<&ControlPlane>) -> Value {
        let tagged = serde_json::json!({"type": event_type, "data": data});
        match serde_json::from_value::<Event>(tagged.clone()) {
            Ok(mut event) => {
                self.event(&mut event, state);
                match serde_json::to_value(&event) {
                    Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
                    _ => Value::Null,
                }
            }
            Err(_) => {
                let mut data = match tagged {
                    Value::Object(mut map) => map.remove("data").unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                self.json(&mut data);
                data
            }
        }
    }

    /// Whether the value of `plugin`'s setting `key` is not shown.
    fn hides(&self, plugin: &str, key: &str, value: &str) -> bool {
        is_sealed(value) || (!value.is_empty() && self.secrets.is_sensitive(plugin, key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::{ConnectorType, PipelineStatus, ProcessorParent, StoppedReason};
    use culvert_secrets::NoSpecs;

    const SECRET: &str = "hunter2-very-secret";

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn builtin() -> Redactor {
        Redactor::rules(Arc::new(PluginSpecs::builtin()))
    }

    fn connector(plugin: &str, settings: Settings) -> Connector {
        Connector {
            id: ConnectorId("c".into()),
            connector_type: ConnectorType::Source,
            plugin: plugin.into(),
            pipeline_id: PipelineId("p".into()),
            name: "c".into(),
            settings,
            processor_ids: vec![],
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn specs_mark_builtin_parameters_and_leave_standalone_plugins_unknown() {
        let specs = PluginSpecs::builtin();
        for (plugin, key) in [
            ("builtin:openai.embeddings", "api_key"),
            ("builtin:openai.textgen", "api_key"),
            ("builtin:cohere.command", "apiKey"),
            ("builtin:cohere.embed", "apiKey"),
            ("builtin:cohere.rerank", "apiKey"),
            ("builtin:webhook.http", "headers.X-Custom"),
        ] {
            assert_eq!(
                specs.marked(plugin, key),
                Marked::Sensitive,
                "{plugin} {key}"
            );
        }
        assert_eq!(
            specs.marked("webhook.http", "headers.Authorization"),
            Marked::Sensitive
        );
        assert_eq!(specs.marked("builtin:file", "path"), Marked::NotMarked);
        assert_eq!(specs.marked("standalone:pg", "url"), Marked::Unknown);
        assert_eq!(specs.marked("", "url"), Marked::Unknown);
    }

    #[test]
    fn settings_hide_sealed_and_sensitive_values_and_keep_keys() {
        let redactor = builtin();
        let sealed = KeyRing::generate().seal("token", SECRET);
        let shown = redactor.settings(
            "builtin:webhook.http",
            &settings(&[
                ("request.url", "https://example.com/hook"),
                ("headers.Authorization", "Bearer abc"),
                ("password", SECRET),
                ("token", &sealed),
                ("backoffRetry.count", "3"),
            ]),
        );
        assert_eq!(shown["request.url"], "https://example.com/hook");
        assert_eq!(shown["headers.Authorization"], REDACTED);
        assert_eq!(shown["password"], REDACTED);
        assert_eq!(shown["token"], REDACTED);
        assert_eq!(shown["backoffRetry.count"], "3");
    }

    #[test]
    fn entities_are_shown_without_secrets() {
        let redactor = builtin();
        let c = redactor.connector(&connector(
            "standalone:pg",
            settings(&[("url", "postgres://u:pw@h/db"), ("table", "t")]),
        ));
        assert_eq!(c.settings["url"], REDACTED);
        assert_eq!(c.settings["table"], "t");
        let p = redactor.processor(&Processor {
            id: ProcessorId("q".into()),
            plugin: "builtin:openai.embeddings".into(),
            parent: ProcessorParent::Pipeline(PipelineId("p".into())),
            settings: settings(&[("api_key", "sk-1"), ("model", "m")]),
            condition: String::new(),
            workers: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            version: 1,
        });
        assert_eq!(p.settings["api_key"], REDACTED);
        assert_eq!(p.settings["model"], "m");
        let pipeline = Pipeline {
            id: PipelineId("p".into()),
            name: "p".into(),
            description: String::new(),
            status: PipelineStatus::Stopped {
                reason: StoppedReason::User,
            },
            connector_ids: vec![],
            processor_ids: vec![],
            dlq: DeadLetterQueue {
                plugin: "standalone:kafka".into(),
                settings: settings(&[("sasl.password", SECRET), ("topic", "dlq")]),
                window_size: 1,
                window_nack_threshold: 0,
            },
            provisioned_by: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            version: 1,
        };
        let shown = serde_json::to_string(&redactor.pipeline(&pipeline)).unwrap();
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("\"sasl.password\":\"***\""), "{shown}");
        assert!(shown.contains("\"topic\":\"dlq\""), "{shown}");
    }

    #[test]
    fn events_are_redacted_with_their_plugin_or_the_state() {
        let redactor = builtin();
        let mut state = ControlPlane::new();
        let created = Event::ProcessorCreated {
            id: ProcessorId("q".into()),
            parent: ProcessorParent::Pipeline(PipelineId("p".into())),
            plugin: "builtin:webhook.http".into(),
            settings: settings(&[
                ("headers.X-Api-Token", SECRET),
                ("request.url", "https://h/x"),
            ]),
            condition: String::new(),
            workers: 1,
        };
        let mut shown = created.clone();
        redactor.event(&mut shown, None);
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("\"headers.X-Api-Token\":\"***\""), "{text}");
        assert!(text.contains("https://h/x"), "{text}");

        // Resealed events carry no plugin: the state's, else the broad rules.
        let sealed = KeyRing::generate().seal("headers.X-Api-Token", SECRET);
        let resealed = Event::ProcessorSecretsResealed {
            id: ProcessorId("q".into()),
            settings: settings(&[
                ("headers.X-Api-Token", &sealed),
                ("request.url", "https://h/x"),
            ]),
        };
        let mut without_state = resealed.clone();
        redactor.event(&mut without_state, None);
        let Event::ProcessorSecretsResealed { settings: s, .. } = &without_state else {
            unreachable!()
        };
        assert_eq!(s["headers.X-Api-Token"], REDACTED);
        assert_eq!(
            s["request.url"], REDACTED,
            "unknown plugin: Conduit's rules"
        );
        state.evolve(&culvert_domain::RecordedEvent {
            seq: culvert_domain::Seq(1),
            stream_version: 1,
            meta: culvert_domain::EventMeta {
                actor: "test".into(),
                correlation_id: "c".into(),
                causation_id: None,
                reason: None,
                recorded_at: chrono::Utc::now(),
            },
            event: created,
        });
        let mut with_state = resealed;
        redactor.event(&mut with_state, Some(&state));
        let Event::ProcessorSecretsResealed { settings: s, .. } = &with_state else {
            unreachable!()
        };
        assert_eq!(s["headers.X-Api-Token"], REDACTED);
        assert_eq!(s["request.url"], "https://h/x", "the plugin from the state");

        let mut dlq = Event::PipelineDlqUpdated {
            id: PipelineId("p".into()),
            dlq: DeadLetterQueue {
                plugin: "builtin:log".into(),
                settings: settings(&[("password", SECRET), ("level", "warn")]),
                window_size: 1,
                window_nack_threshold: 0,
            },
        };
        redactor.event(&mut dlq, None);
        let text = serde_json::to_string(&dlq).unwrap();
        assert!(!text.contains(SECRET) && text.contains("warn"), "{text}");
    }

    #[test]
    fn field_changes_list_a_changed_secret_without_its_values() {
        let redactor = Redactor::rules(Arc::new(NoSpecs));
        let before = serde_json::json!({"plugin": "builtin:log", "name": "a",
            "settings": {"password": "old-secret", "level": "info"},
            "dlq": {"plugin": "builtin:log", "settings": {"token": "t1"}}});
        let after = serde_json::json!({"plugin": "builtin:log", "name": "b",
            "settings": {"password": SECRET, "level": "warn"},
            "dlq": {"plugin": "builtin:log", "settings": {"token": "t2"}}});
        let changes: Vec<String> = redactor
            .field_changes(Some(&before), Some(&after))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "dlq.settings.token: \"***\" -> \"***\"",
                "name: \"a\" -> \"b\"",
                "settings.level: \"info\" -> \"warn\"",
                "settings.password: \"***\" -> \"***\"",
            ]
        );
        let created: Vec<String> = redactor
            .field_changes(None, Some(&after))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            created.contains(&"settings.password: + \"***\"".to_owned()),
            "{created:?}"
        );
    }

    #[test]
    fn event_data_of_unknown_shape_is_redacted_wherever_settings_are() {
        let redactor = builtin();
        // Decodes as the current schema: redacted as the event.
        let data = redactor.event_data(
            "ConnectorUpdated",
            serde_json::json!({"id": "c", "name": "c", "plugin": "builtin:file",
                               "settings": {"path": "/x", "password": SECRET}}),
            None,
        );
        assert_eq!(data["settings"]["password"], REDACTED);
        assert_eq!(data["settings"]["path"], "/x");
        // Does not decode (an older or foreign shape): every `settings` object is redacted.
        let data = redactor.event_data(
            "SomethingElse",
            serde_json::json!({"nested": [{"plugin": "standalone:pg",
                               "settings": {"url": "postgres://h/db", "n": 1,
                                            "dsn": SECRET}}],
                               "config": {"settings": {"apiKey": SECRET, "rate": "5"}}}),
            None,
        );
        let text = data.to_string();
        assert!(!text.contains(SECRET), "{text}");
        assert_eq!(data["nested"][0]["settings"]["url"], REDACTED, "{text}");
        assert_eq!(data["nested"][0]["settings"]["n"], REDACTED, "{text}");
        assert_eq!(data["config"]["settings"]["rate"], "5", "{text}");
    }

    #[test]
    fn exports_keep_sealed_values_and_seal_or_hide_clear_ones() {
        let secrets = Secrets::ephemeral();
        let stored = settings(&[
            ("password", &secrets.ring().seal("password", "a")),
            ("token", SECRET),
            ("path", "/tmp/x"),
            ("apiKey", ""),
        ]);
        let sealing = Redactor::sealing(secrets.clone());
        let exported = sealing.exported("builtin:file", &stored);
        assert_eq!(exported["password"], stored["password"]);
        assert!(is_sealed(&exported["token"]));
        assert_eq!(secrets.open_settings(&exported).unwrap()["token"], SECRET);
        assert_eq!(exported["path"], "/tmp/x");
        assert_eq!(exported["apiKey"], "");
        let keyless = builtin().exported("builtin:file", &stored);
        assert_eq!(keyless["password"], stored["password"]);
        assert_eq!(keyless["token"], REDACTED);
        assert_eq!(keyless["path"], "/tmp/x");
    }

    /// The API over a fresh in-memory log, sealing with `secrets` if given.
    fn api(secrets: Option<Secrets>) -> crate::Api {
        use culvert_projections::{ProjectionOptions, Projections};
        let log: Arc<dyn culvert_store::EventLog> = Arc::new(culvert_store::MemoryStore::new());
        let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default())
            .expect("projections over an empty log");
        let projections = Arc::new(projections);
        crate::Api::new(match secrets {
            Some(secrets) => ControlPlaneWriter::with_secrets(log, projections, false, secrets),
            None => ControlPlaneWriter::new(log, projections),
        })
    }

    /// A stopped pipeline `p` with a `webhook.http` processor `q` whose
    /// `headers.Authorization` holds `authorization`.
    fn document(authorization: &str) -> crate::pb::api::v1::PipelineDocument {
        use crate::pb::api::v1 as pb;
        pb::PipelineDocument {
            id: "p".into(),
            status: "stopped".into(),
            name: "p".into(),
            processors: vec![pb::pipeline_document::Processor {
                id: "q".into(),
                plugin: "builtin:webhook.http".into(),
                settings: [
                    ("request.url", "http://example.invalid/hook"),
                    ("headers.Authorization", authorization),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
                workers: 1,
                condition: String::new(),
            }],
            ..Default::default()
        }
    }

    async fn apply(
        api: &crate::Api,
        document: crate::pb::api::v1::PipelineDocument,
    ) -> Result<crate::pb::api::v1::ApplyPipelineResponse, tonic::Status> {
        use crate::pb::api::v1::pipeline_service_server::PipelineService;
        // ApplyPipeline takes the hash of the plan it carries out.
        let plan = api
            .plan_pipeline(tonic::Request::new(
                crate::pb::api::v1::PlanPipelineRequest {
                    config: Some(document.clone()),
                },
            ))
            .await?
            .into_inner();
        api.apply_pipeline(tonic::Request::new(
            crate::pb::api::v1::ApplyPipelineRequest {
                config: Some(document),
                hash: plan.diff.unwrap_or_default().hash,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
    }

    /// Every answer that carries the processor's settings, as JSON text, and its settings
    /// as GetProcessor shows them (`export`: with the export metadata).
    async fn answers(api: &crate::Api) -> String {
        use crate::pb::api::v1 as pb;
        use crate::pb::culvert::api::v1 as ev;
        use ev::event_log_service_server::EventLogService;
        use pb::processor_service_server::ProcessorService;
        let mut out = Vec::new();
        let get = api
            .get_processor(tonic::Request::new(pb::GetProcessorRequest {
                id: "p:q".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        out.push(serde_json::to_string(&get).unwrap());
        let list = api
            .list_processors(tonic::Request::new(pb::ListProcessorsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        out.push(serde_json::to_string(&list).unwrap());
        let events = api
            .list_events(tonic::Request::new(ev::ListEventsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(!events.events.is_empty());
        out.push(serde_json::to_string(&events).unwrap());
        let at = api
            .get_at(tonic::Request::new(ev::GetAtRequest {
                entity_id: "p:q".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        out.push(serde_json::to_string(&at).unwrap());
        let diff = api
            .diff(tonic::Request::new(ev::DiffRequest {
                entity_id: "p:q".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            diff.changes
                .iter()
                .any(|c| c.field == "settings.headers.Authorization" && c.after == "\"***\""),
            "{diff:?}"
        );
        out.push(serde_json::to_string(&diff).unwrap());
        out.join("\n")
    }

    async fn exported_authorization(api: &crate::Api) -> String {
        use crate::pb::api::v1 as pb;
        use pb::processor_service_server::ProcessorService;
        let mut request = tonic::Request::new(pb::GetProcessorRequest { id: "p:q".into() });
        request.metadata_mut().insert(
            EXPORT_METADATA,
            tonic::metadata::MetadataValue::from_static("sealed"),
        );
        let answer = api.get_processor(request).await.unwrap().into_inner();
        answer.processor.unwrap().config.unwrap().settings["headers.Authorization"].clone()
    }

    #[tokio::test]
    async fn no_answer_shows_a_secret_and_an_export_round_trips_sealed() {
        let secret = format!("Bearer {SECRET}");
        let secrets = Secrets::new(KeyRing::generate(), Arc::new(PluginSpecs::builtin()));
        let server = api(Some(secrets.clone()));
        apply(&server, document(&secret)).await.unwrap();
        let answers = answers(&server).await;
        assert!(!answers.contains(SECRET), "{answers}");
        assert!(
            answers.contains("\"headers.Authorization\":\"***\""),
            "{answers}"
        );
        assert!(answers.contains("http://example.invalid/hook"), "{answers}");
        assert!(
            !answers.contains(culvert_secrets::SEALED_PREFIX),
            "{answers}"
        );

        // An export carries the sealed text, which a server with the same key takes back.
        let sealed = exported_authorization(&server).await;
        assert!(is_sealed(&sealed), "{sealed}");
        let same_key = api(Some(secrets.clone()));
        apply(&same_key, document(&sealed)).await.unwrap();
        let stored = same_key
            .writer()
            .projections()
            .read()
            .processor(&ProcessorId("p:q".into()))
            .unwrap()
            .settings
            .clone();
        assert_eq!(stored["headers.Authorization"], sealed);
        assert_eq!(
            secrets.open_settings(&stored).unwrap()["headers.Authorization"],
            secret
        );
        // Applying it again changes nothing.
        let again = apply(&same_key, document(&sealed)).await.unwrap();
        assert!(again.diff.unwrap().changes.is_empty());
        // Another key refuses it, without repeating it.
        let other = api(Some(Secrets::ephemeral()));
        let error = apply(&other, document(&sealed)).await.unwrap_err();
        assert!(!error.message().contains(&sealed), "{error:?}");
        assert!(!error.message().contains(SECRET), "{error:?}");
    }

    #[tokio::test]
    async fn a_server_that_does_not_seal_still_shows_no_secret() {
        let secret = format!("Bearer {SECRET}");
        let server = api(None);
        apply(&server, document(&secret)).await.unwrap();
        let answers = answers(&server).await;
        assert!(!answers.contains(SECRET), "{answers}");
        assert!(answers.contains("http://example.invalid/hook"), "{answers}");
        // Without a key an export cannot seal it: it is hidden.
        assert_eq!(exported_authorization(&server).await, REDACTED);
    }
}
