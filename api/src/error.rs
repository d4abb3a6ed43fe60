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
//! Every status also carries one `google.rpc.ErrorInfo` detail (domain `culvert`) whose
//! `reason` is a stable dotted code (`pipeline.not_found`, `pipeline.running`, ...) and
//! whose metadata names the offending `field` where there is one. Clients that ignore
//! details see exactly what Conduit sends.

use culvert_commands::CommandError;
use culvert_domain::{DomainError, ErrorKind};
use prost::Message as _;
use std::collections::HashMap;
use tonic::{Code, Status};

/// The `domain` of every [`ErrorInfo`] this server sends.
pub const ERROR_DOMAIN: &str = "culvert";
const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// `google.rpc.ErrorInfo`: why an error happened, in a form programs can match on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorInfo {
    /// A stable dotted code, e.g. `pipeline.not_found`.
    #[prost(string, tag = "1")]
    pub reason: String,
    /// Who defines the reasons: [`ERROR_DOMAIN`].
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

/// A status with an [`ErrorInfo`] detail.
pub fn status_with_info(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: &[(&str, &str)],
) -> Status {
    let message = message.into();
    let info = ErrorInfo {
        reason: reason.to_owned(),
        domain: ERROR_DOMAIN.to_owned(),
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
            let metadata: Vec<(&str, &str)> = field.map(|f| ("field", f)).into_iter().collect();
            status_with_info(code, domain.to_string(), &domain.code(), &metadata)
        }
        CommandError::Conflict { .. } => {
            status_with_info(Code::Aborted, error.to_string(), "common.conflict", &[])
        }
        CommandError::AppliedButUnread { .. } => {
            tracing::error!(%error, "command recorded but the read model could not fold it");
            status_with_info(
                Code::Internal,
                error.to_string(),
                "internal.applied_but_unread",
                &[],
            )
        }
        CommandError::Store(_) | CommandError::Projection(_) => {
            tracing::error!(%error, "command failed in the store");
            status_with_info(Code::Internal, error.to_string(), "internal.error", &[])
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
    status_with_info(
        Code::InvalidArgument,
        format!("{field}: {problem}"),
        "common.invalid_argument",
        &[("field", field)],
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
    use culvert_domain::EntityKind;
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
            assert_eq!(status.message(), message);
            assert_eq!(http_status(status.code()), http);
            let info = error_info(&status).expect("every status carries an ErrorInfo");
            assert_eq!(info.domain, ERROR_DOMAIN);
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
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("name"));
        let info = error_info(&invalid("parent.type", "bad")).expect("an ErrorInfo");
        assert_eq!(info.reason, "common.invalid_argument");
        assert_eq!(info.metadata["field"], "parent.type");
        assert!(error_info(&Status::internal("no details")).is_none());
    }
}
