//! Contract suites: one function per behaviour, each given a fresh, empty adapter. The
//! `*_contract_tests!` macros expand them into one `#[tokio::test]` per case, so each adapter's test file
//! is a single macro call and a failure names the broken behaviour.
//!
//! The identity suites never rely on the adapter being empty (random keys and ids per case), so they
//! also run against servers shared between runs.

use std::future::Future;
use std::time::Duration;

pub mod attempts;
pub mod bus;
pub mod cache;
pub mod lockout;
pub mod provider_sessions;
pub mod recipe_repository;
pub mod refresh_tokens;
pub mod revocation_list;
pub mod rss;
pub mod signing_keys;
pub mod users;

/// How long a contract case (and, separately, its fixture) may take. Generous for a loaded 2-core
/// machine, but a hang — a server that never answers, a teardown waiting on a blocked runtime — fails the
/// case in minutes instead of eating CI's 90.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one contract case: builds the fixture, runs `case` on its port within [`CASE_TIMEOUT`], then
/// drops the fixture's guard (its clean-up), which also happens when the case panics or times out.
/// A fixture answering `None` has no server to run against: the case is reported as skipped.
///
/// Called by the `*_contract_tests!` macros, so every suite and every adapter gets the same bounds.
pub async fn run_case<Port, Guard, Case>(
    name: &str,
    fixture: impl Future<Output = Option<(Port, Guard)>>,
    case: impl FnOnce(Port) -> Case,
) where
    Case: Future<Output = ()>,
{
    run_case_within(CASE_TIMEOUT, name, fixture, case).await;
}

async fn run_case_within<Port, Guard, Case>(
    limit: Duration,
    name: &str,
    fixture: impl Future<Output = Option<(Port, Guard)>>,
    case: impl FnOnce(Port) -> Case,
) where
    Case: Future<Output = ()>,
{
    let Ok(made) = tokio::time::timeout(limit, fixture).await else {
        panic!("{name}: the fixture was not ready within {limit:?}");
    };
    let Some((port, guard)) = made else {
        eprintln!("SKIPPED {name}: no server for this adapter");
        return;
    };
    if tokio::time::timeout(limit, case(port)).await.is_err() {
        panic!("{name}: did not finish within {limit:?}");
    }
    drop(guard);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Records that the fixture's clean-up ran.
    struct Cleanup(Arc<AtomicBool>);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    async fn run_hanging_case(cleaned: Arc<AtomicBool>) {
        let fixture = async move { Some(((), Cleanup(cleaned))) };
        run_case_within(Duration::from_millis(50), "hangs", fixture, |()| std::future::pending()).await;
    }

    #[tokio::test]
    async fn a_hanging_case_fails_fast_and_still_cleans_up() {
        let cleaned = Arc::new(AtomicBool::new(false));
        let outcome = tokio::spawn(run_hanging_case(cleaned.clone())).await;
        let panic = outcome.expect_err("a hang fails the case").into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("hangs: did not finish within 50ms"), "{message}");
        assert!(cleaned.load(Ordering::SeqCst), "the guard is dropped when the case times out");
    }

    #[tokio::test]
    async fn a_fixture_without_a_server_skips_the_case() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        run_case("skipped", async { None::<((), ())> }, move |()| async move {
            flag.store(true, Ordering::SeqCst)
        })
        .await;
        assert!(!ran.load(Ordering::SeqCst));
    }
}
