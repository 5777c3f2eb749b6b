//! A 200-way concurrent sign-up burst against a real recipes-api with real Argon2id (19 MiB a hash):
//! memory stays bounded by the hashing pool, every request is either served or refused with a localized
//! 503 and `Retry-After`, and none hangs. Its own test binary, so the process's peak memory (VmHWM) is
//! this burst's alone.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use support::{PASSWORD, spawn_app};

/// Peak resident memory of this process so far, in KiB (Linux `/proc/self/status`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_burst_is_bounded_in_memory_and_refused_politely_beyond_the_pool() {
    let app = spawn_app().await;
    let before = peak_rss_kib().expect("VmHWM (Linux)");
    let started = Instant::now();
    let sign_ups = (0..200).map(|i| {
        let client = app.client.clone();
        let url = app.url("/auth/signup?locale=vi");
        let username: String = format!("burst{}", char::from(b'a' + (i % 26) as u8))
            + &"abcdefghijklmnopqrstuvwxyz"[..(i / 26) as usize + 1];
        async move {
            let sent = Instant::now();
            let response = client
                .post(url)
                .json(&json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD}))
                .send()
                .await
                .expect("sent");
            (response, sent.elapsed())
        }
    });
    let responses = tokio::time::timeout(Duration::from_secs(300), futures::future::join_all(sign_ups))
        .await
        .expect("the burst finishes");
    let burst_time = started.elapsed();
    let mut created = 0;
    let mut refusals = Vec::new();
    for (response, took) in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = response.headers().get(RETRY_AFTER).cloned();
                let problem: Value = response.json().await.expect("problem");
                assert_eq!(problem["code"], "sign_in_busy", "{problem}");
                assert_eq!(problem["title"], "Máy chủ đang bận", "{problem}");
                assert_eq!(retry_after.expect("Retry-After"), "1");
                refusals.push(took);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let after = peak_rss_kib().expect("VmHWM");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as u64;
    eprintln!(
        "200 sign-ups in {burst_time:?}: {created} created, {} refused (longest wait before a 503: {:?}); \
         peak RSS {before} KiB before, {after} KiB after (+{} KiB), {cores} hashing slots",
        refusals.len(),
        refusals.iter().max().copied().unwrap_or_default(),
        after.saturating_sub(before)
    );
    assert!(created > 0, "the pool serves what it can");
    assert!(!refusals.is_empty(), "200 at once exceed slots plus queue, so some are refused");
    // Each hashing slot holds 19 MiB; unbounded, 200 at once would need ~3.8 GiB (and before each
    // thread reused its memory, every hash left ~19 MiB behind). Allow the slots' worth plus room for
    // 200 connections and allocator slack.
    let budget_kib = cores * 19 * 1024 + 64 * 1024;
    assert!(after.saturating_sub(before) < budget_kib, "peak grew by {} KiB", after.saturating_sub(before));
}
