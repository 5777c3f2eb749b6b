//! [`LeasedCredentials`]: dynamic credentials kept valid for as long as the process runs.
//!
//! The life of a lease: obtained at start-up (failing the start if the backend cannot give one);
//! renewed at about two thirds of its TTL; when a renewal fails, or comes back shorter than asked
//! (capped by the lease's max TTL), new credentials are obtained while the old ones still work and
//! published on a [`CredentialsFeed`]. Adapters following the feed open a connection with the new
//! credentials and swap it in; the old lease is revoked after [`RotationTimings::swap_grace`], so only
//! requests still running on the old connection by then can fail. When the backend cannot be reached
//! the current credentials are kept (they work until their lease ends) and [`LeasedCredentials::is_healthy`]
//! turns false for readiness. On shutdown the current lease is revoked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use galley_platform::{Credentials, CredentialsFeed, Lease, SecretsBackend, SecretsError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// When to renew and how long the old credentials outlive a swap.
#[derive(Debug, Clone, Copy)]
pub struct RotationTimings {
    /// Fraction of the TTL after which the lease is renewed (two thirds).
    pub renew_at: f64,
    /// How long a replaced lease stays valid so requests on the old connection can finish.
    pub swap_grace: Duration,
    /// Wait between attempts while the backend is unreachable (shortened as expiry nears).
    pub retry: Duration,
}

impl Default for RotationTimings {
    fn default() -> Self {
        Self { renew_at: 2.0 / 3.0, swap_grace: Duration::from_secs(2), retry: Duration::from_secs(2) }
    }
}

