//! The sign-in attempt tracker contract (in memory and on Redis): fixed windows, reservations that
//! check and charge every budget in one atomic step (so concurrent attempts cannot race past a limit),
//! refunds, reset, and remembered successes. Keys are random per case and nothing assumes an empty tracker, so the suite runs
//! against a server shared with other runs. Time is real (adapters may use the server's clock), so the
//! expiry case uses a short window and a bounded wait.

use std::sync::Arc;
use std::time::Duration;

use galley_identity::{AttemptState, AttemptTracker, Budget, Reservation};

pub use super::lockout::{
    an_attacker_elsewhere_cannot_lock_out_a_user_at_their_usual_address,
    fifty_concurrent_wrong_guesses_verify_at_most_five_passwords,
};

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

/// Charges one attempt to `k` with a budget that never runs out; returns the new state.
async fn charge(tracker: &Tracker, k: &str, window: Duration) -> AttemptState {
    let reservation = tracker.reserve(&[Budget::new(k, u32::MAX)], window).await.expect("reserve");
    assert_eq!(reservation, Reservation::Granted);
    tracker.state(k).await.expect("state")
}

pub async fn unknown_keys_have_no_failures(tracker: Tracker) {
    assert_eq!(tracker.state(&key("unknown")).await.expect("state"), AttemptState::default());
}

pub async fn failures_count_up_within_one_window(tracker: Tracker) {
    let k = key("user");
    let first = charge(&tracker, &k, WINDOW).await;
    assert_open(first, 1, WINDOW);
    let second = charge(&tracker, &k, WINDOW).await;
    assert_open(second, 2, WINDOW);
    assert!(
        second.window_left <= first.window_left,
        "a later failure does not extend the window: {first:?} then {second:?}"
    );
    let state = tracker.state(&k).await.expect("state");
    assert_open(state, 2, WINDOW);
    assert!(state.window_left <= second.window_left, "{state:?}");
}

pub async fn concurrent_reservations_grant_at_most_the_limit(tracker: Tracker) {
    let k = key("burst");
    let attempts = (0..50).map(|_| {
        let tracker = Arc::clone(&tracker);
        let budgets = [Budget::new(k.clone(), 5)];
        tokio::spawn(async move { tracker.reserve(&budgets, WINDOW).await.expect("reserve") })
    });
    let outcomes: Vec<Reservation> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("reservation task"))
        .collect();
    let granted = outcomes.iter().filter(|outcome| **outcome == Reservation::Granted).count();
    assert_eq!(granted, 5, "exactly the budget is granted to 50 racing attempts: {outcomes:?}");
    for outcome in outcomes {
        if let Reservation::Refused { retry_after } = outcome {
            assert!(retry_after > Duration::ZERO && retry_after <= WINDOW, "{retry_after:?}");
        }
    }
    assert_open(tracker.state(&k).await.expect("state"), 5, WINDOW);
}

pub async fn a_refused_reservation_charges_no_budget(tracker: Tracker) {
    let tight = key("tight");
    let loose = key("loose");
    let both = [Budget::new(tight.clone(), 1), Budget::new(loose.clone(), 5)];
    assert_eq!(tracker.reserve(&both, WINDOW).await.expect("reserve"), Reservation::Granted);
    let refused = tracker.reserve(&both, WINDOW).await.expect("reserve");
    assert!(
        matches!(refused, Reservation::Refused { retry_after } if retry_after > Duration::ZERO && retry_after <= WINDOW),
        "{refused:?}"
    );
    assert_open(tracker.state(&tight).await.expect("state"), 1, WINDOW);
    assert_open(tracker.state(&loose).await.expect("state"), 1, WINDOW);
    assert_eq!(
        tracker.reserve(&[Budget::new(loose.clone(), 5)], WINDOW).await.expect("reserve"),
        Reservation::Granted,
        "the other budget alone still has room"
    );
}

