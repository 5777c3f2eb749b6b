//! The all-in-one process with `identity.provider = "auth0"`, against a fake Auth0 tenant on loopback:
//! one Auth0 sign-in serves recipes and RSS alike, and a sign-out is refused by both at once.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use galley_auth0::IdentityProviderKind;
use galley_test_support::auth0::{self, FakeAuth0};
use galley_test_support::feeds::FixtureServer;
use reqwest::StatusCode;
use serde_json::json;
use support::start_with;

#[tokio::test]
async fn one_auth0_sign_in_serves_recipes_and_rss_and_a_sign_out_ends_both() {
    let tenant = FakeAuth0::start().await;
    let feeds = FixtureServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let galley = start_with(&["127.0.0.1/32"], |settings| {
        let identity = &mut settings.recipes.identity;
        identity.provider = IdentityProviderKind::Auth0;
        identity.auth0.base_url = Some(tenant.base_url().to_owned());
        identity.auth0.client_id = auth0::CLIENT_ID.to_owned();
        identity.auth0.client_secret = Some(auth0::CLIENT_SECRET.into());
        identity.auth0.audience = auth0::AUDIENCE.to_owned();
    })
    .await;

    let token = galley.token("alice").await;
    assert!(tenant.last_token_request().is_some(), "the sign-in went to Auth0");
    // Galley's own keys are not published: Auth0 issues the tokens.
    assert_eq!(
        galley.client.get(galley.url("/.well-known/jwks.json")).send().await.expect("sent").status(),
        StatusCode::NOT_FOUND
    );
    let recipe = json!({"name": "Phở bò", "ingredients": ["beef"], "instructions": ["Simmer."]});
    let create = || galley.client.post(galley.url("/recipes")).bearer_auth(&token).json(&recipe).send();
    assert_eq!(create().await.expect("sent").status(), StatusCode::CREATED);
    let job = galley.ingest(&token, &feeds.url("/rss.xml")).await;
    assert_eq!(job["status"], "done", "{job}");

    let signed_out =
        galley.client.post(galley.url("/auth/signout")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    assert_eq!(tenant.revocations(), 1, "the refresh token was revoked at Auth0");
    assert_eq!(create().await.expect("sent").status(), StatusCode::UNAUTHORIZED);
    let fetch = galley.request_fetch(&token, &feeds.url("/atom.xml")).await;
    assert_eq!(fetch.status(), StatusCode::UNAUTHORIZED, "rss refuses the signed-out token too");
}
