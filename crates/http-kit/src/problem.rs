//! Problem details (RFC 9457).
//!
//! Handlers and extractors return a [`Problem`]: a status, a stable machine `code` and arguments, but no
//! prose. Its `IntoResponse` stores it in the response extensions; the problem-rendering middleware in
//! [`crate::stack`] then writes the body in the request's language, adding the request id and path.
//! Rendering in one place means a problem raised anywhere (handler, extractor, fallback, panic, timeout)
//! looks the same and is localized the same way.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use galley_kernel::{ParamValue, Violation, Violations};
use galley_platform::{Locale, Localizer, MessageArg};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Marks an error-status response whose body is meaningful as it is (a readiness report), so the problem
/// renderer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

/// An error response waiting to be localized.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable machine code (`validation_failed`, `not_found`, ...). Selects the messages
    /// `problem-<code>-title` and `problem-<code>-detail`.
    pub code: &'static str,
    /// Arguments for the detail message (besides `path`, `method` and `request_id`, always given).
    pub args: Vec<(&'static str, MessageArg)>,
    /// Field-level violations (validation problems only), at most [`Violations::MAX_LISTED`].
    pub violations: Vec<Violation>,
    /// Violations found beyond those listed, reported as a count only so the body stays small.
    pub unlisted_violations: usize,
    /// Extra response headers (`Retry-After`, `Allow`, ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            args: Vec::new(),
            violations: Vec::new(),
            unlisted_violations: 0,
            headers: Vec::new(),
        }
    }

    /// A problem listing `violations` (at most [`Violations::MAX_LISTED`] of them; the rest are counted),
    /// with their total as the `count` argument.
    pub fn with_violations(status: StatusCode, code: &'static str, violations: Violations) -> Self {
        let count = i64::try_from(violations.len()).unwrap_or(i64::MAX);
        let unlisted_violations = violations.unlisted();
        Self { violations: violations.into_iter().collect(), unlisted_violations, ..Self::new(status, code) }
            .with_arg("count", count)
    }

    #[must_use]
    pub fn with_arg(mut self, name: &'static str, value: impl Into<MessageArg>) -> Self {
        self.args.push((name, value.into()));
        self
    }

    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 422 listing the violated rules.
    pub fn validation(violations: Violations) -> Self {
        Self::with_violations(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", violations)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found")
    }

    pub fn precondition_failed() -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "precondition_failed")
    }

    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden")
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
    }

    /// The problem standing for a bare error status produced outside our handlers (by axum, a tower
    /// layer or a panic), so those responses are problem details too.
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => "route_not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
            StatusCode::PRECONDITION_FAILED => "precondition_failed",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::CONFLICT => "conflict",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
            s if s.is_server_error() => "internal_error",
            _ => "bad_request",
        };
        let status = if code == "internal_error" { StatusCode::INTERNAL_SERVER_ERROR } else { status };
        Self::new(status, code)
    }

    /// The JSON body in `locale`. `path`, `method` and `request_id` are available to every message.
    pub fn render(&self, localizer: &Localizer, locale: Locale, context: &RequestContext) -> ProblemBody {
        let mut args: Vec<(&str, MessageArg)> = vec![
            ("path", MessageArg::from(context.path.as_str())),
            ("method", MessageArg::from(context.method.as_str())),
            ("request_id", MessageArg::from(context.request_id.as_str())),
        ];
        args.extend(self.args.iter().map(|(name, value)| (*name, value.clone())));
        let errors = self
            .violations
            .iter()
            .map(|violation| FieldError {
                field: violation.field.clone(),
                code: violation.code,
                message: violation_message(localizer, locale, violation),
            })
            .collect();
        ProblemBody {
            kind: format!("urn:galley:problem:{}", self.code),
            title: localizer.message(locale, &format!("problem-{}-title", self.code), &args),
            status: self.status.as_u16(),
            detail: localizer.message(locale, &format!("problem-{}-detail", self.code), &args),
            instance: context.path.clone(),
            code: self.code,
            request_id: context.request_id.clone(),
            errors,
            unlisted_errors: self.unlisted_violations,
        }
    }
}

/// The sentence explaining one violation, e.g. "must be at most 200 characters long".
pub fn violation_message(localizer: &Localizer, locale: Locale, violation: &Violation) -> String {
    let args: Vec<(&str, MessageArg)> = violation
        .params
        .iter()
        .map(|(name, value)| {
            let arg = match value {
                ParamValue::Number(n) => MessageArg::Number(*n),
                ParamValue::Text(t) => MessageArg::Text(t.clone()),
            };
            (*name, arg)
        })
        .collect();
    localizer.message(locale, &format!("violation-{}", violation.code), &args)
}

/// What the renderer knows about the request a problem answers.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub path: String,
    pub method: String,
    pub request_id: String,
}

/// The serialized problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// URN naming the kind of problem (`urn:galley:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, localized summary of the problem kind.
    pub title: String,
    pub status: u16,
    /// Localized explanation of this occurrence.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// Stable machine-readable code; branch on this, not on the prose.
    pub code: &'static str,
    /// Correlates the response with server logs.
    pub request_id: String,
    /// The violated rules (validation problems only): the first 50 found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 50)]
    pub errors: Vec<FieldError>,
    /// How many further violations were found but are not listed in `errors` (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(minimum = 1)]
    pub unlisted_errors: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// One violated rule in a validation problem.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
