//! `HttpFeedFetcher`: the `FeedFetcher` port on reqwest.
//!
//! One `reqwest::Client` per fetcher, reused for every fetch so connections and TLS sessions are
//! pooled. It is built so the SSRF rules cannot be bypassed: [`GuardedResolver`] is its only resolver,
//! proxies are disabled (a proxy would resolve names itself, out of our sight), literal-IP URLs are
//! checked before the request and every redirect goes through [`redirect_policy`].
//!
//! Status mapping: 2xx is parsed; 304 is `NotModified`; 429 is transient `rate_limited` and 5xx
//! transient `http_server_error`, both carrying `Retry-After` (seconds or an HTTP date); a redirect
//! that could not be followed (to `file:`, say) is permanent `invalid_url`; any other status is
//! permanent `http_client_error`. Timeouts, refused or reset connections and DNS failures
//! are transient; blocked addresses, bad URLs, redirect loops, oversized and unparseable bodies are
//! permanent.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use galley_rss::fetch::{FeedFetcher, FetchError, FetchErrorCode, FetchOutcome, FetchRequest, ParsedEntry};
use metrics::Histogram;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use tracing::Instrument as _;
use url::Url;

use crate::address::AddressPolicy;
use crate::decode::content_type_charset;
use crate::guard::{GuardError, GuardedResolver, HostLookup, SystemLookup, check_url, redirect_policy};
use crate::parse::{ParseError, parse_feed};
use crate::settings::FetchSettings;

/// What feeds are served as, most specific first; `*/*` last because many feeds are `text/html`.
const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, \
                      application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5";

/// How much longer than `parse_timeout` the fetcher waits for the parser's thread, which checks the
/// deadline itself between steps, before giving up on it.
const PARSE_JOIN_SLACK: Duration = Duration::from_secs(1);

/// Largest buffer reserved up front from `Content-Length`; beyond it the buffer grows as bytes arrive,
/// so a lying header cannot make us allocate the whole limit.
const INITIAL_BUFFER_LIMIT: u64 = 1024 * 1024;

/// The client could not be built (TLS backend, invalid `User-Agent`).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the feed HTTP client: {0}")]
pub struct FetcherSetupError(#[from] reqwest::Error);

#[derive(Debug, Clone)]
pub struct HttpFeedFetcher {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    settings: Arc<FetchSettings>,
    /// Sizes of the bodies downloaded (a no-op unless [`HttpFeedFetcher::with_body_sizes`]).
    body_bytes: Histogram,
}

impl HttpFeedFetcher {
    /// A fetcher resolving names with the operating system's resolver.
    pub fn new(settings: FetchSettings) -> Result<Self, FetcherSetupError> {
        Self::with_lookup(settings, Arc::new(SystemLookup))
    }

    /// A fetcher resolving names through `lookup` (tests map names to loopback addresses with it).
    pub fn with_lookup(
        settings: FetchSettings,
        lookup: Arc<dyn HostLookup>,
    ) -> Result<Self, FetcherSetupError> {
        let policy = Arc::new(AddressPolicy::new(&settings.allow_private_hosts));
        let client = reqwest::Client::builder()
            .user_agent(settings.user_agent.as_str())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .redirect(redirect_policy(Arc::clone(&policy), settings.max_redirects))
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&policy), lookup)))
            .no_proxy()
            .referer(false)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, policy, settings: Arc::new(settings), body_bytes: Histogram::noop() })
    }

    /// Records each downloaded body's size (bytes, before decoding) into `histogram`. A plain
    /// `metrics` handle, so this adapter needs no registry type; the worker passes
    /// `galley_rss_fetch_body_bytes`.
    #[must_use]
    pub fn with_body_sizes(mut self, histogram: Histogram) -> Self {
        self.body_bytes = histogram;
        self
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    async fn download(&self, url: Url, request: &FetchRequest) -> Result<Downloaded, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT));
        // Validators come from an earlier response; one that is not a valid header value is skipped
        // (the fetch is then unconditional) rather than failing the fetch.
        if let Some(etag) = request.etag.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(header::IF_NONE_MATCH, etag);
        }
        if let Some(since) = request.last_modified.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(header::IF_MODIFIED_SINCE, since);
        }
        // The feed's server (or a proxy in front of it) may trace too: it joins the worker's trace.
        if let Some(trace) = galley_platform::telemetry::inject_current() {
            if let Ok(value) = HeaderValue::from_str(&trace.traceparent) {
                headers.insert("traceparent", value);
            }
            if let Some(value) = trace.tracestate.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert("tracestate", value);
            }
        }
        let response = self.client.get(url).headers(headers).send().await.map_err(map_reqwest_error)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Downloaded::NotModified);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(transient(
                FetchErrorCode::RateLimited,
                retry_after(&response),
                format!("HTTP {status}"),
            ));
        }
        if status.is_server_error() {
            return Err(transient(
                FetchErrorCode::HttpServerError,
                retry_after(&response),
                format!("HTTP {status}"),
            ));
        }
        if status.is_redirection() {
            return Err(unfollowed_redirect(&response));
        }
        if !status.is_success() {
            return Err(permanent(FetchErrorCode::HttpClientError, format!("HTTP {status}")));
        }
        let text_header = |name| {
            response.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned)
        };
        let etag = text_header(header::ETAG);
        let last_modified = text_header(header::LAST_MODIFIED);
        let charset =
            text_header(header::CONTENT_TYPE).as_deref().and_then(content_type_charset).map(str::to_owned);
        let final_url = response.url().clone();
        let body = read_limited(response, self.settings.max_body_bytes).await?;
        self.body_bytes.record(body.len() as f64);
        tracing::debug!(url = %final_url, %status, bytes = body.len(), "feed downloaded");
        Ok(Downloaded::Body { body, charset, final_url, etag, last_modified })
    }
}

