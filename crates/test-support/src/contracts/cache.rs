//! The cache port contract (in-memory, Redis).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use galley_kernel::Cache;

type C = Arc<dyn Cache>;

/// Keys unique to one test run, so suites can share a server without seeing each other's data.
fn key(name: &str) -> String {
    format!("contract:{}:{name}", uuid::Uuid::now_v7())
}

pub async fn stored_values_read_back(cache: C) {
    let k = key("a");
    assert_eq!(cache.get(&k).await.expect("get"), None);
    cache.set(&k, Bytes::from_static(b"hello"), Duration::from_secs(60)).await.expect("set");
    assert_eq!(cache.get(&k).await.expect("get"), Some(Bytes::from_static(b"hello")));
    cache.set(&k, Bytes::from_static(b"again"), Duration::from_secs(60)).await.expect("overwrite");
    assert_eq!(cache.get(&k).await.expect("get"), Some(Bytes::from_static(b"again")));
}

pub async fn deleted_values_are_gone(cache: C) {
    let k = key("b");
    cache.set(&k, Bytes::from_static(b"x"), Duration::from_secs(60)).await.expect("set");
    cache.delete(&k).await.expect("delete");
    assert_eq!(cache.get(&k).await.expect("get"), None);
    cache.delete(&k).await.expect("deleting a missing key is fine");
}

pub async fn values_expire_after_their_ttl(cache: C) {
    let short = key("short");
    let long = key("long");
    cache.set(&short, Bytes::from_static(b"x"), Duration::from_millis(100)).await.expect("set");
    cache.set(&long, Bytes::from_static(b"y"), Duration::from_secs(60)).await.expect("set");
    // Bounded wait: expiry must happen within a few TTLs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while cache.get(&short).await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "value outlived its TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cache.get(&long).await.expect("get").is_some(), "a longer TTL keeps its value");
}

pub async fn counters_start_at_zero_and_increment_atomically(cache: C) {
    let k = key("counter");
    assert_eq!(cache.counter(&k).await.expect("counter"), 0);
    let increments = (0..50).map(|_| {
        let cache = Arc::clone(&cache);
        let k = k.clone();
        async move { cache.increment(&k).await.expect("increment") }
    });
    let mut seen = futures::future::join_all(increments).await;
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<u64>>(), "every increment saw a distinct value");
    assert_eq!(cache.counter(&k).await.expect("counter"), 50);
}

pub async fn a_counter_and_an_entry_read_together(cache: C) {
    let counter = key("generation");
    let entry = key("entry");
    assert_eq!(cache.get_with_counter(&counter, &entry).await.expect("read"), (0, None), "both missing");
    cache.increment(&counter).await.expect("increment");
    cache.increment(&counter).await.expect("increment");
    assert_eq!(cache.get_with_counter(&counter, &entry).await.expect("read"), (2, None), "entry missing");
    cache.set(&entry, Bytes::from_static(b"page"), Duration::from_secs(60)).await.expect("set");
    assert_eq!(
        cache.get_with_counter(&counter, &entry).await.expect("read"),
        (2, Some(Bytes::from_static(b"page")))
    );
    let other = key("other-generation");
    assert_eq!(
        cache.get_with_counter(&other, &entry).await.expect("read"),
        (0, Some(Bytes::from_static(b"page"))),
        "a missing counter reads as 0 beside a present entry"
    );
}

pub async fn answers_pings(cache: C) {
    cache.ping().await.expect("ping");
}

/// Expands into one `#[tokio::test]` per cache contract case; `$make` yields `Option<(Arc<dyn Cache>, guard)>`, the guard
/// (a temp dir, a server handle, ...) living until the case ends.
#[macro_export]
macro_rules! cache_contract_tests {
    ($make:expr) => {
        $crate::cache_contract_tests!(@cases $make;
            stored_values_read_back,
            deleted_values_are_gone,
            values_expire_after_their_ttl,
            counters_start_at_zero_and_increment_atomically,
            a_counter_and_an_entry_read_together,
            answers_pings,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::cache::$case).await;
            }
        )+
    };
}
