//! Identity over HTTP: sign-up, sign-in, cookies, refresh rotation, sign-out, ownership, tampered and
//! expired tokens, brute-force lockout and trusted proxies, against a real recipes-api.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{AUTHORIZATION, CONTENT_LANGUAGE, COOKIE, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{AppOptions, PASSWORD, TestApp, TestUser, spawn_app, spawn_app_with};

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

fn recipe() -> Value {
    json!({"name": "Chè chuối", "ingredients": ["bananas", "coconut milk"], "instructions": ["Simmer."]})
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.client.get(app.url("/auth/me")).bearer_auth(token).send().await.expect("sent").status()
}

#[tokio::test]
async fn sign_up_then_sign_in_returns_tokens_and_a_hardened_cookie() {
    let app = spawn_app().await;
    let signed_up = app
        .post_json(
            "/auth/signup",
            &json!({"email": "Alice@Example.com", "username": "Alice", "password": PASSWORD, "given_name": "Alice"}),
        )
        .await;
    assert_eq!(signed_up.status(), StatusCode::CREATED);
    assert_eq!(body(signed_up).await, json!({"username": "Alice", "email": "alice@example.com"}));

    let signed_in = app.sign_in("alice", PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::OK, "usernames are case-insensitive");
    assert_eq!(signed_in.headers()["cache-control"], "no-store");
    let set_cookie = signed_in.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    // The cookie carries the refresh token too, so it lives as long (30 days), not as the access token.
    for attribute in ["Authorization=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP without a trusted TLS proxy");
    let tokens = body(signed_in).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);

    // The ID token carries who the user is.
    let id_token = tokens["id_token"].as_str().expect("id token");
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(id_token.split('.').nth(1).expect("payload")).expect("base64"),
    )
    .expect("claims");
    assert_eq!(payload["username"], "Alice");
    assert_eq!(payload["email"], "alice@example.com");
    assert_eq!(payload["aud"], "galley-web");

    let profile = body(
        app.client
            .get(app.url("/auth/me"))
            .bearer_auth(tokens["access_token"].as_str().expect("token"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(profile["username"], "Alice");
    assert_eq!(profile["given_name"], "Alice");
    assert!(profile.get("password_hash").is_none());
}

#[tokio::test]
async fn sign_up_rules_are_all_explained_in_both_languages() {
    let app = spawn_app().await;
    let bad = json!({"email": "not-an-email", "username": "al1ce", "password": "short"});
    let en = body(app.post_json("/auth/signup", &bad).await).await;
    assert_eq!(en["status"], 422);
    let messages: Vec<(String, String)> = en["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(messages.contains(&("email".into(), "must be a valid email address".into())), "{messages:?}");
    assert!(messages.contains(&("username".into(), "may contain only the letters a to z and A to Z".into())));
    assert!(messages.contains(&("password".into(), "must be at least 8 characters long".into())));
    assert!(
        messages
            .contains(&("password".into(), "must contain at least one of these characters: @!*&#$".into()))
    );

    let vi = app.client.post(app.url("/auth/signup?locale=vi")).json(&bad).send().await.expect("sent");
    assert_eq!(vi.headers()[CONTENT_LANGUAGE], "vi");
    let vi = body(vi).await;
    assert_eq!(vi["errors"][0]["message"], "phải là địa chỉ email hợp lệ");
    assert_eq!(vi["detail"], "Có 4 quy tắc bị vi phạm; xem chi tiết trong errors.");
}

#[tokio::test]
async fn duplicate_usernames_and_emails_conflict() {
    let app = spawn_app().await;
    assert_eq!(app.sign_up("alice").await.status(), StatusCode::CREATED);
    let again = app
        .client
        .post(app.url("/auth/signup?locale=vi"))
        .json(&json!({"email": "ALICE@example.com", "username": "ALICE", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let problem = body(again).await;
    assert_eq!(problem["code"], "account_exists");
    assert_eq!(problem["title"], "Tài khoản đã tồn tại");
    let fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["username", "email"]);
    assert_eq!(problem["errors"][0]["message"], "đã được sử dụng");
}

#[tokio::test]
async fn wrong_credentials_get_one_message_whatever_was_wrong() {
    let app = spawn_app().await;
    app.user("alice").await;
    let wrong_password = body(app.sign_in("alice", "wrong horse!").await).await;
    let unknown_user = body(app.sign_in("nobody", PASSWORD).await).await;
    assert_eq!(wrong_password["status"], 401);
    assert_eq!(wrong_password["code"], "invalid_credentials");
    assert_eq!(wrong_password["detail"], unknown_user["detail"]);
    assert_eq!(wrong_password["title"], unknown_user["title"]);
    let missing = body(app.post_json("/auth/signin", &json!({"username": "alice"})).await).await;
    assert_eq!(missing["status"], 422);
}

#[tokio::test]
async fn writes_need_a_signed_in_owner() {
    let app = spawn_app_with(AppOptions { seed_samples: true, ..AppOptions::default() }).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;

    let anonymous = app.post_json("/recipes", &recipe()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers()[WWW_AUTHENTICATE].to_str().expect("ascii").starts_with("Bearer"));

    let created = app.create_recipe_as(&alice, "Chè chuối", &[], &["bananas"]).await;
    assert_eq!(created["owner"], me_id(&app, &alice).await);
    let path = format!("/recipes/{}", created["id"].as_str().expect("id"));

    let by_bob = app
        .as_user(Method::PUT, &format!("{path}?locale=vi"), &bob)
        .json(&recipe())
        .send()
        .await
        .expect("sent");
    assert_eq!(by_bob.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(by_bob).await["title"], "Bị từ chối");
    let bob_delete = app.as_user(Method::DELETE, &path, &bob).send().await.expect("sent");
    assert_eq!(bob_delete.status(), StatusCode::FORBIDDEN);
    let anonymous_delete = app.client.delete(app.url(&path)).send().await.expect("sent");
    assert_eq!(anonymous_delete.status(), StatusCode::UNAUTHORIZED);

    let by_alice = app.as_user(Method::PUT, &path, &alice).json(&recipe()).send().await.expect("sent");
    assert_eq!(by_alice.status(), StatusCode::OK);
    let sample = app.get_json("/recipes?limit=1&sort=name").await;
    let sample_path = format!("/recipes/{}", sample["items"][0]["id"].as_str().expect("id"));
    let sample_delete = app.as_user(Method::DELETE, &sample_path, &alice).send().await.expect("sent");
    assert_eq!(sample_delete.status(), StatusCode::FORBIDDEN, "samples belong to nobody and are read-only");
    assert_eq!(
        app.as_user(Method::DELETE, &path, &alice).send().await.expect("sent").status(),
        StatusCode::NO_CONTENT
    );
}

async fn me_id(app: &TestApp, user: &TestUser) -> Value {
    body(app.as_user(Method::GET, "/auth/me", user).send().await.expect("sent")).await["id"].clone()
}

#[tokio::test]
async fn the_session_cookie_authenticates_and_cross_site_writes_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    assert!(!alice.cookie.is_empty());
    let with_cookie =
        |method: Method, path: &str| app.client.request(method, app.url(path)).header(COOKIE, &alice.cookie);

    assert_eq!(with_cookie(Method::GET, "/auth/me").send().await.expect("sent").status(), StatusCode::OK);
    let same_origin = with_cookie(Method::POST, "/recipes")
        .header("sec-fetch-site", "same-origin")
        .json(&recipe())
        .send()
        .await
        .expect("sent");
    assert_eq!(same_origin.status(), StatusCode::CREATED);
    let cross_site = with_cookie(Method::POST, "/recipes")
        .header("sec-fetch-site", "cross-site")
        .json(&recipe())
        .send()
        .await
        .expect("sent");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(cross_site).await["code"], "cross_site_request");
    let foreign_origin = with_cookie(Method::POST, "/recipes")
        .header("origin", "https://evil.example")
        .json(&recipe())
        .send()
        .await
        .expect("sent");
    assert_eq!(foreign_origin.status(), StatusCode::FORBIDDEN);
    let bearer_from_anywhere = app
        .as_user(Method::POST, "/recipes", &alice)
        .header("origin", "https://evil.example")
        .json(&recipe())
        .send()
        .await
        .expect("sent");
    assert_eq!(
        bearer_from_anywhere.status(),
        StatusCode::CREATED,
        "bearer tokens are not sent by browsers on their own"
    );

    let garbage = app
        .client
        .get(app.url("/auth/me"))
        .header(COOKIE, "Authorization=garbage")
        .send()
        .await
        .expect("sent");
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;

    let first = app.post_json("/auth/refresh", &json!({"refresh_token": alice.refresh_token})).await;
    assert_eq!(first.status(), StatusCode::OK);
    let rotated = body(first).await;
    let new_refresh = rotated["refresh_token"].as_str().expect("refresh").to_owned();
    let new_access = rotated["access_token"].as_str().expect("access").to_owned();
    assert_ne!(new_refresh, alice.refresh_token);
    assert_eq!(me(&app, &new_access).await, StatusCode::OK);

    // The old token comes back: someone replayed it. The whole session dies.
    let replay = app.post_json("/auth/refresh", &json!({"refresh_token": alice.refresh_token})).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(replay).await["code"], "invalid_refresh_token");
    let after = app.post_json("/auth/refresh", &json!({"refresh_token": new_refresh})).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "the rotated-in token is revoked with its family");
    assert_eq!(me(&app, &new_access).await, StatusCode::UNAUTHORIZED, "access tokens of the session too");
    assert_eq!(me(&app, &alice.access_token).await, StatusCode::UNAUTHORIZED);

    let unknown = app.post_json("/auth/refresh", &json!({"refresh_token": "made-up"})).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let missing = app.post_json("/auth/refresh", &json!({})).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn refresh_works_from_the_cookie() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let refreshed =
        app.client.post(app.url("/auth/refresh")).header(COOKIE, &alice.cookie).send().await.expect("sent");
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(refreshed.headers().get(SET_COOKIE).is_some(), "the cookie is renewed");
    let cross_site = app
        .client
        .post(app.url("/auth/refresh"))
        .header(COOKIE, &alice.cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("sent");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let cross_site_with_empty_body = app
        .client
        .post(app.url("/auth/refresh"))
        .header(COOKIE, &alice.cookie)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        cross_site_with_empty_body.status(),
        StatusCode::FORBIDDEN,
        "falling back to the cookie is checked too"
    );
}

#[tokio::test]
async fn sign_out_stops_the_access_token_and_the_refresh_token_at_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let other_session = TestUser::from_sign_in("alice", app.sign_in("alice", PASSWORD).await).await;

    let signed_out = app.as_user(Method::POST, "/auth/signout", &alice).send().await.expect("sent");
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    let cleared = signed_out.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    assert_eq!(me(&app, &alice.access_token).await, StatusCode::UNAUTHORIZED);
    let refresh = app.post_json("/auth/refresh", &json!({"refresh_token": alice.refresh_token})).await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    let with_cookie =
        app.client.get(app.url("/auth/me")).header(COOKIE, &alice.cookie).send().await.expect("sent");
    assert_eq!(with_cookie.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &other_session.access_token).await, StatusCode::OK, "other sessions live on");

    let again = app.as_user(Method::POST, "/auth/signout", &alice).send().await.expect("sent");
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn access_tokens_expire_by_the_clock() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.clock.advance(chrono::Duration::seconds(900 - 10));
    assert_eq!(me(&app, &alice.access_token).await, StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(20));
    assert_eq!(me(&app, &alice.access_token).await, StatusCode::UNAUTHORIZED);
    let refreshed = app.post_json("/auth/refresh", &json!({"refresh_token": alice.refresh_token})).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "the refresh token outlives the access token");
    app.clock.advance(chrono::Duration::days(31));
    let late = body(refreshed).await["refresh_token"].as_str().expect("refresh").to_owned();
    let expired = app.post_json("/auth/refresh", &json!({"refresh_token": late})).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

