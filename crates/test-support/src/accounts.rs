//! Accounts over HTTP for end-to-end tests and benchmarks: sign a user up and in on any process that
//! serves Galley's `/auth` routes.

use serde_json::{Value, json};

/// The password every test account uses (valid under the sign-up rules).
pub const PASSWORD: &str = "correct horse!";

/// Signs `username` up (email `<username>@example.com`) and in at `base` (`http://host:port`, no
/// trailing slash); returns the access token. Panics with the server's answer on failure.
pub async fn signed_in_token(client: &reqwest::Client, base: &str, username: &str) -> String {
    let signup =
        json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD});
    let created =
        client.post(format!("{base}/auth/signup")).json(&signup).send().await.expect("sign-up sent");
    assert_eq!(created.status(), 201, "sign-up of {username}");
    let signin = json!({"username": username, "password": PASSWORD});
    let response =
        client.post(format!("{base}/auth/signin")).json(&signin).send().await.expect("sign-in sent");
    assert_eq!(response.status(), 200, "sign-in of {username}");
    let tokens: Value = response.json().await.expect("token json");
    tokens["access_token"].as_str().expect("access token").to_owned()
}
