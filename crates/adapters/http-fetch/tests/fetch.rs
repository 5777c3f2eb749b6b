//! The fetcher against the fixture feed server on 127.0.0.1 (allow-listed as `127.0.0.1/32`):
//! formats, sanitization, charsets, compression, conditional GET, limits and status mapping.

mod common;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::{entries, fetch, fetch_request, fetcher, loopback, settings};
use galley_http_fetch::{DEFAULT_USER_AGENT, FetchSettings, HttpFeedFetcher};
use galley_rss::fetch::{FetchError, FetchErrorCode, FetchOutcome, FetchRequest};
use galley_test_support::feeds::{CP1252_TITLE, ETAG, FixtureServer, LAST_MODIFIED, LATIN1_TITLE};

async fn server() -> FixtureServer {
    FixtureServer::start(loopback(1)).await
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Option<chrono::DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single()
}

fn permanent(result: Result<FetchOutcome, FetchError>) -> FetchErrorCode {
    match result {
        Err(FetchError::Permanent { code, .. }) => code,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn transient(result: Result<FetchOutcome, FetchError>) -> (FetchErrorCode, Option<Duration>) {
    match result {
        Err(FetchError::Transient { code, retry_after, .. }) => (code, retry_after),
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn rss_2_entries_have_every_field() {
    let server = server().await;
    let base = server.base_url();
    let entries = entries(&fetcher(), &server.url("/rss.xml")).await;
    assert_eq!(entries.len(), 3);

    let first = &entries[0];
    assert_eq!(first.guid.as_deref(), Some("rss-1"));
    assert_eq!(first.title, "First post & more", "escaped HTML in the title becomes text");
    assert_eq!(first.link, Some(format!("{base}/articles/1")));
    assert_eq!(first.thumbnail, Some(format!("{base}/images/1-thumb.jpg")));
    assert_eq!(first.published_at, at(2025, 1, 1, 10, 0));
    let summary = first.summary.as_deref().expect("summary");
    assert!(summary.contains("Hello <b>world</b>"), "{summary}");
    assert!(summary.contains(&format!(r#"<img src="{base}/images/inline.jpg">"#)), "{summary}");

    let second = &entries[1];
    assert_eq!(second.title, "Second post");
    assert_eq!(second.thumbnail, Some(format!("{base}/images/2.png")), "image enclosure");
    assert_eq!(second.published_at, at(2024, 12, 31, 8, 30), "+0100 converted to UTC");
    assert_eq!(second.summary.as_deref(), Some("Plain &amp; simple"));

    assert_eq!(entries[2].guid, None, "no guid: the caller dedups by link");
    assert_eq!(entries[2].link, Some(format!("{base}/articles/3")));
    assert_eq!(entries[2].thumbnail, None);
}

#[tokio::test]
async fn summaries_lose_scripts_and_event_handlers() {
    let server = server().await;
    let fetcher = fetcher();
    let mut summaries = Vec::new();
    for path in ["/rss.xml", "/atom.xml", "/feed.json"] {
        summaries.extend(entries(&fetcher, &server.url(path)).await.into_iter().filter_map(|e| e.summary));
    }
    assert!(summaries.len() >= 6, "{summaries:?}");
    for summary in &summaries {
        let lower = summary.to_ascii_lowercase();
        for forbidden in ["<script", "alert(", "onclick", "onerror", "onmouseover", "steal()", "javascript:"]
        {
            assert!(!lower.contains(forbidden), "{forbidden} survived in {summary}");
        }
    }
}

#[tokio::test]
async fn atom_1_entries_have_every_field() {
    let server = server().await;
    let base = server.base_url();
    let entries = entries(&fetcher(), &server.url("/atom.xml")).await;
    assert_eq!(entries.len(), 2);

    assert_eq!(entries[0].guid.as_deref(), Some("urn:galley:fixture:atom:1"));
    assert_eq!(entries[0].title, "Atom one");
    assert_eq!(entries[0].link, Some(format!("{base}/atom/1")));
    assert_eq!(entries[0].thumbnail, Some(format!("{base}/images/atom-1-thumb.jpg")), "media:thumbnail");
    assert_eq!(entries[0].published_at, at(2025, 1, 2, 8, 0));
    let summary = entries[0].summary.as_deref().expect("summary");
    assert!(summary.contains(&format!(r#"href="{base}/x""#)) && summary.contains(">one</a>"), "{summary}");

    assert_eq!(entries[1].title, "Atom two");
    assert_eq!(entries[1].link, Some(format!("{base}/atom/2")));
    assert_eq!(entries[1].thumbnail, Some(format!("{base}/images/atom-2.jpg")), "media:content image");
    assert_eq!(entries[1].published_at, at(2025, 1, 1, 12, 0), "no published: updated stands in");
    assert!(
        entries[1].summary.as_deref().is_some_and(|s| s.contains("<p>Content two</p>")),
        "{:?}",
        entries[1].summary
    );
}

#[tokio::test]
async fn json_feed_entries_have_every_field() {
    let server = server().await;
    let base = server.base_url();
    let entries = entries(&fetcher(), &server.url("/feed.json")).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].guid.as_deref(), Some("json-1"));
    assert_eq!(entries[0].title, "JSON one");
    assert_eq!(entries[0].link, Some(format!("{base}/json/1")));
    assert_eq!(entries[0].thumbnail, Some(format!("{base}/images/json-1.png")));
    assert_eq!(entries[0].published_at, at(2025, 1, 3, 10, 0));
    assert_eq!(entries[0].summary.as_deref(), Some("Short one"));
    assert_eq!(entries[1].summary.as_deref(), Some("Two &amp; text"), "plain text is escaped");
    assert_eq!(entries[1].published_at, at(2025, 1, 3, 9, 0));
}

#[tokio::test]
async fn older_formats_parse_too() {
    let server = server().await;
    let base = server.base_url();
    let fetcher = fetcher();
    let rss091 = entries(&fetcher, &server.url("/rss091.xml")).await;
    assert_eq!(rss091.len(), 1);
    assert_eq!(rss091[0].title, "Old school");
    assert_eq!(rss091[0].link, Some(format!("{base}/rss091/1")));
    assert_eq!(rss091[0].summary.as_deref(), Some("From <b>1999</b>"));

    let rdf = entries(&fetcher, &server.url("/rdf.xml")).await;
    assert_eq!(rdf.len(), 1);
    assert_eq!(rdf[0].title, "RDF item");
    assert_eq!(rdf[0].link, Some(format!("{base}/rdf/1")));
    assert_eq!(rdf[0].published_at, at(2025, 1, 4, 10, 0));

    let atom03 = entries(&fetcher, &server.url("/atom03.xml")).await;
    assert_eq!(atom03.len(), 1);
    assert_eq!(atom03[0].title, "Atom 0.3 entry");
    assert_eq!(atom03[0].link, Some(format!("{base}/atom03/1")));
    assert_eq!(atom03[0].published_at, at(2025, 1, 5, 10, 0), "issued is published");
    assert_eq!(atom03[0].summary.as_deref(), Some("Old &lt;Atom&gt;"), "text/plain is text");
}

#[tokio::test]
async fn legacy_charsets_are_transcoded_from_the_prolog_or_the_header() {
    let server = server().await;
    let fetcher = fetcher();
    let latin1 = entries(&fetcher, &server.url("/latin1.xml")).await;
    assert_eq!(latin1[0].title, LATIN1_TITLE);
    assert_eq!(latin1[0].summary.as_deref(), Some("Prix : 5 £ ou ½ kg"));
    let cp1252 = entries(&fetcher, &server.url("/cp1252.xml")).await;
    assert_eq!(cp1252[0].title, CP1252_TITLE);
}

#[tokio::test]
async fn gzip_responses_are_decompressed() {
    let server = server().await;
    let fetcher = fetcher();
    let compressed = entries(&fetcher, &server.url("/gzip.xml")).await;
    let plain = entries(&fetcher, &server.url("/rss.xml")).await;
    assert_eq!(compressed, plain);
    let logged = server.requests_to("/gzip.xml");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].content_encoding.as_deref(), Some("gzip"), "the body really was compressed");
    assert!(logged[0].header("accept-encoding").is_some_and(|v| v.contains("gzip") && v.contains("br")));
}

#[tokio::test]
async fn requests_identify_galley_and_ask_for_feeds() {
    let server = server().await;
    entries(&fetcher(), &server.url("/rss.xml")).await;
    let logged = &server.requests_to("/rss.xml")[0];
    assert_eq!(logged.header("user-agent"), Some(DEFAULT_USER_AGENT));
    assert!(logged.header("accept").is_some_and(|v| v.contains("application/rss+xml")));
    assert_eq!(logged.header("referer"), None);

    let custom =
        HttpFeedFetcher::new(FetchSettings { user_agent: "Custom/1".into(), ..settings(&["127.0.0.1/32"]) })
            .expect("client");
    entries(&custom, &server.url("/atom.xml")).await;
    assert_eq!(server.requests_to("/atom.xml")[0].header("user-agent"), Some("Custom/1"));
}

#[tokio::test]
async fn conditional_get_round_trip() {
    let server = server().await;
    let fetcher = fetcher();
    let url = server.url("/conditional.xml");
    let (etag, last_modified) = match fetch(&fetcher, &url).await {
        Ok(FetchOutcome::Fetched { entries, etag, last_modified }) => {
            assert_eq!(entries.len(), 3);
            (etag, last_modified)
        }
        other => panic!("expected entries, got {other:?}"),
    };
    assert_eq!(etag.as_deref(), Some(ETAG));
    assert_eq!(last_modified.as_deref(), Some(LAST_MODIFIED));

    let both = FetchRequest { url: url.clone(), etag: etag.clone(), last_modified: last_modified.clone() };
    assert_eq!(fetch_request(&fetcher, &both).await, Ok(FetchOutcome::NotModified));
    let logged = server.requests_to("/conditional.xml");
    assert_eq!(logged[1].header("if-none-match"), Some(ETAG));
    assert_eq!(logged[1].header("if-modified-since"), Some(LAST_MODIFIED));
    assert_eq!(logged[1].status, 304);

    let date_only = FetchRequest { url: url.clone(), etag: None, last_modified };
    assert_eq!(fetch_request(&fetcher, &date_only).await, Ok(FetchOutcome::NotModified));

    let stale = FetchRequest { url, etag: Some("\"old\"".into()), last_modified: None };
    assert!(matches!(fetch_request(&fetcher, &stale).await, Ok(FetchOutcome::Fetched { .. })));
    assert_eq!(server.request_count(), 4);
}

fn quick(timeout: Duration) -> HttpFeedFetcher {
    HttpFeedFetcher::new(FetchSettings { total_timeout: timeout, ..settings(&["127.0.0.1/32"]) })
        .expect("client")
}

#[tokio::test]
async fn a_slow_server_times_out_transiently() {
    let server = server().await;
    let fetcher = quick(Duration::from_millis(300));
    for path in ["/slow.xml?ms=5000", "/slow-body.xml?ms=5000"] {
        let started = Instant::now();
        let (code, retry_after) = transient(fetch(&fetcher, &server.url(path)).await);
        assert_eq!(code, FetchErrorCode::Timeout, "{path}");
        assert_eq!(retry_after, None);
        assert!(started.elapsed() < Duration::from_secs(3), "{path} took {:?}", started.elapsed());
    }
    assert!(matches!(
        fetch(&fetcher, &server.url("/slow.xml?ms=10")).await,
        Ok(FetchOutcome::Fetched { .. })
    ));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = server().await;
    let fetcher = fetcher();
    assert_eq!(
        permanent(fetch(&fetcher, &server.url("/large.xml")).await),
        FetchErrorCode::TooLarge,
        "streamed"
    );
    assert_eq!(
        permanent(fetch(&fetcher, &server.url("/large-declared.xml")).await),
        FetchErrorCode::TooLarge
    );

    let tiny = HttpFeedFetcher::new(FetchSettings { max_body_bytes: 1024, ..settings(&["127.0.0.1/32"]) })
        .expect("client");
    assert_eq!(permanent(fetch(&tiny, &server.url("/rss.xml")).await), FetchErrorCode::TooLarge);
    assert_eq!(
        permanent(fetch(&tiny, &server.url("/gzip.xml")).await),
        FetchErrorCode::TooLarge,
        "decompressed size"
    );
    assert_eq!(permanent(fetch(&tiny, &server.url("/large.xml?bytes=1025")).await), FetchErrorCode::TooLarge);
    assert!(
        matches!(
            fetch(&tiny, &server.url("/large.xml?bytes=1024")).await,
            Err(FetchError::Permanent { code: FetchErrorCode::UnparseableFeed, .. })
        ),
        "exactly at the limit is read"
    );
}

#[tokio::test]
async fn an_xml_bomb_fails_fast() {
    let server = server().await;
    let started = Instant::now();
    assert_eq!(permanent(fetch(&fetcher(), &server.url("/bomb.xml")).await), FetchErrorCode::UnparseableFeed);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn malformed_bodies_are_unparseable() {
    let server = server().await;
    let fetcher = fetcher();
    for path in ["/malformed.xml", "/not-a-feed.html", "/large.xml?bytes=100", "/status/204"] {
        assert_eq!(
            permanent(fetch(&fetcher, &server.url(path)).await),
            FetchErrorCode::UnparseableFeed,
            "{path}"
        );
    }
}

#[tokio::test]
async fn rate_limiting_is_transient_and_honours_retry_after() {
    let server = server().await;
    let (code, retry_after) = transient(fetch(&fetcher(), &server.url("/rate-limited")).await);
    assert_eq!(code, FetchErrorCode::RateLimited);
    assert_eq!(retry_after, Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn server_errors_are_transient() {
    let server = server().await;
    let fetcher = fetcher();
    assert_eq!(
        transient(fetch(&fetcher, &server.url("/status/500")).await),
        (FetchErrorCode::HttpServerError, None)
    );
    assert_eq!(
        transient(fetch(&fetcher, &server.url("/status/503?retry_after=7")).await),
        (FetchErrorCode::HttpServerError, Some(Duration::from_secs(7)))
    );
    let far = Utc::now() + chrono::Duration::hours(1);
    let date = far.format("%a,%%20%d%%20%b%%20%Y%%20%H:%M:%S%%20GMT").to_string();
    let (code, retry_after) =
        transient(fetch(&fetcher, &server.url(&format!("/status/502?retry_after={date}"))).await);
    assert_eq!(code, FetchErrorCode::HttpServerError);
    let retry_after = retry_after.expect("an HTTP date is honoured");
    assert!(
        retry_after > Duration::from_secs(3500) && retry_after <= Duration::from_secs(3600),
        "{retry_after:?}"
    );
}

#[tokio::test]
async fn client_errors_are_permanent() {
    let server = server().await;
    let fetcher = fetcher();
    for code in [300, 400, 401, 403, 404, 410, 451] {
        let result = fetch(&fetcher, &server.url(&format!("/status/{code}"))).await;
        assert_eq!(permanent(result), FetchErrorCode::HttpClientError, "{code}");
    }
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let server = server().await;
    let fetcher = fetcher();
    assert_eq!(entries(&fetcher, &server.url("/redirect-chain/5")).await.len(), 3, "5 redirects are fine");
    assert_eq!(
        permanent(fetch(&fetcher, &server.url("/redirect-chain/6")).await),
        FetchErrorCode::TooManyRedirects
    );

    let none = HttpFeedFetcher::new(FetchSettings { max_redirects: 0, ..settings(&["127.0.0.1/32"]) })
        .expect("client");
    assert_eq!(
        permanent(fetch(&none, &server.url("/redirect-chain/1")).await),
        FetchErrorCode::TooManyRedirects
    );
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_limit() {
    let server = server().await;
    assert_eq!(permanent(fetch(&fetcher(), &server.url("/loop")).await), FetchErrorCode::TooManyRedirects);
    assert_eq!(server.requests_to("/loop").len(), 6, "the original request and 5 redirects, no more");
}

#[tokio::test]
async fn redirects_to_other_schemes_are_refused() {
    let server = server().await;
    let fetcher = fetcher();
    for target in ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml", "gopher://127.0.0.1:70/"] {
        let result = fetch(&fetcher, &server.redirect_url(target)).await;
        assert_eq!(permanent(result), FetchErrorCode::InvalidUrl, "{target}");
    }
    let relative = entries(&fetcher, &server.redirect_url("/atom.xml")).await;
    assert_eq!(relative.len(), 2, "a relative redirect on the same allowed host is followed");
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind((loopback(1), 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let (code, _) = transient(fetch(&fetcher(), &format!("http://127.0.0.1:{port}/rss.xml")).await);
    assert_eq!(code, FetchErrorCode::ConnectionFailed);
}

#[tokio::test]
async fn one_fetcher_serves_many_fetches() {
    let server = server().await;
    let fetcher = fetcher();
    let urls: Vec<String> = (0..20).map(|i| server.url(&format!("/generated/{i}.xml"))).collect();
    let results = futures_join_all(&fetcher, &urls).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.len(), i);
    }
    assert_eq!(server.request_count(), 20);
}

async fn futures_join_all(
    fetcher: &HttpFeedFetcher,
    urls: &[String],
) -> Vec<Vec<galley_rss::fetch::ParsedEntry>> {
    let mut handles = Vec::new();
    for url in urls {
        let fetcher = fetcher.clone();
        let url = url.clone();
        handles.push(tokio::spawn(async move { entries(&fetcher, &url).await }));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}

#[tokio::test]
async fn a_large_generated_feed_parses_in_bounded_time() {
    let server = server().await;
    let started = Instant::now();
    let entries = entries(&fetcher(), &server.url("/generated/5000.xml")).await;
    let elapsed = started.elapsed();
    assert_eq!(entries.len(), 5000);
    assert_eq!(entries[4999].guid.as_deref(), Some("gen-4999"));
    assert!(entries[0].thumbnail.is_some() && entries[0].summary.is_some());
    assert!(elapsed < Duration::from_secs(20), "5000 entries took {elapsed:?}");
}
