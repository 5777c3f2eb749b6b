//! The middleware stack every Galley API runs behind, outermost first:
//!
//! 0. metrics: requests by method, route template and status, their durations, requests in flight
//!    ([`crate::metrics`]; outermost, so timeouts, panics and oversized bodies are counted too);
//! 1. request id: reuse the client's `x-request-id` or mint one ([`RequestIds`]: a random
//!    per-process prefix and a counter, no system call per request), and echo it on the response;
//! 2. tracing: one span per request carrying method, path, route template and request id, so every log
//!    line of the request (including a panic's) can be found by the id quoted in an error response; an
//!    incoming W3C `traceparent`/`tracestate` makes it a child of the caller's span when traces are on
//!    (ADR 0028). The request's start and end are logged at DEBUG (per-request lines are the metrics'
//!    job at INFO), server errors at ERROR;
//! 3. locale + problem rendering: negotiates the locale, sets `Content-Language`, and turns every
//!    [`Problem`] (or bare error status from axum or a layer) into a localized `application/problem+json`;
//! 4. timeout: requests running longer than `http.request_timeout` get 408;
//! 5. panic catching: a panicking handler yields a 500 problem and a logged error, never a dropped
//!    connection or a leaked message;
//! 6. body limit: bodies over `http.body_limit_bytes` get 413.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use galley_platform::{HealthCheck, HttpSettings, Locale, Localizer, Metrics, TraceHeaders};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::client::ClientInfo;
use crate::locale::RequestLocale;
use crate::metrics::{HttpMetrics, record_request};
use crate::problem::{self, Problem, RequestContext};

const REQUEST_ID: &str = "x-request-id";

/// What the shared layers need: the message catalogue, the HTTP limits and the process's metrics.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub localizer: Arc<Localizer>,
    pub settings: HttpSettings,
    /// Where the HTTP RED metrics go ([`Metrics::disabled`] records nothing).
    pub metrics: Metrics,
}

/// Mints request ids: `<16 hex digits, random per process>-<counter>`, unique within the process
/// and, by the random prefix, across processes and restarts. Request ids are for finding log lines,
/// not secrets, so they need no randomness per request: a UUID v4 would cost a `getrandom` system
/// call on every request, this costs an atomic increment.
#[derive(Debug, Clone)]
pub struct RequestIds {
    prefix: Arc<str>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    pub fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self { prefix: Arc::from(&prefix[..16]), counter: Arc::default() }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix)).ok().map(RequestId::new)
    }
}

/// The router of a whole process: the services' `routes`, `/health/live` and `/health/ready` over
/// `health_checks`, `/openapi.json` with the interactive docs at `/docs` (assets bundled, no internet
/// needed), all behind the standard stack.
pub fn process_router(
    routes: Router,
    health_checks: Vec<Arc<dyn HealthCheck>>,
    openapi: utoipa::openapi::OpenApi,
    context: HttpContext,
) -> Router {
    let docs: Router = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi).into();
    let router = routes.merge(crate::health::routes(health_checks)).merge(docs);
    with_standard_layers(router, context)
}

/// Wraps `router` (which should already hold every route) with the standard stack and a localized 404
/// fallback. Apply once, to the outermost router of a process.
pub fn with_standard_layers(router: Router, context: HttpContext) -> Router {
    let timeout = context.settings.request_timeout;
    let body_limit = context.settings.body_limit_bytes;
    let metrics = HttpMetrics::new(&context.metrics);
    router.fallback(route_not_found).layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(metrics, record_request))
            .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        let route = request
                            .extensions()
                            .get::<axum::extract::MatchedPath>()
                            .map_or(crate::metrics::UNMATCHED_ROUTE, |path| path.as_str());
                        let span = tracing::info_span!(
                            "request",
                            otel.name = %format_args!("{} {route}", request.method()),
                            otel.kind = "server",
                            method = %request.method(),
                            path = %request.uri().path(),
                            route,
                            request_id,
                        );
                        // Right at creation: a span's parent cannot change once it has started.
                        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
                        galley_platform::telemetry::set_parent(
                            &span,
                            TraceHeaders::from_values(header("traceparent"), header("tracestate")).as_ref(),
                        );
                        span
                    })
                    .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(middleware::from_fn_with_state(Arc::new(context), localize))
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(DefaultBodyLimit::max(body_limit)),
    )
}

