//! Behaviour specs (Gherkin, run by cucumber) for the recipes flows and their error cases, in English
//! and Vietnamese, against a real recipes-api on a loopback port.

mod support;

use cucumber::writer::Stats as _;
use cucumber::{World, given, then, when};
use reqwest::header::{CONTENT_LANGUAGE, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use serde_json::{Value, json};
use support::{AppOptions, Provider, TestApp, TestUser, spawn_app_with};

#[derive(Debug, Default, World)]
struct RecipesWorld {
    /// Which identity provider the service runs with (every feature runs with each).
    provider: Provider,
    app: Option<TestApp>,
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    location: Option<String>,
    created_etag: Option<String>,
    current_etag: Option<String>,
    /// The signed-in cook, whose bearer token every write carries.
    user: Option<TestUser>,
    /// Statuses of a series of attempts.
    attempts: Vec<u16>,
}

impl RecipesWorld {
    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("the service was started in the background")
    }

    async fn record(&mut self, response: reqwest::Response) {
        self.status = response.status().as_u16();
        self.headers = response.headers().clone();
        // A recipe's tag is strong; list pages carry weak tags, which are no use in If-Match.
        if let Some(etag) =
            self.headers.get(ETAG).and_then(|v| v.to_str().ok()).filter(|t| !t.starts_with("W/"))
        {
            self.current_etag = Some(etag.to_owned());
        }
        let bytes = response.bytes().await.expect("body");
        self.body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    }

    fn location(&self) -> String {
        self.location.clone().expect("a recipe was created")
    }

    /// A request with the signed-in cook's bearer token, if any.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let app = self.app();
        let request = app.client.request(method, app.url(path));
        match &self.user {
            Some(user) => request.bearer_auth(&user.access_token),
            None => request,
        }
    }
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',').map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect()
}

fn recipe_body(name: &str) -> Value {
    json!({"name": name, "tags": [], "ingredients": ["salt"], "instructions": ["Cook it."]})
}

#[given("a running recipes service")]
async fn running_service(world: &mut RecipesWorld) {
    world.app = Some(spawn_app_with(AppOptions { provider: world.provider, ..AppOptions::default() }).await);
}

#[given(expr = "recipes named {string}, {string} and {string} exist")]
async fn recipes_exist(world: &mut RecipesWorld, first: String, second: String, third: String) {
    for (name, ingredient) in [(first, "garlic"), (second, "coconut milk"), (third, "apples")] {
        let mut body = recipe_body(&name);
        body["ingredients"] = json!([ingredient]);
        let response =
            world.request(reqwest::Method::POST, "/recipes").json(&body).send().await.expect("sent");
        assert_eq!(response.status(), 201);
    }
}

#[when(expr = "I create a recipe named {string} tagged {string} with ingredients {string}")]
async fn create_recipe(world: &mut RecipesWorld, name: String, tags: String, ingredients: String) {
    let body = json!({
        "name": name, "tags": split_list(&tags), "ingredients": split_list(&ingredients),
        "instructions": ["Roll everything in the rice paper."]
    });
    let response = world.request(reqwest::Method::POST, "/recipes").json(&body).send().await.expect("sent");
    world.record(response).await;
    world.location = world.headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    world.created_etag.clone_from(&world.current_etag);
}

#[when(expr = "I create a recipe in {string} with a blank name, a 60-character tag and no ingredients")]
async fn create_invalid(world: &mut RecipesWorld, locale: String) {
    let body = json!({"name": "  ", "tags": ["x".repeat(60)], "instructions": ["Stir."]});
    let path = format!("/recipes?locale={locale}");
    let response = world.request(reqwest::Method::POST, &path).json(&body).send().await.expect("sent");
    world.record(response).await;
}

#[when(expr = "I list recipes tagged {string}")]
async fn list_tagged(world: &mut RecipesWorld, tag: String) {
    let response = world.app().get(&format!("/recipes?tag={tag}")).await;
    world.record(response).await;
}

#[when(expr = "I search recipes for {string}")]
async fn search(world: &mut RecipesWorld, text: String) {
    let response = world.app().get(&format!("/recipes?q={text}")).await;
    world.record(response).await;
}

#[when(expr = "I list recipes sorted by {string} {int} per page, page {int}")]
async fn list_sorted(world: &mut RecipesWorld, sort: String, limit: u32, page: u32) {
    let response = world.app().get(&format!("/recipes?sort={sort}&limit={limit}&page={page}")).await;
    world.record(response).await;
}