pub async fn release_gives_an_attempt_back_but_never_below_zero(tracker: Tracker) {
    let k = key("release");
    let budget = [Budget::new(k.clone(), 2)];
    for _ in 0..2 {
        assert_eq!(tracker.reserve(&budget, WINDOW).await.expect("reserve"), Reservation::Granted);
    }
    assert!(matches!(tracker.reserve(&budget, WINDOW).await.expect("reserve"), Reservation::Refused { .. }));
    tracker.release(std::slice::from_ref(&k)).await.expect("release");
    assert_open(tracker.state(&k).await.expect("state"), 1, WINDOW);
    assert_eq!(tracker.reserve(&budget, WINDOW).await.expect("reserve"), Reservation::Granted);
    for _ in 0..4 {
        tracker.release(std::slice::from_ref(&k)).await.expect("release");
    }
    assert_eq!(tracker.state(&k).await.expect("state").failures, 0, "never below zero");
    let unknown = key("never-charged");
    tracker.release(std::slice::from_ref(&unknown)).await.expect("releasing an unknown key is fine");
    assert_eq!(tracker.state(&unknown).await.expect("state"), AttemptState::default());
}

pub async fn remembered_keys_are_remembered_until_their_ttl(tracker: Tracker) {
    let k = key("known");
    assert!(!tracker.is_remembered(&k).await.expect("is_remembered"));
    tracker.remember(&k, Duration::from_millis(300)).await.expect("remember");
    assert!(tracker.is_remembered(&k).await.expect("is_remembered"));
    assert!(!tracker.is_remembered(&key("other")).await.expect("is_remembered"));
    assert_eq!(tracker.state(&k).await.expect("state"), AttemptState::default(), "not a failure count");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tracker.is_remembered(&k).await.expect("is_remembered") {
        assert!(tokio::time::Instant::now() < deadline, "remembered past its TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn reset_clears_the_count(tracker: Tracker) {
    let k = key("reset");
    for _ in 0..3 {
        charge(&tracker, &k, WINDOW).await;
    }
    tracker.reset(&k).await.expect("reset");
    assert_eq!(tracker.state(&k).await.expect("state"), AttemptState::default());
    tracker.reset(&key("never-failed")).await.expect("resetting an unknown key is fine");
    assert_open(charge(&tracker, &k, WINDOW).await, 1, WINDOW);
}

pub async fn keys_are_independent(tracker: Tracker) {
    let user = key("user");
    let client = key("client");
    for _ in 0..3 {
        charge(&tracker, &user, WINDOW).await;
    }
    assert_open(charge(&tracker, &client, WINDOW).await, 1, WINDOW);
    tracker.reset(&client).await.expect("reset");
    assert_open(tracker.state(&user).await.expect("state"), 3, WINDOW);
}

pub async fn windows_expire_and_counting_starts_over(tracker: Tracker) {
    let k = key("expiring");
    let window = Duration::from_millis(300);
    charge(&tracker, &k, window).await;
    let second = charge(&tracker, &k, window).await;
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
    let fresh = charge(&tracker, &k, WINDOW).await;
    assert_open(fresh, 1, WINDOW);
    assert!(fresh.window_left > window, "a new window starts with its own length: {fresh:?}");
}

/// Expands into one `#[tokio::test]` per attempt tracker contract case. `$make` is an expression
/// evaluating to a future that yields `Some((Arc<dyn AttemptTracker>, guard))`, the guard (a server
/// handle, ...) living until the case ends, or `None` to skip (e.g. no server), which is printed. Cases
/// run on a multi-threaded runtime so the concurrent reservations really race.
#[macro_export]
macro_rules! attempt_tracker_contract_tests {
    ($make:expr) => {
        $crate::attempt_tracker_contract_tests!(@cases $make;
            unknown_keys_have_no_failures,
            failures_count_up_within_one_window,
            concurrent_reservations_grant_at_most_the_limit,
            a_refused_reservation_charges_no_budget,
            release_gives_an_attempt_back_but_never_below_zero,
            remembered_keys_are_remembered_until_their_ttl,
            fifty_concurrent_wrong_guesses_verify_at_most_five_passwords,
            an_attacker_elsewhere_cannot_lock_out_a_user_at_their_usual_address,
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
