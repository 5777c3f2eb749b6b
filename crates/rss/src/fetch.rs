//! The `FeedFetcher` port: download one feed safely and parse it into entries.
//!
//! Error contract: every failure is either [`FetchError::Transient`] (worth retrying later: timeouts,
//! connection failures, HTTP 5xx, 429) or [`FetchError::Permanent`] (retrying cannot help: the address is
//! blocked, HTTP 4xx, the body is too large or not a feed). Codes are stable and localizable.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What to fetch, with the validators from the previous successful fetch (conditional GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Absolute http(s) URL (already validated by [`crate`]'s URL rules).
    pub url: String,
    /// `ETag` of the last fetch, sent as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified` of the last fetch, sent as `If-Modified-Since`.
    pub last_modified: Option<String>,
}

/// One entry as parsed from a feed, already sanitized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEntry {
    /// The entry's id in the feed (`guid`, Atom `id`, JSON Feed `id`), if it has one.
    pub guid: Option<String>,
    /// Plain-text title (HTML stripped); empty when the feed gives none.
    pub title: String,
    /// The entry's web page.
    pub link: Option<String>,
    /// An image URL from `media:thumbnail`, `media:content` or an image enclosure.
    pub thumbnail: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    /// Summary HTML, sanitized by an allow-list.
    pub summary: Option<String>,
}

/// A successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// 304: nothing changed since the validators.
    NotModified,
    /// The feed's entries, in feed order, with the validators to send next time.
    Fetched { entries: Vec<ParsedEntry>, etag: Option<String>, last_modified: Option<String> },
}

/// Stable reasons a fetch can fail; also the job's `error` code shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchErrorCode {
    /// The URL is not absolute http(s) or cannot be requested.
    InvalidUrl,
    /// The host resolves to (or is) a loopback, private, link-local, CGNAT, multicast or unspecified
    /// address that is not allow-listed.
    BlockedAddress,
    /// More than the allowed number of redirects.
    TooManyRedirects,
    /// The body exceeds the size limit.
    TooLarge,
    /// The server answered 4xx (other than 429).
    HttpClientError,
    /// The server answered 5xx.
    HttpServerError,
    /// 429 Too Many Requests.
    RateLimited,
    /// No answer in time (connect or total).
    Timeout,
    /// The connection failed (refused, reset, DNS failure).
    ConnectionFailed,
    /// The body is not a feed Galley can read (malformed XML, an XML bomb, an unknown format).
    UnparseableFeed,
}

impl FetchErrorCode {
    pub const ALL: [FetchErrorCode; 10] = [
        Self::InvalidUrl,
        Self::BlockedAddress,
        Self::TooManyRedirects,
        Self::TooLarge,
        Self::HttpClientError,
        Self::HttpServerError,
        Self::RateLimited,
        Self::Timeout,
        Self::ConnectionFailed,
        Self::UnparseableFeed,
    ];

    /// The code as stored on jobs and sent in messages (`blocked_address`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::BlockedAddress => "blocked_address",
            Self::TooManyRedirects => "too_many_redirects",
            Self::TooLarge => "too_large",
            Self::HttpClientError => "http_client_error",
            Self::HttpServerError => "http_server_error",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::ConnectionFailed => "connection_failed",
            Self::UnparseableFeed => "unparseable_feed",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|candidate| candidate.as_str() == code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Worth retrying; `retry_after` is the server's `Retry-After`, if it sent one.
    #[error("transient fetch failure {code:?}: {detail}")]
    Transient { code: FetchErrorCode, retry_after: Option<Duration>, detail: String },
    /// Retrying cannot help.
    #[error("permanent fetch failure {code:?}: {detail}")]
    Permanent { code: FetchErrorCode, detail: String },
}

impl FetchError {
    pub fn code(&self) -> FetchErrorCode {
        match self {
            Self::Transient { code, .. } | Self::Permanent { code, .. } => *code,
        }
    }
}

/// Downloads and parses feeds. Implementations enforce the safety limits documented on the adapter
/// (size, time, redirects, SSRF rules) and never panic on hostile input.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FeedFetcher: Send + Sync + std::fmt::Debug {
    async fn fetch(&self, request: &FetchRequest) -> Result<FetchOutcome, FetchError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [FetchErrorCode::BlockedAddress, FetchErrorCode::UnparseableFeed, FetchErrorCode::Timeout]
        {
            assert_eq!(FetchErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(FetchErrorCode::parse("nope"), None);
    }
}
