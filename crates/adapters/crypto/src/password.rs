//! Argon2id password hashing on a bounded pool.
//!
//! Default parameters follow OWASP's password storage guidance for Argon2id: 19 MiB of memory, 2
//! iterations, 1 lane. That costs an attacker with a leaked database ~19 MiB and two passes per guess,
//! and costs us a few tens of milliseconds per sign-in on one core, which dominates sign-in latency by
//! design. Hashes are PHC strings that carry their own parameters, so raising them later keeps old
//! hashes verifiable.
//!
//! Each hash holds 19 MiB while it runs, so how many run at once is what bounds memory. Hashing runs
//! on [`Argon2Params::max_concurrent`] dedicated threads (never on the async workers; default: one per
//! core, more would only queue inside the OS scheduler). Callers beyond that wait in a
//! queue of at most [`Argon2Params::max_queued`], each for at most [`Argon2Params::max_wait_ms`]; a
//! caller that finds the queue full, or waits too long, gets `IdentityError::Overloaded` (a 503 with
//! `Retry-After`) instead of piling up work. A waiter whose request is dropped (client gone, request
//! timeout) leaves the queue without hashing; a hash that has started runs to completion, holding its
//! slot, so the memory bound holds even then.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use galley_identity::{IdentityError, Password, PasswordHasher};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Tunable cost of one hash, and the bounds of the hashing pool (`[identity.argon2]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes running at once; `0` means one per available core.
    pub max_concurrent: usize,
    /// Callers allowed to wait for a free slot; beyond that they are refused at once.
    pub max_queued: usize,
    /// Longest a caller waits for a slot before it is refused (milliseconds).
    pub max_wait_ms: u64,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
            max_queued: 32,
            max_wait_ms: 2_000,
        }
    }
}

/// What a refused caller is told to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a hashing thread keeps its Argon2 memory with nothing to do; under a stream of sign-ins it
/// is reused hash after hash. What releasing achieves depends on the allocator: glibc maps a thread's
/// first 19 MiB block on its own and unmaps it when freed, so the one hash made at start-up (the
/// timing equaliser) no longer pins 19 MiB in a process that has served no sign-in (idle RSS of
/// `galley serve` 47 → 28 MiB). Freeing raises glibc's mmap threshold to that size, so later blocks come
/// from the thread's arena and stay resident after release: a process that has hashed since stays at
/// most `max_concurrent × memory_kib`, as before. Giving those back too would take our own `mmap`
/// (unsafe code, forbidden here) or a process-wide allocator setting. The next hash after a pause
/// zeroes its memory again (about a millisecond per 19 MiB here).
const IDLE_MEMORY_RELEASE: Duration = Duration::from_millis(500);

/// What the pool reports (ADR 0026), as plain `metrics` handles so this adapter needs no registry:
/// callers waiting for a hashing thread, how long they waited, and callers turned away (`Overloaded`).
/// The default records nothing.
#[derive(Debug, Clone)]
pub struct HashingPoolMetrics {
    pub queued: metrics::Gauge,
    pub wait_seconds: metrics::Histogram,
    pub rejected: metrics::Counter,
}

impl Default for HashingPoolMetrics {
    fn default() -> Self {
        Self {
            queued: metrics::Gauge::noop(),
            wait_seconds: metrics::Histogram::noop(),
            rejected: metrics::Counter::noop(),
        }
    }
}

/// Leaves the queue gauge however the wait ends (slot, timeout, caller gone).
struct Queued<'a>(&'a metrics::Gauge);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A unit of hashing work for the pool's threads.
type Job = Box<dyn FnOnce() + Send>;

/// Dedicated hashing threads, admission to the queue in front of them, and their running slots.
///
/// Dedicated threads rather than tokio's blocking pool: the allocator keeps memory freed by a thread
/// in that thread's arena, so 19 MiB hashes spread over the blocking pool's many threads leave up to
/// 19 MiB resident per thread ever used. With exactly `max_concurrent` threads the resident memory of
/// hashing is bounded by `max_concurrent × memory_kib` for the life of the process.
#[derive(Debug)]
struct HashingPool {
    /// Running plus waiting callers: `max_concurrent + max_queued` permits, taken without waiting.
    admitted: Arc<Semaphore>,
    /// Running hashes: `max_concurrent` permits, one per thread, so a job sent always finds a thread.
    running: Arc<Semaphore>,
    max_wait: Duration,
    /// Hands jobs to the threads (each receives on its own: an idle one can time out and release its
    /// memory while another waits too); they stop when the pool (this sender) is dropped.
    jobs: crossbeam_channel::Sender<Job>,
}

