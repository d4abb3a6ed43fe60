//! Conversions between the domain's types and the protobuf messages of `api.v1`.
//!
//! Every conversion that carries plugin settings takes the [`Redactor`] of the answer, so
//! no answer holds a secret (sealed and sensitive values are `***`, or sealed for an
//! export).

use crate::pb::api::v1 as pb;
use crate::redact::Redactor;
use chrono::{DateTime, Utc};
use culvert_domain::{
    Connector, ConnectorType, DeadLetterQueue, Pipeline, PipelineStatus, Processor,
    ProcessorParent, StoppedReason,
};

pub(crate) fn timestamp(at: DateTime<Utc>) -> crate::wkt::Timestamp {
    crate::wkt::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Conduit knows no transitional states: a pipeline that is starting or stopping is
/// reported as running until the engine says otherwise.
pub(crate) fn pipeline(p: &Pipeline) -> pb::Pipeline {
    use pb::pipeline::state::StoppedReason as Reason;
    use pb::pipeline::Status;
    let (status, error, reason) = match &p.status {
        PipelineStatus::Stopped { reason } => (
            Status::Stopped,
            String::new(),
            match reason {
                StoppedReason::User => Reason::User,
                StoppedReason::System => Reason::System,
            },
        ),
        PipelineStatus::Starting | PipelineStatus::Running | PipelineStatus::Stopping { .. } => {
            (Status::Running, String::new(), Reason::Unspecified)
        }
        PipelineStatus::Degraded { error } => {
            (Status::Degraded, error.clone(), Reason::Unspecified)
        }
        PipelineStatus::Recovering => (Status::Recovering, String::new(), Reason::Unspecified),
    };
    pb::Pipeline {
        id: p.id.to_string(),
        state: Some(pb::pipeline::State {
            status: status as i32,
            error,
            stopped_reason: reason as i32,
        }),
        config: Some(pb::pipeline::Config {
            name: p.name.clone(),
            description: p.description.clone(),
        }),
        connector_ids: p.connector_ids.iter().map(ToString::to_string).collect(),
        processor_ids: p.processor_ids.iter().map(ToString::to_string).collect(),
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
        version: p.version,
    }
}

/// A pipeline's dead-letter queue, its settings as `redactor` shows them.
pub(crate) fn dlq(d: &DeadLetterQueue, redactor: &Redactor) -> pb::pipeline::Dlq {
    pb::pipeline::Dlq {
        plugin: d.plugin.clone(),
        settings: redactor.shown(&d.plugin, &d.settings).into_iter().collect(),
        window_size: d.window_size,
        window_nack_threshold: d.window_nack_threshold,
    }
}

pub(crate) fn dlq_from(d: pb::pipeline::Dlq) -> DeadLetterQueue {
    DeadLetterQueue {
        plugin: d.plugin,
        settings: d.settings.into_iter().collect(),
        window_size: d.window_size,
        window_nack_threshold: d.window_nack_threshold,
    }
}

/// A connector, its settings as `redactor` shows them.
pub(crate) fn connector(c: &Connector, redactor: &Redactor) -> pb::Connector {
    use pb::connector::{DestinationState, SourceState, State, Type};
    let (kind, state) = match c.connector_type {
        ConnectorType::Source => (Type::Source, State::SourceState(SourceState::default())),
        ConnectorType::Destination => (
            Type::Destination,
            State::DestinationState(DestinationState::default()),
        ),
    };
    pb::Connector {
        id: c.id.to_string(),
        state: Some(state),
        config: Some(pb::connector::Config {
            name: c.name.clone(),
            settings: redactor.shown(&c.plugin, &c.settings).into_iter().collect(),
        }),
        r#type: kind as i32,
        plugin: c.plugin.clone(),
        pipeline_id: c.pipeline_id.to_string(),
        processor_ids: c.processor_ids.iter().map(ToString::to_string).collect(),
        created_at: Some(timestamp(c.created_at)),
        updated_at: Some(timestamp(c.updated_at)),
        version: c.version,
    }
}

/// A processor, its settings as `redactor` shows them.
pub(crate) fn processor(p: &Processor, redactor: &Redactor) -> pb::Processor {
    use pb::processor::parent::Type;
    let (kind, id) = match &p.parent {
        ProcessorParent::Connector(c) => (Type::Connector, c.to_string()),
        ProcessorParent::Pipeline(p) => (Type::Pipeline, p.to_string()),
    };
    pb::Processor {
        id: p.id.to_string(),
        config: Some(pb::processor::Config {
            settings: redactor.shown(&p.plugin, &p.settings).into_iter().collect(),
            workers: p.workers as i32,
        }),
        plugin: p.plugin.clone(),
        parent: Some(pb::processor::Parent {
            r#type: kind as i32,
            id,
        }),
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
        version: p.version,
        condition: p.condition.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::PluginSpecs;
    use culvert_domain::{ConnectorId, PipelineId, ProcessorId};
    use std::sync::Arc;

    #[test]
    fn settings_in_answers_hide_secrets_and_keep_the_rest() {
        let redactor = Redactor::rules(Arc::new(PluginSpecs::builtin()));
        let now = chrono::Utc::now();
        let settings: culvert_domain::Settings = [
            ("path", "/tmp/out.jsonl"),
            ("password", "s3cr3t-pw"),
            ("dsn", "postgres://u:pw-in-url@h/db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = connector(
            &Connector {
                id: ConnectorId("c".into()),
                connector_type: ConnectorType::Destination,
                plugin: "builtin:file".into(),
                pipeline_id: PipelineId("p".into()),
                name: "c".into(),
                settings: settings.clone(),
                processor_ids: vec![],
                created_at: now,
                updated_at: now,
                version: 1,
            },
            &redactor,
        );
        let p = processor(
            &Processor {
                id: ProcessorId("q".into()),
                plugin: "builtin:field.set".into(),
                parent: ProcessorParent::Pipeline(PipelineId("p".into())),
                settings: settings.clone(),
                condition: String::new(),
                workers: 1,
                created_at: now,
                updated_at: now,
                version: 1,
            },
            &redactor,
        );
        let d = dlq(
            &DeadLetterQueue {
                plugin: "builtin:log".into(),
                settings,
                window_size: 1,
                window_nack_threshold: 0,
            },
            &redactor,
        );
        for shown in [
            c.config.unwrap().settings,
            p.config.unwrap().settings,
            d.settings,
        ] {
            assert_eq!(shown["path"], "/tmp/out.jsonl");
            assert_eq!(shown["password"], "***");
            assert_eq!(shown["dsn"], "***");
            assert_eq!(shown.len(), 3, "every key is kept");
        }
    }
}
