//! `RemoteJwks`: verification keys of another issuer (Galley's recipes-api, or Auth0), discovered from
//! `{issuer}.well-known/openid-configuration` and fetched from its `jwks_uri`.
//!
//! Keys are cached; an unknown `kid` triggers one re-fetch (at most every 10 s, so forged tokens cannot
//! make us hammer the issuer), which is how a rotated-in key is picked up. Discovery is lazy, so a
//! service can start before its issuer is reachable. Only RSA signing keys are kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use galley_identity::StoreError;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::jwt::VerificationKeys;

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// Keys are re-read this often even without a miss, so withdrawn keys stop being accepted.
const CACHE_FOR: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Default)]
struct Cache {
    jwks_uri: Option<String>,
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

pub struct RemoteJwks {
    issuer: String,
    client: reqwest::Client,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// Keys of `issuer` (its URL, as in the tokens' `iss`).
    pub fn new(issuer: &str) -> Result<Self, StoreError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| StoreError::Internal(format!("http client: {error}")))?;
        Ok(Self { issuer: issuer.to_owned(), client, cache: Mutex::new(Cache::default()) })
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, StoreError> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| StoreError::Unavailable(format!("{url}: {error}")))?;
        response.json().await.map_err(|error| StoreError::Unavailable(format!("{url}: {error}")))
    }

    async fn refresh(&self, cache: &mut Cache) -> Result<(), StoreError> {
        let jwks_uri = match &cache.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let discovery_url =
                    format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
                let discovery: Discovery = self.get_json(&discovery_url).await?;
                cache.jwks_uri = Some(discovery.jwks_uri.clone());
                discovery.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        cache.keys = set
            .keys
            .into_iter()
            .filter(|jwk| jwk.kty == "RSA" && jwk.usage.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|jwk| {
                let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
                Some((jwk.kid?, key))
            })
            .collect();
        cache.fetched_at = Some(Instant::now());
        Ok(())
    }
}

#[async_trait]
impl VerificationKeys for RemoteJwks {
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, StoreError> {
        let mut cache = self.cache.lock().await;
        let age = cache.fetched_at.map(|at| at.elapsed());
        let stale = age.is_none_or(|age| age > CACHE_FOR);
        let missing = !cache.keys.contains_key(kid);
        let may_refetch = age.is_none_or(|age| age > REFETCH_AT_MOST_EVERY);
        if (stale || (missing && may_refetch))
            && let Err(error) = self.refresh(&mut cache).await
        {
            // Keep serving the keys we have; without any, verification cannot proceed.
            if cache.keys.is_empty() {
                return Err(error);
            }
            tracing::warn!(%error, "could not refresh the issuer's keys; using cached ones");
            // Back off as if it had worked, so a down issuer is not asked on every request.
            cache.fetched_at = Some(Instant::now());
        }
        Ok(cache.keys.get(kid).cloned())
    }
}