impl HashingPool {
    fn new(max_concurrent: usize, max_queued: usize, max_wait: Duration) -> Self {
        let max_concurrent = if max_concurrent == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            max_concurrent
        };
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let mut threads: usize = 0;
        for index in 0..max_concurrent {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{index}")).spawn(move || {
                loop {
                    let job = match queue.recv_timeout(IDLE_MEMORY_RELEASE) {
                        Ok(job) => job,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            release_memory();
                            match queue.recv() {
                                Ok(job) => job,
                                Err(_) => return, // the pool is gone
                            }
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    };
                    // A panicking job drops its answer (the caller gets an error) and its permits;
                    // the thread lives on for the next one.
                    drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
                }
            });
            match spawned {
                Ok(_) => threads += 1,
                Err(error) => tracing::error!(%error, "could not start a password hashing thread"),
            }
        }
        Self {
            admitted: Arc::new(Semaphore::new(threads.saturating_add(max_queued))),
            running: Arc::new(Semaphore::new(threads)),
            max_wait,
            jobs,
        }
    }

    /// Runs `work` on a hashing thread once a slot is free (see the module docs for the bounds).
    async fn run<T: Send + 'static>(
        &self,
        metrics: &HashingPoolMetrics,
        work: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let overloaded = || {
            metrics.rejected.increment(1);
            IdentityError::Overloaded { retry_after: RETRY_AFTER }
        };
        let admission = Arc::clone(&self.admitted).try_acquire_owned().map_err(|_| overloaded())?;
        // Dropping this future here (the request went away) drops `admission`: the caller leaves the
        // queue and `work` never runs.
        let waiting_since = std::time::Instant::now();
        metrics.queued.increment(1.0);
        let queued = Queued(&metrics.queued);
        let slot = tokio::time::timeout(self.max_wait, Arc::clone(&self.running).acquire_owned()).await;
        drop(queued);
        metrics.wait_seconds.record(waiting_since.elapsed().as_secs_f64());
        let slot = slot
            .map_err(|_| overloaded())?
            .map_err(|_| IdentityError::Internal("hashing pool closed".into()))?;
        let (result, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Held until the hash is done, even if nobody waits for the result any more.
            let _permits = (admission, slot);
            let _ = result.send(work());
        });
        self.jobs.send(job).map_err(|_| IdentityError::Internal("no password hashing thread".into()))?;
        answer.await.map_err(|_| IdentityError::Internal("hashing thread stopped".into()))?
    }
}

thread_local! {
    /// The Argon2 memory of this hashing thread, reused by every hash it runs while hashes keep coming,
    /// and released after [`IDLE_MEMORY_RELEASE`] without one (see there for what that returns). Allocating 19 MiB (64-byte aligned) for
    /// every hash fragments the allocator's arenas: measured, resident memory grew by ~19 MiB with every
    /// hash and never came back. Reusing one buffer per thread keeps hashing at a steady
    /// `max_concurrent × memory_kib` at most.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives this thread's Argon2 memory back (a no-op when it holds none).
fn release_memory() {
    MEMORY.with_borrow_mut(|memory| *memory = Vec::new());
}

/// How much Argon2 memory this thread holds now, in blocks.
#[cfg(test)]
fn held_blocks() -> usize {
    MEMORY.with_borrow(Vec::capacity)
}

fn malformed(error: impl std::fmt::Display) -> IdentityError {
    IdentityError::Internal(format!("stored hash is malformed: {error}"))
}

fn hashing_error(error: impl std::fmt::Display) -> IdentityError {
    IdentityError::Internal(format!("hashing failed: {error}"))
}

/// Argon2 of `password` and `salt` under `argon` (whose parameters are `params`), computed in this
/// thread's reusable memory.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: Salt<'_>,
) -> Result<Output, IdentityError> {
    let mut salt_buffer = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buffer).map_err(hashing_error)?;
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    MEMORY.with_borrow_mut(|memory| {
        memory.resize(params.block_count(), Block::new());
        Output::init_with(length, |out| {
            argon
                .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
                .map_err(Into::into)
        })
        .map_err(hashing_error)
    })
}

