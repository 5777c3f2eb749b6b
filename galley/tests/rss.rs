//! The RSS pipeline end to end on the all-in-one process: POST → message → worker → entries, against
//! loopback fixture feed servers only.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use galley_test_support::feeds::FixtureServer;
use serde_json::{Value, json};
use support::start;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Loopback, but not allow-listed: the connect-time guard must refuse it.
const OTHER_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn encoded(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F").replace('?', "%3F").replace('=', "%3D").replace('&', "%26")
}

#[tokio::test]
async fn a_feed_is_ingested_once_and_a_second_fetch_skips_every_entry() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    let url = feeds.url("/rss.xml");

    let accepted = galley.request_fetch(&token, &url).await;
    assert_eq!(accepted.status(), 202);
    let location = accepted.headers()["location"].to_str().expect("ascii").to_owned();
    let body: Value = accepted.json().await.expect("json");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["message"], format!("fetch request for {url} received"));
    assert_eq!(location, format!("/rss/jobs/{}", body["job_id"].as_str().expect("id")));

    let first = galley.wait_for_job(&token, body["job_id"].as_str().expect("id")).await;
    assert_eq!(first["status"], "done", "{first}");
    let inserted = first["inserted"].as_u64().expect("inserted");
    assert!(inserted >= 2, "{first}");
    assert_eq!(first["skipped"], 0);
    assert!(first["finished_at"].is_string());

    let entries = galley.get_json(&format!("/rss/entries?feed_url={}", encoded(&url))).await;
    assert_eq!(entries["total"].as_u64(), Some(inserted));
    let item = &entries["items"][0];
    for field in ["id", "feed_url", "title", "link"] {
        assert!(item[field].is_string(), "{field} in {item}");
    }

    let second = galley.ingest(&token, &url).await;
    assert_eq!(second["status"], "done");
    assert_eq!((second["inserted"].as_u64(), second["skipped"].as_u64()), (Some(0), Some(inserted)));
    let entries = galley.get_json(&format!("/rss/entries?feed_url={}", encoded(&url))).await;
    assert_eq!(entries["total"].as_u64(), Some(inserted), "nothing stored twice");
}

/// Pages of entries are served from the cache with a weak ETag; the worker's writes make them stale
/// at once, so a client that saw its job done reads its entries, and revalidation gets a 304 only
/// while the page is unchanged.
#[tokio::test]
async fn cached_pages_of_entries_follow_the_workers_writes_and_revalidate() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    let page = galley.url("/rss/entries?limit=100");
    let get = |tag: Option<String>| {
        let mut request = galley.client.get(&page);
        if let Some(tag) = tag {
            request = request.header("if-none-match", tag);
        }
        request.send()
    };

    let empty = get(None).await.expect("sent");
    assert_eq!(empty.status(), 200);
    let empty_tag = empty.headers()["etag"].to_str().expect("ascii").to_owned();
    assert!(empty_tag.starts_with("W/\""), "a weak tag: {empty_tag}");
    assert_eq!(empty.json::<Value>().await.expect("json")["total"], 0);
    let unchanged = get(Some(empty_tag.clone())).await.expect("sent");
    assert_eq!(unchanged.status(), 304, "the cached page revalidates");
    assert_eq!(unchanged.headers()["etag"], empty_tag.as_str());

    let job = galley.ingest(&token, &feeds.url("/rss.xml")).await;
    assert_eq!(job["status"], "done", "{job}");
    let inserted = job["inserted"].as_u64().expect("inserted");
    assert!(inserted > 0);

    let changed = get(Some(empty_tag.clone())).await.expect("sent");
    assert_eq!(changed.status(), 200, "the stale tag no longer matches");
    let new_tag = changed.headers()["etag"].to_str().expect("ascii").to_owned();
    assert_ne!(new_tag, empty_tag);
    assert_eq!(changed.json::<Value>().await.expect("json")["total"].as_u64(), Some(inserted));
    assert_eq!(get(Some(new_tag)).await.expect("sent").status(), 304);
}

#[tokio::test]
async fn conditional_get_sends_the_validators_and_a_304_inserts_nothing() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    let url = feeds.url("/conditional.xml");
    let first = galley.ingest(&token, &url).await;
    assert_eq!(first["status"], "done");
    assert!(first["inserted"].as_u64().unwrap_or_default() > 0);
    let second = galley.ingest(&token, &url).await;
    assert_eq!(
        (second["status"].as_str(), second["inserted"].as_u64(), second["skipped"].as_u64()),
        (Some("done"), Some(0), Some(0))
    );
    let requests = feeds.requests_to("/conditional.xml");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("if-none-match"), Some(galley_test_support::feeds::ETAG));
}

#[tokio::test]
async fn private_addresses_fail_the_job_and_are_never_contacted() {
    let allowed = FixtureServer::start(LOOPBACK).await;
    let Ok(forbidden) = FixtureServer::try_start(OTHER_LOOPBACK).await else {
        eprintln!("SKIPPED: 127.0.0.2 cannot be bound on this machine");
        return;
    };
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;

    let direct = galley.ingest(&token, &forbidden.url("/rss.xml")).await;
    assert_eq!(
        (direct["status"].as_str(), direct["error"].as_str()),
        (Some("failed"), Some("blocked_address"))
    );
    assert!(direct["error_message"].as_str().is_some_and(|m| m.contains("private")), "{direct}");

    let redirected = galley.ingest(&token, &allowed.redirect_url(&forbidden.url("/rss.xml"))).await;
    assert_eq!(redirected["error"], "blocked_address", "a redirect cannot reach it either");
    assert_eq!(forbidden.request_count(), 0, "the blocked server never saw a request");

    let vi = galley
        .client
        .get(galley.url(&format!("/rss/jobs/{}?locale=vi", direct["id"].as_str().expect("id"))))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    assert!(vi["error_message"].as_str().is_some_and(|m| m.contains("mạng riêng")), "{vi}");
}