/// Signs `claims` with the app's own private key (read from its store), to forge tokens that differ
/// from genuine ones only in the claim under test.
async fn sign_with_app_key(app: &TestApp, claims: &Value) -> String {
    let keys = app.signing_keys().await;
    let key = keys.last().expect("a key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).expect("pem");
    jsonwebtoken::encode(&header, claims, &encoding).expect("signed")
}

fn decoded_claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).expect("payload")).expect("b64"))
        .expect("json")
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let claims = decoded_claims(&alice.access_token);

    let mut genuine_copy = claims.clone();
    genuine_copy["jti"] = json!("another-id");
    assert_eq!(
        me(&app, &sign_with_app_key(&app, &genuine_copy).await).await,
        StatusCode::OK,
        "control: the forger works"
    );

    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://evil.example/");
    assert_eq!(me(&app, &sign_with_app_key(&app, &wrong_issuer).await).await, StatusCode::UNAUTHORIZED);
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("another-api");
    assert_eq!(me(&app, &sign_with_app_key(&app, &wrong_audience).await).await, StatusCode::UNAUTHORIZED);

    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(me(&app, &none).await, StatusCode::UNAUTHORIZED);

    let jwks = app.get_json("/.well-known/jwks.json").await;
    let public_n = jwks["keys"][0]["n"].as_str().expect("n");
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = jwks["keys"][0]["kid"].as_str().map(str::to_owned);
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_n.as_bytes()),
    )
    .expect("forged");
    assert_eq!(me(&app, &hs256).await, StatusCode::UNAUTHORIZED);

    let (header, rest) = alice.access_token.split_once('.').expect("jwt");
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    header["kid"] = json!("unknown-key");
    let wrong_kid = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
    assert_eq!(me(&app, &wrong_kid).await, StatusCode::UNAUTHORIZED);

    let mut elevated = claims.clone();
    elevated["sub"] = json!("someone-else");
    let (head, _) = alice.access_token.split_once('.').expect("jwt");
    let signature = alice.access_token.rsplit('.').next().expect("signature");
    let tampered = format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(elevated.to_string()));
    assert_eq!(me(&app, &tampered).await, StatusCode::UNAUTHORIZED);

    let other_app = spawn_app().await;
    let stranger = other_app.user("alice").await;
    assert_eq!(me(&app, &stranger.access_token).await, StatusCode::UNAUTHORIZED, "another issuer's key");

    let response =
        app.client.get(app.url("/auth/me")).header(AUTHORIZATION, "Bearer x.y.z").send().await.expect("sent");
    assert!(response.headers()[WWW_AUTHENTICATE].to_str().expect("ascii").contains("invalid_token"));
}

