//! The one mapping from Culvert's errors to gRPC statuses (and, through grpc-gateway's
//! table, HTTP statuses).
//!
//! | error | gRPC | HTTP |
//! |---|---|---|
//! | invalid input | INVALID_ARGUMENT | 400 |
//! | entity not found | NOT_FOUND | 404 |
//! | id or name exists | ALREADY_EXISTS | 409 |
//! | wrong state (running, has children, incomplete) | FAILED_PRECONDITION | 400 |
//! | concurrent change (stale version) | ABORTED | 409 |
//! | capability not built yet | UNIMPLEMENTED | 501 |
//! | store or internal failure | INTERNAL | 500 |
//!
//! Every status also carries one `google.rpc.ErrorInfo` detail whose `reason` is a stable
//! dotted code and whose metadata names the offending `field` where there is one (also as
//! Conduit's `configPath`) and, for a domain error, what to do as Conduit's `suggestion`. Where
//! Conduit has the same error case, the reason is Conduit's (see [`reason`]) and the
//! domain Conduit's single domain, [`CONDUIT_DOMAIN`]: a client keyed on Conduit's
//! reasons works unchanged. Reasons only Culvert has keep the domain [`ERROR_DOMAIN`]
//! (`culvert`), so they never pass for Conduit's. The full list is `docs/errors.md`;
//! Conduit's reasons are in `api/tests/fixtures/conduit-error-reasons.tsv`.
//! Clients that ignore details see exactly what Conduit sends.

use culvert_commands::CommandError;
use culvert_domain::{DomainError, EntityKind, ErrorKind};
use prost::Message as _;
use std::collections::HashMap;
use tonic::{Code, Status};

/// The `domain` of the [`ErrorInfo`] of reasons only Culvert has.
pub const ERROR_DOMAIN: &str = "culvert";
/// The `domain` Conduit gives every [`ErrorInfo`] it sends; Culvert uses it for the reasons
/// in [`reason::CONDUIT`].
pub const CONDUIT_DOMAIN: &str = "conduit";
const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// The reasons Culvert sends that Conduit registers for the same error case (checked
/// against Conduit's list by this module's tests).
pub mod reason {
    /// Invalid input with no more specific reason.
    pub const INVALID_ARGUMENT: &str = "common.invalid_argument";
    /// The store or another internal part failed.
    pub const INTERNAL: &str = "internal.error";
    /// No pipeline with that id.
    pub const PIPELINE_NOT_FOUND: &str = "pipeline.instance_not_found";
    /// No connector with that id.
    pub const CONNECTOR_NOT_FOUND: &str = "connector.instance_not_found";
    /// No processor with that id.
    pub const PROCESSOR_NOT_FOUND: &str = "processor.instance_not_found";
    /// The pipeline runs and must be stopped for this.
    pub const PIPELINE_RUNNING: &str = "pipeline.running";
    /// Stop asked for a pipeline that does not run.
    pub const PIPELINE_NOT_RUNNING: &str = "pipeline.not_running";
    /// Another pipeline has the name.
    pub const PIPELINE_NAME_ALREADY_EXISTS: &str = "pipeline.name_already_exists";
    /// The pipeline name is empty.
    pub const PIPELINE_NAME_MISSING: &str = "pipeline.name_missing";
    /// A connector type other than source or destination.
    pub const CONNECTOR_INVALID_TYPE: &str = "connector.invalid_type";
    /// A processor parent type other than pipeline or connector.
    pub const PROCESSOR_INVALID_PARENT_TYPE: &str = "orchestrator.invalid_processor_parent_type";
    /// Deleting a pipeline that has processors.
    pub const PIPELINE_HAS_PROCESSORS: &str = "orchestrator.pipeline_has_processors_attached";
    /// Deleting a pipeline that has connectors.
    pub const PIPELINE_HAS_CONNECTORS: &str = "orchestrator.pipeline_has_connectors_attached";
    /// Deleting a connector that has processors.
    pub const CONNECTOR_HAS_PROCESSORS: &str = "orchestrator.connector_has_processors_attached";
    /// Changing over the API what a configuration file manages.
    pub const PROVISIONED_BY_CONFIG: &str = "orchestrator.immutable_provisioned_by_config";
    /// No connector plugin by that reference.
    pub const CONNECTOR_PLUGIN_NOT_FOUND: &str = "connector.plugin_not_found";
    /// No processor plugin by that reference.
    pub const PROCESSOR_PLUGIN_NOT_FOUND: &str = "processor.plugin_not_found";
    /// Apply with a plan hash that no longer matches.
    pub const PLAN_STALE: &str = "provisioning.plan_stale";
    /// Apply that would change (and so restart) a running pipeline, on a server without
    /// `--api.allow-live-restart-apply`.
    pub const LIVE_APPLY_UNAUTHORIZED: &str = "provisioning.live_apply_unauthorized";

