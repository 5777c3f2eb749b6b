//! Health endpoints: `/health/live` answers as long as the process serves HTTP (restart me if not);
//! `/health/ready` runs every dependency check and answers 503 when a critical one is down (stop sending
//! me traffic), listing each dependency's status and latency.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use galley_platform::{HealthCheck, ReadinessReport};
use serde_json::json;

/// Each check gets this long before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type Checks = Arc<Vec<Arc<dyn HealthCheck>>>;

pub fn routes(checks: Vec<Arc<dyn HealthCheck>>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Arc::new(checks))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "up" }))
}

async fn ready(State(checks): State<Checks>) -> Response {
    let report = ReadinessReport::collect(&checks, CHECK_TIMEOUT).await;
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    // A 503 here is a report, not a failed request: its body must stay the report itself.
    let mut response = (status, Json(report)).into_response();
    response.extensions_mut().insert(crate::problem::KeepBody);
    response
}
