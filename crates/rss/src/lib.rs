//! The RSS bounded context: feed URLs, fetch jobs and entries, as rules and use cases. No web,
//! database, broker or HTTP-client crate here (the `url` crate only parses).
//!
//! Module map:
//! - [`feed_url`]: `FeedUrl`, the rules a feed address must satisfy.
//! - [`model`]: `Job` (a fetch request's life: queued → fetching → done | failed) and `Entry`.
//! - [`fetch`]: the `FeedFetcher` port: what fetching a feed yields and how it fails.
//! - [`ports`]: job, entry and feed-state repositories, and the `FetchQueue` that hands jobs to workers.
//! - [`requests`]: `FetchRequests`, the rss-api use cases (request a fetch, follow a job, read entries,
//!   sweep jobs left in limbo).
//! - [`ingest`]: `FeedIngestion`, the worker use case (fetch, store idempotently, record the outcome).
//! - [`invalidation`]: the entries' cache generation and the entry-repository decorator that bumps it,
//!   so rss-api's cached pages of entries follow the worker's writes.
//! - [`error`]: `RssError`, what the use cases fail with.

pub mod error;
pub mod feed_url;
pub mod fetch;
pub mod ingest;
pub mod invalidation;
pub mod model;
pub mod ports;
pub mod requests;

pub use error::RssError;
pub use feed_url::FeedUrl;
pub use ingest::{FeedIngestion, IngestOutcome, RetryPolicy};
pub use model::{Entry, EntryQuery, Job, JobId, JobStatus, NewEntry};
pub use requests::{FetchRequests, SweepPolicy, SweepReport};