async fn rename(world: &mut RecipesWorld, name: &str, etag: Option<String>, locale: Option<&str>) {
    let mut body = recipe_body(name);
    body["tags"] = json!(["vietnamese", "fresh"]);
    let path = match locale {
        Some(locale) => format!("{}?locale={locale}", world.location()),
        None => world.location(),
    };
    let mut request = world.request(reqwest::Method::PUT, &path).json(&body);
    if let Some(etag) = etag {
        request = request.header(IF_MATCH, etag);
    }
    let response = request.send().await.expect("sent");
    world.record(response).await;
}

#[when(expr = "I rename the recipe to {string} with its current ETag")]
async fn rename_current(world: &mut RecipesWorld, name: String) {
    let etag = world.current_etag.clone();
    rename(world, &name, etag, None).await;
}

#[when(expr = "I rename the recipe to {string} in {string}")]
async fn rename_in(world: &mut RecipesWorld, name: String, locale: String) {
    rename(world, &name, None, Some(&locale)).await;
}

#[when(expr = "I rename the recipe to {string} with the ETag from its creation")]
async fn rename_stale(world: &mut RecipesWorld, name: String) {
    let etag = world.created_etag.clone();
    rename(world, &name, etag, None).await;
}

#[when("I fetch the recipe")]
async fn fetch(world: &mut RecipesWorld) {
    let response = world.app().get(&world.location()).await;
    world.record(response).await;
}

#[when(expr = "I fetch the recipe in {string}")]
async fn fetch_in(world: &mut RecipesWorld, locale: String) {
    let response = world.app().get(&format!("{}?locale={locale}", world.location())).await;
    world.record(response).await;
}

#[when("I delete the recipe")]
async fn delete(world: &mut RecipesWorld) {
    let response = world.request(reqwest::Method::DELETE, &world.location()).send().await.expect("sent");
    world.record(response).await;
}

