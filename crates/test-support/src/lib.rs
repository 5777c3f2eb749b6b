//! Test support shared by every crate's tests: the per-port contract suites that every adapter must
//! pass, and small fixtures. Only ever a dev-dependency.
//!
//! Module map:
//! - [`accounts`]: sign a test user up and in over HTTP.
//! - [`auth0`]: `FakeAuth0`, an Auth0 tenant on loopback following Auth0's documented contract.
//! - [`contracts::provider_sessions`]: the external provider's session store contract (SQLite, MongoDB).
//! - [`contracts::recipe_repository`]: the recipe repository contract (embedded SQLite, MongoDB).
//! - [`contracts::cache`]: the cache port contract (in-memory, Redis).
//! - [`contracts::users`]: the user repository contract (embedded SQLite, MongoDB).
//! - [`contracts::refresh_tokens`]: the refresh-token store contract (embedded SQLite, MongoDB).
//! - [`contracts::signing_keys`]: the signing-key store contract (embedded SQLite, MongoDB).
//! - [`contracts::revocation_list`]: the revocation list contract (in-memory, Redis).
//! - [`contracts::attempts`]: the failed sign-in attempt tracker contract (in-memory, Redis).
//! - [`contracts::bus`]: the message bus contract (in-process, RabbitMQ, SQS).
//! - [`contracts::rss`]: the RSS job, entry and feed-state store contracts (embedded SQLite, MongoDB).
//! - [`redis`]: `PrefixCleanup`, deleting a test's keys from a shared Redis; `PrivateRedis`, a
//!   password-protected server of its own (for leased ACL users).
//! - [`mongodb`]: `MongoTestDatabase`, a test's own database on `GALLEY_TEST_MONGODB_URI`, and
//!   `MongoTestUser`, a test's own user in `admin` (leased-credential drills), both dropped without
//!   blocking the runtime their client lives on.
//! - [`rabbitmq`]: `RabbitMqNode`, a private broker node that failure drills stop and restart.
//! - [`moto`]: `MotoServer`, a private local AWS (SQS, KMS) on a free port.
//! - [`openbao`]: `OpenBao`, a private Vault-compatible server (dev, or real with a seal).
//! - [`process`]: free ports, the project-local tools, processes killed on drop.
//! - [`fixtures`]: builders for domain values and a `ManualClock`.
//! - [`feeds`]: `FixtureServer`, a loopback HTTP server serving feeds of every format and every
//!   misbehaviour a fetcher must survive (slow, huge, bombs, redirects, 304, 429, charsets).

pub mod accounts;
pub mod auth0;
pub mod contracts;
pub mod feeds;
pub mod fixtures;
pub mod mongodb;
pub mod moto;
pub mod openbao;
pub mod process;
pub mod rabbitmq;
pub mod redis;
