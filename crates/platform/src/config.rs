//! Layered configuration.
//!
//! Precedence, lowest first:
//! 1. built-in defaults (`#[serde(default)]` on every settings struct, so an empty environment works);
//! 2. `<config dir>/default.toml`;
//! 3. `<config dir>/<profile>.toml`, the profile coming from `GALLEY_PROFILE` (default `local`);
//! 4. static secrets from the secrets backend (Vault KV), when one is configured
//!    ([`crate::secrets::load_settings_layered`]);
//! 5. environment variables `GALLEY__SECTION__KEY` (double underscores separate levels, e.g.
//!    `GALLEY__HTTP__BIND=0.0.0.0:8080`).
//!
//! Missing files are skipped. Unknown keys are ignored on purpose: all services share the `GALLEY__`
//! namespace, so a variable meant for another service must not stop this one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// Where configuration comes from. [`ConfigSource::from_env`] is what binaries use.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// Directory holding `default.toml` and `<profile>.toml`.
    pub dir: PathBuf,
    /// Profile file to layer over the defaults (`local`, `production`, ...).
    pub profile: String,
    /// Read `GALLEY__*` environment variables (tests turn this off to stay hermetic).
    pub read_env: bool,
}

impl ConfigSource {
    /// `GALLEY_CONFIG_DIR` (default `config`) and `GALLEY_PROFILE` (default `local`).
    pub fn from_env() -> Self {
        Self {
            dir: std::env::var_os("GALLEY_CONFIG_DIR").map_or_else(|| PathBuf::from("config"), PathBuf::from),
            profile: std::env::var("GALLEY_PROFILE").unwrap_or_else(|_| "local".to_owned()),
            read_env: true,
        }
    }

    /// Built-in defaults only: no files, no environment.
    pub fn defaults_only() -> Self {
        Self { dir: PathBuf::from("/nonexistent"), profile: String::new(), read_env: false }
    }

    fn figment(&self) -> Figment {
        self.figment_with(&crate::secrets::SecretLayer::new())
    }

    /// The files, then `secrets` (static secrets from a secrets backend), then the environment.
    pub(crate) fn figment_with(&self, secrets: &crate::secrets::SecretLayer) -> Figment {
        let mut figment = Figment::new().merge(Toml::file(self.dir.join("default.toml")));
        if !self.profile.is_empty() {
            figment = figment.merge(Toml::file(self.dir.join(format!("{}.toml", self.profile))));
        }
        if !secrets.is_empty() {
            figment = figment.merge(secrets.clone());
        }
        if self.read_env {
            figment = figment.merge(Env::prefixed("GALLEY__").split("__"));
        }
        figment
    }
}

/// Loads settings of type `T` from `source`, layered as described in the module docs.
pub fn load_settings<T: DeserializeOwned>(source: &ConfigSource) -> Result<T, ConfigError> {
    source.figment().extract().map_err(|error| ConfigError(Box::new(error)))
}

/// HTTP server settings shared by every API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Address to listen on; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Requests taking longer are answered with 408 and their work is dropped.
    #[serde(with = "duration_secs")]
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may take to finish after a shutdown signal.
    #[serde(with = "duration_secs")]
    pub shutdown_grace: Duration,
    /// Peers (addresses or CIDR blocks, e.g. nginx) whose `X-Forwarded-For`, `X-Real-IP` and
    /// `X-Forwarded-Proto` headers are believed. Empty: the socket peer is the client.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(20),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[limits]`: per-client throttles on the public routes that cost the most (a password hash, a token
