//! The recipes HTTP adapter.
//!
//! - [`dto`]: JSON request/response models (the API's contract, documented in OpenAPI).
//! - [`handlers`]: the recipes routes: parse, call the use case, map the result.
//! - [`auth`]: the identity routes (`/auth/*`, `/.well-known/*`).
//! - [`error`]: `ApiError`, the single mapping from use-case errors to problem details.

pub mod auth;
pub mod dto;
pub mod error;
pub mod handlers;

use axum::Router;
use axum::routing::{get, post};
use galley_http_kit::AuthConfig;
use galley_recipes::RecipeService;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use error::ApiError;

/// The service's routes, as nginx presents them: recipes, identity and discovery.
pub fn routes(service: RecipeService, auth_state: auth::AuthState, auth_config: AuthConfig) -> Router {
    let recipes = Router::new()
        .route("/recipes", get(handlers::list_recipes).post(handlers::create_recipe))
        .route(
            "/recipes/{id}",
            get(handlers::get_recipe).put(handlers::update_recipe).delete(handlers::delete_recipe),
        )
        .with_state(service);
    let identity = Router::new()
        .route("/auth/signup", post(auth::sign_up))
        .route("/auth/signin", post(auth::sign_in))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/signout", post(auth::sign_out))
        .route("/auth/me", get(auth::me))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/.well-known/openid-configuration", get(auth::openid_configuration))
        .with_state(auth_state);
    recipes.merge(identity).layer(auth_config.layer())
}

/// Declares the bearer-token scheme the protected operations refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Galley recipes API",
        description = "Cooking recipes (list, search, read; create, update and delete when signed in) and \
                       accounts (sign-up, sign-in, refresh, sign-out). Errors are RFC 9457 problem details, \
                       localized with `?locale=` or `Accept-Language` (en, vi).",
        version = env!("CARGO_PKG_VERSION"),
    ),
    paths(
        handlers::list_recipes,
        handlers::get_recipe,
        handlers::create_recipe,
        handlers::update_recipe,
        handlers::delete_recipe,
        auth::sign_up,
        auth::sign_in,
        auth::refresh,
        auth::sign_out,
        auth::me,
        auth::jwks,
        auth::openid_configuration,
    ),
    components(schemas(
        dto::RecipeRequest,
        dto::RecipeResponse,
        dto::RecipePage,
        auth::SignUpRequest,
        auth::SignUpResponse,
        auth::SignInRequest,
        auth::RefreshRequest,
        auth::TokenResponse,
        auth::ProfileResponse,
        galley_http_kit::problem::ProblemBody
    )),
    modifiers(&BearerScheme),
    tags((name = "recipes", description = "Cooking recipes"), (name = "auth", description = "Accounts and tokens"))
)]
struct RecipesApiDoc;

/// The OpenAPI 3.1 document of this service, generated from the handlers and models.
pub fn openapi() -> utoipa::openapi::OpenApi {
    RecipesApiDoc::openapi()
}
