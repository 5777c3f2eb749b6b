//! Route handlers: translate HTTP into use-case calls and back, nothing more.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use galley_http_kit::etag::{self, IfMatch, IfNoneMatch};
use galley_http_kit::{Authenticated, JsonBody, Problem, QueryParams};
use galley_kernel::Violations;
use galley_recipes::{
    Actor, Precondition, RecipeId, RecipeQuery, RecipeService, RecipeSort, Revision, TagMatch,
};

use super::dto::{ListRecipesParams, RecipePage, RecipeRequest, RecipeResponse};
use super::error::ApiError;
use crate::reads::RecipeReads;

/// Query parameters `GET /recipes` understands (besides `locale`).
const LIST_PARAMETERS: [&str; 6] = ["page", "limit", "tag", "match", "q", "sort"];

/// Builds a validated listing query, reporting every bad parameter at once.
fn list_query(raw: Option<&str>) -> Result<RecipeQuery, Violations> {
    let params = QueryParams::parse(raw)?;
    let mut violations = Violations::new();
    params.reject_unknown(&LIST_PARAMETERS, &mut violations);
    let page = params.page(&mut violations);
    let tag_match = params.single("match", &mut violations).map_or(Some(TagMatch::Any), |raw| {
        let parsed = TagMatch::parse(&raw);
        if parsed.is_none() {
            violations.push(
                galley_kernel::Violation::new("match", "invalid_choice").with("allowed", TagMatch::CHOICES),
            );
        }
        parsed
    });
    let sort = params.single("sort", &mut violations).map_or(Some(RecipeSort::default()), |raw| {
        let parsed = RecipeSort::parse(&raw);
        if parsed.is_none() {
            violations.push(
                galley_kernel::Violation::new("sort", "invalid_choice").with("allowed", RecipeSort::CHOICES),
            );
        }
        parsed
    });
    let text = params.single("q", &mut violations);
    let query = RecipeQuery::new(
        page.unwrap_or_default(),
        &params.all("tag"),
        tag_match.unwrap_or_default(),
        text.as_deref(),
        sort.unwrap_or_default(),
    )
    .map_err(|more| violations.append(more))
    .ok();
    match query {
        Some(query) if violations.is_empty() => Ok(query),
        _ => Err(violations),
    }
}

/// Any id that is not a recipe id names no recipe: 404, like an unknown one.
fn recipe_id(raw: &str) -> Result<RecipeId, ApiError> {
    raw.parse().map_err(|_| ApiError::Recipe(galley_recipes::RecipeError::NotFound))
}

/// `If-Match` as the use cases understand it: any of the listed revisions may be replaced.
fn precondition(headers: &HeaderMap) -> Precondition {
    match etag::if_match(headers) {
        IfMatch::Any => Precondition::Any,
        IfMatch::Revisions(revisions) => {
            Precondition::OneOf(revisions.into_iter().map(Revision::new).collect())
        }
    }
}

fn with_etag(mut response: Response, revision: Revision) -> Response {
    response.headers_mut().insert(header::ETAG, etag::etag(revision.get()));
    response
}

/// The signed-in caller as the recipes use cases see it.
fn actor(authenticated: &Authenticated) -> Actor {
    Actor::User(authenticated.principal.user_id.clone())
}

