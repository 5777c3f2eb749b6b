//! Contracts of the RSS storage ports: jobs, entries and feed state. Ids and URLs are unique per case,
//! so a shared server never makes cases see each other's data.

use std::sync::Arc;

use chrono::{Duration, Utc};
use galley_kernel::{PageRequest, UserId};
use galley_rss::FeedUrl;
use galley_rss::fetch::ParsedEntry;
use galley_rss::model::{Entry, EntryQuery, Job, JobId, JobStatus};
use galley_rss::ports::{EntryRepository, FeedStateRepository, InsertJob, JobOutcome, JobRepository};

fn unique_feed() -> FeedUrl {
    FeedUrl::parse(&format!("https://feeds.example/{}.xml", uuid::Uuid::now_v7().simple()))
        .unwrap_or_else(|v| panic!("{v}"))
}

fn user() -> UserId {
    UserId::new(format!("user-{}", uuid::Uuid::now_v7().simple()))
}

fn job() -> Job {
    Job::queued(unique_feed(), user(), Utc::now())
}

fn entry(feed: &FeedUrl, guid: &str, published_minutes: Option<i64>) -> Entry {
    let parsed = ParsedEntry {
        guid: Some(guid.to_owned()),
        title: format!("Entry {guid}"),
        link: Some(format!("https://feeds.example/{guid}")),
        thumbnail: Some("https://feeds.example/t.jpg".to_owned()),
        published_at: published_minutes.map(|m| Utc::now() - Duration::minutes(m)),
        summary: Some("<p>Hi</p>".to_owned()),
    };
    Entry::from_parsed(feed, parsed, Utc::now())
}

fn done(inserted: u64, skipped: u64) -> JobOutcome {
    JobOutcome { status: JobStatus::Done, inserted, skipped, error: None }
}

pub mod jobs {
    use super::*;

    type Jobs = Arc<dyn JobRepository>;

    pub async fn inserted_jobs_read_back(repo: Jobs) {
        let job = job();
        assert_eq!(repo.insert(&job, None).await.expect("insert"), InsertJob::Created);
        let read = repo.get(job.id).await.expect("get").expect("present");
        assert_eq!(read.url, job.url);
        assert_eq!(read.status, JobStatus::Queued);
        assert_eq!(read.requested_by, job.requested_by);
        assert!(repo.get(JobId::generate()).await.expect("get").is_none());
    }

    pub async fn an_idempotency_key_returns_the_first_job(repo: Jobs) {
        let first = job();
        assert_eq!(repo.insert(&first, Some("key-1")).await.expect("insert"), InsertJob::Created);
        let mut retry = job();
        retry.requested_by = first.requested_by.clone();
        match repo.insert(&retry, Some("key-1")).await.expect("insert") {
            InsertJob::Existing(existing) => assert_eq!(existing.id, first.id),
            InsertJob::Created => panic!("a retried request made a second job"),
        }
        assert!(repo.get(retry.id).await.expect("get").is_none());
        // Keys are per requester, and jobs without a key never collide.
        assert_eq!(repo.insert(&job(), Some("key-1")).await.expect("insert"), InsertJob::Created);
        let mut keyless = job();
        keyless.requested_by = first.requested_by.clone();
        assert_eq!(repo.insert(&keyless, None).await.expect("insert"), InsertJob::Created);
        let mut keyless_again = job();
        keyless_again.requested_by = first.requested_by.clone();
        assert_eq!(repo.insert(&keyless_again, None).await.expect("insert"), InsertJob::Created);
    }

    pub async fn attempts_move_a_job_through_its_life(repo: Jobs) {
        let job = job();
        repo.insert(&job, None).await.expect("insert");
        let started = repo.start_attempt(job.id, Utc::now()).await.expect("start").expect("present");
        assert_eq!((started.status, started.attempts), (JobStatus::Fetching, 1));
        repo.requeue(job.id, "timeout", Utc::now()).await.expect("requeue");
        let requeued = repo.get(job.id).await.expect("get").expect("present");
        assert_eq!((requeued.status, requeued.error.as_deref()), (JobStatus::Queued, Some("timeout")));
        let again = repo.start_attempt(job.id, Utc::now()).await.expect("start").expect("present");
        assert_eq!(again.attempts, 2);
        let finished = repo.finish(job.id, &done(3, 1), Utc::now()).await.expect("finish").expect("present");
        assert_eq!((finished.status, finished.inserted, finished.skipped), (JobStatus::Done, 3, 1));
        assert!(finished.finished_at.is_some());
    }

