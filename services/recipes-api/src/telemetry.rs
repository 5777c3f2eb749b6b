//! Sign-in metrics, derived from the identity use case's results in the handler, so the identity
//! crate knows nothing of metrics (ADR 0026): `galley_auth_sign_ins_total{outcome}` with `success`,
//! `invalid_credentials`, `locked_out` (the lockout of ADR 0017 refusing an attempt), `blocked`,
//! `overloaded` (the Argon2 pool full), `invalid` (malformed request) and `error`.

use galley_identity::IdentityError;
use galley_platform::Metrics;
use metrics::{Counter, Unit};

const SIGN_INS: &str = "galley_auth_sign_ins_total";

#[derive(Debug, Clone)]
pub struct SignInMetrics {
    success: Counter,
    invalid_credentials: Counter,
    locked_out: Counter,
    blocked: Counter,
    overloaded: Counter,
    invalid: Counter,
    error: Counter,
}

impl SignInMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        metrics.describe_counter(SIGN_INS, Unit::Count, "Sign-in attempts by outcome.");
        let outcome = |value: &'static str| metrics.counter(SIGN_INS, &[("outcome", value.into())]);
        Self {
            success: outcome("success"),
            invalid_credentials: outcome("invalid_credentials"),
            locked_out: outcome("locked_out"),
            blocked: outcome("blocked"),
            overloaded: outcome("overloaded"),
            invalid: outcome("invalid"),
            error: outcome("error"),
        }
    }

    /// Counts one attempt by how it ended.
    pub fn record<T>(&self, result: &Result<T, IdentityError>) {
        let counter = match result {
            Ok(_) => &self.success,
            Err(IdentityError::InvalidCredentials) => &self.invalid_credentials,
            Err(IdentityError::LockedOut { .. }) => &self.locked_out,
            Err(IdentityError::Blocked) => &self.blocked,
            Err(IdentityError::Overloaded { .. }) => &self.overloaded,
            Err(IdentityError::Invalid(_)) => &self.invalid,
            Err(_) => &self.error,
        };
        counter.increment(1);
    }
}

impl Default for SignInMetrics {
    fn default() -> Self {
        Self::new(&Metrics::disabled())
    }
}

const HASHING_QUEUED: &str = "galley_auth_hashing_queued";
const HASHING_WAIT: &str = "galley_auth_hashing_wait_seconds";
const HASHING_REJECTED: &str = "galley_auth_hashing_rejected_total";

/// The Argon2 pool's queue depth, wait for a hashing thread, and callers turned away (503).
pub fn hashing_pool(metrics: &Metrics) -> galley_crypto::HashingPoolMetrics {
    metrics.describe_gauge(HASHING_QUEUED, Unit::Count, "Password hashes waiting for a hashing thread.");
    metrics.describe_histogram(HASHING_WAIT, Unit::Seconds, "Time a password hash waited for a thread.");
    metrics.describe_counter(
        HASHING_REJECTED,
        Unit::Count,
        "Password hashes refused: queue full or wait too long.",
    );
    galley_crypto::HashingPoolMetrics {
        queued: metrics.gauge(HASHING_QUEUED, &[]),
        wait_seconds: metrics.histogram(HASHING_WAIT, &[]),
        rejected: metrics.counter(HASHING_REJECTED, &[]),
    }
}