/// rotation, an outbound feed fetch). Each is a token bucket per client address (IPv6 per /64): `burst`
/// requests at once, refilled at `per_minute`. Deployments behind nginx must list it in
/// `http.trusted_proxies`, or every client shares nginx's budget. A key given alone
/// (`GALLEY__LIMITS__SIGNIN__BURST=3`) keeps the route's other default.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawLimits")]
pub struct LimitsSettings {
    /// Switch for every throttle (`GALLEY__LIMITS__ENABLED=false`), e.g. when a gateway throttles.
    pub enabled: bool,
    /// `POST /auth/signup`: a password hash and a new account each.
    pub signup: ThrottleSettings,
    /// `POST /auth/signin`: a password hash each (the lockout counts failures; this bounds the work).
    pub signin: ThrottleSettings,
    /// `POST /auth/refresh`: a token rotation and store writes each.
    pub refresh: ThrottleSettings,
    /// `POST /rss/fetch`: an outbound download and parse each.
    pub fetch: ThrottleSettings,
}

impl LimitsSettings {
    /// Every throttle off (tests that sign in many times from one address).
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::default() }
    }
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            signup: ThrottleSettings { burst: 5, per_minute: 2 },
            signin: ThrottleSettings { burst: 10, per_minute: 10 },
            refresh: ThrottleSettings { burst: 20, per_minute: 30 },
            fetch: ThrottleSettings { burst: 10, per_minute: 10 },
        }
    }
}

/// One throttle's budget: `burst` requests at once, then `per_minute` on average. Both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    pub burst: u32,
    pub per_minute: u32,
}

/// `[limits]` as written: every key optional, so one key can be changed without restating the others.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLimits {
    enabled: Option<bool>,
    signup: RawThrottle,
    signin: RawThrottle,
    refresh: RawThrottle,
    fetch: RawThrottle,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawThrottle {
    burst: Option<u32>,
    per_minute: Option<u32>,
}

impl RawThrottle {
    fn or(self, default: ThrottleSettings) -> ThrottleSettings {
        ThrottleSettings {
            burst: self.burst.unwrap_or(default.burst),
            per_minute: self.per_minute.unwrap_or(default.per_minute),
        }
    }
}

impl From<RawLimits> for LimitsSettings {
    fn from(raw: RawLimits) -> Self {
        let defaults = Self::default();
        Self {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            signup: raw.signup.or(defaults.signup),
            signin: raw.signin.or(defaults.signin),
            refresh: raw.refresh.or(defaults.refresh),
            fetch: raw.fetch.or(defaults.fetch),
        }
    }
}

/// A list of strings given as a TOML array or as one comma-separated string (environment variables
/// cannot hold arrays): blanks trimmed, empty items dropped. Building block for list-valued settings.
pub fn string_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Joined(String),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::List(items) => items,
        Raw::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
    };
    Ok(items.into_iter().map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect())
}