    /// Every reason above: these are sent with the domain [`super::CONDUIT_DOMAIN`].
    pub const CONDUIT: &[&str] = &[
        INVALID_ARGUMENT,
        INTERNAL,
        PIPELINE_NOT_FOUND,
        CONNECTOR_NOT_FOUND,
        PROCESSOR_NOT_FOUND,
        PIPELINE_RUNNING,
        PIPELINE_NOT_RUNNING,
        PIPELINE_NAME_ALREADY_EXISTS,
        PIPELINE_NAME_MISSING,
        CONNECTOR_INVALID_TYPE,
        PROCESSOR_INVALID_PARENT_TYPE,
        PIPELINE_HAS_PROCESSORS,
        PIPELINE_HAS_CONNECTORS,
        CONNECTOR_HAS_PROCESSORS,
        PROVISIONED_BY_CONFIG,
        CONNECTOR_PLUGIN_NOT_FOUND,
        PROCESSOR_PLUGIN_NOT_FOUND,
        PLAN_STALE,
        LIVE_APPLY_UNAUTHORIZED,
    ];
}

/// The domain an [`ErrorInfo`] with `reason` is sent with: Conduit's for Conduit's reasons,
/// `culvert` for the rest.
pub fn domain_of(reason: &str) -> &'static str {
    if reason::CONDUIT.contains(&reason) {
        CONDUIT_DOMAIN
    } else {
        ERROR_DOMAIN
    }
}

/// `google.rpc.ErrorInfo`: why an error happened, in a form programs can match on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorInfo {
    /// A stable dotted code, e.g. `pipeline.instance_not_found`.
    #[prost(string, tag = "1")]
    pub reason: String,
    /// Who defines the reason: [`CONDUIT_DOMAIN`] or [`ERROR_DOMAIN`] (see [`domain_of`]).
    #[prost(string, tag = "2")]
    pub domain: String,
    /// More facts, e.g. `field`.
    #[prost(map = "string, string", tag = "3")]
    pub metadata: HashMap<String, String>,
}

/// `google.rpc.Status`, the payload of the `grpc-status-details-bin` trailer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// A status with an [`ErrorInfo`] detail (its domain from [`domain_of`]).
pub fn status_with_info(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: &[(&str, &str)],
) -> Status {
    let message = message.into();
    let info = ErrorInfo {
        reason: reason.to_owned(),
        domain: domain_of(reason).to_owned(),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: ERROR_INFO_TYPE.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

/// The [`ErrorInfo`] a status carries, if any.
pub fn error_info(status: &Status) -> Option<ErrorInfo> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|any| any.type_url == ERROR_INFO_TYPE)
        .and_then(|any| ErrorInfo::decode(any.value.as_slice()).ok())
}

/// The domain's reason for an empty pipeline name (Conduit's words, too).
const PIPELINE_NAME_MISSING_TEXT: &str = "must provide a pipeline name";

