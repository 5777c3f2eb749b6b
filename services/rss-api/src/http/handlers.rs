//! rss-api route handlers.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use galley_http_kit::etag::IfNoneMatch;
use galley_http_kit::{Authenticated, JsonBody, QueryParams, RequestLocale};
use galley_kernel::{Page, Violation, Violations};
use galley_platform::{Locale, Localizer};
use galley_rss::model::{Entry, EntryQuery, Job};
use galley_rss::{FeedUrl, JobId, RssError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, RssState};

/// `POST /rss/fetch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchBody {
    /// Absolute http(s) URL of the feed, at most 2048 characters, without credentials.
    #[schema(
        required = true,
        nullable = false,
        format = "uri",
        max_length = 2048,
        pattern = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://",
        example = "https://blog.rust-lang.org/feed.xml"
    )]
    pub url: Option<String>,
}

/// `202` answer to a fetch request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FetchAccepted {
    pub job_id: String,
    #[schema(example = "queued")]
    pub status: String,
    /// Localized confirmation.
    pub message: String,
}

/// A fetch job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobResponse {
    pub id: String,
    pub url: String,
    /// queued | fetching | done | failed
    pub status: String,
    pub inserted: u64,
    pub skipped: u64,
    /// Stable failure code when failed (or the last transient failure while retrying).
    pub error: Option<String>,
    /// Localized explanation of `error`.
    pub error_message: Option<String>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobResponse {
    fn new(job: Job, localizer: &Localizer, locale: Locale) -> Self {
        let error_message =
            job.error.as_deref().map(|code| localizer.message(locale, &format!("rss-error-{code}"), &[]));
        Self {
            id: job.id.to_string(),
            url: job.url.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            inserted: job.inserted,
            skipped: job.skipped,
            error: job.error,
            error_message,
            attempts: job.attempts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            finished_at: job.finished_at,
        }
    }
}

/// A feed entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryResponse {
    pub id: String,
    pub feed_url: String,
    pub title: String,
    pub link: Option<String>,
    pub thumbnail: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    /// Sanitized HTML.
    pub summary: Option<String>,
}

impl From<Entry> for EntryResponse {
    fn from(entry: Entry) -> Self {
        Self {
            id: entry.id,
            feed_url: entry.feed_url.as_str().to_owned(),
            title: entry.title,
            link: entry.link,
            thumbnail: entry.thumbnail,
            published_at: entry.published_at,
            summary: entry.summary,
        }
    }
}

/// A page of entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<EntryResponse>,
    pub page: u32,
    pub limit: u32,
    pub total: u64,
    pub total_pages: u64,
}

impl From<Page<Entry>> for EntryPage {
    fn from(page: Page<Entry>) -> Self {
        let total_pages = page.total_pages();
        Self {
            page: page.request.page(),
            limit: page.request.limit(),
            total: page.total,
            total_pages,
            items: page.items.into_iter().map(EntryResponse::from).collect(),
        }
    }
}

/// Ask Galley to ingest a feed. Send an `Idempotency-Key` to make retries return the same job.
#[utoipa::path(
    post, path = "/rss/fetch", tag = "rss", request_body = FetchBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = r"^[\t\x20-\x7E]*[\x21-\x7E][\t\x20-\x7E]*$", description = "Retries with the same key return the same job (visible ASCII, at most 255 characters)")),
    responses(
        (status = 202, description = "Queued", body = FetchAccepted, headers(("Location" = String))),
        (status = 401, description = "Not signed in", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL or Idempotency-Key", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "This client address has asked for too many fetches (`rate_limited`); retry after `Retry-After` seconds", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json", headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 503, description = "Queue unavailable; retry", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn request_fetch(
    State(state): State<RssState>,
    RequestLocale(locale): RequestLocale,
    authenticated: Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody<FetchBody>,
) -> Result<Response, ApiError> {
    let Some(url) = body.url else {
        return Err(Violations::from(Violation::new("url", "required")).into());
    };
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            return Err(Violations::from(Violation::new("Idempotency-Key", "invalid_value")).into());
        }
    };
    let job = state.requests.request_fetch(&authenticated.principal.user_id, &url, key).await?;
    let location = HeaderValue::from_str(&format!("/rss/jobs/{}", job.id))
        .map_err(|error| RssError::Internal(error.to_string()))?;
    let message = state.localizer.message(locale, "rss-fetch-received", &[("url", job.url.as_str().into())]);
    let body = FetchAccepted { job_id: job.id.to_string(), status: job.status.as_str().to_owned(), message };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// A fetch job you requested.
#[utoipa::path(
    get, path = "/rss/jobs/{id}", tag = "rss", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobResponse),
        (status = 404, description = "No such job of yours", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_job(
    State(state): State<RssState>,
    RequestLocale(locale): RequestLocale,
    authenticated: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    let id: JobId = id.parse().map_err(|_| RssError::JobNotFound)?;
    let job = state.requests.job(&authenticated.principal.user_id, id).await?;
    Ok(Json(JobResponse::new(job, &state.localizer, locale)))
}

/// Ingested entries, newest first, optionally of one feed.
#[utoipa::path(
    get, path = "/rss/entries", tag = "rss",
    params(
        ("feed_url" = Option<String>, Query, format = "uri", max_length = 2048, description = "Only entries of this feed (an absolute http(s) URL)"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (default 1)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Entries per page (default 20)"),
        ("locale" = Option<String>, Query, description = "Response language (`en` or `vi`)"),
    ),
    responses(
        (status = 200, description = "A page of entries, with a weak ETag of its bytes", body = EntryPage, headers(("ETag" = String))),
        (status = 304, description = "The page is unchanged since the ETag sent in `If-None-Match`"),
        (status = 422, description = "Invalid parameters (also: an unknown or repeated parameter, more than 64 in all)", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_entries(
    State(state): State<RssState>,
    RawQuery(raw): RawQuery,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(raw.as_deref())?;
    let mut violations = Violations::new();
    params.reject_unknown(&["feed_url", "page", "limit"], &mut violations);
    let page = params.page(&mut violations);
    let feed_url = params.single("feed_url", &mut violations).and_then(|raw| match FeedUrl::parse(&raw) {
        Ok(url) => Some(url),
        Err(more) => {
            violations.extend(more.into_iter().map(|v| Violation { field: "feed_url".into(), ..v }));
            None
        }
    });
    let page = match page {
        Some(page) if violations.is_empty() => page,
        _ => return Err(violations.into()),
    };
    Ok(state.entries.page(&EntryQuery { feed_url, page }).await?.respond(&if_none_match))
}
