//! Conduit's `builtin:s3` connector, native: a source that snapshots the objects under a
//! prefix and then polls for their changes, and a destination that writes each batch of
//! records as one object (JSON lines or Parquet). Registered in `culvert-connectors`'
//! registry as `builtin:s3@v0.9.3`.
//!
//! Settings, defaults, record shape, positions, object names and formats are those of
//! Conduit's `conduit-connector-s3` v0.9.3 ([`config`], [`position`], [`source`],
//! [`destination`], [`format`]); where this connector differs (a snapshot resumes after
//! its last key instead of starting over; changes are ordered by second and key so that a
//! restart neither skips nor repeats one) the module docs and `docs/connectors/s3.md` say
//! so. The endpoint of an S3-compatible server comes from `AWS_ENDPOINT_URL_S3` or
//! `AWS_ENDPOINT_URL`, as with the AWS SDKs.
//!
//! This crate owns the S3 protocol side only: it never stores positions (the engine does)
//! and never logs credentials (they are marked sensitive, and [`config::Common`]'s debug
//! form hides them).

pub mod client;
pub mod config;
pub mod destination;
pub mod format;
pub mod position;
pub mod source;

#[cfg(test)]
mod moto;
#[cfg(test)]
mod tests;

use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Settings, Source, Specification,
};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};

/// The version listed and accepted in references (`builtin:s3@v0.9.3`): the version of
/// Conduit's `conduit-connector-s3` that Conduit bundles and this connector matches.
pub const CONDUIT_VERSION: &str = "v0.9.3";

/// The S3 plugin.
pub struct S3 {
    spec: Specification,
}

impl S3 {
    /// The plugin with its specification.
    pub fn new() -> Self {
        Self {
            spec: Specification {
                name: "s3",
                summary: "Reads the objects of an S3 bucket and their changes; writes \
                          records to S3 as objects.",
                description: "The source reads every object under a prefix (a snapshot), \
                    then polls the bucket's object versions for creations, updates and \
                    deletions (updates and deletions need bucket versioning); each object is \
                    a record keyed by its object key. The destination writes each batch of \
                    records as one object named after the time it was written, in JSON \
                    lines or Parquet.",
                version: CONDUIT_VERSION,
                author: "Culvert",
                source: Some(source_parameters()),
                destination: Some(destination_parameters()),
                standalone: false,
            },
        }
    }
}

impl Default for S3 {
    fn default() -> Self {
        Self::new()
    }
}

/// The settings both sides take, in Conduit's order (by name).
fn common_parameters() -> Vec<Parameter> {
    vec![
        Parameter::new(
            config::ACCESS_KEY_ID,
            ParameterType::String,
            "The AWS access key id.",
        )
        .validate(Validation::Required)
        .sensitive(),
        Parameter::new(
            config::BUCKET,
            ParameterType::String,
            "The S3 bucket's name.",
        )
        .validate(Validation::Required),
        Parameter::new(
            config::REGION,
            ParameterType::String,
            "The region of the S3 bucket.",
        )
        .validate(Validation::Required),
        Parameter::new(
            config::SECRET_ACCESS_KEY,
            ParameterType::String,
            "The AWS secret access key.",
        )
        .validate(Validation::Required)
        .sensitive(),
    ]
}

fn prefix_parameter() -> Parameter {
    Parameter::new(
        config::PREFIX,
        ParameterType::String,
        "Only objects whose key starts with this are read (source); objects are written \
         under it as a path (destination).",
    )
}

fn source_parameters() -> Vec<Parameter> {
    let mut parameters = common_parameters();
    parameters.push(
        Parameter::new(
            config::POLLING_PERIOD,
            ParameterType::Duration,
            "How often the bucket is listed for changes once the snapshot is read.",
        )
        .default_value("1s"),
    );
    parameters.push(prefix_parameter());
    parameters
}

fn destination_parameters() -> Vec<Parameter> {
    let mut parameters = common_parameters();
    parameters.push(
        Parameter::new(
            config::FORMAT,
            ParameterType::String,
            "The format of the objects written: \"json\" (JSON lines) or \"parquet\".",
        )
        .validate(Validation::Required)
        .validate(Validation::Inclusion(vec![
            "parquet".to_owned(),
            "json".to_owned(),
        ])),
    );
    parameters.push(prefix_parameter());
    parameters
}

impl ConnectorPlugin for S3 {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        let config = config::SourceConfig::parse(settings)?;
        Ok(Box::new(source::S3Source::new(config)))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        let config = config::DestinationConfig::parse(settings)?;
        Ok(Box::new(destination::S3Destination::new(config)))
    }
}
