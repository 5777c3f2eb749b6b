//! Fetch jobs, feed entries and feed state (`rss_jobs`, `rss_entries`, `rss_feeds`). Job transitions
//! are single conditional updates on a non-final status, as in the embedded store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use galley_kernel::{Page, StoreError, UserId};
use galley_rss::FeedUrl;
use galley_rss::model::{Entry, EntryQuery, Job, JobId, JobStatus};
use galley_rss::ports::{
    EntryRepository, FeedState, FeedStateRepository, InsertJob, JobOutcome, JobRepository,
};
use mongodb::Collection;
use mongodb::bson::{Document, doc};
use mongodb::options::{
    FindOneAndUpdateOptions, FindOptions, InsertManyOptions, ReturnDocument, UpdateOptions,
};
use serde::{Deserialize, Serialize};

use crate::store::{MongoStore, find_all, instant, is_duplicate_key, micros, signed, translate, unsigned};

const NOT_FINAL: [&str; 2] = ["queued", "fetching"];

#[derive(Debug, Serialize, Deserialize)]
struct JobDoc {
    #[serde(rename = "_id")]
    id: String,
    url: String,
    requested_by: String,
    status: String,
    inserted: i64,
    skipped: i64,
    error: Option<String>,
    attempts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<String>,
    created_us: i64,
    updated_us: i64,
    finished_us: Option<i64>,
}

