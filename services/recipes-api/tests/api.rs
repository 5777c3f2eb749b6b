//! API tests: a real recipes-api over HTTP on a random loopback port.

mod support;

use reqwest::header::{
    ACCEPT_LANGUAGE, CONTENT_LANGUAGE, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{AppOptions, spawn_app, spawn_app_with};

async fn post_as(
    app: &support::TestApp,
    user: &support::TestUser,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.as_user(Method::POST, path, user).json(body).send().await.expect("request sent")
}

fn valid_recipe() -> Value {
    json!({
        "name": "Bánh mì trứng",
        "tags": ["Breakfast", " vietnamese ", "breakfast"],
        "ingredients": ["1 baguette", "2 eggs"],
        "instructions": ["Fry the eggs.", "Fill the bread."]
    })
}

async fn problem(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let content_language =
        response.headers().get(CONTENT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let content_type =
        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"].as_u64(), Some(u64::from(status.as_u16())));
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    (status, content_language, body)
}

fn error_codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_full_lifecycle_of_a_recipe() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;

    let created = post_as(&app, &alice, "/recipes", &valid_recipe()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()[LOCATION].to_str().expect("ascii").to_owned();
    let etag = created.headers()[ETAG].to_str().expect("ascii").to_owned();
    let body: Value = created.json().await.expect("json");
    assert_eq!(location, format!("/recipes/{}", body["id"].as_str().expect("id")));
    assert_eq!(body["tags"], json!(["breakfast", "vietnamese"]), "tags trimmed, lower-cased, de-duplicated");
    assert_eq!(body["published_at"], body["updated_at"]);

    let read = app.get(&location).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()[ETAG].to_str().expect("ascii"), etag);
    assert_eq!(read.json::<Value>().await.expect("json")["name"], "Bánh mì trứng");

    let not_modified =
        app.client.get(app.url(&location)).header(IF_NONE_MATCH, &etag).send().await.expect("sent");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);

    let mut change = valid_recipe();
    change["name"] = json!("Bánh mì ốp la");
    let updated = app
        .as_user(Method::PUT, &location, &alice)
        .header(IF_MATCH, &etag)
        .json(&change)
        .send()
        .await
        .expect("sent");
    assert_eq!(updated.status(), StatusCode::OK);
    let new_etag = updated.headers()[ETAG].to_str().expect("ascii").to_owned();
    assert_ne!(new_etag, etag);

    // The cache never serves a client its own write stale.
    let reread = app.get_json(&location).await;
    assert_eq!(reread["name"], "Bánh mì ốp la");
    let listed = app.get_json("/recipes").await;
    assert_eq!(listed["items"][0]["name"], "Bánh mì ốp la");

    let stale = app
        .as_user(Method::PUT, &location, &alice)
        .header(IF_MATCH, &etag)
        .json(&change)
        .send()
        .await
        .expect("sent");
    let (status, _, body) = problem(stale).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["code"], "precondition_failed");

    let stale_delete =
        app.as_user(Method::DELETE, &location, &alice).header(IF_MATCH, &etag).send().await.expect("sent");
    assert_eq!(stale_delete.status(), StatusCode::PRECONDITION_FAILED);

    let deleted = app
        .as_user(Method::DELETE, &location, &alice)
        .header(IF_MATCH, &new_etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, _, body) = problem(app.get(&location).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "recipe_not_found");
    let listed = app.get_json("/recipes").await;
    assert_eq!(listed["total"], 0);

    app.stop().await;
}

#[tokio::test]
async fn every_violation_is_explained_in_english_and_vietnamese() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bad = json!({"name": "   ", "tags": ["ok", "x".repeat(51)], "ingredients": [], "instructions": ["", "Stir."]});

    let (status, language, body) = problem(post_as(&app, &alice, "/recipes", &bad).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(language, "en");
    assert_eq!(
        error_codes(&body),
        vec![
            ("name".into(), "blank".into()),
            ("tags[1]".into(), "too_long".into()),
            ("ingredients".into(), "too_few_items".into()),
            ("instructions[0]".into(), "blank".into()),
        ]
    );
    assert_eq!(body["errors"][1]["message"], "must be at most 50 characters long");
    assert_eq!(body["detail"], "4 rules were broken; see errors for details.");

    let vi = app.as_user(Method::POST, "/recipes?locale=vi", &alice).json(&bad).send().await.expect("sent");
    let (_, language, body) = problem(vi).await;
    assert_eq!(language, "vi");
    assert_eq!(body["title"], "Yêu cầu không hợp lệ");
    assert_eq!(body["errors"][0]["message"], "không được để trống");
    assert_eq!(body["errors"][1]["message"], "chỉ được dài tối đa 50 ký tự");
    assert_eq!(body["errors"][2]["message"], "phải có ít nhất 1 mục");

    // Nothing was stored.
    let listed = app.get_json("/recipes").await;
    assert_eq!(listed["total"], 0);
}

