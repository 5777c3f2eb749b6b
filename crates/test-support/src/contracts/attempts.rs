//! The failed sign-in attempt tracker contract (in-memory now, Redis later): fixed windows, atomic
//! counts, reset. Keys are random per case and nothing assumes an empty tracker, so the suite runs
//! against a server shared with other runs. Time is real (adapters may use the server's clock), so the
//! expiry case uses a short window and a bounded wait.

use std::sync::Arc;
use std::time::Duration;

use galley_identity::{AttemptState, AttemptTracker};

type Tracker = Arc<dyn AttemptTracker>;

const WINDOW: Duration = Duration::from_secs(15 * 60);

fn key(kind: &str) -> String {
    format!("contract:signin:{kind}:{}", uuid::Uuid::new_v4())
}

/// Asserts the invariant of a state inside a window of length `window`.
fn assert_open(state: AttemptState, failures: u32, window: Duration) {
    assert_eq!(state.failures, failures, "{state:?}");
    assert!(
        state.window_left > Duration::ZERO && state.window_left <= window,
        "window_left must be in (0, {window:?}]: {state:?}"
    );
}

pub async fn unknown_keys_have_no_failures(tracker: Tracker) {
    assert_eq!(tracker.state(&key("unknown")).await.expect("state"), AttemptState::default());
}

pub async fn failures_count_up_within_one_window(tracker: Tracker) {
    let k = key("user");
    let first = tracker.record_failure(&k, WINDOW).await.expect("record");
    assert_open(first, 1, WINDOW);
    let second = tracker.record_failure(&k, WINDOW).await.expect("record");
    assert_open(second, 2, WINDOW);
    assert!(
        second.window_left <= first.window_left,
        "a later failure does not extend the window: {first:?} then {second:?}"
    );
    let state = tracker.state(&k).await.expect("state");
    assert_open(state, 2, WINDOW);
    assert!(state.window_left <= second.window_left, "{state:?}");
}

pub async fn concurrent_failures_are_counted_atomically(tracker: Tracker) {
    let k = key("burst");
    let failures = (0..20).map(|_| {
        let tracker = Arc::clone(&tracker);
        let k = k.clone();
        tokio::spawn(async move { tracker.record_failure(&k, WINDOW).await.expect("record") })
    });
    let mut seen: Vec<u32> = futures::future::join_all(failures)
        .await
        .into_iter()
        .map(|joined| joined.expect("failure task").failures)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u32>>(), "every failure saw a distinct count");
    assert_open(tracker.state(&k).await.expect("state"), 20, WINDOW);
}

pub async fn reset_clears_the_count(tracker: Tracker) {
    let k = key("reset");
    for _ in 0..3 {
        tracker.record_failure(&k, WINDOW).await.expect("record");
    }
    tracker.reset(&k).await.expect("reset");
    assert_eq!(tracker.state(&k).await.expect("state"), AttemptState::default());
    tracker.reset(&key("never-failed")).await.expect("resetting an unknown key is fine");
    assert_open(tracker.record_failure(&k, WINDOW).await.expect("record"), 1, WINDOW);
}

pub async fn keys_are_independent(tracker: Tracker) {
    let user = key("user");
    let client = key("client");
    for _ in 0..3 {
        tracker.record_failure(&user, WINDOW).await.expect("record");
    }
    assert_open(tracker.record_failure(&client, WINDOW).await.expect("record"), 1, WINDOW);
    tracker.reset(&client).await.expect("reset");
    assert_open(tracker.state(&user).await.expect("state"), 3, WINDOW);
}

pub async fn windows_expire_and_counting_starts_over(tracker: Tracker) {
    let k = key("expiring");
    let window = Duration::from_millis(300);
    tracker.record_failure(&k, window).await.expect("record");
    let second = tracker.record_failure(&k, window).await.expect("record");
    assert_eq!(second.failures, 2, "{second:?}");
    assert!(second.window_left <= window, "{second:?}");
    // Bounded wait: the window must end within a few window lengths.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let state = tracker.state(&k).await.expect("state");
        if state.failures == 0 {
            assert_eq!(state, AttemptState::default(), "an ended window has no time left");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "window outlived its length: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = tracker.record_failure(&k, WINDOW).await.expect("record");
    assert_open(fresh, 1, WINDOW);
    assert!(fresh.window_left > window, "a new window starts with its own length: {fresh:?}");
}

/// Expands into one `#[tokio::test]` per attempt tracker contract case. `$make` is an expression
/// evaluating to a future that yields `Some((Arc<dyn AttemptTracker>, guard))`, the guard (a server
/// handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is printed. Cases
/// run on a multi-threaded runtime so the concurrent failures really race.
#[macro_export]
macro_rules! attempt_tracker_contract_tests {
    ($make:expr) => {
        $crate::attempt_tracker_contract_tests!(@cases $make;
            unknown_keys_have_no_failures,
            failures_count_up_within_one_window,
            concurrent_failures_are_counted_atomically,
            reset_clears_the_count,
            keys_are_independent,
            windows_expire_and_counting_starts_over,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::attempts::$case).await;
            }
        )+
    };
}
