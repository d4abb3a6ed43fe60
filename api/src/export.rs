//! ExportPipeline and ImportPipeline: a pipeline with its connectors, processors and
//! dead-letter queue as api.v1 messages, and those messages back as one pipeline.
//!
//! Conduit answers both RPCs with "not implemented", and its `Pipeline` message carries only
//! the ids of its children; Culvert's answer adds the children themselves (fields 1001-1003
//! of `ExportPipelineResponse` / `ImportPipelineRequest`, which a Conduit client skips).
//! Settings are exported as stored, sealed ([`crate::redact::Redactor::exported`]): never
//! in clear and never `***`, so that an import on a server with the same key gets working
//! secrets back.
//!
//! An import goes through the same path as ApplyPipeline (the file format's validation,
//! the plugins' checks, one `Provision` batch): the messages become a [`PipelineConfig`]
//! whose file ids are the exported ids without their parent's prefix, and the ids that the
//! file form would not give back are kept through [`Provisioner::import`]'s map.
//!
//! [`Provisioner::import`]: culvert_provisioning::Provisioner::import

use crate::convert;
use crate::error::{invalid, status_with_info, to_status as command_status};
use crate::pb::api::v1 as pb;
use crate::redact::Redactor;
use culvert_domain::{ControlPlane, Pipeline};
use culvert_provisioning::config::{ConnectorConfig, DlqConfig, PipelineConfig, ProcessorConfig};
use culvert_provisioning::plan::{connector_id, processor_id};
use culvert_provisioning::yaml::Location;
use culvert_provisioning::ApplyError;
use std::collections::BTreeMap;
use tonic::{Code, Status};

/// An export as one JSON object, as the HTTP API answers and takes it: the pipeline's own
/// fields (grpc-gateway's `response_body: "pipeline"` / `body: "pipeline"` for
/// ExportPipeline and ImportPipeline) with Culvert's `connectors`, `processors` and `dlq`
/// beside them, so that a Conduit client still reads a `Pipeline` and what export answers
/// is what import takes. `culvert pipelines export --format json` writes this form too.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineExport {
    /// The pipeline.
    #[serde(flatten)]
    pub pipeline: pb::Pipeline,
    /// Its connectors.
    #[serde(default)]
    pub connectors: Vec<pb::Connector>,
    /// Its processors (pipeline's, then each connector's).
    #[serde(default)]
    pub processors: Vec<pb::Processor>,
    /// Its dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq: Option<pb::pipeline::Dlq>,
}

impl From<pb::ExportPipelineResponse> for PipelineExport {
    fn from(reply: pb::ExportPipelineResponse) -> Self {
        Self {
            pipeline: reply.pipeline.unwrap_or_default(),
            connectors: reply.connectors,
            processors: reply.processors,
            dlq: reply.dlq,
        }
    }
}

impl From<PipelineExport> for pb::ImportPipelineRequest {
    fn from(export: PipelineExport) -> Self {
        Self {
            pipeline: Some(export.pipeline),
            connectors: export.connectors,
            processors: export.processors,
            dlq: export.dlq,
        }
    }
}

/// The export of `pipeline` (which `state` holds), settings as `redactor` exports them.
pub(crate) fn export(
    state: &ControlPlane,
    pipeline: &Pipeline,
    redactor: &Redactor,
) -> pb::ExportPipelineResponse {
    let processor = |id| state.processor(id).map(|p| convert::processor(p, redactor));
    let mut processors: Vec<pb::Processor> = pipeline
        .processor_ids
        .iter()
        .filter_map(processor)
        .collect();
    let mut connectors = Vec::new();
    for c in pipeline
        .connector_ids
        .iter()
        .filter_map(|id| state.connector(id))
    {
        connectors.push(convert::connector(c, redactor));
        processors.extend(c.processor_ids.iter().filter_map(processor));
    }
    pb::ExportPipelineResponse {
        pipeline: Some(convert::pipeline(pipeline)),
        connectors,
        processors,
        dlq: Some(convert::dlq(&pipeline.dlq, redactor)),
    }
}

/// An import request as a pipeline document plus the ids to keep (file id -> exported id;
/// see [`culvert_provisioning::Provisioner::import`]), and how to name a problem's field.
pub(crate) struct Import {
    /// The pipeline, stopped.
    pub(crate) document: PipelineConfig,
    /// `<pipeline>:<connector>` / `<parent>:<processor>` -> the id the request gives.
    pub(crate) ids: BTreeMap<String, String>,
    /// Document paths (`/connectors/0`) -> request fields (`connectors[0]`), longest first.
    fields: Vec<(String, String)>,
}

