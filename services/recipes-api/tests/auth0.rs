//! recipes-api with `identity.provider = "auth0"`, against a fake Auth0 tenant on loopback that follows
//! Auth0's documented contract: the account flows end to end, Auth0's errors as Galley's localized
//! problems, the verification of Auth0 tokens (key rotation, forgeries, issuer, audience), and Auth0
//! down or hanging.

mod support;

use std::time::{Duration, Instant};

use galley_test_support::auth0::{FakeAuth0, LEAKED_PASSWORD, Mode};
use reqwest::header::ACCEPT_LANGUAGE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{AppOptions, PASSWORD, Provider, TestApp, spawn_app_with};

async fn auth0_app() -> TestApp {
    spawn_app_with(AppOptions { provider: Provider::Auth0, ..AppOptions::default() }).await
}

fn tenant(app: &TestApp) -> &FakeAuth0 {
    app.auth0.as_ref().expect("an Auth0 app has a tenant")
}

fn recipe() -> Value {
    json!({"name": "Phở bò", "ingredients": ["beef", "rice noodles"], "instructions": ["Simmer."]})
}

async fn create_recipe_with(app: &TestApp, token: &str) -> StatusCode {
    app.client
        .post(app.url("/recipes"))
        .bearer_auth(token)
        .json(&recipe())
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test]
async fn sign_up_sign_in_me_refresh_and_sign_out_go_through_auth0() {
    let app = auth0_app().await;
    let user = app.user("alice").await;
    let (grant, forwarded_for) = tenant(&app).last_token_request().expect("a token request");
    assert_eq!(grant, "http://auth0.com/oauth/grant-type/password-realm");
    assert_eq!(forwarded_for.as_deref(), Some("127.0.0.1"), "the end user's address goes to Auth0");

    let me: Value =
        app.as_user(Method::GET, "/auth/me", &user).send().await.expect("sent").json().await.expect("json");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert!(me["id"].as_str().is_some_and(|id| id.starts_with("auth0|")), "{me}");
    assert_eq!(create_recipe_with(&app, &user.access_token).await, StatusCode::CREATED);

    // Tokens without a jti issued in the same second are identical: let a second pass.
    app.clock.advance(chrono::Duration::seconds(1));
    // Refresh rotates on Auth0's side: the old refresh token is dead, the new one works.
    let refreshed = app.post_json("/auth/refresh", &json!({"refresh_token": user.refresh_token})).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let tokens: Value = refreshed.json().await.expect("json");
    let new_refresh = tokens["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(new_refresh, user.refresh_token);
    let replay = app.post_json("/auth/refresh", &json!({"refresh_token": user.refresh_token})).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    let new_access = tokens["access_token"].as_str().expect("access").to_owned();

    // Sign-out with only the bearer: refused at once, and the refresh token revoked at Auth0.
    let signed_out =
        app.client.post(app.url("/auth/signout")).bearer_auth(&new_access).send().await.expect("sent");
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    assert_eq!(create_recipe_with(&app, &new_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(tenant(&app).revocations(), 1);
    let after = app.post_json("/auth/refresh", &json!({"refresh_token": new_refresh})).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // The first access token (not signed out) is still valid until it expires, as Auth0's are.
    assert_eq!(create_recipe_with(&app, &user.access_token).await, StatusCode::CREATED);
}

/// The refresh token Auth0 issued is kept only sealed by the at-rest envelope (the data directory's
/// key file here; AWS KMS where `kms.key_id` is set), bound to its purpose.
#[tokio::test]
async fn the_auth0_refresh_token_is_stored_sealed_by_the_at_rest_envelope() {
    use galley_identity::SecretSealer as _;
    let app = auth0_app().await;
    let user = app.user("alice").await;
    let (session, envelope) = app.provider_session(&user.access_token).await;
    let sealed = session.expect("a session record").sealed_refresh_token.expect("a sealed refresh token");
    assert!(sealed.starts_with("sealed:"), "an envelope, not the cookie-key sealer: {sealed}");
    assert!(!sealed.contains(&user.refresh_token), "the refresh token is not stored in the clear");
    let envelope = std::sync::Arc::new(envelope);
    let opened =
        galley_identity::at_rest::EnvelopeSealer::new(envelope.clone(), "galley/auth0/refresh-token")
            .open(&sealed)
            .await
            .expect("opens with the key file and the purpose");
    assert_eq!(opened, user.refresh_token);
    let other_purpose = galley_identity::at_rest::EnvelopeSealer::new(envelope, "galley/signing-key");
    assert!(other_purpose.open(&sealed).await.is_err(), "bound to its purpose");
}

/// `GALLEY__IDENTITY__AUTH0__GRANT=password`: the plain password grant (no realm), where the tenant's
/// default directory picks the connection.
#[tokio::test]
async fn the_plain_password_grant_signs_in_when_configured() {
    let app = spawn_app_with(AppOptions {
        provider: Provider::Auth0,
        auth0_grant: Some(galley_auth0::settings::Auth0Grant::Password),
        ..AppOptions::default()
    })
    .await;
    let user = app.user("bob").await;
    let (grant, _) = tenant(&app).last_token_request().expect("a token request");
    assert_eq!(grant, "password");
    assert_eq!(create_recipe_with(&app, &user.access_token).await, StatusCode::CREATED);
}

/// An ID token without the profile claims (an app that did not ask for them, a rule that strips
/// them): the profile comes from `/userinfo`, once, at sign-in.
#[tokio::test]
async fn a_profile_missing_from_the_id_token_is_read_from_userinfo() {
    let app = auth0_app().await;
    tenant(&app).issue_bare_id_tokens();
    let user = app.user("carol").await;
    assert_eq!(tenant(&app).userinfo_calls(), 1, "asked once, at sign-in");
    let me: Value =
        app.as_user(Method::GET, "/auth/me", &user).send().await.expect("sent").json().await.expect("json");
    assert_eq!(me["username"], "carol", "{me}");
    assert_eq!(me["email"], "carol@example.com", "{me}");
    assert_eq!(tenant(&app).userinfo_calls(), 1, "`me` reads the session, not Auth0");
}

#[tokio::test]
async fn galleys_discovery_documents_are_not_served_in_auth0_mode() {
    let app = auth0_app().await;
    assert_eq!(app.get("/.well-known/jwks.json").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/.well-known/openid-configuration").await.status(), StatusCode::NOT_FOUND);
}

async fn sign_up_in(
    app: &TestApp,
    locale: &str,
    username: &str,
    email: &str,
    password: &str,
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/auth/signup"))
        .header(ACCEPT_LANGUAGE, locale)
        .json(&json!({"username": username, "email": email, "password": password}))
        .send()
        .await
        .expect("sent");
    (response.status(), response.json().await.expect("json"))
}

fn violation<'a>(problem: &'a Value, field: &str) -> &'a Value {
    problem["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == field))
        .unwrap_or_else(|| panic!("{field} in {problem}"))
}

#[tokio::test]
async fn auth0s_sign_up_errors_become_localized_problems() {
    let app = auth0_app().await;
    assert_eq!(app.sign_up("alice").await.status(), StatusCode::CREATED);
    for (locale, leaked, long) in [
        ("en", "has appeared in a data breach; choose another password", "must be at most 15 characters"),
        ("vi", "đã bị lộ trong một vụ rò rỉ dữ liệu; hãy chọn mật khẩu khác", "chỉ được dài tối đa 15 ký tự"),
    ] {
        let (status, problem) = sign_up_in(&app, locale, "alice", "other@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(violation(&problem, "username")["code"], "taken");
        let (status, problem) = sign_up_in(&app, locale, "alicia", "alice@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(violation(&problem, "email")["code"], "taken");
        let (status, problem) = sign_up_in(&app, locale, "bob", "bob@example.com", LEAKED_PASSWORD).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(violation(&problem, "password")["code"], "password_leaked");
        assert_eq!(violation(&problem, "password")["message"], leaked);
        // Longer than Auth0's 15 characters: refused before any call (Auth0 would say invalid_signup).
        let (status, problem) =
            sign_up_in(&app, locale, "abcdefghijklmnop", "long@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(violation(&problem, "username")["code"], "too_long");
        assert!(
            violation(&problem, "username")["message"].as_str().is_some_and(|m| m.starts_with(long)),
            "{problem}"
        );
        assert!(!problem.to_string().contains("127.0.0.1"), "no upstream detail leaks: {problem}");
    }
}

#[tokio::test]
async fn wrong_passwords_blocked_users_and_galleys_own_lockout() {
    let app = auth0_app().await;
    assert_eq!(app.sign_up("alice").await.status(), StatusCode::CREATED);
    let wrong = app.sign_in("alice", "wrong horse!").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = wrong.json().await.expect("json");
    assert_eq!(problem["code"], "invalid_credentials", "the same single 401 as the built-in provider");

    assert_eq!(app.sign_up("bob").await.status(), StatusCode::CREATED);
    tenant(&app).block("bob");
    let blocked = app.sign_in("bob", PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::FORBIDDEN);
    assert_eq!(blocked.json::<Value>().await.expect("json")["code"], "account_blocked");

    for _ in 0..4 {
        assert_eq!(app.sign_in("alice", "wrong horse!").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.sign_in("alice", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_rotated_in_key_costs_one_jwks_refetch() {
    let app = auth0_app().await;
    let user = app.user("alice").await;
    let sub = app
        .as_user(Method::GET, "/auth/me", &user)
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let fetches = tenant(&app).jwks_fetches();
    tenant(&app).rotate_keys().await;
    let token = tenant(&app).sign(&tenant(&app).access_claims(&sub));
    for _ in 0..5 {
        assert_eq!(create_recipe_with(&app, &token).await, StatusCode::CREATED);
    }
    assert_eq!(tenant(&app).jwks_fetches(), fetches + 1, "one refetch for the new kid, then cached");
}

#[tokio::test]
async fn forged_and_misaddressed_auth0_tokens_are_refused() {
    let app = auth0_app().await;
    let auth0 = tenant(&app);
    let claims = auth0.access_claims("auth0|someone");
    assert_eq!(create_recipe_with(&app, &auth0.sign(&claims)).await, StatusCode::CREATED, "the control");

    let mut no_slash = claims.clone();
    no_slash["iss"] = json!(auth0.base_url().trim_end_matches('/'));
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!(["https://other-api.example", format!("{}userinfo", auth0.base_url())]);
    let id_token_audience = {
        let mut id = claims.clone();
        id["aud"] = json!(galley_test_support::auth0::CLIENT_ID);
        id
    };
    let forgeries = [
        ("another key", auth0.sign_with_unpublished_key(&claims).await),
        ("HS256 with the public key", auth0.sign_hs256_with_public_key(&claims)),
        ("alg none", auth0.unsigned(&claims)),
        ("issuer without the trailing slash", auth0.sign(&no_slash)),
        ("wrong audience", auth0.sign(&wrong_audience)),
        ("an ID token's audience", auth0.sign(&id_token_audience)),
    ];
    for (what, token) in forgeries {
        assert_eq!(create_recipe_with(&app, &token).await, StatusCode::UNAUTHORIZED, "{what}");
    }
}

#[tokio::test]
async fn auth0_down_or_hanging_is_a_503_within_the_timeout_and_reads_still_work() {
    let app = auth0_app().await;
    assert_eq!(app.sign_up("alice").await.status(), StatusCode::CREATED);
    for mode in [Mode::Failing, Mode::Hanging] {
        tenant(&app).set_mode(mode);
        let started = Instant::now();
        let response = app.sign_in("alice", PASSWORD).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{mode:?}");
        assert!(elapsed < Duration::from_secs(10), "{mode:?} answered after {elapsed:?} (timeout 2 s)");
        let body = response.text().await.expect("body");
        assert!(!body.contains("upstream") && !body.contains("127.0.0.1"), "nothing leaks: {body}");
        let (status, _) = sign_up_in(&app, "en", "bob", "bob@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{mode:?} sign-up");
        assert_eq!(app.get("/recipes").await.status(), StatusCode::OK, "reads do not need Auth0");
        assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK, "still ready");
    }
    tenant(&app).set_mode(Mode::Normal);
    assert_eq!(app.sign_in("alice", PASSWORD).await.status(), StatusCode::OK, "and back when Auth0 is");
}