#[when(regex = r#"^I send (GET|POST|PUT|PATCH|DELETE) "([^"]+)" in "(\w+)" with an? (\S+) body$"#)]
async fn send_raw(world: &mut RecipesWorld, method: String, path: String, locale: String, kind: String) {
    let (content_type, body): (&str, Vec<u8>) = match kind.as_str() {
        "truncated" => ("application/json", br#"{"name": "Pho", "tags": ["#.to_vec()),
        "form-encoded" => ("application/x-www-form-urlencoded", b"name=Pho".to_vec()),
        "oversized" => {
            ("application/json", format!(r#"{{"name":"{}"}}"#, "a".repeat(2 * 1024 * 1024)).into_bytes())
        }
        "unknown-field" => (
            "application/json",
            br#"{"name":"Pho","ingredients":["x"],"instructions":["y"],"rating":5}"#.to_vec(),
        ),
        _ => ("application/json", Vec::new()),
    };
    let separator = if path.contains('?') { '&' } else { '?' };
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = world.request(method, &format!("{path}{separator}locale={locale}"));
    if kind == "oversized" {
        // The server answers 413 without reading the body and then closes the connection: a client
        // must not put it back in its pool, or its next request can meet the closed socket.
        request = request.header(reqwest::header::CONNECTION, "close");
    }
    if !body.is_empty() {
        request = request.header(CONTENT_TYPE, content_type).body(body);
    }
    let response = request.send().await.expect("sent");
    world.record(response).await;
}

#[given(expr = "I am signed in as {string}")]
async fn signed_in_as(world: &mut RecipesWorld, username: String) {
    let user = world.app().user(&username).await;
    world.user = Some(user);
}

#[given(expr = "a cook {string} has an account")]
async fn cook_exists(world: &mut RecipesWorld, username: String) {
    assert_eq!(world.app().sign_up(&username).await.status(), 201);
}

#[when(expr = "I sign up as {string} with password {string}")]
async fn sign_up(world: &mut RecipesWorld, username: String, password: String) {
    let body =
        json!({"email": format!("{username}@example.com"), "username": username, "password": password});
    let response = world.app().post_json("/auth/signup", &body).await;
    world.record(response).await;
}

#[when(expr = "I sign up in {string} as {string} with email {string} and password {string}")]
async fn sign_up_in(
    world: &mut RecipesWorld,
    locale: String,
    username: String,
    email: String,
    password: String,
) {
    let app = world.app();
    let body = json!({"email": email, "username": username, "password": password});
    let url = app.url(&format!("/auth/signup?locale={locale}"));
    let response = app.client.post(url).json(&body).send().await.expect("sent");
    world.record(response).await;
}

#[when(expr = "I sign in as {string} with password {string}")]
async fn sign_in(world: &mut RecipesWorld, username: String, password: String) {
    let response = world.app().sign_in(&username, &password).await;
    if response.status() == 200 {
        world.status = 200;
        world.user = Some(TestUser::from_sign_in(&username, response).await);
    } else {
        world.record(response).await;
    }
}

#[when(expr = "I sign in as {string} with password {string} in {string}")]
async fn sign_in_localized(world: &mut RecipesWorld, username: String, password: String, locale: String) {
    let app = world.app();
    let body = json!({"username": username, "password": password});
    let response = app
        .client
        .post(app.url(&format!("/auth/signin?locale={locale}")))
        .json(&body)
        .send()
        .await
        .expect("sent");
    world.record(response).await;
}

#[when(expr = "I sign in as {string} with a wrong password {int} times")]
async fn wrong_password(world: &mut RecipesWorld, username: String, times: usize) {
    for _ in 0..times {
        let status = world.app().sign_in(&username, "wrong horse!").await.status().as_u16();
        world.attempts.push(status);
    }
}

#[when("I sign out")]
async fn sign_out(world: &mut RecipesWorld) {
    let response = world.request(reqwest::Method::POST, "/auth/signout").send().await.expect("sent");
    world.record(response).await;
}

#[then("I hold a bearer token and a session cookie")]
async fn holds_tokens(world: &mut RecipesWorld) {
    let user = world.user.as_ref().expect("signed in");
    assert_eq!(user.access_token.split('.').count(), 3, "a JWT");
    assert!(user.cookie.starts_with("Authorization="));
    assert!(!user.refresh_token.is_empty());
}

#[then(expr = "every attempt was refused with status {int}")]
async fn every_attempt(world: &mut RecipesWorld, status: u16) {
    assert!(!world.attempts.is_empty());
    assert!(world.attempts.iter().all(|s| *s == status), "{:?}", world.attempts);
}

#[then("the response asks to retry after about 15 minutes")]
async fn retry_after(world: &mut RecipesWorld) {
    let seconds: u64 = world
        .headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((840..=900).contains(&seconds), "{seconds}");
}

#[then(expr = "the response status is {int}")]
async fn status_is(world: &mut RecipesWorld, status: u16) {
    assert_eq!(world.status, status, "body: {}", world.body);
}

#[then("the response carries a Location and an ETag")]
async fn location_and_etag(world: &mut RecipesWorld) {
    assert!(world.location.as_deref().is_some_and(|l| l.starts_with("/recipes/")));
    assert!(world.created_etag.is_some());
}

#[then(expr = "the list contains only {string}")]
async fn list_contains_only(world: &mut RecipesWorld, name: String) {
    let names: Vec<&str> = world.body["items"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()]);
}

#[then(expr = "the list reports {int} recipes on {int} pages")]
async fn list_reports(world: &mut RecipesWorld, total: u64, pages: u64) {
    assert_eq!(world.body["total"], total);
    assert_eq!(world.body["total_pages"], pages);
}

#[then(expr = "its name is {string}")]
async fn name_is(world: &mut RecipesWorld, name: String) {
    assert_eq!(world.body["name"], name.as_str());
}

#[then(expr = "the response is a {string} problem with status {int}")]
async fn problem_with_status(world: &mut RecipesWorld, code: String, status: u16) {
    assert_eq!(world.status, status, "body: {}", world.body);
    let content_type = world.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(world.body["code"], code.as_str());
    assert_eq!(world.body["status"], status);
}

#[then(expr = "the problem is in {string} with the title {string}")]
async fn problem_language(world: &mut RecipesWorld, locale: String, title: String) {
    let language = world.headers.get(CONTENT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(language, locale);
    assert_eq!(world.body["title"], title.as_str());
    assert!(world.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[then(expr = "the problem explains {string} as {string}: {string}")]
async fn problem_explains(world: &mut RecipesWorld, field: String, code: String, message: String) {
    let errors = world.body["errors"].as_array().expect("errors listed");
    let error = errors
        .iter()
        .find(|e| e["field"] == field.as_str())
        .unwrap_or_else(|| panic!("{field} in {errors:?}"));
    assert_eq!(error["code"], code.as_str());
    assert_eq!(error["message"], message.as_str());
}

#[then("no recipe was stored")]
async fn nothing_stored(world: &mut RecipesWorld) {
    let page = world.app().get_json("/recipes").await;
    assert_eq!(page["total"], 0);
}

/// Every feature runs twice: with the built-in provider, then with Auth0 (a fake tenant) behind the
/// same routes.
#[tokio::main]
async fn main() {
    let features = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/features");
    let builtin = RecipesWorld::cucumber().fail_on_skipped().run(features).await;
    // Each scenario starts its own tenant (and RSA key): fewer at once on a small machine.
    let auth0 = RecipesWorld::cucumber()
        .max_concurrent_scenarios(4)
        .fail_on_skipped()
        .before(|_, _, _, world| {
            Box::pin(async move {
                world.provider = Provider::Auth0;
            })
        })
        .run(features)
        .await;
    if builtin.execution_has_failed() || auth0.execution_has_failed() {
        std::process::exit(1);
    }
}