    pub async fn final_jobs_never_change_again(repo: Jobs) {
        let job = job();
        repo.insert(&job, None).await.expect("insert");
        repo.start_attempt(job.id, Utc::now()).await.expect("start");
        repo.finish(job.id, &done(2, 0), Utc::now()).await.expect("finish");
        let failed =
            JobOutcome { status: JobStatus::Failed, inserted: 0, skipped: 0, error: Some("timeout".into()) };
        let after = repo.finish(job.id, &failed, Utc::now()).await.expect("finish").expect("present");
        assert_eq!((after.status, after.inserted), (JobStatus::Done, 2), "a late outcome changes nothing");
        let restarted = repo.start_attempt(job.id, Utc::now()).await.expect("start").expect("present");
        assert_eq!(
            (restarted.status, restarted.attempts),
            (JobStatus::Done, 1),
            "a redelivery changes nothing"
        );
        repo.requeue(job.id, "timeout", Utc::now()).await.expect("requeue");
        assert_eq!(repo.get(job.id).await.expect("get").map(|j| j.status), Some(JobStatus::Done));
    }

    pub async fn deleted_and_unknown_jobs_are_absent(repo: Jobs) {
        let job = job();
        repo.insert(&job, None).await.expect("insert");
        repo.delete(job.id).await.expect("delete");
        assert!(repo.get(job.id).await.expect("get").is_none());
        assert!(repo.start_attempt(JobId::generate(), Utc::now()).await.expect("start").is_none());
        assert!(repo.finish(JobId::generate(), &done(0, 0), Utc::now()).await.expect("finish").is_none());
    }

    /// A moment long past, so only this case's jobs are that old (other cases' jobs are recent).
    fn long_ago() -> chrono::DateTime<Utc> {
        chrono::DateTime::from_timestamp(978_307_200, 0).unwrap_or_default() // 2001-01-01
    }

    fn job_at(at: chrono::DateTime<Utc>) -> Job {
        Job::queued(unique_feed(), user(), at)
    }

    pub async fn stale_jobs_are_listed_by_status_least_recently_updated_first(repo: Jobs) {
        let t0 = long_ago();
        let older = job_at(t0);
        let newer = job_at(t0 + Duration::minutes(1));
        let recent = job_at(t0 + Duration::days(1));
        let fetching = job_at(t0);
        for job in [&newer, &older, &recent, &fetching] {
            repo.insert(job, None).await.expect("insert");
        }
        repo.start_attempt(fetching.id, t0).await.expect("start").expect("present");
        let ours = [older.id, newer.id, recent.id, fetching.id];
        let before = t0 + Duration::hours(1);

        let queued = repo.list_stale(JobStatus::Queued, before, 1000).await.expect("list");
        let queued: Vec<JobId> = queued.iter().map(|j| j.id).filter(|id| ours.contains(id)).collect();
        assert_eq!(queued, vec![older.id, newer.id]);
        let stale_fetching = repo.list_stale(JobStatus::Fetching, before, 1000).await.expect("list");
        let stale_fetching: Vec<JobId> =
            stale_fetching.iter().map(|j| j.id).filter(|id| ours.contains(id)).collect();
        assert_eq!(stale_fetching, vec![fetching.id]);
        assert_eq!(repo.list_stale(JobStatus::Queued, before, 1).await.expect("list").len(), 1);
        let listed = repo.list_stale(JobStatus::Queued, before, 1000).await.expect("list");
        let read = listed.iter().find(|j| j.id == older.id).expect("listed");
        assert_eq!(read.updated_at, t0, "listed jobs carry their last update, for the claim");
    }