#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    argon: Argon2<'static>,
    params: Params,
    pool: Arc<HashingPool>,
    metrics: HashingPoolMetrics,
}

impl Argon2Hasher {
    pub fn new(params: Argon2Params) -> Result<Self, IdentityError> {
        let pool = HashingPool::new(
            params.max_concurrent,
            params.max_queued,
            Duration::from_millis(params.max_wait_ms),
        );
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|error| IdentityError::Internal(format!("invalid Argon2 parameters: {error}")))?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            params,
            pool: Arc::new(pool),
            metrics: HashingPoolMetrics::default(),
        })
    }

    /// Reports the pool's queue, waits and refusals through `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: HashingPoolMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<String, IdentityError> {
        let password = password.expose().to_owned();
        let (argon, params) = (self.argon.clone(), self.params.clone());
        self.pool
            .run(&self.metrics, move || {
                let salt = SaltString::generate(&mut OsRng);
                let output = compute(&argon, &params, password.as_bytes(), salt.as_salt())?;
                let phc = PasswordHash {
                    algorithm: Algorithm::Argon2id.ident(),
                    version: Some(Version::V0x13.into()),
                    params: ParamsString::try_from(&params).map_err(hashing_error)?,
                    salt: Some(salt.as_salt()),
                    hash: Some(output),
                };
                Ok(phc.to_string())
            })
            .await
    }

    async fn verify(&self, password: &Password, hash: &str) -> Result<bool, IdentityError> {
        let password = password.expose().to_owned();
        let hash = hash.to_owned();
        self.pool
            .run(&self.metrics, move || {
                let parsed = PasswordHash::new(&hash).map_err(malformed)?;
                let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
                let version = parsed.version.map(Version::try_from).transpose().map_err(malformed)?;
                let params = Params::try_from(&parsed).map_err(malformed)?;
                let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                    return Err(IdentityError::Internal("stored hash has no salt or output".into()));
                };
                // The hash's own parameters: hashes made with older settings stay verifiable.
                let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
                // `Output` compares in constant time.
                Ok(compute(&argon, &params, password.as_bytes(), salt)? == expected)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let hasher = Argon2Hasher::new(Argon2Params::default()).expect("valid params");
        let hash = hasher.hash(&Password::new("correct horse!")).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&Password::new("correct horse!"), &hash).await.expect("verify"));
        assert!(!hasher.verify(&Password::new("wrong horse!"), &hash).await.expect("verify"));
    }

    #[tokio::test]
    async fn an_idle_hashing_thread_gives_its_memory_back() {
        let hasher = Argon2Hasher::new(Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            ..Argon2Params::default()
        })
        .expect("params");
        let held = || hasher.pool.run(&hasher.metrics, || Ok(held_blocks()));
        assert_eq!(held().await.expect("runs"), 0, "nothing held before the first hash");
        hasher.hash(&Password::new("some!pass")).await.expect("hash");
        assert!(held().await.expect("runs") >= 1024, "kept while hashes come close together");
        tokio::time::sleep(IDLE_MEMORY_RELEASE * 3).await;
        assert_eq!(held().await.expect("runs"), 0, "released after a pause");
        hasher.hash(&Password::new("some!pass")).await.expect("hashes again after the release");
    }

    #[tokio::test]
    async fn equal_passwords_get_different_salts() {
        let hasher = Argon2Hasher::new(Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            ..Argon2Params::default()
        })
        .expect("params");
        let a = hasher.hash(&Password::new("same!pass")).await.expect("hash");
        let b = hasher.hash(&Password::new("same!pass")).await.expect("hash");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn hashes_keep_their_own_parameters() {
        let cheap = Argon2Hasher::new(Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            ..Argon2Params::default()
        })
        .expect("params");
        let hash = cheap.hash(&Password::new("old!pass")).await.expect("hash");
        let current = Argon2Hasher::new(Argon2Params::default()).expect("params");
        assert!(current.verify(&Password::new("old!pass"), &hash).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_malformed_hash_is_an_error_not_a_mismatch() {
        let hasher = Argon2Hasher::new(Argon2Params::default()).expect("params");
        let result = hasher.verify(&Password::new("x"), "not-a-phc-string").await;
        assert!(matches!(result, Err(IdentityError::Internal(_))));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(
            Argon2Hasher::new(Argon2Params {
                memory_kib: 1,
                iterations: 0,
                parallelism: 0,
                ..Argon2Params::default()
            })
            .is_err()
        );
    }

    /// A job that blocks its hashing slot until told to finish, and records whether it ever ran.
    struct HeldJob {
        release: std::sync::mpsc::Sender<()>,
        ran: Arc<std::sync::atomic::AtomicBool>,
    }

    fn held_job(pool: &Arc<HashingPool>) -> (HeldJob, tokio::task::JoinHandle<Result<(), IdentityError>>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let pool = Arc::clone(pool);
        let task = tokio::spawn(async move {
            pool.run(&HashingPoolMetrics::default(), move || {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                // Bounded: a test that forgets to release fails instead of hanging.
                let _ = wait.recv_timeout(Duration::from_secs(30));
                Ok(())
            })
            .await
        });
        (HeldJob { release, ran }, task)
    }

    /// Waits (bounded) until `condition` holds.
    async fn eventually(condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached within 5 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once_and_admitted_work_still_finishes() {
        let pool = Arc::new(HashingPool::new(1, 1, Duration::from_secs(30)));
        let (running, running_task) = held_job(&pool);
        eventually(|| running.ran.load(std::sync::atomic::Ordering::SeqCst)).await;
        let (queued, queued_task) = held_job(&pool);
        eventually(|| pool.admitted.available_permits() == 0).await;

        let refused = pool.run(&HashingPoolMetrics::default(), || Ok(())).await;
        assert!(
            matches!(refused, Err(IdentityError::Overloaded { retry_after }) if retry_after == RETRY_AFTER)
        );

        running.release.send(()).expect("release");
        queued.release.send(()).expect("release");
        running_task.await.expect("join").expect("the running hash finishes");
        queued_task.await.expect("join").expect("the queued hash runs next");
        assert!(queued.ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_whose_request_is_dropped_leaves_the_queue_without_hashing() {
        let pool = Arc::new(HashingPool::new(1, 1, Duration::from_secs(30)));
        let (running, running_task) = held_job(&pool);
        eventually(|| running.ran.load(std::sync::atomic::Ordering::SeqCst)).await;
        let (abandoned, abandoned_task) = held_job(&pool);
        eventually(|| pool.admitted.available_permits() == 0).await;

        abandoned_task.abort();
        eventually(|| pool.admitted.available_permits() == 1).await;
        running.release.send(()).expect("release");
        running_task.await.expect("join").expect("finishes");
        pool.run(&HashingPoolMetrics::default(), || Ok(())).await.expect("the freed place is usable");
        assert!(!abandoned.ran.load(std::sync::atomic::Ordering::SeqCst), "a dropped waiter never hashes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queued_caller_is_refused_after_the_longest_wait() {
        let max_wait = Duration::from_millis(200);
        let pool = Arc::new(HashingPool::new(1, 4, max_wait));
        let (running, running_task) = held_job(&pool);
        eventually(|| running.ran.load(std::sync::atomic::Ordering::SeqCst)).await;

        let started = std::time::Instant::now();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let result = pool
            .run(&HashingPoolMetrics::default(), move || {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        let waited = started.elapsed();
        assert!(matches!(result, Err(IdentityError::Overloaded { .. })), "{result:?}");
        assert!(waited >= max_wait, "refused only after waiting {max_wait:?}: {waited:?}");
        assert!(waited < Duration::from_secs(10), "and not much longer: {waited:?}");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));

        running.release.send(()).expect("release");
        running_task.await.expect("join").expect("finishes");
    }

    #[test]
    fn zero_concurrency_means_one_slot_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let pool = HashingPool::new(0, 3, Duration::from_secs(1));
        assert_eq!(pool.running.available_permits(), cores);
        assert_eq!(pool.admitted.available_permits(), cores + 3);
    }
}