#[tokio::test]
async fn missing_and_unknown_fields_are_reported() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_, _, body) = problem(post_as(&app, &alice, "/recipes", &json!({})).await).await;
    assert_eq!(
        error_codes(&body),
        vec![
            ("name".into(), "required".into()),
            ("ingredients".into(), "required".into()),
            ("instructions".into(), "required".into())
        ]
    );
    let mut extra = valid_recipe();
    extra["colour"] = json!("red");
    let (status, _, body) = problem(post_as(&app, &alice, "/recipes", &extra).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_codes(&body), vec![("colour".into(), "unknown_field".into())]);
    assert_eq!(body["errors"][0]["message"], "is not a recognised field");
    let (_, _, body) = problem(post_as(&app, &alice, "/recipes", &json!({"name": ["x"]})).await).await;
    assert_eq!(body["errors"][0]["message"], "must be a string");
}

#[tokio::test]
async fn malformed_bodies_are_400_415_or_413() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.as_user(Method::POST, "/recipes?locale=vi", &alice)
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };

    let (status, language, body) =
        problem(send(b"{\"name\": ".to_vec(), "application/json").await.expect("sent")).await;
    assert_eq!((status, language.as_str()), (StatusCode::BAD_REQUEST, "vi"));
    assert_eq!(body["code"], "malformed_json");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("dòng 1")), "{body}");

    let (status, _, body) =
        problem(send(b"name=x".to_vec(), "application/x-www-form-urlencoded").await.expect("sent")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type"))
    );
    let no_type = app.as_user(Method::POST, "/recipes", &alice).body("{}").send().await.expect("sent");
    assert_eq!(no_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let mut huge = b"{\"name\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    huge.extend(b"\"}");
    let (status, _, body) = problem(send(huge, "application/json").await.expect("sent")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["detail"], "Nội dung yêu cầu không được vượt quá 1 MiB.");
}

/// List pages carry a weak ETag of their content: a client revalidating an unchanged page gets a 304
/// with no body, a write that changes the page gives it a new tag, and the same content gets the same
/// tag again (another service instance, another cache).
#[tokio::test]
async fn list_pages_revalidate_with_a_weak_etag() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    assert_eq!(post_as(&app, &alice, "/recipes", &valid_recipe()).await.status(), StatusCode::CREATED);

    let first = app.get("/recipes?limit=5").await;
    assert_eq!(first.status(), StatusCode::OK);
    let tag = first.headers()[ETAG].to_str().expect("ascii").to_owned();
    assert!(tag.starts_with("W/\""), "weak list tag: {tag}");
    let body = first.bytes().await.expect("body");

    let again =
        app.client.get(app.url("/recipes?limit=5")).header(IF_NONE_MATCH, &tag).send().await.expect("sent");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[ETAG].to_str().expect("ascii"), tag);
    assert!(again.bytes().await.expect("body").is_empty(), "a 304 has no body");

    let other_page = app
        .client
        .get(app.url("/recipes?limit=5&page=2"))
        .header(IF_NONE_MATCH, &tag)
        .send()
        .await
        .expect("sent");
    assert_eq!(other_page.status(), StatusCode::OK, "another page has another tag");

    let mut changed = valid_recipe();
    changed["name"] = json!("Phở bò");
    assert_eq!(post_as(&app, &alice, "/recipes", &changed).await.status(), StatusCode::CREATED);
    let after =
        app.client.get(app.url("/recipes?limit=5")).header(IF_NONE_MATCH, &tag).send().await.expect("sent");
    assert_eq!(after.status(), StatusCode::OK, "the page changed, so the old tag no longer matches");
    let new_tag = after.headers()[ETAG].to_str().expect("ascii").to_owned();
    assert_ne!(new_tag, tag);
    let after_body: Value = after.json().await.expect("json");
    assert!(after_body.to_string().contains("Phở bò"), "read its own write: {after_body}");
    assert_ne!(serde_json::from_slice::<Value>(&body).expect("json"), after_body);
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_are_problems() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (status, _, body) = problem(app.get("/nowhere?locale=vi").await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("route_not_found")));
    assert_eq!(body["detail"], "Không có tài nguyên nào tại /nowhere.");

    let patch = app.client.patch(app.url("/recipes")).send().await.expect("sent");
    let allow = patch.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (status, _, body) = problem(patch).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(body["detail"], "The method PATCH is not allowed on /recipes.");

    for id in ["not-a-uuid", "0193d1f0-0000-7000-8000-000000000000", "%00"] {
        let (status, _, body) = problem(app.get(&format!("/recipes/{id}")).await).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("recipe_not_found")),
            "{id}"
        );
    }
    let put =
        app.as_user(Method::PUT, "/recipes/nope", &alice).json(&valid_recipe()).send().await.expect("sent");
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
    let delete = app
        .as_user(Method::DELETE, "/recipes/0193d1f0-0000-7000-8000-000000000000", &alice)
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn locale_negotiation_order_and_fallback() {
    let app = spawn_app().await;
    let language_of = |query: &'static str, accept: Option<&'static str>| {
        let mut request = app.client.get(app.url(&format!("/recipes{query}")));
        if let Some(accept) = accept {
            request = request.header(ACCEPT_LANGUAGE, accept);
        }
        async move {
            let response = request.send().await.expect("sent");
            response.headers()[CONTENT_LANGUAGE].to_str().expect("ascii").to_owned()
        }
    };
    assert_eq!(language_of("", None).await, "en");
    assert_eq!(language_of("?locale=vi", Some("en")).await, "vi");
    assert_eq!(language_of("", Some("fr;q=1, vi;q=0.7, en;q=0.3")).await, "vi");
    assert_eq!(language_of("", Some("vi;q=0.2, en;q=0.9")).await, "en");
    assert_eq!(language_of("?locale=de", None).await, "en");
    assert_eq!(language_of("?locale=de", Some("vi-VN")).await, "vi");
}

