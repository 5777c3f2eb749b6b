//! Authentication for every API: the `Authenticated` extractor and the session cookie.
//!
//! A request authenticates with `Authorization: Bearer <access token>` or with the `Authorization`
//! cookie set at sign-in (encrypted and authenticated with AES-GCM under the configured cookie key, so
//! clients can neither read nor forge it). Routes opt in by taking `Authenticated`; routes that do not
//! stay public and never pay for token verification.
//!
//! CSRF: browsers attach cookies to cross-site requests, so a cookie-authenticated request that changes
//! state (any method but GET, HEAD, OPTIONS) must prove it is same-origin. The cookie is
//! `SameSite=Strict` (modern browsers do not send it cross-site at all), and in addition the request must
//! carry `Sec-Fetch-Site: same-origin|none`, or, from browsers without Fetch Metadata, an `Origin` whose
//! host matches `Host`. A request with neither header is not from a browser (curl, a server) and cannot
//! be a CSRF attack, so it passes. Bearer-token requests are not exposed to CSRF and skip the check.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite};
use galley_identity::{AuthFailure, Authenticator, Principal};
use serde::{Deserialize, Serialize};

use crate::client::ClientInfo;
use crate::problem::Problem;

/// Name of the session cookie (as in the original system).
pub const SESSION_COOKIE: &str = "Authorization";

/// What the extractor needs; added to a service's router with [`AuthConfig::layer`].
#[derive(Clone)]
pub struct AuthConfig {
    pub authenticator: Arc<dyn Authenticator>,
    pub cookie_key: Key,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig").field("authenticator", &self.authenticator).finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// A layer making this configuration available to `Authenticated` in the wrapped routes.
    pub fn layer(self) -> axum::Extension<Arc<AuthConfig>> {
        axum::Extension(Arc::new(self))
    }
}

/// The tokens kept in the session cookie.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCookie {
    pub access_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCookie([REDACTED])")
    }
}

/// Reads and decrypts the session cookie; `None` when absent, tampered with or unreadable.
pub fn read_session(headers: &HeaderMap, key: &Key) -> Option<SessionCookie> {
    let jar = PrivateCookieJar::from_headers(headers, key.clone());
    serde_json::from_str(jar.get(SESSION_COOKIE)?.value()).ok()
}

/// A jar that sets the encrypted session cookie (HttpOnly, SameSite=Strict, Secure over TLS,
/// Max-Age = the access token's lifetime). Return it from the handler to send `Set-Cookie`.
pub fn set_session(
    key: &Key,
    session: &SessionCookie,
    max_age: Duration,
    client: ClientInfo,
) -> PrivateCookieJar {
    let value = serde_json::to_string(session).unwrap_or_default();
    let cookie = Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(client.secure)
        .path("/")
        .max_age(time_duration(max_age))
        .build();
    PrivateCookieJar::new(key.clone()).add(cookie)
}

/// A jar that clears the session cookie.
pub fn clear_session(key: &Key, client: ClientInfo) -> PrivateCookieJar {
    let mut cookie = Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(client.secure)
        .path("/")
        .build();
    // `remove` only emits a removal for cookies the jar was built from; an explicit removal cookie
    // (empty, Max-Age=0, expired) clears it whatever the jar knew.
    cookie.make_removal();
    PrivateCookieJar::new(key.clone()).add(cookie)
}

fn time_duration(duration: Duration) -> time::Duration {
    time::Duration::seconds(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, thiserror::Error)]
pub enum CookieKeyError {
    #[error("identity.cookie_key must be base64")]
    NotBase64,
    #[error("identity.cookie_key must decode to at least 32 bytes")]
    TooShort,
}

/// The session-cookie key: the configured secret (base64, at least 32 bytes, stretched with HKDF), or
/// a random one, with a warning, when none is configured (cookies then end at restart and work on this
/// process only; bearer tokens are unaffected). Every service reading the cookie must share the key.
pub fn cookie_key(configured: Option<&galley_platform::Secret>) -> Result<Key, CookieKeyError> {
    use base64::Engine as _;
    use galley_platform::secret::ExposeSecret as _;
    let Some(configured) = configured else {
        tracing::warn!("identity.cookie_key is not set: using a random key for session cookies");
        return Ok(Key::generate());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(configured.expose_secret().trim())
        .map_err(|_| CookieKeyError::NotBase64)?;
    if bytes.len() < 32 {
        return Err(CookieKeyError::TooShort);
    }
    Ok(Key::derive_from(&bytes))
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Bearer,
    Cookie,
}

/// The authenticated principal. Taking it makes a route require sign-in (401 otherwise).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub source: CredentialSource,
}

