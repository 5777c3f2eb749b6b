//! Embedded adapters: everything Galley needs to run in one process with no infrastructure.
//!
//! Module map:
//! - [`sqlite`]: the SQLite document store (`SqliteStore`), its recipe repository and the error
//!   classification every port on the store shares.
//! - [`identity`]: the durable identity ports on the same store: users, refresh tokens, signing keys,
//!   an external provider's per-sign-in sessions.
//! - [`rss`]: the RSS ports on the same store: fetch jobs, feed entries, per-feed state.
//! - [`memory_cache`]: the in-process cache (moka) implementing the cache port.
//! - [`memory_identity`]: the short-lived identity state in memory: revocation list (moka, per-entry
//!   TTL) and failed sign-in counts (fixed windows on an injected clock).

pub mod identity;
pub mod memory_cache;
pub mod memory_identity;
mod rows;
pub mod rss;
pub mod sqlite;

pub use identity::{
    SqliteProviderSessionStore, SqliteRefreshTokenStore, SqliteSigningKeyStore, SqliteUserRepository,
};
pub use memory_cache::MemoryCache;
pub use memory_identity::{MemoryAttemptTracker, MemoryRevocationList};
pub use rss::{SqliteEntryRepository, SqliteFeedStateRepository, SqliteJobRepository};
pub use sqlite::{OpenStoreError, SqliteRecipeRepository, SqliteStore};
