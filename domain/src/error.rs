//! Domain errors: every refusal of a command, with a stable code and the field it concerns.

use std::fmt;
use thiserror::Error;

/// The kind of entity an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// A pipeline.
    Pipeline,
    /// A connector.
    Connector,
    /// A processor.
    Processor,
    /// A schema in the schema registry.
    Schema,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pipeline => "pipeline",
            Self::Connector => "connector",
            Self::Processor => "processor",
            Self::Schema => "schema",
        })
    }
}

/// The class of an error, which decides the gRPC code and HTTP status in the API layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or out of bounds (INVALID_ARGUMENT).
    InvalidArgument,
    /// A referenced entity does not exist (NOT_FOUND).
    NotFound,
    /// The entity or name exists already (ALREADY_EXISTS).
    AlreadyExists,
    /// The request is valid but the state does not allow it now (FAILED_PRECONDITION).
    FailedPrecondition,
}

/// A command refused by the domain. Nothing is written when a command is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// A field is missing, malformed or too long.
    #[error("invalid {entity} {field}: {reason}")]
    InvalidArgument {
        /// The entity the field belongs to.
        entity: EntityKind,
        /// The field, as named in the API (`name`, `description`, `workers`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The entity does not exist.
    #[error("{kind} instance not found (ID: {id})")]
    NotFound {
        /// Which kind of entity.
        kind: EntityKind,
        /// The id that was looked up.
        id: String,
    },
    /// An entity with that id exists already.
    #[error("{kind} with ID {id:?} already exists")]
    IdAlreadyExists {
        /// Which kind of entity.
        kind: EntityKind,
        /// The id.
        id: String,
    },
    /// Another pipeline has that name.
    #[error("pipeline name already exists: {name:?} is used by pipeline {existing_id}")]
    NameAlreadyExists {
        /// The name.
        name: String,
        /// The pipeline that has it.
        existing_id: String,
    },
    /// The pipeline is running (or starting, stopping, recovering) and cannot be changed.
    #[error("pipeline is running: pipeline {id} is {status}; stop it first")]
    PipelineRunning {
        /// The pipeline.
        id: String,
        /// Its status name.
        status: &'static str,
    },
    /// A stop was requested for a pipeline that is not running.
    #[error("pipeline not running: pipeline {id} is {status}")]
    PipelineNotRunning {
        /// The pipeline.
        id: String,
        /// Its status name.
        status: &'static str,
    },
    /// A start was requested for a pipeline without a source or a destination.
    #[error("pipeline {id} cannot start: it has no {missing} connector")]
    PipelineIncomplete {
        /// The pipeline.
        id: String,
        /// `"source"` or `"destination"`.
        missing: &'static str,
    },
    /// A pipeline that still has connectors cannot be deleted.
    #[error("pipeline {id} has connectors attached ({count}); delete them first")]
    PipelineHasConnectors {
        /// The pipeline.
        id: String,
        /// How many.
        count: usize,
    },
    /// A pipeline that still has processors cannot be deleted.
    #[error("pipeline {id} has processors attached ({count}); delete them first")]
    PipelineHasProcessors {
        /// The pipeline.
        id: String,
        /// How many.
        count: usize,
    },
    /// The pipeline (or its connector or processor) is managed by a configuration file.
    #[error(
        "entity was provisioned by a config file and cannot be mutated through the API, \
         please change the corresponding config file instead (pipeline {id}, file {file})"
    )]
    ProvisionedByConfig {
        /// The pipeline.
        id: String,
        /// The file that manages it.
        file: String,
    },
    /// A configuration file describes a pipeline that was created over the API.
    #[error("pipeline {id} exists and was not provisioned by a config file; it is left as it is")]
    NotProvisioned {
        /// The pipeline.
        id: String,
    },
    /// A connector that still has processors cannot be deleted.
    #[error("connector {id} has processors attached ({count}); delete them first")]
    ConnectorHasProcessors {
        /// The connector.
        id: String,
        /// How many.
        count: usize,
    },
}

impl DomainError {
    /// The class of the error (decides the API status code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::IdAlreadyExists { .. } | Self::NameAlreadyExists { .. } => {
                ErrorKind::AlreadyExists
            }
            Self::PipelineRunning { .. }
            | Self::PipelineNotRunning { .. }
            | Self::PipelineIncomplete { .. }
            | Self::PipelineHasConnectors { .. }
            | Self::PipelineHasProcessors { .. }
            | Self::ConnectorHasProcessors { .. }
            | Self::ProvisionedByConfig { .. }
            | Self::NotProvisioned { .. } => ErrorKind::FailedPrecondition,
        }
    }

    /// A stable dotted code for the error (`pipeline.running`, `connector.not_found`, ...),
    /// for clients and the structured error detail.
    pub fn code(&self) -> String {
        match self {
            Self::InvalidArgument { entity, field, .. } => format!("{entity}.invalid_{field}"),
            Self::NotFound { kind, .. } => format!("{kind}.not_found"),
            Self::IdAlreadyExists { kind, .. } => format!("{kind}.id_exists"),
            Self::NameAlreadyExists { .. } => "pipeline.name_exists".to_owned(),
            Self::PipelineRunning { .. } => "pipeline.running".to_owned(),
            Self::PipelineNotRunning { .. } => "pipeline.not_running".to_owned(),
            Self::PipelineIncomplete { .. } => "pipeline.incomplete".to_owned(),
            Self::PipelineHasConnectors { .. } => "pipeline.has_connectors".to_owned(),
            Self::PipelineHasProcessors { .. } => "pipeline.has_processors".to_owned(),
            Self::ConnectorHasProcessors { .. } => "connector.has_processors".to_owned(),
            Self::ProvisionedByConfig { .. } => "pipeline.provisioned_by_config".to_owned(),
            Self::NotProvisioned { .. } => "pipeline.not_provisioned".to_owned(),
        }
    }
}