#[tokio::test]
async fn discovery_documents_describe_the_issuer() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let configuration = app.get_json("/.well-known/openid-configuration").await;
    let issuer = format!("http://{}/", app.address);
    assert_eq!(configuration["issuer"], issuer.as_str());
    assert_eq!(configuration["jwks_uri"], format!("{issuer}.well-known/jwks.json"));
    assert_eq!(configuration["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let claims = decoded_claims(&alice.access_token);
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], "galley-api");
    for claim in ["sub", "iat", "exp", "jti", "sid"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kid = jsonwebtoken::decode_header(&alice.access_token).expect("header").kid.expect("kid");
    assert!(
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == kid.as_str() && k["alg"] == "RS256")
    );
}

#[tokio::test]
async fn signing_keys_survive_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let options = AppOptions { data_dir: Some(data.path().to_path_buf()), ..AppOptions::default() };
    let app = spawn_app_with(options.clone()).await;
    let alice = app.user("alice").await;
    app.stop().await;

    let restarted = spawn_app_with(options).await;
    let refreshed =
        restarted.post_json("/auth/refresh", &json!({"refresh_token": alice.refresh_token})).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "refresh tokens persist");
    let token = body(refreshed).await["access_token"].as_str().expect("token").to_owned();
    assert_eq!(me(&restarted, &token).await, StatusCode::OK);
    let kid_before = jsonwebtoken::decode_header(&alice.access_token).expect("header").kid;
    let kid_after = jsonwebtoken::decode_header(&token).expect("header").kid;
    assert_eq!(kid_before, kid_after, "the same signing key");
}

