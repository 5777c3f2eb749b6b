//! `galley-vault`: the Vault/OpenBao adapter of the secrets port (`galley_platform::SecretsBackend`).
//!
//! Module map:
//! - [`settings`]: `[secrets]` and `[secrets.vault]` (backend, address, auth method, KV location, lease
//!   paths), read before the rest of the configuration.
//! - [`bootstrap`]: `galley vault bootstrap`: engines, per-service policies and AppRoles.
//! - [`client`]: [`VaultClient`], one authenticated session: token/AppRole/userpass login, token
//!   renewal with re-login, KV v2 reads, leased credentials (obtain, renew, revoke).
//! - [`leases`]: [`LeasedCredentials`], dynamic credentials renewed at two thirds of their TTL,
//!   replaced before their max TTL (or when renewal fails) and published to the adapters using them;
//!   revoked on shutdown.
//! - [`static_secrets`]: a service's KV paths (`<prefix>/shared`, `<prefix>/<service>`) read into the
//!   configuration layer that sits between the files and the environment.

pub mod bootstrap;
pub mod client;
pub mod leases;
pub mod settings;
pub mod static_secrets;

pub use client::VaultClient;
pub use leases::{LeaseHealth, LeasedCredentials, RotationTimings};
pub use settings::{
    LeasePaths, SecretsBackendKind, SecretsSection, SecretsSettings, VaultAuthMethod, VaultSettings,
};
pub use static_secrets::read_static_layer;
