//! `RemoteJwks`: verification keys of another issuer (Galley's recipes-api, or Auth0), discovered from
//! `{issuer}.well-known/openid-configuration` and fetched from its `jwks_uri`.
//!
//! Verification is on every authenticated request of rss-api, so the keys are read from an immutable
//! snapshot (`Arc` behind a briefly held lock, never across an `await`): concurrent verifications never
//! queue behind each other or behind a fetch. Fetches are single-flight — one task fetches while the
//! others carry on with the keys they have — and rate-limited:
//! - keys older than `cache_for` (5 min) are re-read by the first request that notices, so withdrawn keys
//!   stop being accepted; everyone else keeps verifying with the cached keys meanwhile;
//! - an unknown `kid` (a rotated-in key, or a forgery) triggers at most one fetch per
//!   `refetch_at_most_every` (10 s) however many requests carry it, so forged tokens cannot make us
//!   hammer the issuer; requests that waited for that fetch use its result instead of fetching again.
//!   The interval counts from the last such refetch, not from the first load, so a key rotated in just
//!   after start-up is found at once;
//! - with no keys at all (the issuer was down at start-up) a failed fetch may be retried after 1 s.
//!
//! Discovery is lazy, so a service can start before its issuer is reachable; for issuers whose key URL
//! is fixed (Auth0: `{base}/.well-known/jwks.json`) [`RemoteJwks::at_jwks_uri`] skips it. Only RSA
//! signing keys are kept. [`RemoteJwks::fetches`] counts the fetches started, for measurements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use galley_identity::StoreError;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::jwt::VerificationKeys;

/// How often keys are re-read and how often a miss may trigger a fetch.
#[derive(Debug, Clone, Copy)]
pub struct JwksIntervals {
    /// Keys are re-read this often even without a miss, so withdrawn keys stop being accepted.
    pub cache_for: Duration,
    /// An unknown `kid` triggers at most one fetch per this interval.
    pub refetch_at_most_every: Duration,
    /// With no keys at all, a failed fetch may be retried after this long.
    pub retry_unavailable_after: Duration,
}

impl Default for JwksIntervals {
    fn default() -> Self {
        Self {
            cache_for: Duration::from_secs(300),
            refetch_at_most_every: Duration::from_secs(10),
            retry_unavailable_after: Duration::from_secs(1),
        }
    }
}

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

/// What verifications read: the keys of the last successful fetch and when fetches happened.
#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, DecodingKey>,
    /// When the keys were last fetched (or a failed refresh was given up on, to back off).
    fetched_at: Option<Instant>,
    /// When a fetch was last started, successful or not: the retry of a failed first load counts from
    /// here.
    attempted_at: Option<Instant>,
    /// When a fetch for an unknown `kid` was last started while there were keys: the refetch rate limit
    /// counts from here, so the first load does not delay seeing a key rotated in just after start-up.
    missed_at: Option<Instant>,
    /// Why the last fetch failed, while there are no keys to fall back on.
    unavailable: Option<String>,
}

pub struct RemoteJwks {
    issuer: String,
    client: reqwest::Client,
    intervals: JwksIntervals,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The single-flight token: whoever holds it fetches. It keeps the discovered `jwks_uri`.
    fetching: Mutex<Option<String>>,
    /// Key-set fetches started (successful or not).
    fetches: AtomicU64,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// Keys of `issuer` (its URL, as in the tokens' `iss`).
    pub fn new(issuer: &str) -> Result<Self, StoreError> {
        Self::with_intervals(issuer, JwksIntervals::default())
    }

    /// As [`RemoteJwks::new`], with other cache and rate-limit intervals.
    pub fn with_intervals(issuer: &str, intervals: JwksIntervals) -> Result<Self, StoreError> {
        Self::build(issuer, None, intervals)
    }

    /// Keys of `issuer` published at `jwks_uri`, without discovery (Auth0 documents the location).
    pub fn at_jwks_uri(issuer: &str, jwks_uri: &str, intervals: JwksIntervals) -> Result<Self, StoreError> {
        Self::build(issuer, Some(jwks_uri.to_owned()), intervals)
    }