/// 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
pub fn unauthorized(invalid_token: bool) -> Problem {
    let challenge = if invalid_token {
        r#"Bearer realm="galley", error="invalid_token""#
    } else {
        r#"Bearer realm="galley""#
    };
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized")
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge))
}

/// The bearer token of an `Authorization` header, if it is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Whether a cookie-authenticated request may change state (see the module docs).
pub fn same_origin_or_not_a_browser(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest).trim_end_matches('/');
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        return !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host);
    }
    true
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(config) = parts.extensions.get::<Arc<AuthConfig>>().cloned() else {
            tracing::error!("route requires authentication but no AuthConfig layer is installed");
            return Err(Problem::internal());
        };
        let (token, source) = match bearer(&parts.headers) {
            Some(token) => (token.to_owned(), CredentialSource::Bearer),
            None => match read_session(&parts.headers, &config.cookie_key) {
                Some(session) => (session.access_token, CredentialSource::Cookie),
                None => return Err(unauthorized(false)),
            },
        };
        if source == CredentialSource::Cookie && !same_origin_or_not_a_browser(&parts.method, &parts.headers)
        {
            tracing::warn!("cross-site request with the session cookie refused");
            return Err(Problem::new(StatusCode::FORBIDDEN, "cross_site_request"));
        }
        match config.authenticator.authenticate(&token).await {
            Ok(principal) => Ok(Self { principal, source }),
            Err(AuthFailure::Unavailable(reason)) => {
                tracing::error!(%reason, "cannot verify credentials");
                Err(Problem::unavailable())
            }
            Err(failure) => {
                tracing::info!(%failure, "credentials refused");
                Err(unauthorized(true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cookie_keys_come_from_long_enough_base64() {
        let long = galley_platform::Secret::from("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        assert!(cookie_key(Some(&long)).is_ok());
        assert!(matches!(cookie_key(Some(&"c2hvcnQ=".into())), Err(CookieKeyError::TooShort)));
        assert!(matches!(cookie_key(Some(&"not base64!".into())), Err(CookieKeyError::NotBase64)));
        assert!(cookie_key(None).is_ok(), "a random key without configuration");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "bearer  abc ")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn csrf_rules() {
        let post = Method::POST;
        assert!(same_origin_or_not_a_browser(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin_or_not_a_browser(&post, &headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin_or_not_a_browser(&post, &headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin_or_not_a_browser(&post, &headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin_or_not_a_browser(
            &post,
            &headers(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")])
        ));
        assert!(!same_origin_or_not_a_browser(
            &post,
            &headers(&[("origin", "https://evil.example"), ("host", "127.0.0.1:8080")])
        ));
        assert!(!same_origin_or_not_a_browser(
            &post,
            &headers(&[("origin", "null"), ("host", "127.0.0.1:8080")])
        ));
        assert!(same_origin_or_not_a_browser(&post, &HeaderMap::new()), "curl is not a browser");
    }

    fn set_cookie_header(jar: PrivateCookieJar) -> String {
        use axum::response::IntoResponse as _;
        let response = (jar, "").into_response();
        response
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn cookie_request(value: &str) -> HeaderMap {
        let mut request = HeaderMap::new();
        request.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={value}")).expect("header"),
        );
        request
    }

    #[test]
    fn session_cookies_are_hardened_round_trip_and_resist_tampering() {
        let key = Key::generate();
        let session = SessionCookie { access_token: "a.b.c".into(), refresh_token: "r".into() };
        let set_cookie = set_cookie_header(set_session(
            &key,
            &session,
            Duration::from_secs(900),
            ClientInfo { ip: None, secure: true },
        ));
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=900"] {
            assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
        }
        let plain = set_session(&key, &session, Duration::from_secs(900), ClientInfo::default());
        assert!(!set_cookie_header(plain).contains("Secure"), "no Secure flag over plain HTTP");

        let value =
            set_cookie.split(';').next().and_then(|pair| pair.split_once('=')).map(|(_, v)| v.to_owned());
        let value = value.expect("cookie value");
        assert!(!value.contains("a.b.c"), "the value is encrypted");
        assert_eq!(read_session(&cookie_request(&value), &key), Some(session));
        assert_eq!(
            read_session(&cookie_request(&value), &Key::generate()),
            None,
            "another key cannot read it"
        );
        let mut tampered = value.into_bytes();
        if let Some(byte) = tampered.get_mut(10) {
            *byte = if *byte == b'A' { b'B' } else { b'A' };
        }
        assert_eq!(read_session(&cookie_request(&String::from_utf8_lossy(&tampered)), &key), None);

        let cleared = set_cookie_header(clear_session(&key, ClientInfo::default()));
        assert!(cleared.contains("Max-Age=0") || cleared.contains("Expires="), "{cleared}");
    }
}