#[tokio::test]
async fn hostile_feeds_fail_their_job_and_the_worker_keeps_working() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    for path in ["/bomb.xml", "/malformed.xml", "/not-a-feed.html"] {
        let job = galley.ingest(&token, &feeds.url(path)).await;
        assert_eq!(
            (job["status"].as_str(), job["error"].as_str()),
            (Some("failed"), Some("unparseable_feed")),
            "{path}: {job}"
        );
    }
    let large = galley.ingest(&token, &feeds.url("/large.xml")).await;
    assert_eq!(large["error"], "too_large");
    let healthy = galley.ingest(&token, &feeds.url("/atom.xml")).await;
    assert_eq!(healthy["status"], "done", "{healthy}");
    let ready = galley.get_json("/health/ready").await;
    assert_eq!(ready["status"], "up");
}

#[tokio::test]
async fn transient_failures_are_retried_then_fail_with_their_code() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    let job = galley.ingest(&token, &feeds.url("/status/503")).await;
    assert_eq!((job["status"].as_str(), job["error"].as_str()), (Some("failed"), Some("http_server_error")));
    assert_eq!(job["attempts"], 3, "the configured attempt limit");
    assert_eq!(feeds.requests_to("/status/503").len(), 3);
    let client_error = galley.ingest(&token, &feeds.url("/status/404")).await;
    assert_eq!(
        (client_error["error"].as_str(), client_error["attempts"].as_u64()),
        (Some("http_client_error"), Some(1))
    );
}

#[tokio::test]
async fn bad_requests_are_refused_in_the_callers_language() {
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    let anonymous = galley
        .client
        .post(galley.url("/rss/fetch"))
        .json(&json!({"url": "https://example.com/feed"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);

    let cases = [
        ("ftp://example.com/feed", "unsupported_scheme"),
        ("https://user:pw@example.com/feed", "credentials_in_url"),
        ("/relative/feed.xml", "invalid_url"),
    ];
    for (url, code) in cases {
        let response = galley.request_fetch(&token, url).await;
        assert_eq!(response.status(), 422, "{url}");
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["errors"][0]["field"], "url");
        assert_eq!(problem["errors"][0]["code"], code, "{url}");
    }
    let long = format!("https://example.com/{}", "a".repeat(2048));
    let vi = galley
        .client
        .post(galley.url("/rss/fetch?locale=vi"))
        .bearer_auth(&token)
        .json(&json!({"url": long}))
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(vi["errors"][0]["message"], "chỉ được dài tối đa 2048 ký tự");
    let missing = galley
        .client
        .post(galley.url("/rss/fetch"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 422);
    let bad_filter =
        galley.client.get(galley.url("/rss/entries?feed_url=nope&limit=0")).send().await.expect("sent");
    assert_eq!(bad_filter.status(), 422);
}

#[tokio::test]
async fn idempotency_keys_return_the_same_job_and_jobs_are_private() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let alice = galley.token("alice").await;
    let bob = galley.token("bob").await;
    let send = |token: &str| {
        galley
            .client
            .post(galley.url("/rss/fetch?locale=vi"))
            .bearer_auth(token)
            .header("idempotency-key", "retry-me-1")
            .json(&json!({"url": feeds.url("/feed.json")}))
            .send()
    };
    let first: Value = send(&alice).await.expect("sent").json().await.expect("json");
    let again: Value = send(&alice).await.expect("sent").json().await.expect("json");
    assert_eq!(first["job_id"], again["job_id"]);
    assert!(first["message"].as_str().is_some_and(|m| m.starts_with("đã nhận yêu cầu tải")), "{first}");
    let bobs: Value = send(&bob).await.expect("sent").json().await.expect("json");
    assert_ne!(bobs["job_id"], first["job_id"], "keys are per user");

    let id = first["job_id"].as_str().expect("id");
    galley.wait_for_job(&alice, id).await;
    let peek = galley
        .client
        .get(galley.url(&format!("/rss/jobs/{id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("sent");
    assert_eq!(peek.status(), 404);
    let unknown =
        galley.client.get(galley.url("/rss/jobs/not-a-job")).bearer_auth(&alice).send().await.expect("sent");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn every_format_lands_with_thumbnails_and_sanitized_summaries() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("alice").await;
    for path in ["/rss.xml", "/atom.xml", "/feed.json", "/rdf.xml", "/latin1.xml", "/gzip.xml"] {
        let job = galley.ingest(&token, &feeds.url(path)).await;
        assert_eq!(job["status"], "done", "{path}: {job}");
    }
    let entries = galley.get_json("/rss/entries?limit=100").await;
    let items = entries["items"].as_array().expect("items");
    assert!(items.iter().any(|e| e["thumbnail"].is_string()), "some entry has a thumbnail");
    assert!(items.iter().all(|e| !e["summary"].as_str().unwrap_or_default().contains("<script")));
    assert!(items.iter().any(|e| e["title"].as_str() == Some(galley_test_support::feeds::LATIN1_TITLE)));
}
