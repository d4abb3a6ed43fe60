//! The S3 client: the AWS SDK for Rust with static credentials, the settings' region, a
//! hyper client over rustls with ring (no aws-lc build), and the endpoint from the
//! environment when one is given (path-style addressing then, as S3-compatible servers
//! expect).

use crate::config::{Common, BUCKET};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use culvert_plugins::connector::PluginError;
use culvert_plugins::spec::{InvalidSettings, SettingError};

/// A client for the bucket in `common`.
pub fn client(common: &Common) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let credentials = Credentials::new(
        common.access_key_id.clone(),
        common.secret_access_key.clone(),
        None,
        None,
        "culvert-settings",
    );
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(common.region.clone()))
        .credentials_provider(credentials)
        .http_client(http);
    if let Some(endpoint) = &common.endpoint {
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    Client::from_conf(config.build())
}

/// An SDK failure as a plugin error, with what was being done and the whole cause chain
/// (the SDK's own `Display` says only "service error").
pub fn failed(doing: impl std::fmt::Display, error: impl std::error::Error) -> PluginError {
    PluginError::Other(format!("{doing}: {}", DisplayErrorContext(error)))
}

/// Check that the bucket exists and the credentials may use it, as Conduit's connector
/// does when it opens. A bucket that does not exist is a configuration error (not
/// retried); anything else may pass (a network failure, a server starting).
pub async fn check_bucket(client: &Client, common: &Common) -> Result<(), PluginError> {
    let answer = client.head_bucket().bucket(&common.bucket).send().await;
    match answer {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Err(PluginError::InvalidSettings(InvalidSettings(vec![
                SettingError {
                    key: BUCKET.to_owned(),
                    problem: format!(
                        "bucket {:?} does not exist in region {:?}",
                        common.bucket, common.region
                    ),
                },
            ])))
        }
        Err(error) => Err(failed(
            format_args!(
                "bucket {:?} (aws.bucket) cannot be used in region {:?}",
                common.bucket, common.region
            ),
            error,
        )),
    }
}
