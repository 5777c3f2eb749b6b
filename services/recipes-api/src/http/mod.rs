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
use axum::extract::FromRef;
use axum::routing::{get, post};
use galley_http_kit::throttle::{InvalidBudget, throttled};
use galley_http_kit::{AuthConfig, Throttle};
use galley_platform::LimitsSettings;
use galley_recipes::RecipeService;

use crate::reads::RecipeReads;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

pub use error::ApiError;

/// Per-client throttles of the identity routes that cost a password hash or a token rotation
/// (`[limits]`); `None` where throttles are switched off.
#[derive(Debug, Clone, Default)]
pub struct AuthThrottles {
    pub signup: Option<Throttle>,
    pub signin: Option<Throttle>,
    pub refresh: Option<Throttle>,
}

impl AuthThrottles {
    pub fn from_settings(limits: &LimitsSettings) -> Result<Self, InvalidBudget> {
        Ok(Self {
            signup: Throttle::from_settings("signup", limits, limits.signup)?,
            signin: Throttle::from_settings("signin", limits, limits.signin)?,
            refresh: Throttle::from_settings("refresh", limits, limits.refresh)?,
        })
    }
}

/// What the recipes routes need: the use cases for writes, the cached read model for reads.
#[derive(Debug, Clone)]
pub struct RecipesState {
    pub service: RecipeService,
    pub reads: RecipeReads,
}

impl FromRef<RecipesState> for RecipeService {
    fn from_ref(state: &RecipesState) -> Self {
        state.service.clone()
    }
}

impl FromRef<RecipesState> for RecipeReads {
    fn from_ref(state: &RecipesState) -> Self {
        state.reads.clone()
    }
}

/// The service's routes, as nginx presents them: recipes, identity and discovery.
pub fn routes(
    state: RecipesState,
    auth_state: auth::AuthState,
    auth_config: AuthConfig,
    throttles: &AuthThrottles,
) -> Router {
    let recipes = Router::new()
        .route("/recipes", get(handlers::list_recipes).post(handlers::create_recipe))
        .route(
            "/recipes/{id}",
            get(handlers::get_recipe).put(handlers::update_recipe).delete(handlers::delete_recipe),
        )
        .with_state(state);
    let identity = Router::new()
        .route("/auth/signup", throttled(post(auth::sign_up), throttles.signup.as_ref()))
        .route("/auth/signin", throttled(post(auth::sign_in), throttles.signin.as_ref()))
        .route("/auth/refresh", throttled(post(auth::refresh), throttles.refresh.as_ref()))
        .route("/auth/signout", post(auth::sign_out))
        .route("/auth/me", get(auth::me));
    // Galley's discovery documents describe Galley as the issuer: with an external provider they would
    // mislead clients, so they are not served.
    let identity = if auth_state.keys.is_some() {
        identity
            .route("/.well-known/jwks.json", get(auth::jwks))
            .route("/.well-known/openid-configuration", get(auth::openid_configuration))
    } else {
        identity
    };
    let identity = identity.with_state(auth_state);
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

/// Documents the 429 of the throttled identity routes (the handlers do not know about the throttle in
/// front of them).
struct ThrottledResponses;

impl Modify for ThrottledResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in ["/auth/signup", "/auth/signin", "/auth/refresh"] {
            let Some(operation) = openapi.paths.paths.get_mut(path).and_then(|item| item.post.as_mut())
            else {
                continue;
            };
            operation.responses.responses.insert("429".to_owned(), throttled_response().into());
        }
    }
}

fn throttled_response() -> Response {
    let problem = ContentBuilder::new().schema(Some(Ref::from_schema_name("ProblemBody"))).build();
    let retry_after = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .description(Some("Seconds to wait before retrying"))
        .build();
    ResponseBuilder::new()
        .description(
            "Too many requests: this client address has spent its budget for the route (`rate_limited`), or, \
             on sign-in, too many attempts failed (`too_many_requests`). Retry after `Retry-After` seconds.",
        )
        .header("Retry-After", retry_after)
        .content("application/problem+json", problem)
        .build()
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
    modifiers(&BearerScheme, &ThrottledResponses),
    tags((name = "recipes", description = "Cooking recipes"), (name = "auth", description = "Accounts and tokens"))
)]
struct RecipesApiDoc;