/// `id` without its parent's prefix (`p:src` under `p` is `src`), as a file names it.
fn short(parent: &str, id: &str) -> String {
    id.strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(id)
        .to_owned()
}

fn processor_config(p: &pb::Processor, id: String) -> ProcessorConfig {
    let config = p.config.clone().unwrap_or_default();
    ProcessorConfig {
        at: Location::default(),
        path: String::new(),
        id,
        plugin: p.plugin.clone(),
        condition: p.condition.clone(),
        settings: config.settings.into_iter().collect(),
        workers: config.workers.max(1),
    }
}

/// Read an ImportPipelineRequest; a missing or inconsistent field is INVALID_ARGUMENT
/// naming it (the rest is checked as a pipeline file is, by the provisioner).
pub(crate) fn import(request: pb::ImportPipelineRequest) -> Result<Import, Status> {
    let pipeline = request
        .pipeline
        .ok_or_else(|| invalid("pipeline", "a pipeline is required"))?;
    if pipeline.id.is_empty() {
        return Err(invalid("pipeline.id", "\"id\" is mandatory"));
    }
    let pid = pipeline.id.clone();
    let config = pipeline.config.unwrap_or_default();
    let mut ids = BTreeMap::new();
    let mut fields = vec![(String::new(), "pipeline".to_owned())];
    let mut connectors: Vec<ConnectorConfig> = Vec::new();
    // The exported connector id -> (its index, the id the document gives it).
    let mut by_id: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, c) in request.connectors.iter().enumerate() {
        let field = format!("connectors[{i}]");
        if c.id.is_empty() {
            return Err(invalid(&format!("{field}.id"), "\"id\" is mandatory"));
        }
        if !c.pipeline_id.is_empty() && c.pipeline_id != pid {
            return Err(invalid(
                &format!("{field}.pipeline_id"),
                &format!(
                    "connector {:?} belongs to pipeline {:?}, not {pid:?}",
                    c.id, c.pipeline_id
                ),
            ));
        }
        let source = match pb::connector::Type::try_from(c.r#type) {
            Ok(pb::connector::Type::Source) => true,
            Ok(pb::connector::Type::Destination) => false,
            _ => {
                return Err(invalid(
                    &format!("{field}.type"),
                    "\"type\" must be TYPE_SOURCE or TYPE_DESTINATION",
                ))
            }
        };
        let local = short(&pid, &c.id);
        let planned = connector_id(&pid, &local).0;
        if planned != c.id {
            ids.insert(planned.clone(), c.id.clone());
        }
        if by_id.insert(c.id.clone(), (i, planned)).is_some() {
            return Err(invalid(
                &format!("{field}.id"),
                &format!("connector {:?} is given twice", c.id),
            ));
        }
        fields.push((format!("/connectors/{i}"), field));
        let config = c.config.clone().unwrap_or_default();
        connectors.push(ConnectorConfig {
            at: Location::default(),
            path: String::new(),
            name: if config.name.is_empty() {
                local.clone()
            } else {
                config.name
            },
            id: local,
            source,
            plugin: c.plugin.clone(),
            settings: config.settings.into_iter().collect(),
            processors: Vec::new(),
        });
    }
    let mut processors = Vec::new();
    for (j, p) in request.processors.iter().enumerate() {
        let field = format!("processors[{j}]");
        if p.id.is_empty() {
            return Err(invalid(&format!("{field}.id"), "\"id\" is mandatory"));
        }
        let parent = p.parent.clone().unwrap_or_default();
        match pb::processor::parent::Type::try_from(parent.r#type) {
            Ok(pb::processor::parent::Type::Pipeline) => {
                if parent.id != pid {
                    return Err(invalid(
                        &format!("{field}.parent.id"),
                        &format!("the parent pipeline must be {pid:?}, not {:?}", parent.id),
                    ));
                }
                let local = short(&pid, &p.id);
                let planned = processor_id(&pid, &local).0;
                if planned != p.id {
                    ids.insert(planned, p.id.clone());
                }
                fields.push((format!("/processors/{}", processors.len()), field));
                processors.push(processor_config(p, local));
            }
            Ok(pb::processor::parent::Type::Connector) => {
                let Some((i, planned_parent)) = by_id.get(&parent.id) else {
                    return Err(invalid(
                        &format!("{field}.parent.id"),
                        &format!("connector {:?} is not among the connectors", parent.id),
                    ));
                };
                let local = short(&parent.id, &p.id);
                let planned = processor_id(planned_parent, &local).0;
                if planned != p.id {
                    ids.insert(planned, p.id.clone());
                }
                let list = &mut connectors[*i].processors;
                fields.push((format!("/connectors/{i}/processors/{}", list.len()), field));
                list.push(processor_config(p, local));
            }
            _ => {
                return Err(invalid(
                    &format!("{field}.parent.type"),
                    "\"type\" must be TYPE_PIPELINE or TYPE_CONNECTOR",
                ))
            }
        }
    }
    let dlq = match request.dlq {
        None => DlqConfig::default(),
        Some(d) => DlqConfig {
            plugin: d.plugin,
            settings: d.settings.into_iter().collect(),
            window_size: d.window_size,
            window_nack_threshold: d.window_nack_threshold,
        },
    };
    fields.push(("/dead-letter-queue".to_owned(), "dlq".to_owned()));
    // Longest first, so that a processor's path wins over its connector's.
    fields.sort_by_key(|f| std::cmp::Reverse(f.0.len()));
    Ok(Import {
        document: PipelineConfig {
            file: String::new(),
            at: Location::default(),
            path: String::new(),
            name: if config.name.is_empty() {
                pid.clone()
            } else {
                config.name
            },
            id: pid,
            running: false,
            description: config.description,
            connectors,
            processors,
            dlq,
        },
        ids,
        fields,
    })
}

