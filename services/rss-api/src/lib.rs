//! `rss-api`: accepts feed-fetch requests, publishes them as messages, tracks each job and serves the
//! ingested entries.
//!
//! Module map:
//! - [`settings`]: configuration sections.
//! - [`queue`]: `BusFetchQueue` (the `FetchQueue` port on the message bus) and the listener applying
//!   workers' replies.
//! - [`sweeper`]: the periodic job sweeper (stale `queued` jobs handed over again, stuck `fetching`
//!   jobs failed).
//! - [`reads`]: `EntryReads`, pages of entries as cached encoded answers with weak ETags.
//! - [`http`]: handlers, models, `ApiError`, OpenAPI.
//! - [`app`]: composition root: `RssModule` (for the all-in-one binary) and the standalone
//!   `Application`.

pub mod app;
pub mod http;
pub mod queue;
pub mod reads;
pub mod settings;
pub mod sweeper;

pub use app::{Application, RssModule};
pub use settings::Settings;

use galley_platform::Locale;

/// This service's message catalogue, layered over the platform's.
pub const RESOURCES: [(Locale, &str); 2] = [
    (Locale::En, include_str!("../locales/en/rss.ftl")),
    (Locale::Vi, include_str!("../locales/vi/rss.ftl")),
];

/// Queue of fetch requests (consumed by rss-worker).
pub const REQUESTS_QUEUE: &str = "rss.fetch.requested";
/// Queue of workers' replies (consumed by rss-api).
pub const REPLIES_QUEUE: &str = "rss.fetch.completed";

#[cfg(test)]
mod tests {
    use galley_platform::Localizer;

    #[test]
    fn catalogues_are_complete_in_every_locale() {
        assert_eq!(Localizer::missing_translations(&super::RESOURCES), Vec::new());
    }
}