enum Downloaded {
    NotModified,
    Body {
        body: Vec<u8>,
        charset: Option<String>,
        final_url: Url,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

#[async_trait]
impl FeedFetcher for HttpFeedFetcher {
    async fn fetch(&self, request: &FetchRequest) -> Result<FetchOutcome, FetchError> {
        let url = Url::parse(request.url.trim())
            .map_err(|error| permanent(FetchErrorCode::InvalidUrl, format!("{error}: {}", request.url)))?;
        check_url(&self.policy, &url).map_err(|error| permanent(error.code(), error.to_string()))?;

        // reqwest enforces the same total timeout; this outer one also bounds the body loop and DNS.
        let span =
            tracing::info_span!("GET", otel.kind = "client", http.request.method = "GET", url.full = %url);
        let downloaded = tokio::time::timeout(self.settings.total_timeout, self.download(url, request))
            .instrument(span)
            .await
            .map_err(|_| timeout(self.settings.total_timeout))??;
        let Downloaded::Body { body, charset, final_url, etag, last_modified } = downloaded else {
            return Ok(FetchOutcome::NotModified);
        };

        let span = tracing::info_span!("rss.parse", bytes = body.len());
        self.parse(body, charset, final_url).instrument(span).await.map(|entries| FetchOutcome::Fetched {
            entries,
            etag,
            last_modified,
        })
    }
}

impl HttpFeedFetcher {
    /// Parsing is CPU work, so it runs on the blocking pool, never on the async workers, and within
    /// `parse_timeout`: the parser checks the deadline itself (so its thread stops too), and the wait
    /// for it is bounded as well, in case one step between checks is slow. A panic inside the parser
    /// (hostile input) surfaces as a join error. Each of these fails the job for good: the same
    /// document would fail the same way again.
    async fn parse(
        &self,
        body: Vec<u8>,
        charset: Option<String>,
        final_url: Url,
    ) -> Result<Vec<ParsedEntry>, FetchError> {
        let limit = self.settings.parse_timeout;
        let deadline = Instant::now() + limit;
        let parsing =
            tokio::task::spawn_blocking(move || parse_feed(&body, charset.as_deref(), &final_url, deadline));
        let unparseable = |detail: String| permanent(FetchErrorCode::UnparseableFeed, detail);
        match tokio::time::timeout(limit + PARSE_JOIN_SLACK, parsing).await {
            Err(_) => Err(unparseable(format!("parsing did not finish within {limit:?}"))),
            Ok(Err(error)) => Err(unparseable(format!("parser failed: {error}"))),
            Ok(Ok(Err(ParseError::DeadlineExceeded))) => {
                Err(unparseable(format!("parsing did not finish within {limit:?}")))
            }
            Ok(Ok(Err(error))) => Err(unparseable(error.to_string())),
            Ok(Ok(Ok(entries))) => Ok(entries),
        }
    }
}

/// Reads the body, failing as soon as it is known to exceed `limit`: from `Content-Length` before
/// reading, else while streaming (after decompression, so compressed bombs are cut off as well).
async fn read_limited(mut response: Response, limit: u64) -> Result<Vec<u8>, FetchError> {
    let too_large = || permanent(FetchErrorCode::TooLarge, format!("body exceeds {limit} bytes"));
    let declared = response.content_length();
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let capacity = declared.unwrap_or(0).min(limit).min(INITIAL_BUFFER_LIMIT);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(map_reqwest_error)? {
        if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A 3xx the client handed back instead of following: its `Location` is missing (a permanent client
/// error) or unusable, typically another scheme such as `file:`, which the redirect machinery does
/// not even offer to the redirect policy (an invalid URL, as if it had been requested directly).
fn unfollowed_redirect(response: &Response) -> FetchError {
    let status = response.status();
    match response.headers().get(header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    {
        None => permanent(FetchErrorCode::HttpClientError, format!("HTTP {status} without Location")),
        Some(location) => permanent(
            FetchErrorCode::InvalidUrl,
            format!("HTTP {status} to an unfollowable location `{location}`"),
        ),
    }
}

fn permanent(code: FetchErrorCode, detail: String) -> FetchError {
    FetchError::Permanent { code, detail }
}

fn transient(code: FetchErrorCode, retry_after: Option<Duration>, detail: String) -> FetchError {
    FetchError::Transient { code, retry_after, detail }
}

fn timeout(limit: Duration) -> FetchError {
    transient(FetchErrorCode::Timeout, None, format!("no complete answer within {limit:?}"))
}

/// Classifies a reqwest failure. Our own refusals (blocked address, bad redirect, redirect limit)
/// travel inside reqwest's error chain and are recognised first.
fn map_reqwest_error(error: reqwest::Error) -> FetchError {
    let detail = error_chain(&error);
    if let Some(guard) = find_in_chain::<GuardError>(&error) {
        return permanent(guard.code(), detail);
    }
    if error.is_timeout() {
        transient(FetchErrorCode::Timeout, None, detail)
    } else if error.is_redirect() {
        permanent(FetchErrorCode::TooManyRedirects, detail)
    } else if error.is_builder() {
        permanent(FetchErrorCode::InvalidUrl, detail)
    } else if error.is_decode() {
        permanent(FetchErrorCode::UnparseableFeed, detail)
    } else {
        transient(FetchErrorCode::ConnectionFailed, None, detail)
    }
}

fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The error and its causes on one line, for logs (reqwest's top-level message alone says little).
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Utc::now())
}

/// `Retry-After` as a delay from `now`: delta-seconds, or an HTTP date in any of the three formats
/// RFC 9110 requires recipients to accept. A date in the past means "now" (zero).
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|date| date.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT").map(|d| d.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y").map(|d| d.and_utc()))
        .ok()?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 0).single().expect("valid instant")
    }

