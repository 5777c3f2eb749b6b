//! The rss-api HTTP adapter: `/rss/fetch`, `/rss/jobs/{id}`, `/rss/entries`.

pub mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use galley_http_kit::throttle::throttled;
use galley_http_kit::{AuthConfig, Problem, Throttle};
use galley_kernel::Violations;
use galley_platform::Localizer;
use galley_rss::{FetchRequests, RssError};
use utoipa::OpenApi;

use crate::reads::EntryReads;

/// What the handlers need.
#[derive(Debug, Clone)]
pub struct RssState {
    pub requests: FetchRequests,
    /// `GET /rss/entries`, served from cached encoded pages.
    pub entries: EntryReads,
    /// For sentences inside successful responses (the 202's message, a failed job's explanation).
    pub localizer: Arc<Localizer>,
}

/// The rss-api routes. `fetch_throttle` (from `limits.fetch`) bounds how many feed fetches one client
/// address can ask for; `None` when throttles are switched off.
pub fn routes(state: RssState, auth: AuthConfig, fetch_throttle: Option<&Throttle>) -> Router {
    Router::new()
        .route("/rss/fetch", throttled(post(handlers::request_fetch), fetch_throttle))
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

#[cfg(test)]
mod tests {
    use galley_kernel::PageRequest;
    use serde_json::{Value, json};

    /// The documented constraints are the enforced ones (see `FeedUrl::parse`, `FetchRequests`).
    #[test]
    fn the_document_declares_what_the_api_enforces() {
        let document = serde_json::to_value(super::openapi()).expect("serializable");
        let body = &document["components"]["schemas"]["FetchBody"];
        assert_eq!(body["additionalProperties"], json!(false));
        assert_eq!(body["required"], json!(["url"]));
        assert_eq!(body["properties"]["url"]["type"], "string");
        assert_eq!(
            body["properties"]["url"]["maxLength"].as_u64(),
            Some(galley_rss::feed_url::MAX_CHARS as u64)
        );

        let fetch = &document["paths"]["/rss/fetch"]["post"];
        let key =
            fetch["parameters"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "Idempotency-Key"));
        let key = key.map_or(Value::Null, |key| key["schema"].clone());
        assert_eq!(key["maxLength"].as_u64(), Some(galley_rss::requests::MAX_IDEMPOTENCY_KEY_CHARS as u64));
        assert!(fetch["responses"]["429"]["headers"]["Retry-After"].is_object());

        let parameters =
            document["paths"]["/rss/entries"]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        let schema = |name: &str| {
            parameters.iter().find(|p| p["name"] == name).map_or(Value::Null, |p| p["schema"].clone())
        };
        assert_eq!(schema("page")["maximum"].as_u64(), Some(u64::from(PageRequest::MAX_PAGE)));
        assert_eq!(schema("limit")["maximum"].as_u64(), Some(u64::from(PageRequest::MAX_LIMIT)));
        assert_eq!(schema("feed_url")["maxLength"].as_u64(), Some(galley_rss::feed_url::MAX_CHARS as u64));
    }
}
