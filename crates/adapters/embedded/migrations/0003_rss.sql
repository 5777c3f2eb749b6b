-- Fetch jobs, feed entries and per-feed state for the RSS services.

CREATE TABLE rss_jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    url             TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    status          TEXT NOT NULL,     -- queued | fetching | done | failed
    inserted        INTEGER NOT NULL,
    skipped         INTEGER NOT NULL,
    error           TEXT,
    attempts        INTEGER NOT NULL,
    idempotency_key TEXT,              -- unique per requester; NULLs never collide
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL,
    finished_us     INTEGER
) STRICT;

CREATE UNIQUE INDEX rss_jobs_by_idempotency ON rss_jobs (requested_by, idempotency_key);

CREATE TABLE rss_entries (
    id           TEXT PRIMARY KEY NOT NULL, -- hash of feed URL + entry identity: the dedup key
    feed_url     TEXT NOT NULL,
    title        TEXT NOT NULL,
    link         TEXT,
    thumbnail    TEXT,
    summary      TEXT,
    published_us INTEGER,
    fetched_us   INTEGER NOT NULL,
    sort_us      INTEGER NOT NULL,          -- publication time, else fetch time: "newest first"
    job_id       TEXT NOT NULL              -- the job that stored it (exact counts on redelivery)
) STRICT;

CREATE INDEX rss_entries_newest ON rss_entries (sort_us DESC, id DESC);
CREATE INDEX rss_entries_by_feed ON rss_entries (feed_url, sort_us DESC, id DESC);
CREATE INDEX rss_entries_by_job ON rss_entries (job_id);

CREATE TABLE rss_feeds (
    url                  TEXT PRIMARY KEY NOT NULL,
    etag                 TEXT,
    last_modified        TEXT,
    consecutive_failures INTEGER NOT NULL,
    last_error           TEXT,
    last_fetched_us      INTEGER
) STRICT;