    /// How many key-set fetches were started so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn build(issuer: &str, jwks_uri: Option<String>, intervals: JwksIntervals) -> Result<Self, StoreError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| StoreError::Internal(format!("http client: {error}")))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            client,
            intervals,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            fetching: Mutex::new(jwks_uri),
            fetches: AtomicU64::new(0),
        })
    }

    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    fn is_fresh(&self, snapshot: &Snapshot) -> bool {
        snapshot.fetched_at.is_some_and(|at| at.elapsed() <= self.intervals.cache_for)
    }

    /// Whether a miss may fetch now, given when the last fetch started.
    fn may_refetch(&self, snapshot: &Snapshot) -> bool {
        if snapshot.keys.is_empty() {
            snapshot.attempted_at.is_none_or(|at| at.elapsed() > self.intervals.retry_unavailable_after)
        } else {
            snapshot.missed_at.is_none_or(|at| at.elapsed() > self.intervals.refetch_at_most_every)
        }
    }

    /// What a miss answers when it may not fetch: no such key, or the reason no key can be had.
    fn miss(snapshot: &Snapshot) -> Result<Option<DecodingKey>, StoreError> {
        match &snapshot.unavailable {
            Some(reason) if snapshot.keys.is_empty() => Err(StoreError::Unavailable(reason.clone())),
            _ => Ok(None),
        }
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

    async fn fetch_keys(
        &self,
        jwks_uri: &mut Option<String>,
    ) -> Result<HashMap<String, DecodingKey>, StoreError> {
        let uri = match jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let discovery_url =
                    format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
                let discovery: Discovery = self.get_json(&discovery_url).await?;
                jwks_uri.insert(discovery.jwks_uri).clone()
            }
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let set: JwkSet = self.get_json(&uri).await?;
        Ok(set
            .keys
            .into_iter()
            .filter(|jwk| jwk.kty == "RSA" && jwk.usage.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|jwk| {
                let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
                Some((jwk.kid?, key))
            })
            .collect())
    }

    /// Fetches and publishes new keys; the caller holds the single-flight token. A failure keeps the
    /// keys there are (and backs off as if it had worked, so a down issuer is not asked on every
    /// request); without any, it is remembered as the reason verification cannot proceed.
    async fn refresh(&self, jwks_uri: &mut Option<String>, previous: &Snapshot, for_a_miss: bool) {
        let attempted_at = Some(Instant::now());
        let missed_at =
            if for_a_miss && !previous.keys.is_empty() { attempted_at } else { previous.missed_at };
        match self.fetch_keys(jwks_uri).await {
            Ok(keys) => self.publish(Snapshot {
                keys,
                fetched_at: attempted_at,
                attempted_at,
                missed_at,
                unavailable: None,
            }),
            Err(error) => {
                if !previous.keys.is_empty() {
                    tracing::warn!(%error, "could not refresh the issuer's keys; using cached ones");
                }
                let fetched_at = if previous.keys.is_empty() { None } else { attempted_at };
                self.publish(Snapshot {
                    keys: previous.keys.clone(),
                    fetched_at,
                    attempted_at,
                    missed_at,
                    unavailable: Some(error.to_string()),
                });
            }
        }
    }
}

#[async_trait]
impl VerificationKeys for RemoteJwks {
    async fn decoding_key(&self, kid: &str) -> Result<Option<DecodingKey>, StoreError> {
        let snapshot = self.current();
        if let Some(key) = snapshot.keys.get(kid) {
            if !self.is_fresh(&snapshot) {
                // Stale: the first to notice refreshes; everyone else verifies with the cached key.
                if let Ok(mut jwks_uri) = self.fetching.try_lock() {
                    let latest = self.current();
                    if !self.is_fresh(&latest) {
                        self.refresh(&mut jwks_uri, &latest, false).await;
                        return Ok(self.current().keys.get(kid).cloned());
                    }
                }
            }
            return Ok(Some(key.clone()));
        }
        if !self.may_refetch(&snapshot) {
            return Self::miss(&snapshot);
        }
        // A miss that may fetch: one fetch for everyone who misses now. Whoever waited for it looks
        // again before fetching, and finds the result (or the rate limit) of the fetch it waited for.
        let mut jwks_uri = self.fetching.lock().await;
        let latest = self.current();
        if let Some(key) = latest.keys.get(kid) {
            return Ok(Some(key.clone()));
        }
        if !self.may_refetch(&latest) {
            return Self::miss(&latest);
        }
        self.refresh(&mut jwks_uri, &latest, true).await;
        let fetched = self.current();
        match fetched.keys.get(kid) {
            Some(key) => Ok(Some(key.clone())),
            None => Self::miss(&fetched),
        }
    }
}