/// The OpenAPI 3.1 document of this service, generated from the handlers and models.
pub fn openapi() -> utoipa::openapi::OpenApi {
    RecipesApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use galley_identity::model::limits as identity;
    use galley_kernel::PageRequest;
    use galley_recipes::model::limits;
    use galley_recipes::{RecipeQuery, RecipeSort, TagMatch};
    use serde_json::{Value, json};

    fn document() -> Value {
        serde_json::to_value(super::openapi()).expect("serializable")
    }

    fn query_parameter(document: &Value, name: &str) -> Value {
        let parameters =
            document["paths"]["/recipes"]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        parameters.into_iter().find(|p| p["name"] == name).unwrap_or(Value::Null)["schema"].clone()
    }

    fn choices(list: &str) -> Value {
        list.split(", ").collect()
    }

    /// The documented constraints are the enforced ones, so generated clients and fuzzers send what the
    /// API accepts (and expect refusals where it refuses).
    #[test]
    fn the_listing_parameters_are_documented_as_enforced() {
        let document = document();
        let page = query_parameter(&document, "page");
        assert_eq!(
            (page["minimum"].as_u64(), page["maximum"].as_u64()),
            (Some(1), Some(u64::from(PageRequest::MAX_PAGE)))
        );
        let limit = query_parameter(&document, "limit");
        assert_eq!(limit["maximum"].as_u64(), Some(u64::from(PageRequest::MAX_LIMIT)));
        let tag = query_parameter(&document, "tag");
        assert_eq!(tag["maxItems"].as_u64(), Some(RecipeQuery::MAX_TAG_FILTERS as u64));
        assert_eq!(tag["items"]["maxLength"].as_u64(), Some(limits::TAG_MAX_CHARS as u64));
        assert_eq!(
            query_parameter(&document, "q")["maxLength"].as_u64(),
            Some(RecipeQuery::MAX_TEXT_CHARS as u64)
        );
        assert_eq!(query_parameter(&document, "match")["enum"], choices(TagMatch::CHOICES));
        assert_eq!(query_parameter(&document, "sort")["enum"], choices(RecipeSort::CHOICES));
        let names: Vec<&str> = document["paths"]["/recipes"]["get"]["parameters"]
            .as_array()
            .map(|all| all.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["page", "limit", "tag", "match", "q", "sort", "locale"]);
    }

    #[test]
    fn request_bodies_are_documented_as_enforced() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        let recipe = &schemas["RecipeRequest"];
        assert_eq!(recipe["additionalProperties"], json!(false), "unknown fields are refused");
        assert_eq!(recipe["required"], json!(["name", "ingredients", "instructions"]));
        assert_eq!(recipe["properties"]["name"]["type"], "string", "null is refused, so not nullable");
        assert_eq!(recipe["properties"]["name"]["maxLength"].as_u64(), Some(limits::NAME_MAX_CHARS as u64));
        assert_eq!(recipe["properties"]["tags"]["type"], json!(["array", "null"]), "null means no tags");
        assert_eq!(recipe["properties"]["tags"]["maxItems"].as_u64(), Some(limits::TAGS_MAX_ITEMS as u64));
        let ingredients = &recipe["properties"]["ingredients"];
        assert_eq!(
            (ingredients["minItems"].as_u64(), ingredients["maxItems"].as_u64()),
            (Some(1), Some(limits::INGREDIENTS_MAX_ITEMS as u64))
        );
        assert_eq!(ingredients["items"]["maxLength"].as_u64(), Some(limits::INGREDIENT_MAX_CHARS as u64));
        assert_eq!(
            recipe["properties"]["instructions"]["items"]["maxLength"].as_u64(),
            Some(limits::INSTRUCTION_MAX_CHARS as u64)
        );

        let sign_up = &schemas["SignUpRequest"];
        assert_eq!(sign_up["additionalProperties"], json!(false));
        assert_eq!(
            sign_up["properties"]["username"]["pattern"],
            format!(r"^\s*[A-Za-z]{{{},{}}}\s*$", identity::USERNAME_MIN_CHARS, identity::USERNAME_MAX_CHARS)
        );
        let password = &sign_up["properties"]["password"];
        assert_eq!(
            (password["minLength"].as_u64(), password["maxLength"].as_u64()),
            (Some(identity::PASSWORD_MIN_CHARS as u64), Some(identity::PASSWORD_MAX_CHARS as u64))
        );
        assert_eq!(password["pattern"], format!("[{}]", identity::PASSWORD_SPECIALS));
        assert_eq!(
            sign_up["properties"]["email"]["maxLength"].as_u64(),
            Some(identity::EMAIL_MAX_CHARS as u64)
        );
        assert_eq!(
            sign_up["properties"]["given_name"]["maxLength"].as_u64(),
            Some(identity::GIVEN_NAME_MAX_CHARS as u64)
        );
        assert_eq!(schemas["SignInRequest"]["additionalProperties"], json!(false));
        assert_eq!(schemas["RefreshRequest"]["additionalProperties"], json!(false));
    }

    #[test]
    fn throttled_routes_document_429_with_retry_after() {
        let document = document();
        for path in ["/auth/signup", "/auth/signin", "/auth/refresh"] {
            let response = &document["paths"][path]["post"]["responses"]["429"];
            assert!(response["headers"]["Retry-After"].is_object(), "{path}: {response}");
            assert!(response["content"]["application/problem+json"].is_object(), "{path}");
        }
    }
}
