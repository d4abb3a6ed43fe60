//! The connector's settings, read from validated settings (defaults applied) into types.
//!
//! Names, defaults and rules are those of Conduit's `conduit-connector-s3` v0.9.3: the four
//! `aws.*` settings are required on both sides, `prefix` is optional, the source polls every
//! `pollingPeriod` (default `1s`) and the destination writes `format` (`json` or `parquet`).

use crate::format::Format;
use culvert_plugins::connector::{PluginError, Settings};
use culvert_plugins::spec::{parse_duration, InvalidSettings, SettingError};
use std::fmt;
use std::time::Duration;

/// `aws.accessKeyId`: the access key id (sensitive).
pub const ACCESS_KEY_ID: &str = "aws.accessKeyId";
/// `aws.secretAccessKey`: the secret access key (sensitive).
pub const SECRET_ACCESS_KEY: &str = "aws.secretAccessKey";
/// `aws.region`: the bucket's region.
pub const REGION: &str = "aws.region";
/// `aws.bucket`: the bucket's name.
pub const BUCKET: &str = "aws.bucket";
/// `prefix`: the key prefix read from (source) or written under (destination).
pub const PREFIX: &str = "prefix";
/// `pollingPeriod`: how often the source looks for changes (a Go duration).
pub const POLLING_PERIOD: &str = "pollingPeriod";
/// `format`: the destination's object format, `json` or `parquet`.
pub const FORMAT: &str = "format";

/// Where the bucket is and how to sign requests: the settings both sides share.
#[derive(Clone)]
pub struct Common {
    /// `aws.accessKeyId`.
    pub access_key_id: String,
    /// `aws.secretAccessKey`.
    pub secret_access_key: String,
    /// `aws.region`.
    pub region: String,
    /// `aws.bucket`.
    pub bucket: String,
    /// `prefix` (may be empty).
    pub prefix: String,
    /// A custom endpoint (an S3-compatible server). Not a setting, as in Conduit: taken from
    /// the environment (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), as the AWS SDKs
    /// (and so Conduit's connector) do.
    pub endpoint: Option<String>,
}

/// The credentials are never shown, not even in debug output.
impl fmt::Debug for Common {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Common")
            .field("access_key_id", &"***")
            .field("secret_access_key", &"***")
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The source's settings.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Bucket, credentials, prefix.
    pub common: Common,
    /// `pollingPeriod`.
    pub polling_period: Duration,
}

/// The destination's settings.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// Bucket, credentials, prefix.
    pub common: Common,
    /// `format`.
    pub format: Format,
}

impl Common {
    fn parse(settings: &Settings, problems: &mut Vec<SettingError>) -> Self {
        let mut required = |key: &str| match settings.get(key).map(String::as_str) {
            Some(value) if !value.is_empty() => value.to_owned(),
            _ => {
                problems.push(SettingError {
                    key: key.to_owned(),
                    problem: "required parameter is not provided".to_owned(),
                });
                String::new()
            }
        };
        Self {
            access_key_id: required(ACCESS_KEY_ID),
            secret_access_key: required(SECRET_ACCESS_KEY),
            region: required(REGION),
            bucket: required(BUCKET),
            prefix: settings.get(PREFIX).cloned().unwrap_or_default(),
            endpoint: endpoint_from_env(),
        }
    }
}

/// The endpoint the AWS SDKs take from the environment, if any.
fn endpoint_from_env() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
}

impl SourceConfig {
    /// The source's settings from validated settings; every problem at once.
    pub fn parse(settings: &Settings) -> Result<Self, PluginError> {
        let mut problems = Vec::new();
        let common = Common::parse(settings, &mut problems);
        let polling = settings.get(POLLING_PERIOD).map_or("1s", String::as_str);
        let polling_period = match parse_duration(polling) {
            Some(period) if !period.is_zero() => period,
            Some(_) => {
                problems.push(SettingError {
                    key: POLLING_PERIOD.to_owned(),
                    problem: format!("must be more than zero, got {polling:?}"),
                });
                Duration::ZERO
            }
            None => {
                problems.push(SettingError {
                    key: POLLING_PERIOD.to_owned(),
                    problem: format!("{polling:?} is not a duration (e.g. \"1s\", \"500ms\")"),
                });
                Duration::ZERO
            }
        };
        finish(problems)?;
        Ok(Self {
            common,
            polling_period,
        })
    }
}

impl DestinationConfig {
    /// The destination's settings from validated settings; every problem at once.
    pub fn parse(settings: &Settings) -> Result<Self, PluginError> {
        let mut problems = Vec::new();
        let common = Common::parse(settings, &mut problems);
        let value = settings.get(FORMAT).map_or("", String::as_str);
        let format = Format::parse(value).unwrap_or_else(|| {
            problems.push(SettingError {
                key: FORMAT.to_owned(),
                problem: format!("must be \"json\" or \"parquet\", got {value:?}"),
            });
            Format::Json
        });
        finish(problems)?;
        Ok(Self { common, format })
    }
}

fn finish(problems: Vec<SettingError>) -> Result<(), PluginError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PluginError::InvalidSettings(InvalidSettings(problems)))
    }
}
