//! Cross-cutting platform services shared by every Galley binary. Nothing here knows a database or a
//! broker, and HTTP only as the trace exporter's client; it is what a process needs before it can serve
//! anything.
//!
//! Module map:
//! - [`config`]: layered configuration (built-in defaults → `config/*.toml` → `GALLEY__SECTION__KEY`).
//! - [`deployment`]: `Environment` (development | production) and the rules production enforces at
//!   start-up (an own cookie key, a shared revocation list).
//! - [`secret`]: a string type for credentials that never prints or logs.
//! - [`secrets`]: the secrets-backend port (static secrets, leased credentials) and the configuration
//!   layer static secrets arrive in, between the files and the environment.
//! - [`telemetry`]: tracing set-up, readable locally and JSON in production; OpenTelemetry traces over
//!   OTLP/HTTP when configured, and W3C trace context in and out of spans (ADR 0028).
//! - [`metrics`]: a Prometheus registry per process, without a global recorder ([`Metrics`]).
//! - [`i18n`]: Project Fluent bundles, locale negotiation (`?locale=`, `Accept-Language` with q-values).
//! - [`health`]: dependency checks aggregated into a readiness report.
//! - [`shutdown`]: one cancellation token fired by SIGINT/SIGTERM, shared by every server in the process.

pub mod config;
pub mod deployment;
pub mod health;
pub mod i18n;
pub mod metrics;
pub mod secret;
pub mod secrets;
pub mod shutdown;
pub mod telemetry;

pub use config::{
    BusBackend, BusSettings, CacheBackend, CacheSettings, ConfigError, ConfigSource, EmbeddedStoreSettings,
    HttpSettings, MongoDbSettings, StoreBackend, StoreSettings, load_settings,
};
pub use config::{KmsSettings, LimitsSettings, SqsSettings, ThrottleSettings};
pub use deployment::{DeploymentError, Environment};
pub use health::{HealthCheck, ReadinessReport};
pub use i18n::{Locale, Localizer, MessageArg};
pub use metrics::{BuildInfo, Metrics};
pub use secret::Secret;
pub use secrets::{
    Credentials, CredentialsFeed, KeyOrigin, Lease, LeaseRenewal, SecretLayer, SecretsBackend, SecretsError,
    load_settings_layered,
};
pub use shutdown::Shutdown;
pub use telemetry::{LogFormat, OtlpSettings, TelemetryGuard, TelemetrySettings, TraceHeaders};
