//! `galley serve` exposes every service's families on one `/metrics`: one fetch request through the
//! in-process bus shows up in the HTTP, bus, worker, fetch, store and sign-in families with exact
//! counts.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use galley_test_support::feeds::FixtureServer;
use support::start;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The sample `name{labels}` (labels exactly as rendered, in order), if present.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn one_fetch_request_is_counted_in_every_family_of_the_process() {
    let feeds = FixtureServer::start(LOOPBACK).await;
    let galley = start(&["127.0.0.1/32"]).await;
    let token = galley.token("metrics").await;
    let job = galley.ingest(&token, &feeds.url("/rss.xml")).await;
    assert_eq!(job["status"], "done", "{job}");
    let inserted = job["inserted"].as_u64().expect("inserted");

    // The job is final before the worker acknowledges and rss-api applies the reply: wait (bounded)
    // for both to be counted.
    let acked = r#"galley_bus_settled_total{queue="rss.fetch.requested",outcome="acked"}"#;
    let reply_acked = r#"galley_bus_settled_total{queue="rss.fetch.completed",outcome="acked"}"#;
    let mut scrape = String::new();
    for _ in 0..100 {
        scrape = galley
            .client
            .get(galley.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        if value(&scrape, acked) == Some(1.0) && value(&scrape, reply_acked) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for (series, expected) in [
        (r#"galley_http_requests_total{method="POST",route="/rss/fetch",status="202"}"#, 1.0),
        (r#"galley_bus_published_total{queue="rss.fetch.requested",result="ok"}"#, 1.0),
        (r#"galley_bus_consumed_total{queue="rss.fetch.requested"}"#, 1.0),
        (acked, 1.0),
        (r#"galley_bus_published_total{queue="rss.fetch.completed",result="ok"}"#, 1.0),
        (reply_acked, 1.0),
        (r#"galley_bus_consumer_in_flight{queue="rss.fetch.requested"}"#, 0.0),
        (r#"galley_rss_fetches_total{result="fetched"}"#, 1.0),
        (r#"galley_rss_fetch_duration_seconds_count"#, 1.0),
        (r#"galley_rss_jobs_total{state="done"}"#, 1.0),
        (r#"galley_rss_entries_total{result="inserted"}"#, inserted as f64),
        (r#"galley_rss_entries_total{result="skipped"}"#, 0.0),
        (r#"galley_auth_sign_ins_total{outcome="success"}"#, 1.0),
        (r#"galley_rss_fetch_body_bytes_count"#, 1.0),
        (r#"galley_store_operation_duration_seconds_count{repository="users",operation="insert"}"#, 1.0),
        // Finished twice on the one store: by the worker, then (idempotently) by rss-api's reply.
        (r#"galley_store_operation_duration_seconds_count{repository="jobs",operation="finish"}"#, 2.0),
        (
            r#"galley_store_operation_duration_seconds_count{repository="entries",operation="insert_new"}"#,
            1.0,
        ),
        (r#"galley_store_errors_total{repository="entries",operation="insert_new"}"#, 0.0),
        (r#"galley_build_info{service="galley",version=""#, f64::NAN),
    ] {
        if expected.is_nan() {
            assert!(scrape.lines().any(|line| line.starts_with(series)), "missing {series}:\n{scrape}");
        } else {
            assert_eq!(value(&scrape, series), Some(expected), "{series}:\n{scrape}");
        }
    }
    galley.stop().await;
}
