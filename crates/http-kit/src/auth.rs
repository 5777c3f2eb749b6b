//! Authentication for every API: the `Authenticated` extractor and the session cookie.
//!
//! A request authenticates with `Authorization: Bearer <access token>` or with the session cookie set
//! at sign-in (encrypted and authenticated with AES-GCM under the configured cookie key, so clients can
//! neither read nor forge it). Routes opt in by taking `Authenticated`; routes that do not stay public
//! and never pay for token verification.
//!
//! The cookie carries the access and the refresh token, so it lives as long as the refresh token: when
//! the access token inside has expired, `POST /auth/refresh` with the cookie renews both. Over HTTPS it
//! is named `__Host-Authorization` (browsers then insist on `Secure`, `Path=/` and no `Domain`, so a
//! sibling subdomain cannot plant or shadow it); over plain HTTP, where browsers refuse that prefix, it
//! is `Authorization`. The plain name is still read over HTTPS for one release, so sessions started
//! before the rename keep working until they are renewed.
//!
//! CSRF: browsers attach cookies to cross-site requests, so a cookie-authenticated request that changes
//! state (any method but GET, HEAD, OPTIONS) must prove it is same-origin. The cookie is
//! `SameSite=Strict` (modern browsers do not send it cross-site at all), and in addition the request must
//! carry `Sec-Fetch-Site: same-origin|none`, or, from browsers without Fetch Metadata, an `Origin` whose
//! scheme and authority (host and port, default ports made explicit) are the request's own: the
//! request's scheme is `https` when it arrived through a trusted TLS proxy, its authority is the
//! request target's (HTTP/2 `:authority`, which has no `Host` header) or else `Host`. A request with
//! neither header is not from a browser (curl, a server) and cannot be a CSRF attack, so it passes.
//! Bearer-token requests are not exposed to CSRF and skip the check.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite};
use galley_identity::{AuthFailure, Authenticator, Principal};
use serde::{Deserialize, Serialize};

use crate::client::ClientInfo;
use crate::problem::Problem;

/// Name of the session cookie over plain HTTP (as in the original system); also still read over HTTPS
/// for one release (see the module docs).
pub const SESSION_COOKIE: &str = "Authorization";

/// Name of the session cookie over HTTPS: the `__Host-` prefix binds it to this exact origin.
pub const SECURE_SESSION_COOKIE: &str = "__Host-Authorization";

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

/// Reads and decrypts the session cookie (the `__Host-` name first, then the plain one); `None` when
/// absent, tampered with or unreadable.
pub fn read_session(headers: &HeaderMap, key: &Key) -> Option<SessionCookie> {
    let jar = PrivateCookieJar::from_headers(headers, key.clone());
    [SECURE_SESSION_COOKIE, SESSION_COOKIE]
        .into_iter()
        .filter_map(|name| jar.get(name))
        .find_map(|cookie| serde_json::from_str(cookie.value()).ok())
}

fn session_cookie_name(client: ClientInfo) -> &'static str {
    if client.secure { SECURE_SESSION_COOKIE } else { SESSION_COOKIE }
}

