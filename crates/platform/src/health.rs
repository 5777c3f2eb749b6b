//! Readiness: each dependency (store, cache, bus, ...) registers a [`HealthCheck`]; the readiness report
//! runs them all concurrently, each under a timeout, and says which one failed.
//!
//! The report is public (load balancers and orchestrators read it without credentials), so it names
//! each dependency and its status only. A failed check's reason — driver errors, host names, addresses —
//! goes to the log, inside the request's span, never into the report.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

/// One dependency's probe. Implementations must be cheap (a ping), as probes run every few seconds.
#[async_trait]
pub trait HealthCheck: Send + Sync + std::fmt::Debug {
    /// Stable name shown in the report (`store`, `cache`).
    fn name(&self) -> &'static str;

    /// `Err` carries a reason for operators. It is logged, not shown in the report; still, it must hold
    /// no secret (a password in a connection string, a token).
    async fn check(&self) -> Result<(), String>;

    /// A non-critical dependency (the cache) degrades readiness instead of failing it.
    fn critical(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Up,
    Degraded,
    Down,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    pub latency_ms: u64,
    /// Why the check failed: for the log only, never serialized into the public report.
    #[serde(skip)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    pub status: Status,
    pub checks: Vec<CheckResult>,
}

impl ReadinessReport {
    /// Runs every check concurrently; a check slower than `timeout` counts as failed.
    pub async fn collect(checks: &[std::sync::Arc<dyn HealthCheck>], timeout: Duration) -> Self {
        let results = futures::future::join_all(checks.iter().map(|check| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, check.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (status, error) = match outcome {
                Ok(()) => (Status::Up, None),
                Err(error) if check.critical() => (Status::Down, Some(error)),
                Err(error) => (Status::Degraded, Some(error)),
            };
            if let Some(error) = &error {
                tracing::warn!(dependency = check.name(), ?status, latency_ms, %error, "readiness check failed");
            }
            CheckResult { name: check.name(), status, latency_ms, error }
        }))
        .await;
        let status = results.iter().map(|r| r.status).max_by_key(|s| *s as u8).unwrap_or(Status::Up);
        Self { status, checks: results }
    }

    /// Ready means no critical dependency is down (a degraded cache still serves).
    pub fn is_ready(&self) -> bool {
        self.status != Status::Down
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Debug)]
    struct Fixed(&'static str, bool, bool);

    #[async_trait]
    impl HealthCheck for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn check(&self) -> Result<(), String> {
            if self.1 { Ok(()) } else { Err("refused".into()) }
        }
        fn critical(&self) -> bool {
            self.2
        }
    }

    #[derive(Debug)]
    struct Hangs;

    #[async_trait]
    impl HealthCheck for Hangs {
        fn name(&self) -> &'static str {
            "hangs"
        }
        async fn check(&self) -> Result<(), String> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_failed_optional_check_degrades_and_a_critical_one_fails() {
        let degraded: Vec<Arc<dyn HealthCheck>> =
            vec![Arc::new(Fixed("store", true, true)), Arc::new(Fixed("cache", false, false))];
        let report = ReadinessReport::collect(&degraded, Duration::from_secs(1)).await;
        assert_eq!(report.status, Status::Degraded);
        assert!(report.is_ready());

        let down: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(Fixed("store", false, true))];
        let report = ReadinessReport::collect(&down, Duration::from_secs(1)).await;
        assert_eq!(report.status, Status::Down);
        assert!(!report.is_ready());
        assert_eq!(report.checks[0].error.as_deref(), Some("refused"));
    }

    #[derive(Debug)]
    struct LeaksInternals;

    #[async_trait]
    impl HealthCheck for LeaksInternals {
        fn name(&self) -> &'static str {
            "store"
        }
        async fn check(&self) -> Result<(), String> {
            Err("Server selection timeout: 10.1.2.3:27017 (mongodb://admin:hunter2@db) refused".into())
        }
    }

    #[tokio::test]
    async fn the_public_report_names_dependencies_but_never_their_errors() {
        let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(LeaksInternals)];
        let report = ReadinessReport::collect(&checks, Duration::from_secs(1)).await;
        let public = serde_json::to_string(&report).expect("serializes");
        assert!(public.contains("\"store\"") && public.contains("\"down\""), "{public}");
        for internal in ["10.1.2.3", "27017", "hunter2", "mongodb://", "refused", "error"] {
            assert!(!public.contains(internal), "{internal} leaked into {public}");
        }
        assert!(
            report.checks[0].error.as_deref().is_some_and(|e| e.contains("10.1.2.3")),
            "kept for the log"
        );
    }

    #[tokio::test]
    async fn a_hanging_check_times_out_as_down() {
        let checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(Hangs)];
        let report = ReadinessReport::collect(&checks, Duration::from_millis(20)).await;
        assert_eq!(report.status, Status::Down);
    }
}
