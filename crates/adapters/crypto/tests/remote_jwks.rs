//! `RemoteJwks` against a real HTTP issuer on loopback that counts its fetches and can be made slow or
//! down: verifications never queue behind a fetch, and however many requests miss, fetches are
//! single-flight and rate-limited.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use galley_crypto::{JwksIntervals, RemoteJwks, VerificationKeys};
use serde_json::json;

/// Any base64url modulus will do: these tests never check a signature, only which keys are served.
const MODULUS: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

#[derive(Default)]
struct Issuer {
    base: std::sync::OnceLock<String>,
    discoveries: AtomicUsize,
    fetches: AtomicUsize,
    /// Delay of every JWKS answer after the first, in milliseconds.
    slow_after_first_ms: AtomicU64,
    down: AtomicBool,
}

async fn discovery(State(issuer): State<Arc<Issuer>>) -> Response {
    issuer.discoveries.fetch_add(1, Ordering::SeqCst);
    let base = issuer.base.get().cloned().unwrap_or_default();
    Json(json!({"issuer": base, "jwks_uri": format!("{base}/.well-known/jwks.json")})).into_response()
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> Response {
    let earlier = issuer.fetches.fetch_add(1, Ordering::SeqCst);
    if earlier > 0 {
        let delay = issuer.slow_after_first_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if issuer.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let key =
        json!({"kty": "RSA", "kid": "current", "use": "sig", "alg": "RS256", "n": MODULUS, "e": "AQAB"});
    Json(json!({ "keys": [key] })).into_response()
}

async fn issuer() -> Arc<Issuer> {
    let state = Arc::new(Issuer::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    state.base.set(format!("http://{address}")).expect("set once");
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, router).await });
    state
}

fn keys_of(issuer: &Issuer, intervals: JwksIntervals) -> Arc<RemoteJwks> {
    let base = issuer.base.get().expect("started");
    Arc::new(RemoteJwks::with_intervals(&format!("{base}/"), intervals).expect("client"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_unknown_kids_cause_one_fetch_per_interval() {
    let issuer = issuer().await;
    let keys = keys_of(&issuer, JwksIntervals::default());
    let lookups: Vec<_> = (0..50)
        .map(|i| {
            let keys = Arc::clone(&keys);
            tokio::spawn(async move { keys.decoding_key(&format!("forged-{i}")).await })
        })
        .collect();
    for lookup in lookups {
        assert!(lookup.await.expect("joined").expect("issuer up").is_none(), "unknown kids have no key");
    }
    assert!(keys.decoding_key("current").await.expect("up").is_some(), "the real key was fetched");
    // The first load, plus (once there are keys) one refetch for an unknown kid — a key rotated in just
    // after start-up is found at once — and then nothing more within the interval.
    for i in 0..50 {
        assert!(keys.decoding_key(&format!("forged-again-{i}")).await.expect("up").is_none());
    }
    assert_eq!(issuer.discoveries.load(Ordering::SeqCst), 1, "one discovery");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2, "load + one refetch for 102 lookups");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_go_on_while_a_slow_refresh_runs_once() {
    let issuer = issuer().await;
    // Every read is stale, so every lookup would like a refresh; the second fetch takes 1.5 s.
    let intervals = JwksIntervals { cache_for: Duration::ZERO, ..JwksIntervals::default() };
    let keys = keys_of(&issuer, intervals);
    assert!(keys.decoding_key("current").await.expect("up").is_some());
    issuer.slow_after_first_ms.store(1_500, Ordering::SeqCst);

    let started = Instant::now();
    let lookups: Vec<_> = (0..20)
        .map(|_| {
            let keys = Arc::clone(&keys);
            tokio::spawn(async move {
                let key = keys.decoding_key("current").await;
                (key.map(|key| key.is_some()), started.elapsed())
            })
        })
        .collect();
    let mut quick = 0;
    for lookup in lookups {
        let (found, took) = lookup.await.expect("joined");
        assert!(found.expect("up"), "the key is served throughout");
        if took < Duration::from_millis(750) {
            quick += 1;
        }
    }
    assert!(quick >= 19, "only the refreshing lookup waits for the slow issuer; {quick} of 20 were quick");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2, "one refresh for twenty stale reads");
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_issuer_is_down() {
    let issuer = issuer().await;
    let intervals = JwksIntervals { cache_for: Duration::ZERO, ..JwksIntervals::default() };
    let keys = keys_of(&issuer, intervals);
    assert!(keys.decoding_key("current").await.expect("up").is_some());
    issuer.down.store(true, Ordering::SeqCst);
    assert!(
        keys.decoding_key("current").await.expect("cached").is_some(),
        "the refresh failed, the key stays"
    );
    assert!(keys.decoding_key("current").await.expect("cached").is_some());
}

#[tokio::test]
async fn without_any_key_an_unreachable_issuer_is_unavailable_then_retried() {
    let issuer = issuer().await;
    issuer.down.store(true, Ordering::SeqCst);
    let intervals =
        JwksIntervals { retry_unavailable_after: Duration::from_millis(200), ..JwksIntervals::default() };
    let keys = keys_of(&issuer, intervals);
    assert!(keys.decoding_key("current").await.is_err(), "no keys: unavailable, not 'unknown key'");
    assert!(keys.decoding_key("current").await.is_err(), "still unavailable within the back-off");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "no second fetch within the back-off");
    issuer.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(keys.decoding_key("current").await.expect("back up").is_some(), "retried after the back-off");
}