/// One lease path's credentials, renewed and rotated in the background.
#[derive(Debug)]
pub struct LeasedCredentials {
    path: String,
    feed: CredentialsFeed,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Whether a lease can still be renewed or replaced (see [`LeasedCredentials::health`]).
#[derive(Debug, Clone)]
pub struct LeaseHealth(Arc<Shared>);

impl LeaseHealth {
    pub fn is_healthy(&self) -> bool {
        self.0.healthy.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Shared {
    backend: Arc<dyn SecretsBackend>,
    /// The lease whose credentials are published now.
    current: std::sync::Mutex<String>,
    healthy: AtomicBool,
    rotations: AtomicU64,
}

/// The lease being kept alive by the task.
struct Held {
    lease: Lease,
    /// TTL asked for at each renewal: the TTL the lease was issued with.
    issued_ttl: Duration,
    expires_at: Instant,
    renew_due: Instant,
}

impl Held {
    fn new(lease: Lease, timings: &RotationTimings) -> Self {
        let now = Instant::now();
        Self {
            issued_ttl: lease.ttl,
            expires_at: now + lease.ttl,
            renew_due: now + lease.ttl.mul_f64(timings.renew_at),
            lease,
        }
    }
}

impl LeasedCredentials {
    /// Obtains credentials from `path` and starts keeping them valid.
    pub async fn obtain(
        backend: Arc<dyn SecretsBackend>,
        path: &str,
        timings: RotationTimings,
    ) -> Result<Self, SecretsError> {
        let lease = backend.lease(path).await?;
        tracing::info!(path, username = %lease.username, ttl = ?lease.ttl, "leased credentials");
        let (sender, feed) = watch::channel(credentials_of(&lease));
        let shared = Arc::new(Shared {
            backend,
            current: std::sync::Mutex::new(lease.id.clone()),
            healthy: AtomicBool::new(true),
            rotations: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        let held = Held::new(lease, &timings);
        let task =
            tokio::spawn(keep(Arc::clone(&shared), path.to_owned(), held, sender, timings, stop.clone()));
        Ok(Self { path: path.to_owned(), feed, shared, stop, task })
    }

    /// The credentials to connect with now, and every later replacement.
    pub fn feed(&self) -> CredentialsFeed {
        self.feed.clone()
    }

    /// The lease path (`database/creds/cache`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// False while the backend cannot renew or replace the lease (the current credentials still work
    /// until their lease ends).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// A handle on [`LeasedCredentials::is_healthy`] for readiness checks, which outlive no lease.
    pub fn health(&self) -> LeaseHealth {
        LeaseHealth(Arc::clone(&self.shared))
    }

    /// How many times the credentials were replaced.
    pub fn rotations(&self) -> u64 {
        self.shared.rotations.load(Ordering::Relaxed)
    }

    /// Stops renewing and revokes the current lease (the server deletes the user and closes its
    /// connections): call after the adapters using it are closed.
    pub async fn revoke(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the lease task failed");
        }
        let lease_id = self.shared.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match self.shared.backend.revoke(&lease_id).await {
            Ok(()) => tracing::info!(path = %self.path, "revoked leased credentials"),
            Err(error) => {
                tracing::warn!(path = %self.path, %error, "revoking leased credentials failed; they expire with their lease")
            }
        }
    }
}

fn credentials_of(lease: &Lease) -> Credentials {
    Credentials { username: lease.username.clone(), password: lease.password.clone() }
}

/// The background task: renew, rotate, retry, until `stop`.
async fn keep(
    shared: Arc<Shared>,
    path: String,
    mut held: Held,
    sender: watch::Sender<Credentials>,
    timings: RotationTimings,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(held.renew_due.into()) => {}
        }
        if held.lease.renewable {
            match shared.backend.renew(&held.lease.id, held.issued_ttl).await {
                Ok(renewal) if renewal.ttl >= held.issued_ttl => {
                    let now = Instant::now();
                    held.expires_at = now + renewal.ttl;
                    held.renew_due = now + renewal.ttl.mul_f64(timings.renew_at);
                    shared.healthy.store(true, Ordering::Relaxed);
                    tracing::debug!(%path, ttl = ?renewal.ttl, "renewed lease");
                    continue;
                }
                Ok(renewal) => {
                    held.expires_at = Instant::now() + renewal.ttl;
                    tracing::debug!(%path, ttl = ?renewal.ttl, "lease near its max TTL; obtaining new credentials");
                }
                Err(error) => {
                    tracing::warn!(%path, %error, "renewing the lease failed; obtaining new credentials")
                }
            }
        }
        match shared.backend.lease(&path).await {
            Ok(lease) => {
                tracing::info!(%path, username = %lease.username, ttl = ?lease.ttl, "rotated leased credentials");
                let old = std::mem::replace(&mut held, Held::new(lease, &timings));
                *shared.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    held.lease.id.clone();
                // Adapters connect with the new credentials as soon as they see them.
                sender.send_replace(credentials_of(&held.lease));
                shared.rotations.fetch_add(1, Ordering::Relaxed);
                shared.healthy.store(true, Ordering::Relaxed);
                retire(Arc::clone(&shared.backend), old.lease.id, timings.swap_grace, stop.clone());
            }
            Err(error) => {
                shared.healthy.store(false, Ordering::Relaxed);
                let left = held.expires_at.saturating_duration_since(Instant::now());
                tracing::warn!(%path, %error, left = ?left, "cannot obtain new credentials; keeping the current ones");
                // Try again soon, and more often as the end of the lease nears.
                let wait = timings.retry.min(left / 3).max(Duration::from_millis(100));
                held.renew_due = Instant::now() + wait;
            }
        }
    }
}

/// Revokes a replaced lease once requests on the old connection had `grace` to finish (at shutdown
/// at once: nothing uses it any more).
fn retire(backend: Arc<dyn SecretsBackend>, lease_id: String, grace: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(grace) => {}
        }
        if let Err(error) = backend.revoke(&lease_id).await {
            tracing::debug!(%error, "revoking a replaced lease failed; it expires by itself");
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use galley_platform::secret::ExposeSecret as _;
    use galley_platform::{LeaseRenewal, Secret};

    use super::*;

    /// Leases with a TTL and a max TTL, like Vault's; can be switched off.
    #[derive(Debug)]
    struct FakeBackend {
        ttl: Duration,
        max_ttl: Duration,
        state: Mutex<FakeState>,
    }

    #[derive(Debug, Default)]
    struct FakeState {
        issued: u64,
        /// lease id → when it was issued.
        live: BTreeMap<String, Instant>,
        down: bool,
    }

    impl FakeBackend {
        fn new(ttl: Duration, max_ttl: Duration) -> Arc<Self> {
            Arc::new(Self { ttl, max_ttl, state: Mutex::new(FakeState::default()) })
        }

        fn set_down(&self, down: bool) {
            self.state.lock().expect("state").down = down;
        }

        fn live(&self) -> usize {
            self.state.lock().expect("state").live.len()
        }
    }

    #[async_trait]
    impl SecretsBackend for FakeBackend {
        async fn read_static(&self, _: &str) -> Result<BTreeMap<String, Secret>, SecretsError> {
            Ok(BTreeMap::new())
        }

        async fn lease(&self, path: &str) -> Result<Lease, SecretsError> {
            let mut state = self.state.lock().expect("state");
            if state.down {
                return Err(SecretsError::Unavailable("down".into()));
            }
            state.issued += 1;
            let id = format!("{path}/{}", state.issued);
            state.live.insert(id.clone(), Instant::now());
            Ok(Lease {
                id,
                ttl: self.ttl,
                renewable: true,
                username: format!("user-{}", state.issued),
                password: Secret::from(format!("password-{}", state.issued)),
            })
        }

        async fn renew(&self, lease_id: &str, increment: Duration) -> Result<LeaseRenewal, SecretsError> {
            let state = self.state.lock().expect("state");
            if state.down {
                return Err(SecretsError::Unavailable("down".into()));
            }
            let issued = state.live.get(lease_id).ok_or_else(|| SecretsError::NotFound(lease_id.into()))?;
            let left = self.max_ttl.saturating_sub(issued.elapsed());
            Ok(LeaseRenewal { ttl: increment.min(left) })
        }

        async fn revoke(&self, lease_id: &str) -> Result<(), SecretsError> {
            self.state.lock().expect("state").live.remove(lease_id);
            Ok(())
        }
    }

    fn quick() -> RotationTimings {
        RotationTimings {
            swap_grace: Duration::from_millis(100),
            retry: Duration::from_millis(100),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn credentials_are_renewed_then_replaced_before_the_max_ttl_and_revoked_at_the_end() {
        let backend = FakeBackend::new(Duration::from_millis(600), Duration::from_millis(1500));
        let leased =
            LeasedCredentials::obtain(backend.clone(), "database/creds/cache", quick()).await.expect("lease");
        let mut feed = leased.feed();
        assert_eq!(feed.borrow().username, "user-1");

        let deadline = Instant::now() + Duration::from_secs(10);
        while leased.rotations() < 2 {
            assert!(Instant::now() < deadline, "two rotations within 10 s");
            tokio::time::timeout(Duration::from_secs(5), feed.changed())
                .await
                .expect("a change")
                .expect("feed open");
        }
        let now = feed.borrow().clone();
        assert_eq!(now.username, "user-3");
        assert_eq!(now.password.expose_secret(), "password-3");
        assert!(leased.is_healthy());

        leased.revoke().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while backend.live() > 0 {
            assert!(Instant::now() < deadline, "every lease revoked, {} left", backend.live());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_unreachable_backend_keeps_the_current_credentials_and_reports_unhealthy() {
        let backend = FakeBackend::new(Duration::from_millis(600), Duration::from_secs(60));
        let leased =
            LeasedCredentials::obtain(backend.clone(), "rabbitmq/creds/bus", quick()).await.expect("lease");
        backend.set_down(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        while leased.is_healthy() {
            assert!(Instant::now() < deadline, "unhealthy once renewal fails");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(leased.feed().borrow().username, "user-1", "the current credentials stay");

        backend.set_down(false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !leased.is_healthy() {
            assert!(Instant::now() < deadline, "healthy again once the backend is back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        leased.revoke().await;
    }

    #[tokio::test]
    async fn no_lease_at_start_up_is_an_error() {
        let backend = FakeBackend::new(Duration::from_secs(1), Duration::from_secs(2));
        backend.set_down(true);
        let error =
            LeasedCredentials::obtain(backend, "database/creds/store", quick()).await.expect_err("down");
        assert!(matches!(error, SecretsError::Unavailable(_)));
    }
}