/// Without KMS the key file in the data directory seals the signing keys; a start without that file
/// is refused (naming the key), never answered with a fresh key that would sign everybody out.
#[tokio::test]
async fn without_kms_the_key_file_seals_the_keys_and_a_lost_file_stops_the_start() {
    use galley_identity::SigningKeyStore as _;
    let data = tempfile::tempdir().expect("temp dir");
    // A fixed issuer: the default names the bound address, which changes with the restart.
    let options = AppOptions {
        data_dir: Some(data.path().to_path_buf()),
        issuer: Some("http://galley.test/".into()),
        ..AppOptions::default()
    };
    let app = spawn_app_with(options.clone()).await;
    let alice = app.user("alice").await;
    app.stop().await;
    let database = data.path().join("galley.db");
    let store = galley_embedded::SqliteStore::open(&database).await.expect("store");
    let stored = galley_embedded::SqliteSigningKeyStore::new(&store).load().await.expect("keys");
    store.close().await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].private_pem.starts_with("sealed:") && !stored[0].private_pem.contains("BEGIN"));

    let key_file = data.path().join("galley-at-rest.key");
    let kept = data.path().join("kept-elsewhere.key");
    std::fs::rename(&key_file, &kept).expect("key file moved away");
    let mut settings = recipes_api::Settings::default();
    settings.http.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.store.embedded.path = database;
    let error = recipes_api::Application::build(settings).await.err().map(|e| format!("{e:#}"));
    let error = error.expect("the start is refused");
    let expected = format!("signing key {} cannot be opened with local key file", stored[0].kid);
    assert!(error.contains(&expected) && error.contains("sealed by another key file"), "{error}");

    std::fs::rename(&kept, &key_file).expect("key file back");
    let restarted = spawn_app_with(options).await;
    assert_eq!(me(&restarted, &alice.access_token).await, StatusCode::OK, "the old token verifies");
}

