//! Galley's shared kernel: the few domain primitives every bounded context speaks.
//!
//! It depends on no web, database, broker or cloud crate, so domain crates may use it freely.
//!
//! Module map:
//! - [`validation`]: rule violations (`field`, stable `code`, parameters) that the HTTP layer localizes.
//! - [`page`]: page requests and pages of results with an accurate total.
//! - [`cache`]: the key/value cache port used cache-aside by the use cases (in-memory and Redis adapters).
//! - [`coalesce`]: `LoadCoalescer`, one store load per missing hot key (stampede protection).
//! - [`clock`]: an injectable clock so time-dependent rules are testable.
//! - [`store`]: `StoreError`, the error contract shared by storage ports.

pub mod cache;
pub mod clock;
pub mod coalesce;
pub mod page;
pub mod store;
pub mod validation;

pub use cache::{Cache, CacheError};
pub use clock::{Clock, SystemClock};
pub use coalesce::LoadCoalescer;
pub use page::{Page, PageRequest};
pub use store::StoreError;
pub use validation::{ParamValue, Violation, Violations};

mod user;
pub use user::UserId;
