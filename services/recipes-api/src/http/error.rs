//! `ApiError`: the one place recipes-api decides which status and problem code a failure becomes.
//! Internal details are logged (inside the request span, so with the request id) and never sent.

use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use galley_http_kit::Problem;
use galley_identity::IdentityError;
use galley_kernel::{Violation, Violations};
use galley_recipes::RecipeError;

#[derive(Debug)]
pub enum ApiError {
    /// A recipe use case failed.
    Recipe(RecipeError),
    /// An identity use case failed.
    Identity(IdentityError),
    /// Request parameters broke rules before any use case ran.
    Invalid(Violations),
    /// A problem decided by the HTTP layer itself (412 on an impossible If-Match, 401, ...).
    Problem(Problem),
}

impl From<RecipeError> for ApiError {
    fn from(error: RecipeError) -> Self {
        Self::Recipe(error)
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        Self::Identity(error)
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl ApiError {
    fn into_problem(self) -> Problem {
        match self {
            Self::Invalid(violations) | Self::Recipe(RecipeError::Invalid(violations)) => {
                Problem::validation(violations)
            }
            Self::Recipe(RecipeError::NotFound) => Problem::new(StatusCode::NOT_FOUND, "recipe_not_found"),
            Self::Recipe(RecipeError::RevisionMismatch) => Problem::precondition_failed(),
            Self::Recipe(RecipeError::Forbidden) => Problem::forbidden(),
            Self::Recipe(RecipeError::Unavailable(error)) => {
                tracing::error!(%error, "recipe store unavailable");
                Problem::unavailable()
            }
            Self::Recipe(RecipeError::Internal(error)) => {
                tracing::error!(%error, "recipe store failure");
                Problem::internal()
            }
            Self::Identity(error) => identity_problem(error),
            Self::Problem(problem) => problem,
        }
    }
}

fn identity_problem(error: IdentityError) -> Problem {
    match error {
        IdentityError::Invalid(violations) => Problem::validation(violations),
        IdentityError::Conflict(fields) => {
            let mut violations = Violations::new();
            violations.extend(fields.iter().map(|field| Violation::new(field.as_str(), "taken")));
            Problem::with_violations(StatusCode::CONFLICT, "account_exists", violations)
        }
        IdentityError::InvalidCredentials => Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials"),
        IdentityError::InvalidRefreshToken => Problem::new(StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
        IdentityError::UserNotFound => galley_http_kit::auth::unauthorized(true),
        IdentityError::Blocked => Problem::new(StatusCode::FORBIDDEN, "account_blocked"),
        IdentityError::LockedOut { retry_after } => {
            let seconds = retry_after.as_secs().max(1);
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
                .with_arg("seconds", i64::try_from(seconds).unwrap_or(i64::MAX))
                .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
        }
        IdentityError::Overloaded { retry_after } => {
            let seconds = retry_after.as_secs().max(1);
            tracing::warn!(seconds, "password hashing pool full: sign-in/up refused");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "sign_in_busy")
                .with_arg("seconds", i64::try_from(seconds).unwrap_or(i64::MAX))
                .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
        }
        IdentityError::Unavailable(error) => {
            tracing::error!(%error, "identity dependency unavailable");
            Problem::unavailable()
        }
        IdentityError::Internal(error) => {
            tracing::error!(%error, "identity failure");
            Problem::internal()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}

#[cfg(test)]
mod tests {
    use galley_kernel::Violation;
    use galley_recipes::RepositoryError;

    use super::*;

    #[test]
    fn each_use_case_error_has_one_status() {
        let status = |error: RecipeError| ApiError::from(error).into_problem().status;
        assert_eq!(status(RecipeError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(RecipeError::RevisionMismatch), StatusCode::PRECONDITION_FAILED);
        assert_eq!(status(RecipeError::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(
            status(RecipeError::Invalid(Violation::new("name", "blank").into())),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(RecipeError::Unavailable(RepositoryError::Unavailable("db down at 10.0.0.5".into()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(RecipeError::Internal(RepositoryError::Internal("x".into()))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn identity_errors_map_to_their_statuses() {
        let problem = |error: IdentityError| ApiError::from(error).into_problem();
        assert_eq!(problem(IdentityError::InvalidCredentials).status, StatusCode::UNAUTHORIZED);
        assert_eq!(problem(IdentityError::InvalidRefreshToken).status, StatusCode::UNAUTHORIZED);
        assert_eq!(problem(IdentityError::Blocked).status, StatusCode::FORBIDDEN);
        let locked =
            problem(IdentityError::LockedOut { retry_after: std::time::Duration::from_millis(1500) });
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(locked.headers.iter().any(|(name, value)| name == header::RETRY_AFTER && value == "1"));
        let conflict = problem(IdentityError::Conflict(vec![
            galley_identity::UniqueField::Username,
            galley_identity::UniqueField::Email,
        ]));
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert_eq!(conflict.violations.len(), 2);
        assert_eq!(
            problem(IdentityError::Unavailable("redis".into())).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let busy = problem(IdentityError::Overloaded { retry_after: std::time::Duration::from_secs(2) });
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.code, "sign_in_busy");
        assert!(busy.headers.iter().any(|(name, value)| name == header::RETRY_AFTER && value == "2"));
    }

    #[test]
    fn internal_details_never_reach_the_problem() {
        let problem = ApiError::from(RecipeError::Internal(RepositoryError::Internal("secret dsn".into())))
            .into_problem();
        assert!(problem.args.iter().all(|(_, value)| !format!("{value:?}").contains("secret")));
    }
}
