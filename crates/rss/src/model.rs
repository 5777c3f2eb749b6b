//! Fetch jobs and feed entries.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use galley_kernel::{PageRequest, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::feed_url::FeedUrl;
use crate::fetch::ParsedEntry;

/// Job identifier (UUIDv7); also the messages' correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self)
    }
}

/// Where a job is in its life. `Done` and `Failed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Fetching,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Fetching => "fetching",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Fetching, Self::Done, Self::Failed].into_iter().find(|s| s.as_str() == raw)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A request to ingest one feed, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub url: FeedUrl,
    pub requested_by: UserId,
    pub status: JobStatus,
    /// Entries stored by this job.
    pub inserted: u64,
    /// Entries the feed had that were already stored.
    pub skipped: u64,
    /// Stable failure code (a `FetchErrorCode`, or `internal_error`) when failed.
    pub error: Option<String>,
    /// Fetch attempts so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    pub fn queued(url: FeedUrl, requested_by: UserId, now: DateTime<Utc>) -> Self {
        Self {
            id: JobId::generate(),
            url,
            requested_by,
            status: JobStatus::Queued,
            inserted: 0,
            skipped: 0,
            error: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }
}

/// A stored feed entry. Its id is derived from the feed and the entry's identity, so the same entry
/// fetched twice has the same id and is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub feed_url: FeedUrl,
    pub title: String,
    pub link: Option<String>,
    pub thumbnail: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub summary: Option<String>,
    pub fetched_at: DateTime<Utc>,
}

/// An entry about to be stored.
pub type NewEntry = Entry;

impl Entry {
    /// Identity of an entry within its feed, as mature readers do it: the feed's entry id, else its
    /// link, else (for feeds that give neither) its title and date. Hashed with the feed URL so ids are
    /// fixed-size, opaque and unique per feed.
    pub fn from_parsed(feed_url: &FeedUrl, parsed: ParsedEntry, fetched_at: DateTime<Utc>) -> Self {
        let identity = parsed
            .guid
            .as_deref()
            .filter(|g| !g.trim().is_empty())
            .map(|g| format!("id:{}", g.trim()))
            .or_else(|| {
                parsed.link.as_deref().filter(|l| !l.trim().is_empty()).map(|l| format!("link:{}", l.trim()))
            })
            .unwrap_or_else(|| {
                format!(
                    "title:{}|{}",
                    parsed.title,
                    parsed.published_at.map(|d| d.to_rfc3339()).unwrap_or_default()
                )
            });
        let mut hasher = Sha256::new();
        hasher.update(feed_url.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(identity.as_bytes());
        let id = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            feed_url: feed_url.clone(),
            title: parsed.title,
            link: parsed.link,
            thumbnail: parsed.thumbnail,
            published_at: parsed.published_at,
            summary: parsed.summary,
            fetched_at,
        }
    }
}

/// Listing entries: optionally of one feed, newest first (by publication, else fetch time).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryQuery {
    pub feed_url: Option<FeedUrl>,
    pub page: PageRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(guid: Option<&str>, link: Option<&str>, title: &str) -> ParsedEntry {
        ParsedEntry {
            guid: guid.map(str::to_owned),
            title: title.to_owned(),
            link: link.map(str::to_owned),
            thumbnail: None,
            published_at: None,
            summary: None,
        }
    }

    fn feed(url: &str) -> FeedUrl {
        FeedUrl::parse(url).expect("valid")
    }

    #[test]
    fn identity_is_the_guid_else_the_link_else_title_and_date() {
        let now = Utc::now();
        let a = feed("https://a.example/feed");
        let by_guid = Entry::from_parsed(&a, parsed(Some("42"), Some("https://a.example/1"), "One"), now);
        let same_guid_new_title =
            Entry::from_parsed(&a, parsed(Some("42"), Some("https://a.example/x"), "Edited"), now);
        assert_eq!(by_guid.id, same_guid_new_title.id);
        let by_link = Entry::from_parsed(&a, parsed(None, Some("https://a.example/1"), "One"), now);
        assert_ne!(by_link.id, by_guid.id);
        let blank_guid = Entry::from_parsed(&a, parsed(Some("  "), Some("https://a.example/1"), "One"), now);
        assert_eq!(blank_guid.id, by_link.id, "a blank guid counts as none");
        let by_title = Entry::from_parsed(&a, parsed(None, None, "One"), now);
        assert_ne!(by_title.id, by_link.id);
        assert_eq!(by_guid.id.len(), 64);
    }

    #[test]
    fn the_same_entry_in_two_feeds_is_two_entries() {
        let now = Utc::now();
        let one = Entry::from_parsed(&feed("https://a.example/feed"), parsed(Some("42"), None, "x"), now);
        let two = Entry::from_parsed(&feed("https://b.example/feed"), parsed(Some("42"), None, "x"), now);
        assert_ne!(one.id, two.id);
    }

    #[test]
    fn statuses_round_trip_and_know_finality() {
        for status in [JobStatus::Queued, JobStatus::Fetching, JobStatus::Done, JobStatus::Failed] {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
        assert!(
            JobStatus::Done.is_final() && JobStatus::Failed.is_final() && !JobStatus::Fetching.is_final()
        );
    }
}
