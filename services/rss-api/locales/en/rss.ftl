# rss-api messages (English).

rss-fetch-received = fetch request for { $url } received
problem-job_not_found-title = Job not found
problem-job_not_found-detail = No fetch job of yours exists at { $path }.

# Why a job failed, by code.
rss-error-invalid_url = The feed address cannot be requested.
rss-error-blocked_address = The feed's address is on a private or reserved network, which Galley does not fetch from.
rss-error-too_many_redirects = The feed redirected too many times.
rss-error-too_large = The feed is larger than Galley accepts.
rss-error-http_client_error = The feed's server refused the request.
rss-error-http_server_error = The feed's server failed repeatedly.
rss-error-rate_limited = The feed's server asked Galley to slow down too many times.
rss-error-timeout = The feed's server did not answer in time.
rss-error-connection_failed = Galley could not connect to the feed's server.
rss-error-unparseable_feed = The document is not a feed Galley can read.
rss-error-internal_error = Galley failed to process the feed.