/// The ErrorInfo reason of a domain error: Conduit's where Conduit has the case, else
/// the domain's own code (`pipeline.invalid_description`, `pipeline.incomplete`, ...).
fn domain_reason(error: &DomainError) -> String {
    let conduit = match error {
        DomainError::NotFound { kind, .. } => match kind {
            EntityKind::Pipeline => Some(reason::PIPELINE_NOT_FOUND),
            EntityKind::Connector => Some(reason::CONNECTOR_NOT_FOUND),
            EntityKind::Processor => Some(reason::PROCESSOR_NOT_FOUND),
            EntityKind::Schema => None,
        },
        DomainError::InvalidArgument {
            entity: EntityKind::Pipeline,
            field: "name",
            reason,
        } if reason == PIPELINE_NAME_MISSING_TEXT => Some(reason::PIPELINE_NAME_MISSING),
        DomainError::NameAlreadyExists { .. } => Some(reason::PIPELINE_NAME_ALREADY_EXISTS),
        DomainError::PipelineRunning { .. } => Some(reason::PIPELINE_RUNNING),
        DomainError::PipelineNotRunning { .. } => Some(reason::PIPELINE_NOT_RUNNING),
        DomainError::PipelineHasConnectors { .. } => Some(reason::PIPELINE_HAS_CONNECTORS),
        DomainError::PipelineHasProcessors { .. } => Some(reason::PIPELINE_HAS_PROCESSORS),
        DomainError::ConnectorHasProcessors { .. } => Some(reason::CONNECTOR_HAS_PROCESSORS),
        DomainError::ProvisionedByConfig { .. } => Some(reason::PROVISIONED_BY_CONFIG),
        DomainError::InvalidArgument { .. }
        | DomainError::IdAlreadyExists { .. }
        | DomainError::PipelineIncomplete { .. }
        | DomainError::NotProvisioned { .. } => None,
    };
    conduit.map_or_else(|| error.code(), str::to_owned)
}

/// What to do about a domain error, for the messages that do not say it already.
fn domain_hint(error: &DomainError) -> Option<String> {
    match error {
        DomainError::NotFound { kind, .. } => Some(format!(
            "check the ID; listing {kind}s shows the existing ones"
        )),
        DomainError::IdAlreadyExists { kind, .. } => {
            Some(format!("choose another ID, or update the existing {kind}"))
        }
        DomainError::NameAlreadyExists { .. } => Some("choose a different pipeline name".into()),
        DomainError::PipelineNotRunning { .. } => {
            Some("there is nothing to stop; start the pipeline first if it should run".into())
        }
        DomainError::PipelineIncomplete { missing, .. } => Some(format!(
            "add a {missing} connector to the pipeline, then start it"
        )),
        DomainError::NotProvisioned { .. } => Some(
            "give the file's pipeline another id, or delete the pipeline over the API so the \
             file can provision it"
                .into(),
        ),
        // These say what to do, or name the rule the input broke.
        DomainError::InvalidArgument { .. }
        | DomainError::PipelineRunning { .. }
        | DomainError::PipelineHasConnectors { .. }
        | DomainError::PipelineHasProcessors { .. }
        | DomainError::ConnectorHasProcessors { .. }
        | DomainError::ProvisionedByConfig { .. } => None,
    }
}

/// `message; hint`, or the message alone.
fn with_hint(message: String, hint: Option<String>) -> String {
    match hint {
        Some(hint) => format!("{message}; {hint}"),
        None => message,
    }
}

/// The gRPC status for a failed command. Internal errors are logged here, once.
pub fn to_status(error: CommandError) -> Status {
    match &error {
        CommandError::Domain(domain) => {
            let code = match domain.kind() {
                ErrorKind::InvalidArgument => Code::InvalidArgument,
                ErrorKind::NotFound => Code::NotFound,
                ErrorKind::AlreadyExists => Code::AlreadyExists,
                ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            };
            let field = match domain {
                DomainError::InvalidArgument { field, .. } => Some(*field),
                _ => None,
            };
            let hint = domain_hint(domain);
            // `field` (ours), and Conduit's keys for the same facts: `configPath` and
            // `suggestion` (what to do; the message carries it too).
            let mut metadata: Vec<(&str, &str)> = Vec::new();
            if let Some(field) = field {
                metadata.extend([("field", field), ("configPath", field)]);
            }
            if let Some(hint) = &hint {
                metadata.push(("suggestion", hint));
            }
            status_with_info(
                code,
                with_hint(domain.to_string(), hint.clone()),
                &domain_reason(domain),
                &metadata,
            )
        }
        CommandError::Conflict { .. } => status_with_info(
            Code::Aborted,
            with_hint(
                error.to_string(),
                Some("read it again and retry with its current version".into()),
            ),
            "common.conflict",
            &[],
        ),
        CommandError::AppliedButUnread { .. } => {
            tracing::error!(%error, "command recorded but the read model could not fold it");
            status_with_info(
                Code::Internal,
                with_hint(
                    error.to_string(),
                    Some(
                        "do not repeat the change: it happened; reads show it once the read \
                         model catches up (see the server log)"
                            .into(),
                    ),
                ),
                "internal.applied_but_unread",
                &[],
            )
        }
        CommandError::Store(_) | CommandError::Projection(_) => {
            tracing::error!(%error, "command failed in the store");
            status_with_info(
                Code::Internal,
                with_hint(
                    error.to_string(),
                    Some("nothing was changed; see the server log, then retry".into()),
                ),
                reason::INTERNAL,
                &[],
            )
        }
    }
}