impl Import {
    /// The request field a document path names (`/connectors/0/processors/1/settings/x`
    /// -> `processors[3].settings.x`).
    fn field(&self, path: &str) -> String {
        let path = path.trim_end_matches('/');
        for (prefix, field) in &self.fields {
            if let Some(rest) = path.strip_prefix(prefix.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    let rest = rest.replace('/', ".");
                    // Names, descriptions, settings and workers live in the message's config.
                    let in_config = [".name", ".description", ".settings", ".workers"]
                        .iter()
                        .any(|k| rest == *k || rest.starts_with(&format!("{k}.")));
                    let rest = if in_config && field != "dlq" {
                        format!(".config{rest}")
                    } else {
                        rest
                    };
                    return format!("{field}{rest}");
                }
            }
        }
        path.to_owned()
    }

    /// An import failure as a status: a bad pipeline is INVALID_ARGUMENT naming the
    /// request field of the first problem (all problems in the message); an existing
    /// pipeline id ALREADY_EXISTS.
    pub(crate) fn status(&self, error: ApplyError) -> Status {
        match error {
            ApplyError::Invalid(problems) => {
                let named: Vec<(String, &str)> = problems
                    .iter()
                    .map(|p| (self.field(&p.path), p.message.as_str()))
                    .collect();
                let field = named
                    .first()
                    .map(|(f, _)| f.clone())
                    .unwrap_or_else(|| "pipeline".into());
                let message = named
                    .iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                status_with_info(
                    Code::InvalidArgument,
                    format!("invalid pipeline: {message}"),
                    "provisioning.invalid_document",
                    &[("field", &field)],
                )
            }
            ApplyError::Stale { .. } | ApplyError::LiveApplyUnauthorized { .. } => {
                Status::internal(error.to_string())
            }
            ApplyError::Command(error) => command_status(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::ImportPipelineRequest {
        let processor = |id: &str, kind: pb::processor::parent::Type, parent: &str| pb::Processor {
            id: id.into(),
            plugin: "field.set".into(),
            config: Some(pb::processor::Config {
                settings: [("field".to_owned(), ".Key".to_owned())].into(),
                workers: 0,
            }),
            parent: Some(pb::processor::Parent {
                r#type: kind as i32,
                id: parent.into(),
            }),
            ..Default::default()
        };
        pb::ImportPipelineRequest {
            pipeline: Some(pb::Pipeline {
                id: "p".into(),
                config: Some(pb::pipeline::Config {
                    name: "P".into(),
                    description: "d".into(),
                }),
                ..Default::default()
            }),
            connectors: vec![
                pb::Connector {
                    id: "p:src".into(),
                    r#type: pb::connector::Type::Source as i32,
                    plugin: "builtin:generator".into(),
                    pipeline_id: "p".into(),
                    ..Default::default()
                },
                pb::Connector {
                    id: "0b7f-uuid".into(),
                    r#type: pb::connector::Type::Destination as i32,
                    plugin: "builtin:log".into(),
                    ..Default::default()
                },
            ],
            processors: vec![
                processor("p:q", pb::processor::parent::Type::Pipeline, "p"),
                processor(
                    "x-uuid",
                    pb::processor::parent::Type::Connector,
                    "0b7f-uuid",
                ),
                processor("p:src:r", pb::processor::parent::Type::Connector, "p:src"),
            ],
            dlq: None,
        }
    }

    #[test]
    fn ids_the_file_form_would_change_are_kept_through_the_map() {
        let import = import(request()).unwrap();
        let d = &import.document;
        assert!(!d.running);
        assert_eq!((d.id.as_str(), d.name.as_str()), ("p", "P"));
        assert_eq!(d.connectors[0].id, "src");
        assert_eq!(d.connectors[0].processors[0].id, "r");
        assert_eq!(d.connectors[1].id, "0b7f-uuid");
        assert_eq!(d.connectors[1].processors[0].id, "x-uuid");
        assert_eq!(d.connectors[1].processors[0].workers, 1);
        assert_eq!(d.processors[0].id, "q");
        assert_eq!(d.dlq, DlqConfig::default());
        assert_eq!(
            import.ids,
            BTreeMap::from([
                ("p:0b7f-uuid".to_owned(), "0b7f-uuid".to_owned()),
                ("p:0b7f-uuid:x-uuid".to_owned(), "x-uuid".to_owned()),
            ])
        );
    }

    #[test]
    fn the_json_form_is_a_pipeline_with_its_children_beside_and_reads_back() {
        let request = request();
        let export = PipelineExport {
            pipeline: request.pipeline.clone().unwrap(),
            connectors: request.connectors.clone(),
            processors: request.processors.clone(),
            dlq: Some(pb::pipeline::Dlq {
                plugin: "builtin:log".into(),
                window_size: 4,
                ..Default::default()
            }),
        };
        let json = serde_json::to_value(&export).unwrap();
        assert_eq!(json["id"], "p", "{json}");
        assert_eq!(json["config"]["name"], "P", "{json}");
        assert!(json["connectorIds"].is_array(), "{json}");
        assert_eq!(json["connectors"][1]["id"], "0b7f-uuid", "{json}");
        assert_eq!(
            json["processors"][0]["parent"]["type"], "TYPE_PIPELINE",
            "{json}"
        );
        assert_eq!(json["dlq"]["windowSize"], "4", "{json}");
        // What a Conduit client reads: a Pipeline (unknown keys skipped).
        let pipeline: pb::Pipeline = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(pipeline, export.pipeline);
        let back: PipelineExport = serde_json::from_value(json).unwrap();
        assert_eq!(back, export);
        // A bare pipeline reads as an export without children.
        let bare: PipelineExport = serde_json::from_str(r#"{"id": "p"}"#).unwrap();
        assert_eq!(bare.pipeline.id, "p");
        assert!(bare.connectors.is_empty() && bare.dlq.is_none());
    }

    #[test]
    fn problems_name_the_request_field() {
        let import = import(request()).unwrap();
        assert_eq!(
            import.field("/connectors/1/processors/0/settings/field"),
            "processors[1].config.settings.field"
        );
        assert_eq!(import.field("/connectors/0/plugin"), "connectors[0].plugin");
        assert_eq!(
            import.field("/processors/0/condition"),
            "processors[0].condition"
        );
        assert_eq!(import.field("/dead-letter-queue/plugin"), "dlq.plugin");
        assert_eq!(import.field("/name"), "pipeline.config.name");
        assert_eq!(import.field("/"), "pipeline");
        assert_eq!(
            import.field("/connectors/1/name"),
            "connectors[1].config.name"
        );
    }

    #[test]
    fn inconsistent_requests_are_refused_naming_the_field() {
        let field = |r: pb::ImportPipelineRequest| {
            let status = import(r).err().expect("refused");
            assert_eq!(status.code(), Code::InvalidArgument);
            status.message().split(':').next().unwrap().to_owned()
        };
        let mut r = request();
        r.pipeline.as_mut().unwrap().id.clear();
        assert_eq!(field(r), "pipeline.id");
        let mut r = request();
        r.connectors[1].pipeline_id = "other".into();
        assert_eq!(field(r), "connectors[1].pipeline_id");
        let mut r = request();
        r.connectors[0].r#type = 0;
        assert_eq!(field(r), "connectors[0].type");
        let mut r = request();
        r.processors[1].parent.as_mut().unwrap().id = "nope".into();
        assert_eq!(field(r), "processors[1].parent.id");
        let mut r = request();
        r.processors[0].parent.as_mut().unwrap().id = "q".into();
        assert_eq!(field(r), "processors[0].parent.id");
        let mut r = request();
        r.connectors.push(r.connectors[0].clone());
        assert_eq!(field(r), "connectors[2].id");
    }
}
