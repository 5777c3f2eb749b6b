//! `rss-worker`: consumes fetch requests, fetches feeds safely, stores entries idempotently and
//! replies with the outcome.
//!
//! Module map:
//! - [`worker`]: `Worker`, the consume → ingest → reply → acknowledge loop with bounded concurrency.
//! - [`settings`]: configuration sections.
//! - [`telemetry`]: fetch outcomes, job states and entry counts (metrics at the service layer).
//! - [`app`]: composition root of the standalone process (health endpoints + the worker).

pub mod app;
pub mod settings;
pub mod telemetry;
pub mod worker;

pub use settings::Settings;
pub use worker::{Worker, WorkerSettings};

/// Queue of fetch requests this worker consumes.
pub const REQUESTS_QUEUE: &str = "rss.fetch.requested";
