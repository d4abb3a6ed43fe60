//! Pipeline documents over the API (PlanPipeline, ApplyPipeline): Conduit's
//! `PipelineDocument` as a pipeline of the configuration-file format, and the plan back as
//! a `Diff`.

use crate::error::{invalid, status_with_info, to_status as command_status};
use crate::pb::api::v1 as pb;
use culvert_provisioning::config::{ConnectorConfig, DlqConfig, PipelineConfig, ProcessorConfig};
use culvert_provisioning::yaml::Location;
use culvert_provisioning::{Applied, ApplyError};
use tonic::{Code, Status};

fn processors(list: Vec<pb::pipeline_document::Processor>, path: &str) -> Vec<ProcessorConfig> {
    list.into_iter()
        .enumerate()
        .map(|(i, p)| ProcessorConfig {
            at: Location::default(),
            path: format!("{path}/processors/{i}"),
            id: p.id,
            plugin: p.plugin,
            condition: p.condition,
            settings: p.settings.into_iter().collect(),
            workers: if p.workers == 0 { 1 } else { p.workers },
        })
        .collect()
}

/// The document as a pipeline of the file format (checked later, as a file is).
pub(crate) fn from_proto(document: Option<pb::PipelineDocument>) -> Result<PipelineConfig, Status> {
    let document = document.ok_or_else(|| invalid("config", "a pipeline document is required"))?;
    let running = match document.status.as_str() {
        "" | "running" => true,
        "stopped" => false,
        other => {
            return Err(invalid(
                "config.status",
                &format!("\"status\" is invalid: {other:?}, want \"running\" or \"stopped\""),
            ))
        }
    };
    let mut connectors = Vec::new();
    for (i, c) in document.connectors.into_iter().enumerate() {
        let source = match c.r#type.as_str() {
            "source" => true,
            "destination" => false,
            "" => {
                return Err(invalid(
                    &format!("config.connectors[{i}].type"),
                    "\"type\" is mandatory",
                ))
            }
            other => {
                return Err(invalid(
                    &format!("config.connectors[{i}].type"),
                    &format!("\"type\" is invalid: {other:?}, want \"source\" or \"destination\""),
                ))
            }
        };
        let path = format!("/pipelines/0/connectors/{i}");
        connectors.push(ConnectorConfig {
            at: Location::default(),
            processors: processors(c.processors, &path),
            path,
            name: if c.name.is_empty() {
                c.id.clone()
            } else {
                c.name
            },
            id: c.id,
            source,
            plugin: c.plugin,
            settings: c.settings.into_iter().collect(),
        });
    }
    let dlq = match document.dlq {
        None => DlqConfig::default(),
        Some(d) => {
            let default = DlqConfig::default();
            DlqConfig {
                settings: if d.plugin.is_empty() && d.settings.is_empty() {
                    default.settings
                } else {
                    d.settings.into_iter().collect()
                },
                plugin: if d.plugin.is_empty() {
                    default.plugin
                } else {
                    d.plugin
                },
                window_size: d.window_size,
                window_nack_threshold: d.window_nack_threshold,
            }
        }
    };
    Ok(PipelineConfig {
        file: String::new(),
        at: Location::default(),
        path: "/pipelines/0".into(),
        name: if document.name.is_empty() {
            document.id.clone()
        } else {
            document.name
        },
        id: document.id,
        running,
        description: document.description,
        connectors,
        processors: processors(document.processors, "/pipelines/0"),
        dlq,
    })
}

/// An apply or plan failure as a status: a bad document is INVALID_ARGUMENT naming the
/// first field (all problems in the message), a stale plan FAILED_PRECONDITION.
pub(crate) fn to_status(error: ApplyError) -> Status {
    match error {
        ApplyError::Invalid(problems) => {
            let field = problems
                .first()
                .map(|p| format!("config{}", p.path.replace('/', ".")))
                .unwrap_or_else(|| "config".into());
            let message = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("; ");
            status_with_info(
                Code::InvalidArgument,
                format!("invalid pipeline document: {message}"),
                "provisioning.invalid_document",
                &[("field", field.trim_end_matches('.'))],
            )
        }
        error @ ApplyError::Stale { .. } => status_with_info(
            Code::FailedPrecondition,
            error.to_string(),
            crate::error::reason::PLAN_STALE,
            &[],
        ),
        error @ ApplyError::LiveApplyUnauthorized { .. } => status_with_info(
            Code::FailedPrecondition,
            error.to_string(),
            crate::error::reason::LIVE_APPLY_UNAUTHORIZED,
            &[],
        ),
        ApplyError::Command(error) => command_status(error),
    }
}

/// The plan as Conduit's `Diff`.
pub(crate) fn diff(applied: Applied) -> pb::Diff {
    pb::Diff {
        pipeline_id: applied.pipeline,
        changes: applied
            .changes
            .into_iter()
            .map(|c| pb::diff::Change {
                resource: c.resource.to_owned(),
                id: c.id,
                action: c.action.to_owned(),
                effect: c.effect.to_owned(),
                config_paths: vec![],
                code: c.code,
            })
            .collect(),
        hash: applied.hash,
    }
}