/// A list of networks, where a bare address means just that address (`10.0.0.7` = `10.0.0.7/32`).
fn networks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    string_list(deserializer)?
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{item}` is neither an IP address nor a CIDR block"))
                })
        })
        .collect()
}

/// Durations in configuration are whole or fractional seconds (`request_timeout = 2.5`). Use with
/// `#[serde(with = "galley_platform::config::duration_secs")]`.
pub mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
// figment's Jail fixes the closure's error type; its size does not matter in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Sample {
        http: HttpSettings,
        name: String,
    }

    #[test]
    fn defaults_apply_with_no_files_and_no_environment() -> Result<(), ConfigError> {
        let settings: Sample = load_settings(&ConfigSource::defaults_only())?;
        assert_eq!(settings.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.http.body_limit_bytes, 1024 * 1024);
        Ok(())
    }

    #[test]
    fn files_then_profile_then_env_override_each_other() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("default.toml", "name = \"from-default\"\n[http]\nbind = \"127.0.0.1:1\"\n")?;
            jail.create_file("production.toml", "[http]\nbind = \"127.0.0.1:2\"\nrequest_timeout = 2.5\n")?;
            jail.set_env("GALLEY__NAME", "from-env");
            let source = ConfigSource {
                dir: jail.directory().to_path_buf(),
                profile: "production".into(),
                read_env: true,
            };
            let settings: Sample = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(settings.name, "from-env");
            assert_eq!(settings.http.bind.to_string(), "127.0.0.1:2");
            assert_eq!(settings.http.request_timeout, Duration::from_millis(2500));
            Ok(())
        });
    }

    #[test]
    fn nested_env_keys_use_double_underscores() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GALLEY__HTTP__BIND", "127.0.0.1:9");
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let settings: Sample = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(settings.http.bind.port(), 9);
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_accept_addresses_blocks_and_comma_lists() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GALLEY__HTTP__TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8");
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let settings: Sample = load_settings(&source).map_err(|e| e.to_string())?;
            let rendered: Vec<String> =
                settings.http.trusted_proxies.iter().map(ToString::to_string).collect();
            assert_eq!(rendered, ["127.0.0.1/32", "10.0.0.0/8"]);
            jail.set_env("GALLEY__HTTP__TRUSTED_PROXIES", "nginx");
            assert!(load_settings::<Sample>(&source).is_err());
            Ok(())
        });
    }

    #[test]
    fn throttle_budgets_and_the_switch_come_from_the_environment() {
        #[derive(Debug, Deserialize, Default)]
        #[serde(default)]
        struct WithLimits {
            limits: LimitsSettings,
        }
        figment::Jail::expect_with(|jail| {
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let defaults: WithLimits = load_settings(&source).map_err(|e| e.to_string())?;
            assert!(defaults.limits.enabled);
            assert_eq!(defaults.limits.signin, ThrottleSettings { burst: 10, per_minute: 10 });
            jail.set_env("GALLEY__LIMITS__SIGNIN__PER_MINUTE", "3");
            let one_key: WithLimits = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(one_key.limits.signin, ThrottleSettings { burst: 10, per_minute: 3 });
            jail.set_env("GALLEY__LIMITS__SIGNIN__BURST", "4");
            jail.set_env("GALLEY__LIMITS__ENABLED", "false");
            let settings: WithLimits = load_settings(&source).map_err(|e| e.to_string())?;
            assert!(!settings.limits.enabled);
            assert_eq!(settings.limits.signin, ThrottleSettings { burst: 4, per_minute: 3 });
            assert_eq!(settings.limits.fetch, LimitsSettings::default().fetch, "others keep their defaults");
            Ok(())
        });
    }

    #[test]
    fn the_sqs_bus_is_configured_from_the_environment() {
        #[derive(Debug, Deserialize, Default)]
        #[serde(default)]
        struct WithBus {
            bus: BusSettings,
        }
        figment::Jail::expect_with(|jail| {
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let defaults: WithBus = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(defaults.bus.sqs, SqsSettings::default());
            assert_eq!(defaults.bus.sqs.queue_prefix, "galley-");
            jail.set_env("GALLEY__BUS__BACKEND", "sqs");
            jail.set_env("GALLEY__BUS__SQS__REGION", "eu-west-1");
            jail.set_env("GALLEY__BUS__SQS__ENDPOINT", "http://127.0.0.1:5000");
            jail.set_env("GALLEY__BUS__SQS__QUEUE_PREFIX", "staging-");
            jail.set_env("GALLEY__BUS__SQS__VISIBILITY_TIMEOUT", "4");
            jail.set_env("GALLEY__BUS__SQS__WAIT_TIME", "2");
            jail.set_env("GALLEY__BUS__SQS__MAX_RECEIVES", "3");
            jail.set_env("GALLEY__BUS__SQS__CREATE_QUEUES", "false");
            let settings: WithBus = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(settings.bus.backend, BusBackend::Sqs);
            let expected = SqsSettings {
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:5000".into()),
                queue_prefix: "staging-".into(),
                visibility_timeout: Duration::from_secs(4),
                wait_time: Duration::from_secs(2),
                max_receives: 3,
                create_queues: false,
            };
            assert_eq!(settings.bus.sqs, expected);
            Ok(())
        });
    }

    #[test]
    fn a_malformed_value_is_a_readable_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GALLEY__HTTP__BIND", "not-an-address");
            let source =
                ConfigSource { dir: jail.directory().to_path_buf(), profile: String::new(), read_env: true };
            let error = load_settings::<Sample>(&source).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.to_lowercase().contains("http.bind"), "{error}");
            Ok(())
        });
    }
}