#[tokio::test]
async fn listing_filters_sorts_and_pages() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.create_recipe_as(&alice, "Garlic noodles", &["quick", "noodles"], &["noodles", "garlic"]).await;
    app.create_recipe_as(&alice, "Coconut curry", &["curry", "vegan"], &["coconut milk", "garlic"]).await;
    app.create_recipe_as(&alice, "Apple crumble", &["dessert"], &["apples", "oats"]).await;

    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let body = app.get_json("/recipes").await;
    assert_eq!(names(&body), ["Apple crumble", "Coconut curry", "Garlic noodles"], "newest first");
    assert_eq!(
        (body["page"].as_u64(), body["limit"].as_u64(), body["total"].as_u64(), body["total_pages"].as_u64()),
        (Some(1), Some(20), Some(3), Some(1))
    );

    let body = app.get_json("/recipes?sort=name&limit=2&page=2").await;
    assert_eq!(names(&body), ["Garlic noodles"]);
    assert_eq!(body["total_pages"], 2);

    let body = app.get_json("/recipes?q=GARLIC&sort=name").await;
    assert_eq!(names(&body), ["Coconut curry", "Garlic noodles"]);
    let body = app.get_json("/recipes?tag=quick&tag=vegan&sort=name").await;
    assert_eq!(names(&body), ["Coconut curry", "Garlic noodles"]);
    let body = app.get_json("/recipes?tag=quick&tag=noodles&match=all").await;
    assert_eq!(names(&body), ["Garlic noodles"]);
    let body = app.get_json("/recipes?q=ph%E1%BB%9F").await;
    assert_eq!(body["total"], 0);

    let (status, _, body) =
        problem(app.get("/recipes?page=0&limit=101&sort=rating&match=most&size=2").await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let codes = error_codes(&body);
    for expected in [
        ("page", "out_of_range"),
        ("limit", "out_of_range"),
        ("sort", "invalid_choice"),
        ("match", "invalid_choice"),
        ("size", "unknown_parameter"),
    ] {
        assert!(codes.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {codes:?}");
    }
    let (_, _, body) = problem(app.get("/recipes?page=99999999999999999999").await).await;
    assert_eq!(error_codes(&body), vec![("page".to_owned(), "out_of_range".to_owned())]);
    let (_, _, body) = problem(app.get("/recipes?sort=rating&locale=vi").await).await;
    assert_eq!(
        body["errors"][0]["message"],
        "phải là một trong các giá trị: -published_at, published_at, name"
    );
}

#[tokio::test]
async fn samples_are_seeded_when_configured() {
    let app = spawn_app_with(AppOptions { seed_samples: true, ..AppOptions::default() }).await;
    let body = app.get_json("/recipes?limit=100").await;
    assert_eq!(body["total"], 50);
    let vegetarian = app.get_json("/recipes?tag=vegetarian").await;
    assert!(vegetarian["total"].as_u64().unwrap_or_default() >= 8);
}

#[tokio::test]
async fn health_and_docs_are_served() {
    let app = spawn_app().await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    let ready = app.get_json("/health/ready").await;
    assert_eq!(ready["status"], "up");
    let names: Vec<&str> =
        ready["checks"].as_array().expect("checks").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["store", "cache"]);

    let spec = app.get_json("/openapi.json").await;
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", spec["openapi"]);
    assert!(spec["paths"]["/recipes"]["get"].is_object());
    assert!(spec["paths"]["/recipes/{id}"]["put"].is_object());
    assert!(spec["components"]["schemas"]["ProblemBody"].is_object());

    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger"), "docs page is Swagger UI");
    let asset = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(asset.status(), StatusCode::OK, "assets are bundled, no internet needed");
}

