//! A measuring decorator around the [`SecretsBackend`] that keeps leased credentials alive:
//! `galley_vault_lease_renewals_total{lease, result}` and `galley_vault_lease_issues_total{lease,
//! result}` (`success`, `failure`). `lease` names the dependency (`store`, `cache`, `bus`), never a
//! lease id.
//!
//! A failed renewal is what the `GalleyVaultLeaseFailures` alert watches: the service keeps working on
//! its current credentials until their lease ends, so the failure is only visible here and in
//! readiness. Issues count the first lease and every replacement (at the max TTL, or after a renewal
//! was refused).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use galley_platform::{Lease, LeaseRenewal, Metrics, Secret, SecretsBackend, SecretsError};
use metrics::{Counter, Unit};

pub const RENEWALS: &str = "galley_vault_lease_renewals_total";
pub const ISSUES: &str = "galley_vault_lease_issues_total";

/// `inner` with the lease calls for `lease` counted into `metrics`; with metrics off, `inner` itself.
pub fn metered_lease_backend(
    inner: Arc<dyn SecretsBackend>,
    lease: &'static str,
    metrics: &Metrics,
) -> Arc<dyn SecretsBackend> {
    if !metrics.is_enabled() {
        return inner;
    }
    metrics.describe_counter(
        RENEWALS,
        Unit::Count,
        "Renewals of leased credentials, by dependency and result.",
    );
    metrics.describe_counter(ISSUES, Unit::Count, "Leased credentials obtained (first and replacements).");
    let counter = |name: &'static str, result: &'static str| {
        metrics.counter(name, &[("lease", lease.into()), ("result", result.into())])
    };
    Arc::new(MeteredLeaseBackend {
        renewed: counter(RENEWALS, "success"),
        renewal_failed: counter(RENEWALS, "failure"),
        issued: counter(ISSUES, "success"),
        issue_failed: counter(ISSUES, "failure"),
        inner,
    })
}

#[derive(Debug)]
struct MeteredLeaseBackend {
    inner: Arc<dyn SecretsBackend>,
    renewed: Counter,
    renewal_failed: Counter,
    issued: Counter,
    issue_failed: Counter,
}

fn count<T>(result: &Result<T, SecretsError>, success: &Counter, failure: &Counter) {
    match result {
        Ok(_) => success.increment(1),
        Err(_) => failure.increment(1),
    }
}

#[async_trait]
impl SecretsBackend for MeteredLeaseBackend {
    async fn read_static(&self, path: &str) -> Result<BTreeMap<String, Secret>, SecretsError> {
        self.inner.read_static(path).await
    }

    async fn lease(&self, path: &str) -> Result<Lease, SecretsError> {
        let result = self.inner.lease(path).await;
        count(&result, &self.issued, &self.issue_failed);
        result
    }

    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<LeaseRenewal, SecretsError> {
        let result = self.inner.renew(lease_id, increment).await;
        count(&result, &self.renewed, &self.renewal_failed);
        result
    }

    async fn revoke(&self, lease_id: &str) -> Result<(), SecretsError> {
        self.inner.revoke(lease_id).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Leases `user-N`; refuses renewals once `refuse` is set.
    #[derive(Debug, Default)]
    struct FakeVault {
        refuse: Mutex<bool>,
        issued: Mutex<u32>,
    }

    #[async_trait]
    impl SecretsBackend for FakeVault {
        async fn read_static(&self, _path: &str) -> Result<BTreeMap<String, Secret>, SecretsError> {
            Ok(BTreeMap::new())
        }

        async fn lease(&self, _path: &str) -> Result<Lease, SecretsError> {
            let mut issued = self.issued.lock().expect("lock");
            *issued += 1;
            Ok(Lease {
                id: format!("lease-{issued}"),
                ttl: Duration::from_secs(60),
                renewable: true,
                username: format!("user-{issued}"),
                password: Secret::from("pw".to_owned()),
            })
        }

        async fn renew(&self, _lease_id: &str, increment: Duration) -> Result<LeaseRenewal, SecretsError> {
            if *self.refuse.lock().expect("lock") {
                Err(SecretsError::Unavailable("sealed".into()))
            } else {
                Ok(LeaseRenewal { ttl: increment })
            }
        }

        async fn revoke(&self, _lease_id: &str) -> Result<(), SecretsError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn renewals_and_issues_are_counted_by_result() {
        let metrics = Metrics::new(galley_platform::BuildInfo { service: "test", version: "0" });
        let vault = Arc::new(FakeVault::default());
        let backend = metered_lease_backend(vault.clone(), "cache", &metrics);
        let lease = backend.lease("database/creds/cache").await.expect("leased");
        backend.renew(&lease.id, Duration::from_secs(60)).await.expect("renewed");
        backend.renew(&lease.id, Duration::from_secs(60)).await.expect("renewed");
        *vault.refuse.lock().expect("lock") = true;
        assert!(backend.renew(&lease.id, Duration::from_secs(60)).await.is_err());

        let rendered = metrics.render().expect("enabled");
        for line in [
            r#"galley_vault_lease_issues_total{lease="cache",result="success"} 1"#,
            r#"galley_vault_lease_renewals_total{lease="cache",result="success"} 2"#,
            r#"galley_vault_lease_renewals_total{lease="cache",result="failure"} 1"#,
        ] {
            assert!(rendered.contains(line), "missing {line}:\n{rendered}");
        }
    }
}
