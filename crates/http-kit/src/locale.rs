//! The request's negotiated locale as an extractor (set by the locale middleware in [`crate::stack`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use galley_platform::Locale;

/// The locale negotiated for this request; English when the middleware did not run (unit tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestLocale(pub Locale);

impl<S: Send + Sync> FromRequestParts<S> for RequestLocale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestLocale>().copied().unwrap_or_default())
    }
}
