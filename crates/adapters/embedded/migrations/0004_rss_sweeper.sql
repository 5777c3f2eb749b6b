-- The sweeper's query (`list_stale`): jobs of one status by last update.
CREATE INDEX rss_jobs_by_status_and_update ON rss_jobs (status, updated_us);
