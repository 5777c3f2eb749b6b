//! Throttles: a request budget per client address on the public routes that cost the most (a password
//! hash, a token rotation, an outbound feed fetch), so one client cannot make the service do that work
//! at will.
//!
//! Each [`Throttle`] is a token bucket per client (GCRA, from the `governor` crate): `burst` requests at
//! once, refilled at `per_minute`. Over budget, the request is answered 429 `rate_limited` with
//! `Retry-After` (whole seconds until one more request is allowed) and never reaches the handler.
//!
//! The client is the one the standard stack resolved ([`ClientInfo`], so trusted proxies'
//! `X-Forwarded-For` counts and nobody else's), aggregated by [`ClientInfo::budget_key`] (IPv6 by /64).
//! `governor`'s own layer crate (`tower_governor`) would need all three of these replaced (key, answer,
//! clean-up), so the middleware around the limiter is ours; the rate arithmetic and the concurrent
//! keyed store are `governor`'s.
//!
//! Memory stays bounded: every [`SWEEP_EVERY`] (or sooner once [`SWEEP_ABOVE`] clients are tracked) a
//! request also drops the clients whose bucket is full again, which are indistinguishable from new ones.
//! What is left is the clients seen within one refill period.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use galley_platform::{LimitsSettings, ThrottleSettings};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client::ClientInfo;
use crate::problem::Problem;

/// How often buckets that are full again are forgotten.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Tracked clients above which a sweep runs early (at most once a second).
pub const SWEEP_ABOVE: usize = 100_000;

/// A budget that cannot be enforced (zero requests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{route}: `burst` and `per_minute` must both be at least 1")]
pub struct InvalidBudget {
    pub route: &'static str,
}

/// One route's throttle. Clones share the budgets.
#[derive(Debug, Clone)]
pub struct Throttle(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// The `[limits]` key naming the route (`signin`), for logs.
    route: &'static str,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    last_sweep: Mutex<Instant>,
}

impl Throttle {
    /// The throttle `budget` describes, or `None` when `limits` switches every throttle off.
    pub fn from_settings(
        route: &'static str,
        limits: &LimitsSettings,
        budget: ThrottleSettings,
    ) -> Result<Option<Self>, InvalidBudget> {
        if !limits.enabled {
            return Ok(None);
        }
        Self::new(route, budget).map(Some)
    }

    pub fn new(route: &'static str, budget: ThrottleSettings) -> Result<Self, InvalidBudget> {
        let invalid = InvalidBudget { route };
        let burst = NonZeroU32::new(budget.burst).ok_or_else(|| invalid.clone())?;
        let per_minute = NonZeroU32::new(budget.per_minute).ok_or_else(|| invalid.clone())?;
        let period = Duration::from_secs(60) / per_minute.get();
        let quota = Quota::with_period(period).ok_or(invalid)?.allow_burst(burst);
        Ok(Self(Arc::new(Inner {
            route,
            limiter: RateLimiter::keyed(quota),
            last_sweep: Mutex::new(Instant::now()),
        })))
    }

    /// `route` with this throttle in front of its handler.
    pub fn wrap<S: Clone + Send + Sync + 'static>(&self, route: MethodRouter<S>) -> MethodRouter<S> {
        route.layer(middleware::from_fn_with_state(self.clone(), enforce))
    }

    /// Spends one request of `client`'s budget; `Err(wait)` when it is spent, with the time until the
    /// next request is allowed.
    pub fn check(&self, client: &ClientInfo) -> Result<(), Duration> {
        self.sweep_if_due();
        let limiter = &self.0.limiter;
        limiter
            .check_key(&client.budget_key())
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// How many clients' buckets are held in memory.
    pub fn tracked_clients(&self) -> usize {
        self.0.limiter.len()
    }

    /// Forgets every client whose bucket is full again.
    pub fn sweep(&self) {
        self.0.limiter.retain_recent();
        self.0.limiter.shrink_to_fit();
    }

    fn sweep_if_due(&self) {
        // Whoever holds the lock is sweeping already; nobody waits for it.
        let Ok(mut last) = self.0.last_sweep.try_lock() else { return };
        let elapsed = last.elapsed();
        let crowded = elapsed >= Duration::from_secs(1) && self.tracked_clients() > SWEEP_ABOVE;
        if elapsed >= SWEEP_EVERY || crowded {
            self.sweep();
            *last = Instant::now();
        }
    }
}

/// `route` behind `throttle`, if there is one (none when throttles are switched off).
pub fn throttled<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    throttle: Option<&Throttle>,
) -> MethodRouter<S> {
    match throttle {
        Some(throttle) => throttle.wrap(route),
        None => route,
    }
}

/// `wait` rounded up to whole seconds, at least 1: `Retry-After` has no fractions, and 0 would invite an
/// immediate retry that is still refused.
fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

async fn enforce(State(throttle): State<Throttle>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ClientInfo>().copied().unwrap_or_default();
    match throttle.check(&client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = retry_after_seconds(wait);
            tracing::info!(route = throttle.0.route, client = %client.budget_key(), seconds, "throttled");
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                .with_arg("seconds", i64::try_from(seconds).unwrap_or(i64::MAX))
                .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str) -> ClientInfo {
        ClientInfo { ip: ip.parse().ok(), secure: false }
    }

    fn throttle(burst: u32, per_minute: u32) -> Throttle {
        Throttle::new("test", ThrottleSettings { burst, per_minute }).expect("valid budget")
    }

    #[test]
    fn a_burst_then_refusal_with_the_wait_and_other_clients_unaffected() {
        let throttle = throttle(3, 1);
        let alice = client("198.51.100.1");
        for _ in 0..3 {
            assert_eq!(throttle.check(&alice), Ok(()));
        }
        let wait = throttle.check(&alice).expect_err("over budget");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(throttle.check(&client("198.51.100.2")), Ok(()));
        assert!(throttle.check(&client("2001:db8::1")).is_ok());
        assert!(throttle.check(&client("2001:db8::2")).is_ok());
        assert!(throttle.check(&client("2001:db8::3")).is_ok());
        assert!(throttle.check(&client("2001:db8::ffff")).is_err(), "one /64 is one client");
    }

    #[test]
    fn zero_budgets_are_refused_and_the_switch_turns_throttles_off() {
        for (burst, per_minute) in [(0, 5), (5, 0)] {
            let error = Throttle::new("signin", ThrottleSettings { burst, per_minute }).expect_err("zero");
            assert_eq!(error.to_string(), "limits.signin: `burst` and `per_minute` must both be at least 1");
        }
        let budget = ThrottleSettings { burst: 1, per_minute: 1 };
        let off = Throttle::from_settings("signin", &LimitsSettings::disabled(), budget).expect("valid");
        assert!(off.is_none());
        let on = Throttle::from_settings("signin", &LimitsSettings::default(), budget).expect("valid");
        assert!(on.is_some());
    }

    #[test]
    fn a_sweep_forgets_clients_whose_bucket_is_full_again() {
        // One request a millisecond: every bucket is full again almost at once.
        let throttle = throttle(1, 60_000);
        for i in 0..1000_u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0xc612_0000 + i));
            assert!(throttle.check(&ClientInfo { ip: Some(ip), secure: false }).is_ok());
        }
        assert_eq!(throttle.tracked_clients(), 1000);
        std::thread::sleep(Duration::from_millis(20));
        throttle.sweep();
        assert_eq!(throttle.tracked_clients(), 0);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
    }
}
