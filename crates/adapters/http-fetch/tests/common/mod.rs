//! Helpers shared by the fetcher's integration tests.
//!
//! Every fetch goes to a fixture server on 127.0.0.0/8 (or is refused before connecting), and every
//! fetch is wrapped in an outer timeout, so a broken fetcher fails a test instead of hanging it.

#![allow(dead_code)]

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use galley_http_fetch::{FetchSettings, HostLookup, HttpFeedFetcher};
use galley_rss::fetch::{FeedFetcher, FetchError, FetchOutcome, FetchRequest, ParsedEntry};

/// The bound on any single fetch in these tests, whatever the fetcher's own settings say.
pub const OUTER_TIMEOUT: Duration = Duration::from_secs(30);

pub fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Default settings with a 10 s total timeout, a parse deadline that suits unoptimised test builds
/// on a loaded machine (parsing is about 20 times slower than in release), and the given allow-list.
pub fn settings(allow: &[&str]) -> FetchSettings {
    FetchSettings {
        allow_private_hosts: allow.iter().map(|entry| entry.parse().expect("allow-list entry")).collect(),
        total_timeout: Duration::from_secs(10),
        parse_timeout: Duration::from_secs(120),
        ..FetchSettings::default()
    }
}

/// A fetcher allowed to reach 127.0.0.1 only.
pub fn fetcher() -> HttpFeedFetcher {
    HttpFeedFetcher::new(settings(&["127.0.0.1/32"])).expect("client")
}

pub fn request(url: &str) -> FetchRequest {
    FetchRequest { url: url.to_owned(), etag: None, last_modified: None }
}

pub async fn fetch_request(
    fetcher: &HttpFeedFetcher,
    request: &FetchRequest,
) -> Result<FetchOutcome, FetchError> {
    match tokio::time::timeout(OUTER_TIMEOUT, fetcher.fetch(request)).await {
        Ok(result) => result,
        Err(_) => panic!("fetching {} did not finish within {OUTER_TIMEOUT:?}", request.url),
    }
}

pub async fn fetch(fetcher: &HttpFeedFetcher, url: &str) -> Result<FetchOutcome, FetchError> {
    fetch_request(fetcher, &request(url)).await
}

/// The entries of a successful, modified fetch.
pub async fn entries(fetcher: &HttpFeedFetcher, url: &str) -> Vec<ParsedEntry> {
    match fetch(fetcher, url).await {
        Ok(FetchOutcome::Fetched { entries, .. }) => entries,
        other => panic!("expected entries from {url}, got {other:?}"),
    }
}

/// A resolver table answering `name` with `addresses` and nothing else: no DNS traffic at all.
#[derive(Debug)]
pub struct FixedLookup {
    pub name: &'static str,
    pub addresses: Vec<IpAddr>,
}

#[async_trait]
impl HostLookup for FixedLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        if host.eq_ignore_ascii_case(self.name) {
            Ok(self.addresses.clone())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("{host} is not in the test table")))
        }
    }
}

pub fn fetcher_resolving(allow: &[&str], name: &'static str, addresses: &[IpAddr]) -> HttpFeedFetcher {
    let lookup = Arc::new(FixedLookup { name, addresses: addresses.to_vec() });
    HttpFeedFetcher::with_lookup(settings(allow), lookup).expect("client")
}
