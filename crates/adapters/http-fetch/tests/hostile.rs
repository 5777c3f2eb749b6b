//! Feeds built to stall a parser (issue 8): each must fail or finish in seconds, within the parse
//! deadline, however the markup is shaped. The timing bounds are generous: a regression to the
//! quadratic behaviour takes hours, not seconds.

mod common;

use std::time::{Duration, Instant};

use common::{fetch, fetcher, loopback};
use galley_rss::fetch::{FetchError, FetchErrorCode, FetchOutcome};
use galley_test_support::feeds::FixtureServer;

/// Far above what these take (well under a second each in a release build), far below a stall.
const BOUND: Duration = Duration::from_secs(20);

async fn time_fetch(path: &str) -> (Duration, Result<FetchOutcome, FetchError>) {
    let server = FixtureServer::start(loopback(1)).await;
    let started = Instant::now();
    let outcome = fetch(&fetcher(), &server.url(path)).await;
    let elapsed = started.elapsed();
    eprintln!("{path}: {elapsed:?} -> {:?}", outcome.as_ref().map(|_| "entries").map_err(|e| e.code()));
    (elapsed, outcome)
}

fn only_entry(outcome: Result<FetchOutcome, FetchError>) -> galley_rss::fetch::ParsedEntry {
    match outcome {
        Ok(FetchOutcome::Fetched { mut entries, .. }) if entries.len() == 1 => entries.remove(0),
        other => panic!("expected one entry, got {other:?}"),
    }
}

#[tokio::test]
async fn ten_mebibytes_of_self_closed_divs_parse_in_seconds() {
    let (elapsed, outcome) = time_fetch("/hostile/divs.xml").await;
    assert!(elapsed < BOUND, "{elapsed:?}");
    let entry = only_entry(outcome);
    assert_eq!(entry.title, "Hostile divs");
    assert_eq!(entry.summary, None, "only empty elements: nothing left");
}

/// The XML reader refuses nesting beyond 65 535 levels, so this fails, quickly and for good.
#[tokio::test]
async fn xml_nested_a_million_deep_fails_in_seconds() {
    let (elapsed, outcome) = time_fetch("/hostile/deep.xml").await;
    assert!(elapsed < BOUND, "{elapsed:?}");
    match outcome {
        Err(FetchError::Permanent { code: FetchErrorCode::UnparseableFeed, .. }) => {}
        other => panic!("expected a permanent unparseable_feed, got {other:?}"),
    }
}