#[tokio::test]
async fn every_response_names_its_language_and_request_id() {
    let app = spawn_app().await;
    let response =
        app.client.get(app.url("/recipes")).header("x-request-id", "trace-me-42").send().await.expect("sent");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    assert_eq!(response.headers()[CONTENT_LANGUAGE], "en");
    let (_, _, body) = problem(
        app.client.get(app.url("/x")).header("x-request-id", "trace-me-43").send().await.expect("sent"),
    )
    .await;
    assert_eq!(body["request_id"], "trace-me-43");
}

/// `If-Match` may list several tags; the write proceeds when the recipe is at any of them (strong
/// comparison: a weak tag never matches).
#[tokio::test]
async fn if_match_with_several_tags_matches_any_of_them() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let created = post_as(&app, &alice, "/recipes", &valid_recipe()).await;
    let location = created.headers()[LOCATION].to_str().expect("ascii").to_owned();
    assert_eq!(created.headers()[ETAG], "\"1\"");

    let put = |tags: &'static str| {
        app.as_user(Method::PUT, &location, &alice).header(IF_MATCH, tags).json(&valid_recipe()).send()
    };
    let later_tag_matches = put("\"7\", \"x,1\", \"1\"").await.expect("sent");
    assert_eq!(later_tag_matches.status(), StatusCode::OK, "the third tag is the current one");
    assert_eq!(later_tag_matches.headers()[ETAG], "\"2\"");

    let weak = put("W/\"2\"").await.expect("sent");
    assert_eq!(weak.status(), StatusCode::PRECONDITION_FAILED, "If-Match compares strongly");
    let none_current = put("\"1\", \"3\"").await.expect("sent");
    assert_eq!(none_current.status(), StatusCode::PRECONDITION_FAILED);

    let deleted = app
        .as_user(Method::DELETE, &location, &alice)
        .header(IF_MATCH, "\"1\"")
        .header(IF_MATCH, "\"2\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT, "tags on a second header line count too");
    app.stop().await;
}

