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

use culvert_commands::CommandError;
use culvert_domain::ErrorKind;
use tonic::{Code, Status};

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
            Status::new(code, domain.to_string())
        }
        CommandError::Conflict { .. } => Status::aborted(error.to_string()),
        CommandError::Store(_)
        | CommandError::Projection(_)
        | CommandError::AppliedButUnread { .. } => {
            tracing::error!(%error, "command failed in the store");
            Status::internal(error.to_string())
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
    Status::invalid_argument(format!("{field}: {problem}"))
}

/// An RPC whose capability arrives with a later part of Culvert.
pub fn not_yet(rpc: &str, missing: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented yet: it needs {missing}, which this build does not have"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::{DomainError, EntityKind};
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
        }
    }
}