/// Which document store backs the services (`store.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreBackend {
    /// SQLite file in the data directory: zero set-up.
    #[default]
    Embedded,
    /// MongoDB: shared by every replica and every service.
    Mongodb,
}

/// `[store]`: the document store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    pub embedded: EmbeddedStoreSettings,
    pub mongodb: MongoDbSettings,
}

/// `[store.mongodb]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MongoDbSettings {
    /// Connection string (`mongodb://user:password@host:port/?options`); a secret because it may carry
    /// the password.
    pub uri: crate::secret::Secret,
    /// The database every service works in (a collection per aggregate).
    pub database: String,
    /// Connections per process to each server.
    pub max_pool_size: u32,
    /// Seconds a request waits to reach a server (selection and connect) before it is answered 503.
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
}

impl Default for MongoDbSettings {
    fn default() -> Self {
        Self {
            uri: crate::secret::Secret::from("mongodb://127.0.0.1:27017"),
            database: "galley".to_owned(),
            max_pool_size: 20,
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmbeddedStoreSettings {
    /// The SQLite database file; its directory is created if missing.
    pub path: PathBuf,
}

impl Default for EmbeddedStoreSettings {
    fn default() -> Self {
        Self { path: PathBuf::from("data/galley.db") }
    }
}

/// Which cache backs cache-aside reads (`cache.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheBackend {
    /// In-process cache: zero set-up, not shared between replicas.
    #[default]
    Memory,
    /// Redis: shared by every replica (cache, revocation list, sign-in attempts).
    Redis,
}

/// `[cache]`: the cache and how long entries live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    pub backend: CacheBackend,
    pub redis: RedisSettings,
    /// Upper bound on the in-memory cache's size.
    pub memory_max_bytes: u64,
    /// Lifetime of a cached single item (seconds).
    #[serde(with = "duration_secs")]
    pub item_ttl: Duration,
    /// Lifetime of a cached list page — of recipes or of feed entries (seconds).
    #[serde(with = "duration_secs")]
    pub list_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            redis: RedisSettings::default(),
            memory_max_bytes: 64 * 1024 * 1024,
            item_ttl: Duration::from_secs(300),
            list_ttl: Duration::from_secs(60),
        }
    }
}

/// Which message bus carries requests between services (`bus.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusBackend {
    /// In-memory queues: only services in the same process can talk (the all-in-one binary).
    #[default]
    InProcess,
    /// RabbitMQ: durable queues shared by every process.
    Rabbitmq,
    /// AWS SQS: standard queues with a redrive policy to a dead-letter queue each.
    Sqs,
}

/// `[bus]`: the message bus.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BusSettings {
    pub backend: BusBackend,
    pub rabbitmq: RabbitMqSettings,
    pub sqs: SqsSettings,
}