/// A query string near the largest the server accepts (64 KiB), made of thousands of parameters, costs
/// the server no more than a small one: decoding stops at the 65th parameter and the answer is one
/// short violation, not one per parameter. Before the limit, thousands of distinct unknown names took
/// about a second (a quadratic de-duplication) and produced a problem of 750 KiB.
#[tokio::test]
async fn a_huge_query_string_is_refused_at_once_with_a_small_problem() {
    let app = spawn_app().await;
    for (label, query) in [
        ("distinct unknown names", (0..20_000).map(|i| format!("x{i}=1")).collect::<Vec<_>>().join("&")),
        ("repeated blank tags", vec!["tag="; 20_000].join("&")),
        ("distinct tags", (0..20_000).map(|i| format!("tag=t{i}")).collect::<Vec<_>>().join("&")),
    ] {
        let query = &query[..query[..65_000].rfind('&').expect("separator")];
        let started = std::time::Instant::now();
        let response = app.get(&format!("/recipes?{query}&locale=vi")).await;
        let elapsed = started.elapsed();
        let (status, language, body) = problem(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{label}");
        assert_eq!(error_codes(&body), [("query".to_owned(), "too_many_parameters".to_owned())], "{label}");
        assert_eq!(language, "en", "{label}: `locale` after the 64th parameter is not read");
        let size = body.to_string().len();
        assert!(size < 1024, "{label}: a {size}-byte problem");
        // Generous: the work is a few milliseconds; a quadratic pass takes seconds here.
        assert!(elapsed < std::time::Duration::from_secs(2), "{label}: answered in {elapsed:?}");
        eprintln!(
            "{label}: {} bytes of query answered in {elapsed:?} with a {size}-byte problem",
            query.len()
        );
    }
    let at_limit = vec!["tag=soup"; 10].into_iter().chain(vec!["page=1"; 1]).collect::<Vec<_>>().join("&");
    assert_eq!(app.get(&format!("/recipes?{at_limit}")).await.status(), StatusCode::OK);
}

/// At most 50 violations are listed; the rest are counted in `unlisted_errors`.
#[tokio::test]
async fn a_body_breaking_thousands_of_rules_lists_fifty() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let body = json!({
        "name": " ",
        "tags": vec![" "; 20],
        "ingredients": vec![" "; 100],
        "instructions": vec![" "; 5000],
    });
    let (status, _, problem_body) = problem(post_as(&app, &alice, "/recipes", &body).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = error_codes(&problem_body);
    assert_eq!(errors.len(), 50);
    assert_eq!(errors[0], ("name".to_owned(), "blank".to_owned()));
    // name + 20 tags + 100 ingredients + "too many instructions" + the first 100 instructions.
    assert_eq!(problem_body["unlisted_errors"], 1 + 20 + 100 + 1 + 100 - 50);
    assert!(problem_body["detail"].as_str().is_some_and(|d| d.contains("222")), "{problem_body}");
}

/// Sign-in is throttled per client address (as resolved through the trusted proxy): the request after
/// the burst gets 429 with `Retry-After` and a localized problem; other addresses are unaffected, and
/// an IPv6 client is counted by its /64.
#[tokio::test]
async fn sign_in_is_throttled_per_client_address() {
    let limits = galley_platform::LimitsSettings {
        signin: galley_platform::ThrottleSettings { burst: 3, per_minute: 1 },
        refresh: galley_platform::ThrottleSettings { burst: 1, per_minute: 1 },
        ..galley_platform::LimitsSettings::default()
    };
    let app = spawn_app_with(AppOptions {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        limits: Some(limits),
        ..AppOptions::default()
    })
    .await;
    // A new username each time, so that no account lockout gets involved.
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let sign_in_from = |client: &'static str, path: &'static str| {
        let n = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.client
            .post(app.url(path))
            .header("x-forwarded-for", client)
            .json(&json!({"username": format!("nobody{n}"), "password": "wrong password!"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(sign_in_from("203.0.113.5", "/auth/signin").await.expect("sent").status(), 401);
    }
    let throttled = sign_in_from("203.0.113.5", "/auth/signin?locale=vi").await.expect("sent");
    let retry_after: u64 =
        throttled.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, language, body) = problem(throttled).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(language, "vi");
    assert_eq!(body["title"], "Quá nhiều yêu cầu");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains(&format!("{retry_after} giây"))), "{body}");

    assert_eq!(
        sign_in_from("203.0.113.6", "/auth/signin").await.expect("sent").status(),
        401,
        "another address"
    );
    for client in ["2001:db8:7:7::1", "2001:db8:7:7::2", "2001:db8:7:7::3"] {
        assert_eq!(sign_in_from(client, "/auth/signin").await.expect("sent").status(), 401);
    }
    let same_64 = sign_in_from("2001:db8:7:7:ffff::9", "/auth/signin").await.expect("sent");
    let (status, _, body) = problem(same_64).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "same /64"
    );
    assert_eq!(
        sign_in_from("2001:db8:7:8::1", "/auth/signin").await.expect("sent").status(),
        401,
        "next /64"
    );

    // Refresh has its own budget.
    let refresh = |client: &'static str| {
        app.client
            .post(app.url("/auth/refresh"))
            .header("x-forwarded-for", client)
            .json(&json!({"refresh_token": "x"}))
            .send()
    };
    assert_eq!(
        refresh("203.0.113.5").await.expect("sent").status(),
        401,
        "sign-in's budget is not refresh's"
    );
    assert_eq!(refresh("203.0.113.5").await.expect("sent").status(), 429);
    app.stop().await;
}

/// The throttles' switch turns them off.
#[tokio::test]
async fn throttles_can_be_switched_off() {
    let limits = galley_platform::LimitsSettings {
        signup: galley_platform::ThrottleSettings { burst: 1, per_minute: 1 },
        ..galley_platform::LimitsSettings::disabled()
    };
    let app = spawn_app_with(AppOptions { limits: Some(limits), ..AppOptions::default() }).await;
    for _ in 0..3 {
        let response = app.post_json("/auth/signup", &json!({})).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_root_is_a_front_door_in_json_or_html() {
    let app = spawn_app().await;
    let index = app.get_json("/").await;
    assert_eq!(index["name"], "recipes-api", "{index}");
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(index["links"]["docs"], "/docs");
    let page = app
        .client
        .get(app.url("/"))
        .header("Accept", "text/html,*/*;q=0.8")
        .send()
        .await
        .expect("request sent");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains("href=\"/openapi.json\""));
    app.stop().await;
}
