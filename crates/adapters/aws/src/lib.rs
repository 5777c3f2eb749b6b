//! The AWS SDK configuration every Galley AWS adapter shares (the SQS bus, KMS envelope encryption),
//! so they resolve region, endpoint and credentials the same way.
//!
//! Module map: this file only — [`AwsClientSettings`] (the region and optional endpoint override a
//! configuration section names) and [`load_sdk_config`].
//!
//! Credentials always come from the AWS default chain (environment, profile, web identity, container
//! and instance metadata): Galley never reads AWS keys from its own configuration, so they follow the
//! platform's rotation and never sit in a config file.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde::Deserialize;

/// Where an AWS client talks to: a region, and optionally an endpoint override (a local emulator
/// such as moto, a VPC endpoint or a private cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsClientSettings {
    /// e.g. `eu-west-1`; unset = the default chain's region (`AWS_REGION`, the profile, metadata).
    #[serde(default)]
    pub region: Option<String>,
    /// e.g. `http://127.0.0.1:5000`; unset = the service's public endpoint for the region.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The SDK configuration for `settings`: the default credential chain, the region (explicit or from
/// the chain) and the endpoint override when one is set.
pub async fn load_sdk_config(settings: &AwsClientSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = settings.region.as_deref().filter(|region| !region.is_empty()) {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(endpoint) = settings.endpoint.as_deref().filter(|endpoint| !endpoint.is_empty()) {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_region_and_endpoint_win() {
        let settings = AwsClientSettings {
            region: Some("eu-west-3".to_owned()),
            endpoint: Some("http://127.0.0.1:4566".to_owned()),
        };
        let config = load_sdk_config(&settings).await;
        assert_eq!(config.region().map(|region| region.as_ref()), Some("eu-west-3"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
    }

    #[tokio::test]
    async fn empty_values_count_as_unset() {
        let settings = AwsClientSettings { region: Some(String::new()), endpoint: Some(String::new()) };
        let config = load_sdk_config(&settings).await;
        assert_eq!(config.endpoint_url(), None);
    }
}