    pub async fn a_stale_job_is_claimed_once_and_not_after_it_moved_on(repo: Jobs) {
        let t0 = long_ago();
        let job = job_at(t0);
        repo.insert(&job, None).await.expect("insert");
        let now = Utc::now();
        assert!(repo.claim_stale(job.id, JobStatus::Queued, t0, now).await.expect("claim"));
        assert!(!repo.claim_stale(job.id, JobStatus::Queued, t0, now).await.expect("claim"), "claimed twice");
        let claimed = repo.get(job.id).await.expect("get").expect("present");
        assert_eq!(claimed.status, JobStatus::Queued);
        assert_eq!(claimed.updated_at.timestamp_micros(), now.timestamp_micros());

        let moved = job_at(t0);
        repo.insert(&moved, None).await.expect("insert");
        repo.start_attempt(moved.id, t0 + Duration::seconds(1)).await.expect("start").expect("present");
        assert!(
            !repo.claim_stale(moved.id, JobStatus::Queued, t0, now).await.expect("claim"),
            "a job a worker started since it was listed is left alone"
        );
        assert!(!repo.claim_stale(JobId::generate(), JobStatus::Queued, t0, now).await.expect("claim"));
    }

    pub async fn answers_pings(repo: Jobs) {
        repo.ping().await.expect("ping");
    }
}

pub mod entries {
    use super::*;

    type Entries = Arc<dyn EntryRepository>;

    fn query(feed: &FeedUrl, page: u32, limit: u32) -> EntryQuery {
        EntryQuery { feed_url: Some(feed.clone()), page: PageRequest::new(page, limit).unwrap_or_default() }
    }

    pub async fn new_entries_are_stored_once(repo: Entries) {
        let feed = unique_feed();
        let entries =
            vec![entry(&feed, "a", Some(3)), entry(&feed, "b", Some(2)), entry(&feed, "c", Some(1))];
        assert_eq!(repo.insert_new(JobId::generate(), &entries).await.expect("insert"), (3, 0));
        let again = JobId::generate();
        assert_eq!(
            repo.insert_new(again, &entries).await.expect("insert"),
            (0, 3),
            "a second fetch skips them all"
        );
        let mut more = entries.clone();
        more.push(entry(&feed, "d", Some(0)));
        assert_eq!(repo.insert_new(JobId::generate(), &more).await.expect("insert"), (1, 3));
        let page = repo.list(&query(&feed, 1, 10)).await.expect("list");
        assert_eq!(page.total, 4);
    }

    pub async fn counts_are_stable_when_a_job_is_processed_again(repo: Entries) {
        let feed = unique_feed();
        let job = JobId::generate();
        let entries = vec![entry(&feed, "a", None), entry(&feed, "b", None)];
        assert_eq!(repo.insert_new(job, &entries).await.expect("insert"), (2, 0));
        // The worker crashed before acknowledging; the redelivered message runs the same job again.
        assert_eq!(repo.insert_new(job, &entries).await.expect("insert"), (2, 0));
    }

    pub async fn entries_list_newest_first_with_paging(repo: Entries) {
        let feed = unique_feed();
        let entries =
            vec![entry(&feed, "old", Some(30)), entry(&feed, "new", Some(1)), entry(&feed, "mid", Some(10))];
        repo.insert_new(JobId::generate(), &entries).await.expect("insert");
        let first = repo.list(&query(&feed, 1, 2)).await.expect("list");
        let titles: Vec<&str> = first.items.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(titles, ["Entry new", "Entry mid"]);
        assert_eq!((first.total, first.total_pages()), (3, 2));
        let second = repo.list(&query(&feed, 2, 2)).await.expect("list");
        assert_eq!(second.items.iter().map(|e| e.title.as_str()).collect::<Vec<_>>(), ["Entry old"]);
        let beyond = repo.list(&query(&feed, 5, 2)).await.expect("list");
        assert!(beyond.items.is_empty());
        assert_eq!(beyond.total, 3);
    }

    pub async fn entries_read_back_with_every_field_and_filter_by_feed(repo: Entries) {
        let feed = unique_feed();
        let other = unique_feed();
        let stored = entry(&feed, "full", Some(5));
        repo.insert_new(JobId::generate(), &[stored.clone(), entry(&other, "elsewhere", None)])
            .await
            .expect("insert");
        let page = repo.list(&query(&feed, 1, 10)).await.expect("list");
        assert_eq!(page.items.len(), 1);
        let read = &page.items[0];
        assert_eq!(read.id, stored.id);
        assert_eq!(read.title, stored.title);
        assert_eq!(read.link, stored.link);
        assert_eq!(read.thumbnail, stored.thumbnail);
        assert_eq!(read.summary, stored.summary);
        let micros = |d: Option<chrono::DateTime<Utc>>| d.map(|d| d.timestamp_millis());
        assert_eq!(micros(read.published_at), micros(stored.published_at));
    }