    #[test]
    fn retry_after_reads_seconds_and_all_three_http_date_formats() {
        assert_eq!(parse_retry_after("2", now()), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 120 ", now()), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now()), Some(Duration::from_secs(37)));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now()), Some(Duration::from_secs(37)));
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now()), Some(Duration::from_secs(37)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()), Some(Duration::ZERO), "past");
        assert_eq!(parse_retry_after("-5", now()), None);
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
    }

    #[test]
    fn settings_build_a_client() {
        let fetcher = HttpFeedFetcher::new(FetchSettings::default()).expect("client");
        assert_eq!(fetcher.settings().max_redirects, 5);
        let bad = FetchSettings { user_agent: "bad\nagent".into(), ..FetchSettings::default() };
        assert!(HttpFeedFetcher::new(bad).is_err(), "an invalid User-Agent is a setup error");
    }

    #[tokio::test]
    async fn refused_urls_fail_before_any_request() {
        let fetcher = HttpFeedFetcher::new(FetchSettings::default()).expect("client");
        let fetch = |url: &str| {
            let request = FetchRequest { url: url.to_owned(), etag: None, last_modified: None };
            let fetcher = fetcher.clone();
            async move { fetcher.fetch(&request).await.map_err(|e| e.code()) }
        };
        // None of these connect: the checks run before the client is asked for anything.
        assert_eq!(fetch("not a url").await, Err(FetchErrorCode::InvalidUrl));
        assert_eq!(fetch("ftp://127.0.0.1/feed").await, Err(FetchErrorCode::InvalidUrl));
        assert_eq!(fetch("file:///etc/passwd").await, Err(FetchErrorCode::InvalidUrl));
        assert_eq!(fetch("http://127.0.0.1:9/").await, Err(FetchErrorCode::BlockedAddress));
        assert_eq!(fetch("http://[::ffff:127.0.0.1]:9/").await, Err(FetchErrorCode::BlockedAddress));
    }
}
