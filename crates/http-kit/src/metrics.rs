//! HTTP RED metrics and the `GET /metrics` endpoint (ADR 0026).
//!
//! - [`HttpMetrics`]: the outermost layer of the standard stack counts every request by method, route
//!   *template* (axum's [`MatchedPath`], never the raw path, so ids never become labels) and status,
//!   times it into a histogram, and tracks requests in flight. Handles are registered once per
//!   (method, status, route) and cached, so a request costs a read lock, two hash lookups on borrowed
//!   keys and a few atomic operations — no allocation.
//! - [`MetricsEndpoint`]: `GET /metrics` in the Prometheus text format, on the service's router or,
//!   with `telemetry.metrics_bind`, on a listener of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use galley_platform::{Metrics, Shutdown, TelemetrySettings};
use metrics::{Counter, Gauge, Histogram, Unit};
use tokio::net::TcpListener;

/// `requests_total{method,route,status}`.
pub const REQUESTS_TOTAL: &str = "galley_http_requests_total";
/// `request_duration_seconds{method,route,status}` (histogram).
pub const REQUEST_DURATION: &str = "galley_http_request_duration_seconds";
/// Requests being served now (gauge).
pub const REQUESTS_IN_FLIGHT: &str = "galley_http_requests_in_flight";
/// The `route` label of requests no route matched (404 fallback): one series, whatever the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The Prometheus text exposition format, version 0.0.4.
const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// RED metrics of one process's HTTP server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: Metrics,
    in_flight: Gauge,
    /// (method, status) → route template → handles. Keyed so a lookup borrows: the method label is
    /// static, the route is looked up by `&str`.
    handles: RwLock<HandlesByRoute>,
}

/// (method label, status) → route template → handles.
type HandlesByRoute = HashMap<(&'static str, u16), HashMap<Box<str>, RouteHandles>>;

#[derive(Debug, Clone)]
struct RouteHandles {
    requests: Counter,
    duration: Histogram,
}

impl HttpMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        metrics.describe_counter(REQUESTS_TOTAL, Unit::Count, "HTTP requests answered, by route template.");
        metrics.describe_histogram(REQUEST_DURATION, Unit::Seconds, "Time to answer an HTTP request.");
        metrics.describe_gauge(REQUESTS_IN_FLIGHT, Unit::Count, "HTTP requests being answered.");
        Self {
            inner: Arc::new(Inner {
                metrics: metrics.clone(),
                in_flight: metrics.gauge(REQUESTS_IN_FLIGHT, &[]),
                handles: RwLock::default(),
            }),
        }
    }

    fn is_enabled(&self) -> bool {
        self.inner.metrics.is_enabled()
    }

    fn record(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let cached = self
            .inner
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(method, status))
            .and_then(|routes| routes.get(route))
            .cloned();
        let handles = match cached {
            Some(handles) => handles,
            None => self.register(method, route, status),
        };
        handles.requests.increment(1);
        handles.duration.record(elapsed.as_secs_f64());
    }

    /// First request of a (method, route, status): register its handles (the slow path, once).
    fn register(&self, method: &'static str, route: &str, status: u16) -> RouteHandles {
        let metrics = &self.inner.metrics;
        let labels = [
            ("method", method.into()),
            ("route", route.to_owned().into()),
            ("status", status.to_string().into()),
        ];
        let handles = RouteHandles {
            requests: metrics.counter(REQUESTS_TOTAL, &labels),
            duration: metrics.histogram(REQUEST_DURATION, &labels),
        };
        self.inner
            .handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((method, status))
            .or_default()
            .entry(route.into())
            .or_insert(handles)
            .clone()
    }
}

/// The standard methods by name; anything else is `OTHER`, so a client cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Decrements the in-flight gauge even when the request future is dropped (client gone, timeout).
struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Middleware: must run after routing (`Router::layer` applies it per route), so [`MatchedPath`] is set.
pub async fn record_request(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    if !metrics.is_enabled() {
        return next.run(request).await;
    }
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    metrics.inner.in_flight.increment(1.0);
    let in_flight = InFlight(metrics.inner.in_flight.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    metrics.record(method, route, response.status().as_u16(), started.elapsed());
    drop(in_flight);
    response
}

/// Where `GET /metrics` is served: on the service's router, or on `telemetry.metrics_bind`.
#[derive(Debug)]
pub struct MetricsEndpoint {
    metrics: Metrics,
    own_listener: Option<TcpListener>,
}

impl MetricsEndpoint {
    /// Binds `telemetry.metrics_bind` when it is set and metrics are on.
    pub async fn bind(metrics: &Metrics, settings: &TelemetrySettings) -> std::io::Result<Self> {
        let own_listener = match settings.metrics_bind {
            Some(address) if metrics.is_enabled() => Some(TcpListener::bind(address).await?),
            _ => None,
        };
        Ok(Self { metrics: metrics.clone(), own_listener })
    }

    /// `GET /metrics` for the service's router; empty when metrics are off or served on their own
    /// listener.
    pub fn routes(&self) -> Router {
        if self.own_listener.is_some() || !self.metrics.is_enabled() {
            return Router::new();
        }
        metrics_router(self.metrics.clone())
    }

    /// The address of the separate metrics listener, if there is one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.own_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves the separate listener (if any) and folds histogram samples every few seconds, until
    /// `shutdown`.
    pub fn spawn(self, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let upkeep = self.metrics.spawn_upkeep(Duration::from_secs(5), shutdown.clone());
        tokio::spawn(async move {
            if let Some(listener) = self.own_listener {
                let router = metrics_router(self.metrics.clone());
                let result = axum::serve(listener, router)
                    .with_graceful_shutdown({
                        let shutdown = shutdown.clone();
                        async move { shutdown.wait().await }
                    })
                    .await;
                if let Err(error) = result {
                    tracing::error!(%error, "metrics listener failed");
                }
            }
            if let Err(error) = upkeep.await {
                tracing::warn!(%error, "metrics upkeep task ended abnormally");
            }
        })
    }
}

fn metrics_router(metrics: Metrics) -> Router {
    Router::new().route("/metrics", get(render)).with_state(metrics)
}

async fn render(State(metrics): State<Metrics>) -> Response {
    let body = metrics.render().unwrap_or_default();
    ([(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION_CONTENT_TYPE))], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").expect("method")), "OTHER");
    }

    #[test]
    fn handles_are_cached_per_method_route_and_status() {
        let metrics = Metrics::new(galley_platform::BuildInfo { service: "test", version: "0" });
        let http = HttpMetrics::new(&metrics);
        http.record("GET", "/things/{id}", 200, Duration::from_millis(2));
        http.record("GET", "/things/{id}", 200, Duration::from_millis(2));
        http.record("GET", "/things/{id}", 404, Duration::from_millis(2));
        let rendered = metrics.render().expect("enabled");
        assert!(
            rendered
                .contains(r#"galley_http_requests_total{method="GET",route="/things/{id}",status="200"} 2"#),
            "{rendered}"
        );
        assert!(
            rendered
                .contains(r#"galley_http_requests_total{method="GET",route="/things/{id}",status="404"} 1"#),
            "{rendered}"
        );
        let cached = http.inner.handles.read().expect("lock").values().map(HashMap::len).sum::<usize>();
        assert_eq!(cached, 2);
    }
}