    pub async fn many_entries_are_stored_in_one_call(repo: Entries) {
        let feed = unique_feed();
        let entries: Vec<Entry> = (0..1200).map(|i| entry(&feed, &format!("e{i}"), Some(i))).collect();
        assert_eq!(repo.insert_new(JobId::generate(), &entries).await.expect("insert"), (1200, 0));
        assert_eq!(repo.list(&query(&feed, 1, 1)).await.expect("list").total, 1200);
    }
}

pub mod feeds {
    use super::*;

    type Feeds = Arc<dyn FeedStateRepository>;

    pub async fn validators_are_remembered_and_failures_counted(repo: Feeds) {
        let feed = unique_feed();
        assert!(repo.get(&feed).await.expect("get").is_none());
        repo.record_failure(&feed, "timeout", Utc::now()).await.expect("failure");
        repo.record_failure(&feed, "http_server_error", Utc::now()).await.expect("failure");
        let failing = repo.get(&feed).await.expect("get").expect("present");
        assert_eq!(
            (failing.consecutive_failures, failing.last_error.as_deref()),
            (2, Some("http_server_error"))
        );
        repo.record_success(&feed, Some("\"v1\""), Some("Tue, 24 Nov 2026 07:00:00 GMT"), Utc::now())
            .await
            .expect("success");
        let state = repo.get(&feed).await.expect("get").expect("present");
        assert_eq!(state.etag.as_deref(), Some("\"v1\""));
        assert_eq!(state.last_modified.as_deref(), Some("Tue, 24 Nov 2026 07:00:00 GMT"));
        assert_eq!((state.consecutive_failures, state.last_error), (0, None));
        repo.record_failure(&feed, "timeout", Utc::now()).await.expect("failure");
        let kept = repo.get(&feed).await.expect("get").expect("present");
        assert_eq!(kept.etag.as_deref(), Some("\"v1\""), "a failure keeps the validators");
    }
}

/// Expands into one `#[tokio::test]` per RSS storage contract case. `$jobs`, `$entries` and `$feeds`
/// are futures yielding `Option<(Arc<dyn Port>, guard)>` (`None` skips, printed); a leading attribute
/// (`#[ignore = "why"]`) is put on every case.
#[macro_export]
macro_rules! rss_store_contract_tests {
    (#[$attr:meta] jobs: $jobs:expr, entries: $entries:expr, feeds: $feeds:expr $(,)?) => {
        $crate::rss_store_contract_tests!(@cases [$attr] jobs $jobs;
            inserted_jobs_read_back, an_idempotency_key_returns_the_first_job, attempts_move_a_job_through_its_life,
            final_jobs_never_change_again, deleted_and_unknown_jobs_are_absent,
            stale_jobs_are_listed_by_status_least_recently_updated_first,
            a_stale_job_is_claimed_once_and_not_after_it_moved_on, answers_pings);
        $crate::rss_store_contract_tests!(@cases [$attr] entries $entries;
            new_entries_are_stored_once, counts_are_stable_when_a_job_is_processed_again,
            entries_list_newest_first_with_paging, entries_read_back_with_every_field_and_filter_by_feed,
            many_entries_are_stored_in_one_call);
        $crate::rss_store_contract_tests!(@cases [$attr] feeds $feeds; validators_are_remembered_and_failures_counted);
    };
    (jobs: $jobs:expr, entries: $entries:expr, feeds: $feeds:expr $(,)?) => {
        $crate::rss_store_contract_tests!(#[cfg_attr(any(), ignore)] jobs: $jobs, entries: $entries, feeds: $feeds);
    };
    (@cases [$attr:meta] $module:ident $make:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                #[$attr]
                async fn $case() {
                    $crate::contracts::run_case(stringify!($case), $make, $crate::contracts::rss::$module::$case).await;
                }
            )+
        }
    };
}
