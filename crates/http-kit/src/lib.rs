//! Axum glue shared by every Galley API: the HTTP behaviours a client sees the same way on every service.
//!
//! Module map:
//! - [`problem`]: RFC 9457 problem details with a stable `code`, localized when rendered.
//! - [`stack`]: the middleware stack (request id, tracing, locale negotiation, problem rendering, timeout,
//!   panic catching, body limit) and the 404/405 fallbacks.
//! - [`json`]: `JsonBody<T>`, a JSON extractor whose failures are localized problems (400/413/415/422).
//! - [`query`]: strict, bounded query-string parsing that reports unknown and malformed parameters.
//! - [`metrics`]: HTTP RED metrics (by route template) and the `GET /metrics` endpoint.
//! - [`locale`]: the negotiated locale as an extractor.
//! - [`health`]: `/health/live` and `/health/ready`.
//! - [`serve`]: serving a router with graceful shutdown.
//! - [`auth`]: the `Authenticated` extractor (bearer token or encrypted session cookie, CSRF check).
//! - [`client`]: `ClientInfo`, the client's address and TLS, honouring trusted proxies only.
//! - [`etag`]: `ETag`, and `If-Match` / `If-None-Match` lists read by RFC 9110's rules.
//! - [`read_cache`]: `EncodedReads`, cached encoded answers checked against a generation counter, and
//!   `EncodedRead` answered as 200 or 304 (the read model at the edge, ADR 0024).
//! - [`throttle`]: `Throttle`, a request budget per client address (429 + `Retry-After`) for costly routes.
//! - [`front_door`]: `GET /`, the process's name, version and links, as HTML or JSON.

pub mod auth;
pub mod client;
pub mod etag;
pub mod front_door;
pub mod health;
pub mod json;
pub mod locale;
pub mod metrics;
pub mod problem;
pub mod query;
pub mod read_cache;
pub mod serve;
pub mod stack;
pub mod throttle;

pub use auth::{AuthConfig, Authenticated};
pub use client::ClientInfo;
pub use front_door::front_door;
pub use json::JsonBody;
pub use locale::RequestLocale;
pub use metrics::{HttpMetrics, MetricsEndpoint};
pub use problem::Problem;
pub use query::QueryParams;
pub use serve::serve;
pub use stack::{HttpContext, process_router, with_standard_layers};
pub use throttle::Throttle;
