//! MongoDB adapters (official `mongodb` driver): every repository port on one database, a collection
//! per aggregate as in the original system.
//!
//! Module map:
//! - [`store`]: `MongoStore` (the current client and database, indexes created at start-up;
//!   `connect` with the URI's credentials, or `connect_following` a feed of leased credentials,
//!   swapping in a new client per rotation) and error translation: connection trouble and timeouts
//!   are "unavailable" (503), duplicate keys become the domain's conflicts, anything else is
//!   "internal"; no driver type crosses a port.
//!
//! Every repository keeps the store, not a collection, and takes its collection per operation
//! (`MongoStore::collection`), so operations started after a rotation run as the new user.
//! - [`recipes`]: `MongoRecipeRepository` (collection `recipes`).
//! - [`identity`]: users, refresh tokens, signing keys, provider sessions (`users`, `refresh_tokens`,
//!   `signing_keys`, `provider_sessions`).
//! - [`rss`]: jobs, entries, feed state (`rss_jobs`, `rss_entries`, `rss_feeds`).
//!
//! Instants are stored as integer microseconds (`*_us`) where the domain needs them back exactly (BSON
//! dates keep milliseconds), and every list is sorted on indexed fields with the id as tie-breaker.

pub mod identity;
pub mod recipes;
pub mod rss;
pub mod store;

pub use identity::{
    MongoProviderSessionStore, MongoRefreshTokenStore, MongoSigningKeyStore, MongoUserRepository,
};
pub use recipes::MongoRecipeRepository;
pub use rss::{MongoEntryRepository, MongoFeedStateRepository, MongoJobRepository};
pub use store::MongoStore;