async fn route_not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "route_not_found")
}

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    // Runs inside the request span, so the log line carries the request id.
    tracing::error!(panic = message, "handler panicked");
    Problem::internal().into_response()
}

/// `?locale=` without decoding the rest of the query string, looking no further than a query string
/// may go (see [`crate::query::QueryParams::MAX_PARAMETERS`]).
fn query_locale(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .take(crate::query::QueryParams::MAX_PARAMETERS)
        .find(|(key, _)| key == "locale")
        .map(|(_, value)| value.into_owned())
}

async fn localize(State(context): State<Arc<HttpContext>>, mut request: Request, next: Next) -> Response {
    let locale = Locale::negotiate(
        query_locale(request.uri().query()).as_deref(),
        request.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
    );
    // Only a problem needs these, and few responses are problems: keep cheap handles (a `Uri` and a
    // `HeaderValue` clone share their bytes) and build the strings only when rendering one.
    let uri = request.uri().clone();
    let method = request.method().clone();
    let request_id = request.headers().get(REQUEST_ID).cloned();
    request.extensions_mut().insert(RequestLocale(locale));
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let client = ClientInfo::resolve(peer, request.headers(), &context.settings.trusted_proxies);
    request.extensions_mut().insert(client);

    let mut response = next.run(request).await;
    let problem = response.extensions_mut().remove::<Problem>().or_else(|| {
        let status = response.status();
        let already_problem = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(problem::CONTENT_TYPE.as_bytes()));
        let keep = response.extensions().get::<problem::KeepBody>().is_some();
        ((status.is_client_error() || status.is_server_error()) && !already_problem && !keep)
            .then(|| Problem::from_status(status))
    });
    if let Some(problem) = problem {
        let request_context = RequestContext {
            path: uri.path().to_owned(),
            method: method.to_string(),
            request_id: request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        };
        response = render(&context, locale, &request_context, &problem, response);
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(locale.as_str()));
    headers.append(header::VARY, HeaderValue::from_static("accept-language"));
    response
}

/// Replaces `original`'s body with the localized problem, keeping its headers (e.g. axum's `Allow` on
/// 405) and adding the problem's own.
fn render(
    context: &HttpContext,
    locale: Locale,
    request: &RequestContext,
    problem: &Problem,
    original: Response,
) -> Response {
    let mut problem = problem.clone();
    if problem.code == "payload_too_large" && !problem.args.iter().any(|(name, _)| *name == "limit") {
        problem = problem.with_arg("limit", human_bytes(context.settings.body_limit_bytes));
    }
    if problem.status.is_server_error() {
        tracing::error!(code = problem.code, status = problem.status.as_u16(), "request failed");
    }
    let body = problem.render(&context.localizer, locale, request);
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    let (mut parts, _) = original.into_parts();
    parts.status = problem.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(problem::CONTENT_TYPE));
    for (name, value) in problem.headers {
        parts.headers.insert(name, value);
    }
    Response::from_parts(parts, Body::from(json))
}

/// `1048576` → `1 MiB`, for limits shown to people.
fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 3] = ["bytes", "KiB", "MiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 && value.is_multiple_of(1024) && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_and_share_the_process_prefix() {
        let mut ids = RequestIds::new();
        let request = http::Request::new(());
        let first = ids.make_request_id(&request).expect("id");
        let second = ids.clone().make_request_id(&request).expect("id");
        let (first, second) = (first.header_value().clone(), second.header_value().clone());
        assert_ne!(first, second, "clones share the counter");
        let prefix = |v: &HeaderValue| v.to_str().expect("ascii").split('-').next().map(str::to_owned);
        assert_eq!(prefix(&first), prefix(&second));
        assert_eq!(prefix(&first).map(|p| p.len()), Some(16));
        assert_ne!(
            prefix(&first),
            prefix(&RequestIds::new().make_request_id(&request).expect("id").header_value().clone())
        );
    }

    #[test]
    fn human_bytes_uses_exact_binary_units() {
        assert_eq!(human_bytes(1024 * 1024), "1 MiB");
        assert_eq!(human_bytes(2048), "2 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn reads_the_locale_parameter_only() {
        assert_eq!(query_locale(Some("page=2&locale=vi")).as_deref(), Some("vi"));
        assert_eq!(query_locale(Some("page=2")), None);
        assert_eq!(query_locale(None), None);
    }
}