#[tokio::test]
async fn five_failures_lock_the_username_until_the_window_passes() {
    let app = spawn_app().await;
    app.user("alice").await;
    for attempt in 1..=5 {
        let failed = app.sign_in("alice", "wrong horse!").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let locked = app
        .client
        .post(app.url("/auth/signin?locale=vi"))
        .json(&json!({"username": "ALICE", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password is refused");
    let retry_after: u64 = locked.headers()[RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
    assert!((890..=900).contains(&retry_after), "{retry_after}");
    let problem = body(locked).await;
    assert_eq!(problem["title"], "Quá nhiều yêu cầu");
    assert_eq!(problem["detail"], format!("Bạn đã thử quá nhiều lần; hãy thử lại sau {retry_after} giây."));

    app.clock.advance(chrono::Duration::minutes(15) + chrono::Duration::seconds(1));
    assert_eq!(
        app.sign_in("alice", PASSWORD).await.status(),
        StatusCode::OK,
        "the lock ends with its window"
    );
}

#[tokio::test]
async fn a_success_resets_the_username_count() {
    // Each attempt from its own forwarded address, so only the username's count matters here.
    let app =
        spawn_app_with(AppOptions { trusted_proxies: vec!["127.0.0.1/32".into()], ..AppOptions::default() })
            .await;
    app.user("alice").await;
    let mut address = 0;
    let mut attempt = |password: &'static str| {
        address += 1;
        let from = format!("203.0.113.{address}");
        let app = &app;
        async move { sign_in_from(app, &from, "alice", password).await }
    };
    for _ in 0..4 {
        assert_eq!(attempt("wrong horse!").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempt(PASSWORD).await, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(attempt("wrong horse!").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        attempt(PASSWORD).await,
        StatusCode::OK,
        "eight failures, but never five since the last success"
    );
    for _ in 0..5 {
        assert_eq!(attempt("wrong horse!").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempt(PASSWORD).await, StatusCode::TOO_MANY_REQUESTS);
}

async fn sign_in_from(app: &TestApp, forwarded_for: &str, username: &str, password: &str) -> StatusCode {
    app.client
        .post(app.url("/auth/signin"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test]
async fn client_addresses_come_from_trusted_proxies_only() {
    // Behind a trusted proxy each forwarded address has its own count.
    let behind_proxy =
        spawn_app_with(AppOptions { trusted_proxies: vec!["127.0.0.1/32".into()], ..AppOptions::default() })
            .await;
    behind_proxy.user("alice").await;
    for username in ["a", "b", "c", "d", "e"] {
        assert_eq!(
            sign_in_from(&behind_proxy, "203.0.113.1", username, "wrong horse!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in_from(&behind_proxy, "203.0.113.1", "alice", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in_from(&behind_proxy, "203.0.113.2", "alice", PASSWORD).await,
        StatusCode::OK,
        "another client"
    );

    // Without trust, the header is ignored: every request is the socket peer.
    let direct = spawn_app().await;
    direct.user("alice").await;
    for (index, username) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let spoofed = format!("198.51.100.{index}");
        assert_eq!(sign_in_from(&direct, &spoofed, username, "wrong horse!").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        sign_in_from(&direct, "198.51.100.99", "alice", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn cookies_are_secure_behind_a_trusted_tls_proxy() {
    let app =
        spawn_app_with(AppOptions { trusted_proxies: vec!["127.0.0.1/32".into()], ..AppOptions::default() })
            .await;
    app.user("alice").await;
    let response = app
        .client
        .post(app.url("/auth/signin"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    let set_cookie = response.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    assert!(set_cookie.starts_with("__Host-Authorization="), "the __Host- prefix over TLS: {set_cookie}");
    assert!(!set_cookie.contains("Domain="), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let me = app.client.get(app.url("/auth/me")).header(COOKIE, &cookie).send().await.expect("sent");
    assert_eq!(me.status(), StatusCode::OK, "the __Host- cookie authenticates");
    // A cookie issued under the old name (here: over plain HTTP) still works over TLS for one release.
    let plain = app.sign_in("alice", PASSWORD).await;
    let old_cookie =
        plain.headers()[SET_COOKIE].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    assert!(old_cookie.starts_with("Authorization="), "{old_cookie}");
    let old_name = app
        .client
        .get(app.url("/auth/me"))
        .header("x-forwarded-proto", "https")
        .header(COOKIE, &old_cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(old_name.status(), StatusCode::OK, "the old cookie name is still read for one release");
}

#[tokio::test]
async fn the_origin_check_compares_the_scheme_too() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let post_from = |origin: String| {
        app.client
            .post(app.url("/recipes"))
            .header(COOKIE, &alice.cookie)
            .header("origin", origin)
            .json(&recipe())
    };
    let same = post_from(format!("http://{}", app.address)).send().await.expect("sent");
    assert_eq!(same.status(), StatusCode::CREATED);
    // Same host and port, but a page served over https is another origin than this plain-HTTP API.
    let other_scheme = post_from(format!("https://{}", app.address)).send().await.expect("sent");
    assert_eq!(other_scheme.status(), StatusCode::FORBIDDEN);
    assert_eq!(body(other_scheme).await["code"], "cross_site_request");
}

#[tokio::test]
async fn an_id_token_is_not_accepted_as_an_access_token() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    assert_eq!(me(&app, &alice.access_token).await, StatusCode::OK);
    let header = jsonwebtoken::decode_header(&alice.access_token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 access token type");
    // Signed by the same key, same issuer; with the audience made to match, only the type differs.
    let mut id_claims = decoded_claims(&alice.id_token);
    id_claims["aud"] = json!("galley-api");
    let mut id_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    id_header.kid = header.kid.clone();
    let keys = app.signing_keys().await;
    let encoding =
        jsonwebtoken::EncodingKey::from_rsa_pem(keys.last().expect("a key").private_pem.as_bytes())
            .expect("pem");
    let id_token = jsonwebtoken::encode(&id_header, &id_claims, &encoding).expect("signed");
    assert_eq!(me(&app, &id_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &alice.id_token).await, StatusCode::UNAUTHORIZED, "nor the ID token as issued");
}

#[tokio::test]
async fn over_long_credentials_are_refused_before_any_lookup_or_hashing() {
    let app = spawn_app().await;
    app.user("alice").await;
    let long_username = "a".repeat(65);
    let long_password = "p".repeat(1025);
    for _ in 0..8 {
        let refused = app
            .client
            .post(app.url("/auth/signin?locale=vi"))
            .json(&json!({"username": long_username, "password": long_password}))
            .send()
            .await
            .expect("sent");
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem = body(refused).await;
        let errors = problem["errors"].as_array().expect("errors").clone();
        assert_eq!(errors.len(), 2, "{problem}");
        assert!(errors.iter().all(|e| e["code"] == "too_many_bytes"), "{problem}");
        let username_error = errors.iter().find(|e| e["field"] == "username").expect("username");
        assert_eq!(username_error["message"], "chỉ được dài tối đa 64 byte");
    }
    let refused = app.sign_in("alice", &"p".repeat(1025)).await;
    let problem = body(refused).await;
    assert_eq!(problem["errors"][0]["message"], "must be at most 1024 bytes long");
    // Nothing was charged to the lockout budgets: eight refusals, and the user still signs in.
    assert_eq!(app.sign_in("alice", PASSWORD).await.status(), StatusCode::OK);
}
