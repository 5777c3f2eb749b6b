//! rss-worker configuration (defaults → `config/*.toml` → `GALLEY__SECTION__KEY`).

use galley_http_fetch::FetchSettings;
use galley_platform::{BusSettings, CacheSettings, HttpSettings, StoreSettings, TelemetrySettings};
use serde::Deserialize;

use crate::worker::WorkerSettings;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Only `/health/live` and `/health/ready` are served.
    pub http: HttpSettings,
    pub telemetry: TelemetrySettings,
    pub store: StoreSettings,
    /// rss-api's cache, when it is shared (`backend = "redis"`): storing entries invalidates its cached
    /// pages of entries. With `memory`, the worker opens no cache.
    pub cache: CacheSettings,
    pub bus: BusSettings,
    pub fetch: FetchSettings,
    pub worker: WorkerSettings,
    pub retry: RetrySettings,
}

/// `[retry]`: transient fetch failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RetrySettings {
    pub max_attempts: u32,
    #[serde(with = "galley_platform::config::duration_secs")]
    pub base_delay: std::time::Duration,
    #[serde(with = "galley_platform::config::duration_secs")]
    pub max_delay: std::time::Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let policy = galley_rss::RetryPolicy::default();
        Self { max_attempts: policy.max_attempts, base_delay: policy.base_delay, max_delay: policy.max_delay }
    }
}

impl RetrySettings {
    pub fn policy(&self) -> galley_rss::RetryPolicy {
        galley_rss::RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
        }
    }
}