/// List and search recipes.
#[utoipa::path(
    get,
    path = "/recipes",
    tag = "recipes",
    params(ListRecipesParams),
    responses(
        (status = 200, description = "A page of recipes", body = RecipePage, headers(("ETag" = String, description = "Weak tag of this page's content; send it in If-None-Match to revalidate"))),
        (status = 304, description = "The page is unchanged since the given ETag"),
        (status = 422, description = "Invalid parameters (also: an unknown or repeated parameter, more than 64 in all)", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_recipes(
    State(reads): State<RecipeReads>,
    RawQuery(raw): RawQuery,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let query = list_query(raw.as_deref())?;
    Ok(reads.list(&query).await?.respond(&if_none_match))
}

/// Read one recipe. Answers 304 when `If-None-Match` holds its current ETag.
#[utoipa::path(
    get,
    path = "/recipes/{id}",
    tag = "recipes",
    params(("id" = String, Path, format = Uuid, description = "Recipe id")),
    responses(
        (status = 200, description = "The recipe", body = RecipeResponse, headers(("ETag" = String, description = "Current revision"))),
        (status = 304, description = "Not modified since the given ETag"),
        (status = 404, description = "No such recipe", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_recipe(
    State(reads): State<RecipeReads>,
    Path(id): Path<String>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    Ok(reads.item(recipe_id(&id)?).await?.respond(&if_none_match))
}

/// Create a recipe.
#[utoipa::path(
    post,
    path = "/recipes",
    tag = "recipes",
    request_body = RecipeRequest,
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Not signed in", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 201, description = "Created", body = RecipeResponse, headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "Malformed JSON", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid recipe", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_recipe(
    State(service): State<RecipeService>,
    authenticated: Authenticated,
    JsonBody(request): JsonBody<RecipeRequest>,
) -> Result<Response, ApiError> {
    let recipe = service.create(&actor(&authenticated), request.into()).await?;
    let location = HeaderValue::from_str(&format!("/recipes/{}", recipe.id))
        .map_err(|_| ApiError::Problem(Problem::internal()))?;
    let revision = recipe.revision;
    let response = (StatusCode::CREATED, [(header::LOCATION, location)], Json(RecipeResponse::from(recipe)));
    Ok(with_etag(response.into_response(), revision))
}

/// Replace a recipe's content. Send `If-Match` with the ETag you read to avoid overwriting someone
/// else's change (412 if it is stale).
#[utoipa::path(
    put,
    path = "/recipes/{id}",
    tag = "recipes",
    params(("id" = String, Path, format = Uuid, description = "Recipe id"), ("If-Match" = Option<String>, Header, nullable = false, description = "ETags (or `*`) the change may apply to; 412 unless the recipe is at one of them")),
    request_body = RecipeRequest,
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Not signed in", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the owner", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 200, description = "Updated", body = RecipeResponse, headers(("ETag" = String))),
        (status = 404, description = "No such recipe", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid recipe", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn update_recipe(
    State(service): State<RecipeService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    authenticated: Authenticated,
    JsonBody(request): JsonBody<RecipeRequest>,
) -> Result<Response, ApiError> {
    let id = recipe_id(&id)?;
    let recipe = service.update(&actor(&authenticated), id, request.into(), &precondition(&headers)).await?;
    let revision = recipe.revision;
    Ok(with_etag(Json(RecipeResponse::from(recipe)).into_response(), revision))
}

/// Delete a recipe (honours `If-Match` like PUT).
#[utoipa::path(
    delete,
    path = "/recipes/{id}",
    tag = "recipes",
    params(("id" = String, Path, format = Uuid, description = "Recipe id"), ("If-Match" = Option<String>, Header, nullable = false, description = "ETags (or `*`) the deletion may apply to; 412 unless the recipe is at one of them")),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Not signed in", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not the owner", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such recipe", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = galley_http_kit::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn delete_recipe(
    State(service): State<RecipeService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    authenticated: Authenticated,
) -> Result<StatusCode, ApiError> {
    let id = recipe_id(&id)?;
    service.delete(&actor(&authenticated), id, &precondition(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_defaults() {
        let query = list_query(None).expect("valid");
        assert_eq!(query.page.page(), 1);
        assert_eq!(query.page.limit(), 20);
        assert_eq!(query.sort, RecipeSort::PublishedDesc);
        assert_eq!(query.tag_match, TagMatch::Any);
    }

    #[test]
    fn list_query_reports_every_bad_parameter() {
        let violations =
            list_query(Some("page=0&limit=500&match=some&sort=up&colour=red&q=")).expect_err("invalid");
        assert!(violations.contains("page", "out_of_range"));
        assert!(violations.contains("limit", "out_of_range"));
        assert!(violations.contains("match", "invalid_choice"));
        assert!(violations.contains("sort", "invalid_choice"));
        assert!(violations.contains("colour", "unknown_parameter"));
        assert_eq!(violations.len(), 5, "{violations}");
        let violations = list_query(Some("page=abc&limit=-1")).expect_err("invalid");
        assert!(violations.contains("page", "invalid_integer"));
        assert!(violations.contains("limit", "out_of_range"));
    }

    #[test]
    fn list_query_reads_repeated_tags() {
        let query = list_query(Some("tag=Soup&tag=vietnamese&match=all&sort=name&q=beef")).expect("valid");
        assert_eq!(query.tags, vec!["soup", "vietnamese"]);
        assert_eq!(query.tag_match, TagMatch::All);
        assert_eq!(query.sort, RecipeSort::Name);
        assert_eq!(query.terms, vec!["beef"]);
    }
}
