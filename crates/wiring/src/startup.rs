//! Waiting for dependencies at start-up. Containers started together (compose without health checks,
//! a Kubernetes rollout beside a fresh broker) race their servers: a service that gives up on the first
//! refused connection crash-loops until the server is up. `connect_wait` (per server, 0 by default)
//! lets start-up retry instead, with capped exponential backoff and one warning per failed attempt.
//! Only start-up waits: after it, the adapters heal their own connections.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// The first pause between attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Runs `connect` until it succeeds or `wait` has passed since the first attempt; then returns the
/// last error. With a zero `wait` it is exactly one attempt.
pub(crate) async fn connect_within<T, E, F, Fut>(what: &str, wait: Duration, mut connect: F) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1_u32;
    loop {
        let error = match connect().await {
            Ok(connected) => return Ok(connected),
            Err(error) => error,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(error);
        }
        let pause_now = pause.min(deadline - now);
        tracing::warn!(%error, attempt, retry_in = ?pause_now, "{what} cannot be reached yet; retrying (connect_wait)");
        tokio::time::sleep(pause_now).await;
        pause = (pause * 2).min(MAX_PAUSE);
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A server that refuses the first `refusals` attempts.
    fn flaky(refusals: u32) -> (Arc<AtomicU32>, impl FnMut() -> std::future::Ready<Result<u32, String>>) {
        let attempts = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&attempts);
        let connect = move || {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(if attempt > refusals {
                Ok(attempt)
            } else {
                Err(format!("refused #{attempt}"))
            })
        };
        (attempts, connect)
    }

    // Real time, not tokio's paused clock: its `test-util` feature would unify into every build of
    // tokio in the workspace. The waits are short; sleeps only ever overshoot, so counts are exact.

    #[tokio::test]
    async fn no_wait_means_one_attempt() {
        let (attempts, connect) = flaky(1);
        let result = connect_within("redis", Duration::ZERO, connect).await;
        assert_eq!(result, Err("refused #1".to_owned()));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_until_the_server_answers() {
        let (attempts, connect) = flaky(2);
        let started = std::time::Instant::now();
        let result = connect_within("redis", Duration::from_secs(60), connect).await;
        assert_eq!(result, Ok(3));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        // 0.25 + 0.5 s of backoff.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(750) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    #[tokio::test]
    async fn gives_up_with_the_last_error_when_the_wait_is_over() {
        let (attempts, connect) = flaky(u32::MAX);
        let started = std::time::Instant::now();
        let result = connect_within("rabbitmq", Duration::from_secs(1), connect).await;
        // Pauses 0.25, 0.5, then the 0.25 s left: the fourth attempt is the last.
        assert_eq!(result, Err("refused #4".to_owned()));
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}
