//! The connect-time SSRF guard, exercised with loopback addresses only: a fixture on 127.0.0.1
//! (allow-listed) plays the public feed host, a fixture on 127.0.0.2 (not allow-listed) plays an
//! internal service. Host names resolve through an injected table, so no DNS traffic leaves the
//! machine; the one test that uses the system resolver checks first that `localhost` is loopback.
//!
//! The assertion that matters in each test is that the 127.0.0.2 server received no request at all.

mod common;

use std::net::IpAddr;

use common::{fetch, fetcher, fetcher_resolving, loopback, settings};
use galley_http_fetch::HttpFeedFetcher;
use galley_rss::fetch::{FetchError, FetchErrorCode, FetchOutcome};
use galley_test_support::feeds::FixtureServer;

const ALLOWED: &[&str] = &["127.0.0.1/32"];

async fn servers() -> (FixtureServer, FixtureServer) {
    (FixtureServer::start(loopback(1)).await, FixtureServer::start(loopback(2)).await)
}

fn blocked(result: Result<FetchOutcome, FetchError>) -> String {
    match result {
        Err(FetchError::Permanent { code: FetchErrorCode::BlockedAddress, detail }) => detail,
        other => panic!("expected blocked_address, got {other:?}"),
    }
}

fn fetched(result: Result<FetchOutcome, FetchError>) -> usize {
    match result {
        Ok(FetchOutcome::Fetched { entries, .. }) => entries.len(),
        other => panic!("expected entries, got {other:?}"),
    }
}

#[tokio::test]
async fn a_literal_address_outside_the_allow_list_is_blocked() {
    let (public, internal) = servers().await;
    let detail = blocked(fetch(&fetcher(), &internal.url("/rss.xml")).await);
    assert!(detail.contains("127.0.0.2") && detail.contains("loopback"), "{detail}");
    assert_eq!(internal.request_count(), 0);
    assert_eq!(fetched(fetch(&fetcher(), &public.url("/rss.xml")).await), 3, "the allowed one still works");
}

#[tokio::test]
async fn a_redirect_to_a_blocked_literal_address_is_not_followed() {
    let (public, internal) = servers().await;
    let result = fetch(&fetcher(), &public.redirect_url(&internal.url("/rss.xml"))).await;
    blocked(result);
    assert_eq!(public.requests_to("/redirect").len(), 1);
    assert_eq!(internal.request_count(), 0);
}

#[tokio::test]
async fn a_host_name_resolving_to_a_blocked_address_is_refused_at_connect_time() {
    let (_public, internal) = servers().await;
    let fetcher = fetcher_resolving(ALLOWED, "localhost", &[loopback(2)]);
    let url = format!("http://localhost:{}/rss.xml", internal.address().port());
    let detail = blocked(fetch(&fetcher, &url).await);
    assert!(detail.contains("127.0.0.2"), "{detail}");
    assert_eq!(internal.request_count(), 0);
}

#[tokio::test]
async fn a_redirect_to_a_host_name_resolving_to_a_blocked_address_is_refused() {
    let (public, internal) = servers().await;
    let fetcher = fetcher_resolving(ALLOWED, "localhost", &[loopback(2)]);
    let target = format!("http://localhost:{}/rss.xml", internal.address().port());
    blocked(fetch(&fetcher, &public.redirect_url(&target)).await);
    assert_eq!(public.requests_to("/redirect").len(), 1, "the first hop was allowed");
    assert_eq!(internal.request_count(), 0);
}

#[tokio::test]
async fn allow_listed_names_and_networks_open_the_internal_host() {
    let (_public, internal) = servers().await;
    let by_name = fetcher_resolving(&["localhost"], "localhost", &[loopback(2)]);
    let url = format!("http://localhost:{}/rss.xml", internal.address().port());
    assert_eq!(fetched(fetch(&by_name, &url).await), 3);
    blocked(fetch(&by_name, &internal.url("/rss.xml")).await);

    let by_network = HttpFeedFetcher::new(settings(&["127.0.0.0/30"])).expect("client");
    assert_eq!(fetched(fetch(&by_network, &internal.url("/rss.xml")).await), 3);
    assert_eq!(internal.request_count(), 2);
}

#[tokio::test]
async fn with_an_empty_allow_list_even_127_0_0_1_is_blocked() {
    let (public, _internal) = servers().await;
    let strict = HttpFeedFetcher::new(settings(&[])).expect("client");
    blocked(fetch(&strict, &public.url("/rss.xml")).await);

    let resolving = fetcher_resolving(&[], "localhost", &[loopback(1)]);
    let url = format!("http://localhost:{}/rss.xml", public.address().port());
    blocked(fetch(&resolving, &url).await);
    assert_eq!(public.request_count(), 0);
}

/// `localhost` through the real resolver, only where it resolves to loopback addresses alone (it
/// does via `/etc/hosts` here; elsewhere the test says so and checks nothing).
#[tokio::test]
async fn the_system_resolver_path_is_guarded_too() {
    let resolved: Vec<IpAddr> = match tokio::net::lookup_host(("localhost", 0)).await {
        Ok(addresses) => addresses.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    };
    if resolved.is_empty() || !resolved.iter().all(IpAddr::is_loopback) || !resolved.contains(&loopback(1)) {
        eprintln!("skipped: localhost resolves to {resolved:?}, not 127.0.0.1 and loopback only");
        return;
    }
    let (public, _internal) = servers().await;
    let url = format!("http://localhost:{}/rss.xml", public.address().port());
    blocked(fetch(&HttpFeedFetcher::new(settings(&[])).expect("client"), &url).await);
    assert_eq!(public.request_count(), 0);
    assert_eq!(fetched(fetch(&fetcher(), &url).await), 3, "allowed by 127.0.0.1/32 after resolution");
}
