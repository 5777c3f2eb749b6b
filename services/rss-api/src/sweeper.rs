//! The sweeper: runs [`FetchRequests::sweep`] every `rss.sweep.interval` until shutdown, so jobs whose
//! message was lost or whose worker died with them do not stay `queued` or `fetching` forever.

use galley_platform::Shutdown;
use galley_rss::{FetchRequests, SweepReport};
use tokio::time::MissedTickBehavior;

use crate::settings::SweepSettings;

/// Sweeps until `shutdown`; returns at once when the interval is 0 (sweeper off). A failed sweep (store
/// or bus down) is logged and the next one tries again.
pub async fn run_sweeper(requests: FetchRequests, settings: SweepSettings, shutdown: Shutdown) {
    if settings.interval.is_zero() {
        tracing::info!("rss.sweep.interval = 0: the job sweeper is off");
        return;
    }
    let policy = settings.policy();
    let mut ticks = tokio::time::interval(settings.interval);
    // A sweep that overran its interval is followed by one full interval, not a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.wait() => return,
        }
        match requests.sweep(&policy).await {
            Ok(report) if report != SweepReport::default() => {
                tracing::info!(requeued = report.requeued, failed = report.failed, "swept stale jobs");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "job sweep failed; trying again next interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use galley_kernel::{SystemClock, UserId};
    use galley_messaging::{InProcessBus, MessageBus};
    use galley_rss::FeedUrl;
    use galley_rss::model::{Job, JobStatus};
    use galley_wiring::DocumentStore;

    use super::*;
    use crate::REQUESTS_QUEUE;
    use crate::queue::BusFetchQueue;

    fn job_from(hours_ago: i64) -> Job {
        let url = FeedUrl::parse("https://example.com/feed").expect("url");
        Job::queued(url, UserId::new("alice"), chrono::Utc::now() - chrono::Duration::hours(hours_ago))
    }

    #[tokio::test]
    async fn the_sweeper_republishes_lost_jobs_and_fails_stuck_ones_on_a_real_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store_settings = galley_platform::StoreSettings::default();
        store_settings.embedded.path = dir.path().join("galley.db");
        let store = DocumentStore::open(&store_settings).await.expect("store");
        let bus = Arc::new(InProcessBus::new());
        let requests = FetchRequests::new(
            Arc::clone(&store.jobs),
            Arc::clone(&store.entries),
            Arc::new(BusFetchQueue::new(bus.clone())),
            Arc::new(SystemClock),
        );
        // Its message was lost two hours ago; another is stuck fetching; a third is fresh.
        let (lost, stuck, fresh) = (job_from(2), job_from(2), job_from(0));
        for job in [&lost, &stuck, &fresh] {
            store.jobs.insert(job, None).await.expect("insert");
        }
        store.jobs.start_attempt(stuck.id, stuck.created_at).await.expect("start").expect("present");

        let settings = SweepSettings {
            interval: Duration::from_millis(20),
            queued_after: Duration::from_secs(3600),
            fetching_deadline: Duration::from_secs(3600),
        };
        let shutdown = Shutdown::new();
        let sweeper = tokio::spawn(run_sweeper(requests, settings, shutdown.clone()));

        let mut requested = bus.subscribe(REQUESTS_QUEUE, 4).await.expect("subscribe");
        let delivery = tokio::time::timeout(Duration::from_secs(10), requested.next())
            .await
            .expect("the lost job is handed over again")
            .expect("bus open");
        assert_eq!(delivery.message.message_id, lost.id.to_string());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let job = store.jobs.get(stuck.id).await.expect("read").expect("present");
            if job.status == JobStatus::Failed {
                assert_eq!(job.error.as_deref(), Some("timeout"));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the stuck job was never failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Claimed at the hand-over: not handed over again on every tick.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(bus.depth(REQUESTS_QUEUE), 0, "a claimed job was handed over again");
        let fresh = store.jobs.get(fresh.id).await.expect("read").expect("present");
        assert_eq!(fresh.status, JobStatus::Queued);

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), sweeper).await.expect("stops").expect("task");
        store.close().await;
    }
}