/// A jar that sets the encrypted session cookie (HttpOnly, SameSite=Strict, Path=/, and over TLS
/// Secure with the `__Host-` name). `max_age` should be the refresh token's lifetime: the cookie
/// carries it. Return the jar from the handler to send `Set-Cookie`.
pub fn set_session(
    key: &Key,
    session: &SessionCookie,
    max_age: Duration,
    client: ClientInfo,
) -> PrivateCookieJar {
    let value = serde_json::to_string(session).unwrap_or_default();
    let cookie = Cookie::build((session_cookie_name(client), value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(client.secure)
        .path("/")
        .max_age(time_duration(max_age))
        .build();
    PrivateCookieJar::new(key.clone()).add(cookie)
}

/// A jar that clears the session cookie (over TLS both names: the plain one may be left from before
/// the `__Host-` rename).
pub fn clear_session(key: &Key, client: ClientInfo) -> PrivateCookieJar {
    let names: &[&'static str] =
        if client.secure { &[SECURE_SESSION_COOKIE, SESSION_COOKIE] } else { &[SESSION_COOKIE] };
    names.iter().fold(PrivateCookieJar::new(key.clone()), |jar, name| {
        let mut cookie = Cookie::build((*name, ""))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(client.secure)
            .path("/")
            .build();
        // `remove` only emits a removal for cookies the jar was built from; an explicit removal cookie
        // (empty, Max-Age=0, expired) clears it whatever the jar knew.
        cookie.make_removal();
        jar.add(cookie)
    })
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

/// Whether a cookie-authenticated request may change state (see the module docs). `secure`: the
/// request reached us over TLS (through a trusted proxy), so its own scheme is `https`.
pub fn same_origin_or_not_a_browser(method: &Method, uri: &Uri, headers: &HeaderMap, secure: bool) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let scheme = if secure { "https" } else { uri.scheme_str().unwrap_or("http") };
    let authority = uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned));
    let request_origin = authority.and_then(|authority| Origin::new(scheme, &authority));
    let origin = origin.to_str().ok().and_then(Origin::parse);
    matches!((origin, request_origin), (Some(origin), Some(request)) if origin == request)
}

/// A web origin (scheme, host, port) with the default port made explicit, lower-cased.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn new(scheme: &str, authority: &str) -> Option<Self> {
        let scheme = scheme.to_ascii_lowercase();
        let authority: Authority = authority.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        Some(Self {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
            scheme,
        })
    }

    /// An `Origin` header value: `scheme://host[:port]`, nothing else (`null` is no origin).
    fn parse(value: &str) -> Option<Self> {
        let (scheme, authority) = value.split_once("://")?;
        Self::new(scheme, authority.strip_suffix('/').unwrap_or(authority))
    }
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
        let secure = parts.extensions.get::<ClientInfo>().is_some_and(|client| client.secure);
        if source == CredentialSource::Cookie
            && !same_origin_or_not_a_browser(&parts.method, &parts.uri, &parts.headers, secure)
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

    fn allowed(method: &Method, pairs: &[(&'static str, &'static str)]) -> bool {
        same_origin_or_not_a_browser(method, &Uri::from_static("/recipes"), &headers(pairs), false)
    }

    #[test]
    fn csrf_rules() {
        let post = Method::POST;
        assert!(allowed(&Method::GET, &[("sec-fetch-site", "cross-site")]));
        assert!(allowed(&post, &[("sec-fetch-site", "same-origin")]));
        assert!(!allowed(&post, &[("sec-fetch-site", "cross-site")]));
        assert!(!allowed(&post, &[("sec-fetch-site", "same-site")]));
        assert!(allowed(&post, &[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]));
        assert!(!allowed(&post, &[("origin", "https://evil.example"), ("host", "127.0.0.1:8080")]));
        assert!(!allowed(&post, &[("origin", "null"), ("host", "127.0.0.1:8080")]));
        assert!(allowed(&post, &[]), "curl is not a browser");
    }

    #[test]
    fn the_origin_must_match_scheme_and_authority() {
        let post = Method::POST;
        let path = Uri::from_static("/recipes");
        // Same host and port, other scheme: another origin.
        assert!(!allowed(&post, &[("origin", "https://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]));
        let tls = headers(&[("origin", "http://galley.example"), ("host", "galley.example")]);
        assert!(!same_origin_or_not_a_browser(&post, &path, &tls, true), "http page, https request");
        let tls = headers(&[("origin", "https://galley.example"), ("host", "galley.example")]);
        assert!(same_origin_or_not_a_browser(&post, &path, &tls, true));
        // Default ports are the same origin whether written or not; hosts compare case-insensitively.
        assert!(allowed(&post, &[("origin", "http://Galley.example:80"), ("host", "galley.example")]));
        assert!(!allowed(&post, &[("origin", "http://galley.example:8080"), ("host", "galley.example")]));
        assert!(!allowed(&post, &[("origin", "http://galley.example.evil"), ("host", "galley.example")]));
        assert!(!allowed(&post, &[("origin", "http://galley.example"), ("host", "")]), "no authority");
    }

    #[test]
    fn http2_requests_are_checked_against_their_authority() {
        let post = Method::POST;
        // HTTP/2 has no Host header: the authority is part of the request target.
        let target = Uri::from_static("http://127.0.0.1:8080/recipes");
        let same = headers(&[("origin", "http://127.0.0.1:8080")]);
        assert!(same_origin_or_not_a_browser(&post, &target, &same, false));
        let other = headers(&[("origin", "http://127.0.0.1:9090")]);
        assert!(!same_origin_or_not_a_browser(&post, &target, &other, false));
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

    fn cookie_request(name: &str, value: &str) -> HeaderMap {
        let mut request = HeaderMap::new();
        request.insert(header::COOKIE, HeaderValue::from_str(&format!("{name}={value}")).expect("header"));
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
        for attribute in
            ["__Host-Authorization=", "HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=900"]
        {
            assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
        }
        assert!(!set_cookie.contains("Domain"), "__Host- cookies name no domain: {set_cookie}");
        let plain =
            set_cookie_header(set_session(&key, &session, Duration::from_secs(900), ClientInfo::default()));
        assert!(plain.starts_with("Authorization="), "browsers refuse __Host- without TLS: {plain}");
        assert!(!plain.contains("Secure"), "no Secure flag over plain HTTP");
        let plain_value = plain.split(';').next().and_then(|pair| pair.split_once('=')).map(|(_, v)| v);
        assert_eq!(
            read_session(&cookie_request(SESSION_COOKIE, plain_value.expect("value")), &key),
            Some(session.clone()),
            "the old name is still read"
        );

        let value =
            set_cookie.split(';').next().and_then(|pair| pair.split_once('=')).map(|(_, v)| v.to_owned());
        let value = value.expect("cookie value");
        assert!(!value.contains("a.b.c"), "the value is encrypted");
        assert_eq!(read_session(&cookie_request(SECURE_SESSION_COOKIE, &value), &key), Some(session));
        assert_eq!(
            read_session(&cookie_request(SECURE_SESSION_COOKIE, &value), &Key::generate()),
            None,
            "another key cannot read it"
        );
        let mut tampered = value.into_bytes();
        if let Some(byte) = tampered.get_mut(10) {
            *byte = if *byte == b'A' { b'B' } else { b'A' };
        }
        assert_eq!(
            read_session(&cookie_request(SECURE_SESSION_COOKIE, &String::from_utf8_lossy(&tampered)), &key),
            None
        );

        let cleared = set_cookie_header(clear_session(&key, ClientInfo::default()));
        assert!(cleared.contains("Max-Age=0") || cleared.contains("Expires="), "{cleared}");
        let response = {
            use axum::response::IntoResponse as _;
            (clear_session(&key, ClientInfo { ip: None, secure: true }), "").into_response()
        };
        let removed: Vec<&str> =
            response.headers().get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
        assert!(removed.iter().any(|c| c.starts_with("__Host-Authorization=")), "{removed:?}");
        assert!(removed.iter().any(|c| c.starts_with("Authorization=")), "the old name too: {removed:?}");
    }
}
