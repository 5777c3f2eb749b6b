//! The rss-api HTTP adapter: `/rss/fetch`, `/rss/jobs/{id}`, `/rss/entries`.

pub mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use galley_http_kit::{AuthConfig, Problem};
use galley_kernel::Violations;
use galley_platform::Localizer;
use galley_rss::{FetchRequests, RssError};
use utoipa::OpenApi;

/// What the handlers need.
#[derive(Debug, Clone)]
pub struct RssState {
    pub requests: FetchRequests,
    /// For sentences inside successful responses (the 202's message, a failed job's explanation).
    pub localizer: Arc<Localizer>,
}

pub fn routes(state: RssState, auth: AuthConfig) -> Router {
    Router::new()
        .route("/rss/fetch", post(handlers::request_fetch))
        .route("/rss/jobs/{id}", get(handlers::get_job))
        .route("/rss/entries", get(handlers::list_entries))
        .with_state(state)
        .layer(auth.layer())
}

/// The single mapping from RSS use-case failures to problem details.
#[derive(Debug)]
pub enum ApiError {
    Rss(RssError),
    Invalid(Violations),
}

impl From<RssError> for ApiError {
    fn from(error: RssError) -> Self {
        Self::Rss(error)
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::Invalid(violations) | Self::Rss(RssError::Invalid(violations)) => {
                Problem::validation(violations)
            }
            Self::Rss(RssError::JobNotFound) => Problem::new(StatusCode::NOT_FOUND, "job_not_found"),
            Self::Rss(RssError::Unavailable(error)) => {
                tracing::error!(%error, "rss dependency unavailable");
                Problem::unavailable()
            }
            Self::Rss(RssError::Internal(error)) => {
                tracing::error!(%error, "rss failure");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Galley RSS API",
        description = "Ask Galley to ingest a feed, follow the job, read the entries. Errors are RFC 9457 \
                       problem details, localized with `?locale=` or `Accept-Language` (en, vi).",
        version = env!("CARGO_PKG_VERSION"),
    ),
    paths(handlers::request_fetch, handlers::get_job, handlers::list_entries),
    components(schemas(handlers::FetchBody, handlers::FetchAccepted, handlers::JobResponse, handlers::EntryResponse, handlers::EntryPage)),
    tags((name = "rss", description = "Feed ingestion"))
)]
struct RssApiDoc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    RssApiDoc::openapi()
}