/// The HTTP status grpc-gateway answers for a gRPC code.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
    }
}

/// A request field that is missing or malformed.
pub fn invalid(field: &str, problem: &str) -> Status {
    invalid_because(reason::INVALID_ARGUMENT, field, problem)
}

/// A request field that is missing or malformed, with a more specific reason than
/// `common.invalid_argument`.
pub fn invalid_because(reason: &str, field: &str, problem: &str) -> Status {
    status_with_info(
        Code::InvalidArgument,
        format!("{field}: {problem}"),
        reason,
        &[("field", field), ("configPath", field)],
    )
}

/// An RPC whose capability arrives with a later part of Culvert.
pub fn not_yet(rpc: &str, missing: &str) -> Status {
    status_with_info(
        Code::Unimplemented,
        format!("{rpc} is not implemented: {missing}"),
        "common.not_implemented",
        &[("rpc", rpc)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::{Command, ControlPlane, PipelineId};
    use culvert_store::StoreError;

    #[test]
    fn every_error_class_maps_to_its_code_and_http_status() {
        let cases = [
            (
                CommandError::Domain(DomainError::InvalidArgument {
                    entity: EntityKind::Pipeline,
                    field: "name",
                    reason: "empty".into(),
                }),
                Code::InvalidArgument,
                400,
            ),
            (
                CommandError::Domain(DomainError::NotFound {
                    kind: EntityKind::Connector,
                    id: "x".into(),
                }),
                Code::NotFound,
                404,
            ),
            (
                CommandError::Domain(DomainError::NameAlreadyExists {
                    name: "n".into(),
                    existing_id: "p".into(),
                }),
                Code::AlreadyExists,
                409,
            ),
            (
                CommandError::Domain(DomainError::PipelineRunning {
                    id: "p".into(),
                    status: "running",
                }),
                Code::FailedPrecondition,
                400,
            ),
            (
                CommandError::Conflict {
                    stream: culvert_domain::StreamId("pipeline/p".into()),
                    expected: culvert_store::ExpectedVersion::Exact(1),
                    actual: 2,
                },
                Code::Aborted,
                409,
            ),
            (CommandError::Store(StoreError::Closed), Code::Internal, 500),
        ];
        for (error, code, http) in cases {
            let message = error.to_string();
            let status = to_status(error);
            assert_eq!(status.code(), code, "{message}");
            assert!(
                status.message().starts_with(&message),
                "{}",
                status.message()
            );
            assert_eq!(http_status(status.code()), http);
            let info = error_info(&status).expect("every status carries an ErrorInfo");
            assert_eq!(info.domain, domain_of(&info.reason));
            assert!(info.reason.contains('.'), "{}", info.reason);
        }
    }

    #[test]
    fn invalid_argument_names_its_field_in_the_detail() {
        let status = to_status(CommandError::Domain(DomainError::InvalidArgument {
            entity: EntityKind::Pipeline,
            field: "name",
            reason: "empty".into(),
        }));
        let info = error_info(&status).expect("an ErrorInfo");
        assert_eq!(info.reason, "pipeline.invalid_name");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("name"));
        assert_eq!(info.metadata["configPath"], "name", "Conduit's key too");
        let info = error_info(&invalid("parent.type", "bad")).expect("an ErrorInfo");
        assert_eq!(info.reason, "common.invalid_argument");
        assert_eq!(info.domain, CONDUIT_DOMAIN);
        assert_eq!(info.metadata["field"], "parent.type");
        assert_eq!(info.metadata["configPath"], "parent.type");
        // What to do, in Conduit's `suggestion` key as well as in the message.
        let status = to_status(CommandError::Domain(DomainError::NotFound {
            kind: EntityKind::Pipeline,
            id: "nope".into(),
        }));
        let info = error_info(&status).expect("an ErrorInfo");
        let suggestion = &info.metadata["suggestion"];
        assert!(suggestion.contains("check the ID"), "{suggestion}");
        assert!(status.message().ends_with(suggestion.as_str()));
        assert!(error_info(&Status::internal("no details")).is_none());
    }

    /// Conduit's reasons, from the fixture: `culvert_case` -> (reason, gRPC code, domain).
    struct Row {
        reason: String,
        code: String,
        domain: String,
        case: String,
    }

    fn conduit_rows() -> Vec<Row> {
        let text = include_str!("../tests/fixtures/conduit-error-reasons.tsv");
        let mut lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty());
        let header: Vec<&str> = lines.next().expect("a header").split('\t').collect();
        assert_eq!(
            header,
            [
                "reason",
                "grpc_code",
                "domain",
                "conduit_file",
                "situation",
                "culvert_case"
            ]
        );
        lines
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                assert_eq!(f.len(), 6, "{line}");
                Row {
                    reason: f[0].into(),
                    code: f[1].into(),
                    domain: f[2].into(),
                    case: f[5].into(),
                }
            })
            .collect()
    }

    /// gRPC's name for a code, as in the fixture.
    fn code_name(code: Code) -> String {
        let debug = format!("{code:?}");
        let mut name = String::new();
        for (i, c) in debug.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        name
    }

    fn domain(error: DomainError) -> Status {
        to_status(CommandError::Domain(error))
    }

    /// Every error case Culvert shares with Conduit, by the fixture's `culvert_case`, made
    /// through the code paths the API answers with.
    fn shared_cases() -> Vec<(&'static str, Status)> {
        let empty_name = ControlPlane::new()
            .decide(&Command::CreatePipeline {
                id: PipelineId("p".into()),
                name: String::new(),
                description: String::new(),
            })
            .expect_err("an empty name is refused");
        let processor_registry = culvert_processors::ProcessorRegistry::default();
        vec![
            ("invalid_request_field", invalid("id", "empty ID")),
            (
                "store_failure",
                to_status(CommandError::Store(StoreError::Closed)),
            ),
            (
                "pipeline_not_found",
                domain(DomainError::NotFound {
                    kind: EntityKind::Pipeline,
                    id: "p".into(),
                }),
            ),
            (
                "connector_not_found",
                domain(DomainError::NotFound {
                    kind: EntityKind::Connector,
                    id: "c".into(),
                }),
            ),
            (
                "processor_not_found",
                domain(DomainError::NotFound {
                    kind: EntityKind::Processor,
                    id: "x".into(),
                }),
            ),
            (
                "pipeline_running",
                domain(DomainError::PipelineRunning {
                    id: "p".into(),
                    status: "running",
                }),
            ),
            (
                "pipeline_not_running",
                domain(DomainError::PipelineNotRunning {
                    id: "p".into(),
                    status: "stopped",
                }),
            ),
            (
                "pipeline_name_already_exists",
                domain(DomainError::NameAlreadyExists {
                    name: "n".into(),
                    existing_id: "q".into(),
                }),
            ),
            ("pipeline_name_missing", domain(empty_name)),
            (
                "connector_invalid_type",
                crate::grpc::connector_type(99).expect_err("type 99"),
            ),
            (
                "processor_invalid_parent_type",
                crate::grpc::processor_parent(Some(crate::pb::api::v1::processor::Parent {
                    r#type: 99,
                    id: "p".into(),
                }))
                .expect_err("parent type 99"),
            ),
            (
                "pipeline_has_processors",
                domain(DomainError::PipelineHasProcessors {
                    id: "p".into(),
                    count: 1,
                }),
            ),
            (
                "pipeline_has_connectors",
                domain(DomainError::PipelineHasConnectors {
                    id: "p".into(),
                    count: 1,
                }),
            ),
            (
                "connector_has_processors",
                domain(DomainError::ConnectorHasProcessors {
                    id: "c".into(),
                    count: 1,
                }),
            ),
            (
                "provisioned_by_config",
                domain(DomainError::ProvisionedByConfig {
                    id: "p".into(),
                    file: "p.yaml".into(),
                }),
            ),
            (
                "connector_plugin_not_found",
                crate::plugins::check(
                    &culvert_plugins::Registry::default(),
                    culvert_domain::ConnectorType::Source,
                    "builtin:nowhere",
                    &culvert_plugins::Settings::default(),
                )
                .expect_err("no such plugin"),
            ),
            (
                "processor_plugin_not_found",
                crate::plugins::check_processor(&processor_registry, "builtin:nowhere")
                    .expect_err("no such plugin"),
            ),
            (
                "plan_stale",
                crate::documents::to_status(culvert_provisioning::ApplyError::Stale {
                    expected: "a".into(),
                    actual: "b".into(),
                }),
            ),
            (
                "live_apply_unauthorized",
                crate::documents::to_status(
                    culvert_provisioning::ApplyError::LiveApplyUnauthorized {
                        pipeline: "p".into(),
                    },
                ),
            ),
        ]
    }

    #[test]
    fn shared_error_cases_send_conduits_reason_domain_and_code() {
        let rows = conduit_rows();
        let cases = shared_cases();
        for (case, status) in &cases {
            let row = rows
                .iter()
                .find(|r| r.case == *case)
                .unwrap_or_else(|| panic!("no fixture row has culvert_case {case}"));
            let info = error_info(status).expect("an ErrorInfo");
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (row.reason.as_str(), row.domain.as_str()),
                "{case}: {}",
                status.message()
            );
            assert_eq!(code_name(status.code()), row.code, "{case}");
        }
        // Every fixture row Culvert claims is tested, and every reason sent with Conduit's
        // domain is one of Conduit's, for one of these cases.
        for row in rows.iter().filter(|r| r.case != "-") {
            assert!(
                cases.iter().any(|(case, _)| *case == row.case),
                "fixture row {} names an untested case {}",
                row.reason,
                row.case
            );
        }
        for reason in reason::CONDUIT {
            assert!(
                rows.iter().any(|r| r.reason == *reason && r.case != "-"),
                "{reason} is sent as Conduit's but no fixture row maps it"
            );
        }
    }

    #[test]
    fn reasons_only_culvert_has_keep_the_culvert_domain() {
        let rows = conduit_rows();
        for status in [
            domain(DomainError::NotFound {
                kind: EntityKind::Schema,
                id: "s".into(),
            }),
            domain(DomainError::PipelineIncomplete {
                id: "p".into(),
                missing: "source",
            }),
            to_status(CommandError::Conflict {
                stream: culvert_domain::StreamId("pipeline/p".into()),
                expected: culvert_store::ExpectedVersion::Exact(1),
                actual: 2,
            }),
            not_yet("X", "later"),
        ] {
            let info = error_info(&status).expect("an ErrorInfo");
            assert_eq!(info.domain, ERROR_DOMAIN, "{}", info.reason);
            assert!(
                rows.iter().all(|r| r.reason != info.reason),
                "{} is Conduit's reason: send it with Conduit's domain",
                info.reason
            );
        }
    }

    #[test]
    fn every_error_message_says_what_to_do() {
        for status in [
            domain(DomainError::NotFound {
                kind: EntityKind::Pipeline,
                id: "p".into(),
            }),
            domain(DomainError::PipelineIncomplete {
                id: "p".into(),
                missing: "destination",
            }),
        ] {
            assert!(status.message().contains("; "), "{}", status.message());
        }
        let status = domain(DomainError::PipelineIncomplete {
            id: "p".into(),
            missing: "destination",
        });
        assert!(status.message().contains("add a destination connector"));
    }

    #[test]
    fn the_error_reference_lists_every_reason() {
        let docs = include_str!("../../docs/errors.md");
        for reason in reason::CONDUIT {
            assert!(
                docs.contains(&format!("`{reason}`")),
                "docs/errors.md lacks {reason}"
            );
        }
    }
}