impl JobDoc {
    fn into_job(self) -> Result<Job, StoreError> {
        Ok(Job {
            id: self.id.parse().map_err(|_| StoreError::Internal(format!("corrupt job id {}", self.id)))?,
            url: FeedUrl::from_trusted(self.url),
            requested_by: UserId::new(self.requested_by),
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Internal(format!("corrupt job status {}", self.status)))?,
            inserted: unsigned(self.inserted),
            skipped: unsigned(self.skipped),
            error: self.error,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            created_at: instant(self.created_us, "rss_jobs.created_us")?,
            updated_at: instant(self.updated_us, "rss_jobs.updated_us")?,
            finished_at: self.finished_us.map(|us| instant(us, "rss_jobs.finished_us")).transpose()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct MongoJobRepository {
    store: MongoStore,
}

impl MongoJobRepository {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `rss_jobs` on the store's current client, taken per operation.
    fn jobs(&self) -> Collection<JobDoc> {
        self.store.collection("rss_jobs")
    }
}

#[async_trait]
impl JobRepository for MongoJobRepository {
    async fn insert<'a>(&self, job: &Job, idempotency_key: Option<&'a str>) -> Result<InsertJob, StoreError> {
        let document = JobDoc {
            id: job.id.to_string(),
            url: job.url.as_str().to_owned(),
            requested_by: job.requested_by.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            inserted: signed(job.inserted),
            skipped: signed(job.skipped),
            error: job.error.clone(),
            attempts: i64::from(job.attempts),
            idempotency_key: idempotency_key.map(str::to_owned),
            created_us: micros(job.created_at),
            updated_us: micros(job.updated_at),
            finished_us: None,
        };
        match self.jobs().insert_one(document).await {
            Ok(_) => Ok(InsertJob::Created),
            Err(error) if is_duplicate_key(&error) && idempotency_key.is_some() => {
                let existing = self
                    .jobs()
                    .find_one(doc! { "requested_by": job.requested_by.as_str(), "idempotency_key": idempotency_key })
                    .await
                    .map_err(translate)?
                    .ok_or_else(|| StoreError::Internal("duplicate idempotency key but no job".into()))?;
                Ok(InsertJob::Existing(existing.into_job()?))
            }
            Err(error) => Err(translate(error)),
        }
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.jobs()
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(translate)?
            .map(JobDoc::into_job)
            .transpose()
    }

    async fn delete(&self, id: JobId) -> Result<(), StoreError> {
        self.jobs().delete_one(doc! { "_id": id.to_string() }).await.map(|_| ()).map_err(translate)
    }

    async fn start_attempt(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<Job>, StoreError> {
        let options = FindOneAndUpdateOptions::builder().return_document(ReturnDocument::After).build();
        let started = self
            .jobs()
            .find_one_and_update(
                doc! { "_id": id.to_string(), "status": { "$in": NOT_FINAL.to_vec() } },
                doc! { "$set": { "status": "fetching", "updated_us": micros(now) }, "$inc": { "attempts": 1 } },
            )
            .with_options(options)
            .await
            .map_err(translate)?;
        match started {
            Some(document) => document.into_job().map(Some),
            None => self.get(id).await,
        }
    }

    async fn requeue(&self, id: JobId, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.jobs()
            .update_one(
                doc! { "_id": id.to_string(), "status": { "$in": NOT_FINAL.to_vec() } },
                doc! { "$set": { "status": "queued", "error": error, "updated_us": micros(now) } },
            )
            .await
            .map(|_| ())
            .map_err(translate)
    }

    async fn finish(
        &self,
        id: JobId,
        outcome: &JobOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        self.jobs()
            .update_one(
                doc! { "_id": id.to_string(), "status": { "$in": NOT_FINAL.to_vec() } },
                doc! { "$set": {
                    "status": outcome.status.as_str(),
                    "inserted": signed(outcome.inserted),
                    "skipped": signed(outcome.skipped),
                    "error": outcome.error.clone(),
                    "updated_us": micros(now),
                    "finished_us": micros(now),
                } },
            )
            .await
            .map_err(translate)?;
        self.get(id).await
    }

    async fn list_stale(
        &self,
        status: JobStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let options =
            FindOptions::builder().sort(doc! { "updated_us": 1, "_id": 1 }).limit(i64::from(limit)).build();
        let filter = doc! { "status": status.as_str(), "updated_us": { "$lt": micros(before) } };
        let docs = find_all(&self.jobs(), filter, options).await.map_err(translate)?;
        docs.into_iter().map(JobDoc::into_job).collect()
    }

    async fn claim_stale(
        &self,
        id: JobId,
        status: JobStatus,
        seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .jobs()
            .update_one(
                doc! { "_id": id.to_string(), "status": status.as_str(), "updated_us": micros(seen) },
                doc! { "$set": { "updated_us": micros(now) } },
            )
            .await
            .map_err(translate)?;
        Ok(claimed.modified_count == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct EntryDoc {
    #[serde(rename = "_id")]
    id: String,
    feed_url: String,
    title: String,
    link: Option<String>,
    thumbnail: Option<String>,
    summary: Option<String>,
    published_us: Option<i64>,
    fetched_us: i64,
    sort_us: i64,
    job_id: String,
}

impl EntryDoc {
    fn into_entry(self) -> Result<Entry, StoreError> {
        Ok(Entry {
            id: self.id,
            feed_url: FeedUrl::from_trusted(self.feed_url),
            title: self.title,
            link: self.link,
            thumbnail: self.thumbnail,
            summary: self.summary,
            published_at: self.published_us.map(|us| instant(us, "rss_entries.published_us")).transpose()?,
            fetched_at: instant(self.fetched_us, "rss_entries.fetched_us")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct MongoEntryRepository {
    store: MongoStore,
}

impl MongoEntryRepository {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `rss_entries` on the store's current client, taken per operation.
    fn entries(&self) -> Collection<EntryDoc> {
        self.store.collection("rss_entries")
    }
}

#[async_trait]
impl EntryRepository for MongoEntryRepository {
    async fn insert_new(&self, job: JobId, entries: &[Entry]) -> Result<(u64, u64), StoreError> {
        let job_id = job.to_string();
        if !entries.is_empty() {
            let documents = entries.iter().map(|entry| {
                let published = entry.published_at.map(micros);
                EntryDoc {
                    id: entry.id.clone(),
                    feed_url: entry.feed_url.as_str().to_owned(),
                    title: entry.title.clone(),
                    link: entry.link.clone(),
                    thumbnail: entry.thumbnail.clone(),
                    summary: entry.summary.clone(),
                    published_us: published,
                    fetched_us: micros(entry.fetched_at),
                    sort_us: published.unwrap_or_else(|| micros(entry.fetched_at)),
                    job_id: job_id.clone(),
                }
            });
            // Unordered: entries already stored fail with duplicate keys while the others go in.
            let options = InsertManyOptions::builder().ordered(false).build();
            if let Err(error) = self.entries().insert_many(documents).with_options(options).await
                && !is_duplicate_key(&error)
            {
                return Err(translate(error));
            }
        }
        let inserted = self.entries().count_documents(doc! { "job_id": &job_id }).await.map_err(translate)?;
        let total = u64::try_from(entries.len()).unwrap_or(u64::MAX);
        Ok((inserted, total.saturating_sub(inserted)))
    }

    async fn list(&self, query: &EntryQuery) -> Result<Page<Entry>, StoreError> {
        let filter: Document = match &query.feed_url {
            Some(feed) => doc! { "feed_url": feed.as_str() },
            None => doc! {},
        };
        let options = FindOptions::builder()
            .sort(doc! { "sort_us": -1, "_id": -1 })
            .skip(query.page.offset())
            .limit(i64::from(query.page.limit()))
            .build();
        let docs = find_all(&self.entries(), filter.clone(), options).await.map_err(translate)?;
        let total = self.entries().count_documents(filter).await.map_err(translate)?;
        let items = docs.into_iter().map(EntryDoc::into_entry).collect::<Result<_, _>>()?;
        Ok(Page { items, request: query.page, total })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct FeedDoc {
    #[serde(rename = "_id")]
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    consecutive_failures: i64,
    last_error: Option<String>,
    last_fetched_us: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MongoFeedStateRepository {
    store: MongoStore,
}

impl MongoFeedStateRepository {
    pub fn new(store: &MongoStore) -> Self {
        Self { store: store.clone() }
    }

    /// `rss_feeds` on the store's current client, taken per operation.
    fn feeds(&self) -> Collection<FeedDoc> {
        self.store.collection("rss_feeds")
    }
}

#[async_trait]
impl FeedStateRepository for MongoFeedStateRepository {
    async fn get(&self, url: &FeedUrl) -> Result<Option<FeedState>, StoreError> {
        let Some(feed) = self.feeds().find_one(doc! { "_id": url.as_str() }).await.map_err(translate)? else {
            return Ok(None);
        };
        Ok(Some(FeedState {
            url: FeedUrl::from_trusted(feed.url),
            etag: feed.etag,
            last_modified: feed.last_modified,
            consecutive_failures: u32::try_from(feed.consecutive_failures).unwrap_or(u32::MAX),
            last_error: feed.last_error,
            last_fetched_at: feed
                .last_fetched_us
                .map(|us| instant(us, "rss_feeds.last_fetched_us"))
                .transpose()?,
        }))
    }

    async fn record_success<'a>(
        &self,
        url: &FeedUrl,
        etag: Option<&'a str>,
        last_modified: Option<&'a str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let update = doc! { "$set": {
            "etag": etag, "last_modified": last_modified, "consecutive_failures": 0_i64,
            "last_error": mongodb::bson::Bson::Null, "last_fetched_us": micros(now),
        } };
        let options = UpdateOptions::builder().upsert(true).build();
        self.feeds()
            .update_one(doc! { "_id": url.as_str() }, update)
            .with_options(options)
            .await
            .map(|_| ())
            .map_err(translate)
    }

    async fn record_failure(&self, url: &FeedUrl, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let update = doc! {
            "$inc": { "consecutive_failures": 1_i64 },
            "$set": { "last_error": error, "last_fetched_us": micros(now) },
            "$setOnInsert": { "etag": mongodb::bson::Bson::Null, "last_modified": mongodb::bson::Bson::Null },
        };
        let options = UpdateOptions::builder().upsert(true).build();
        self.feeds()
            .update_one(doc! { "_id": url.as_str() }, update)
            .with_options(options)
            .await
            .map(|_| ())
            .map_err(translate)
    }
}