/// `[bus.sqs]` (env `GALLEY__BUS__SQS__*`). Credentials are never configured here: they come from the
/// AWS default chain (environment, profile, web identity, instance or container metadata). Plain
/// values only: the SQS adapter turns them into its SDK configuration, so this crate knows no AWS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SqsSettings {
    /// e.g. `eu-west-1`; unset = the default chain's region (`AWS_REGION`, the profile, metadata).
    pub region: Option<String>,
    /// Endpoint override (a local emulator such as moto, a VPC endpoint); unset = AWS's.
    pub endpoint: Option<String>,
    /// Prefix of every queue name, so deployments can share an account and region.
    pub queue_prefix: String,
    /// Seconds a received message stays invisible to other consumers; the adapter extends it every
    /// half of it while the message's job runs (heartbeat).
    #[serde(with = "duration_secs")]
    pub visibility_timeout: Duration,
    /// Seconds a receive waits for a message (long polling, at most 20).
    #[serde(with = "duration_secs")]
    pub wait_time: Duration,
    /// Receives after which an unsettled message moves to the dead-letter queue (the redrive policy's
    /// `maxReceiveCount`; the bus's delivery limit is one less).
    pub max_receives: u32,
    /// Create missing queues at start-up (`true`), or only check they exist where infrastructure code
    /// owns them (`false`).
    pub create_queues: bool,
}

impl Default for SqsSettings {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            queue_prefix: "galley-".to_owned(),
            visibility_timeout: Duration::from_secs(30),
            wait_time: Duration::from_secs(20),
            max_receives: 11,
            create_queues: true,
        }
    }
}

/// `[kms]` (env `GALLEY__KMS__*`): envelope encryption of the secrets Galley persists (the signing
/// keys). With `key_id` set, data keys come from AWS KMS under that key; without it, a key file in the
/// data directory wraps them (embedded store only; README "Keys at rest"). Credentials come from the
/// AWS default chain, never from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KmsSettings {
    /// Key id, key ARN, alias name (`alias/galley`) or alias ARN of a symmetric KMS key.
    pub key_id: Option<String>,
    /// e.g. `eu-west-1`; unset = the default chain's region.
    pub region: Option<String>,
    /// Endpoint override (moto, a VPC endpoint); unset = AWS's.
    pub endpoint: Option<String>,
    /// The KMS key that wrapped the secrets before `key_id` replaced it: what it sealed is opened with
    /// it and re-sealed under `key_id` on load. Unset after every replica has started once.
    pub previous_key_id: Option<String>,
}

impl KmsSettings {
    /// The configured key id, if any (an empty value counts as unset).
    pub fn key_id(&self) -> Option<&str> {
        non_empty(self.key_id.as_deref())
    }

    /// The previous key id of a key change, if any (an empty value counts as unset).
    pub fn previous_key_id(&self) -> Option<&str> {
        non_empty(self.previous_key_id.as_deref())
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

/// `[bus.rabbitmq]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RabbitMqSettings {
    /// `amqp://user:password@host:port/vhost`; a secret because it carries the password.
    pub url: crate::secret::Secret,
    /// Prefix of every queue name, so deployments can share a broker.
    pub prefix: String,
    /// How many times a message may come back unsettled (its consumer crashed or hung up) before the
    /// broker dead-letters it (`x-delivery-limit` of the quorum work queues).
    pub delivery_limit: u32,
    /// How long start-up keeps retrying a broker that cannot be reached yet, in seconds
    /// (`GALLEY__BUS__RABBITMQ__CONNECT_WAIT`). 0 (the default) fails at once, leaving restarts to the
    /// supervisor; containers started together (compose without health checks) set it.
    #[serde(with = "duration_secs")]
    pub connect_wait: Duration,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        Self {
            url: crate::secret::Secret::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            prefix: "galley.".to_owned(),
            delivery_limit: 10,
            connect_wait: Duration::ZERO,
        }
    }
}

/// `[cache.redis]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`; a secret because it may carry the password.
    pub url: crate::secret::Secret,
    /// Prefix of every key, so deployments can share a server.
    pub prefix: String,
    /// How long start-up keeps retrying a server that cannot be reached yet, in seconds
    /// (`GALLEY__CACHE__REDIS__CONNECT_WAIT`); 0 (the default) fails at once, as for the broker.
    #[serde(with = "duration_secs")]
    pub connect_wait: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: crate::secret::Secret::from("redis://127.0.0.1:6379"),
            prefix: "galley:".to_owned(),
            connect_wait: Duration::ZERO,
        }
    }
}
