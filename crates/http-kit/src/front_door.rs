//! `GET /`: the front door of a Galley process — its name, version and the links a visitor needs next
//! (`/docs`, `/openapi.json`, `/health/ready`) — instead of a 404 at the root.
//!
//! Browsers get a small HTML page, everything else JSON. The choice follows the `Accept` header's
//! quality values (RFC 9110 §12.5.1): HTML only when the client ranks `text/html` strictly above
//! `application/json`, so `*/*` (curl, most libraries) and a missing header get JSON.
//!
//! The negotiation is written here rather than taken from a crate: it compares two media types by
//! their q-values, a dozen lines, where the negotiation crates on offer bring whole content-type
//! frameworks.

use axum::Router;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

/// The links every front door lists, as (relation, path).
const LINKS: [(&str, &str); 3] =
    [("docs", "/docs"), ("openapi", "/openapi.json"), ("health", "/health/ready")];

/// What `GET /` describes.
#[derive(Debug, Clone, Serialize)]
struct Index {
    name: &'static str,
    version: &'static str,
    links: Links,
}

#[derive(Debug, Clone, Serialize)]
struct Links {
    docs: &'static str,
    openapi: &'static str,
    health: &'static str,
}

/// The `GET /` route of the process named `service` at `version` (pass `env!("CARGO_PKG_VERSION")`).
/// Merge it into the process's routes once.
pub fn front_door(service: &'static str, version: &'static str) -> Router {
    let index = Index {
        name: service,
        version,
        links: Links { docs: LINKS[0].1, openapi: LINKS[1].1, health: LINKS[2].1 },
    };
    Router::new().route("/", get(move |headers: HeaderMap| async move { render(&index, &headers) }))
}

fn render(index: &Index, headers: &HeaderMap) -> Response {
    if prefers_html(headers) {
        let mut response = Html(html_page(index)).into_response();
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        response
    } else {
        axum::Json(index.clone()).into_response()
    }
}

fn html_page(index: &Index) -> String {
    // Every interpolated value is a compile-time constant of this crate's callers (service name,
    // version, fixed paths), so no escaping is needed.
    let items: String = LINKS
        .iter()
        .map(|(relation, path)| format!("<li><a href=\"{path}\">{path}</a> ({relation})</li>"))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}</title></head>\
         <body><h1>{name}</h1><p>Version {version}</p><ul>{items}</ul></body></html>\n",
        name = index.name,
        version = index.version,
    )
}

/// Whether the client ranks `text/html` strictly above `application/json`.
fn prefers_html(headers: &HeaderMap) -> bool {
    let accept: Vec<&str> = headers.get_all(ACCEPT).iter().filter_map(|value| value.to_str().ok()).collect();
    if accept.is_empty() {
        return false;
    }
    let ranges: Vec<(String, f32)> =
        accept.iter().flat_map(|value| value.split(',')).filter_map(media_range).collect();
    quality_of(&ranges, "text", "html") > quality_of(&ranges, "application", "json")
}

/// One `type/subtype;q=…` entry, lower-cased, with its quality (1 when absent; entries with a
/// malformed quality are ignored).
fn media_range(entry: &str) -> Option<(String, f32)> {
    let mut parts = entry.split(';').map(str::trim);
    let range = parts.next().filter(|range| range.contains('/'))?.to_ascii_lowercase();
    let mut quality = 1.0;
    for parameter in parts {
        if let Some((key, value)) = parameter.split_once('=')
            && key.trim().eq_ignore_ascii_case("q")
        {
            quality = value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some((range, quality))
}

/// The quality the client gives `kind/subtype`: from its most specific matching range (exact, then
/// `kind/*`, then `*/*`), 0 when none matches.
fn quality_of(ranges: &[(String, f32)], kind: &str, subtype: &str) -> f32 {
    let exact = format!("{kind}/{subtype}");
    let any_subtype = format!("{kind}/*");
    [exact.as_str(), any_subtype.as_str(), "*/*"]
        .iter()
        .find_map(|wanted| {
            ranges.iter().filter(|(range, _)| range == wanted).map(|(_, q)| *q).reduce(f32::max)
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get_root(accept: Option<&str>) -> (StatusCode, String, String) {
        let mut request = Request::get("/");
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        let response = front_door("recipes-api", "1.2.3")
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, content_type, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn clients_without_a_preference_get_json_with_name_version_and_links() {
        for accept in [None, Some("*/*"), Some("application/json"), Some("text/html;q=0.5, application/json")]
        {
            let (status, content_type, body) = get_root(accept).await;
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.starts_with("application/json"), "{accept:?}: {content_type}");
            let index: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(index["name"], "recipes-api");
            assert_eq!(index["version"], "1.2.3");
            assert_eq!(index["links"]["docs"], "/docs");
            assert_eq!(index["links"]["openapi"], "/openapi.json");
            assert_eq!(index["links"]["health"], "/health/ready");
        }
    }

    #[tokio::test]
    async fn browsers_get_an_html_page_linking_docs_openapi_and_health() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        for accept in [firefox, "text/html", "text/*, application/json;q=0.2"] {
            let (status, content_type, body) = get_root(Some(accept)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(content_type, "text/html; charset=utf-8", "{accept}");
            assert!(body.contains("<h1>recipes-api</h1>") && body.contains("1.2.3"), "{body}");
            for path in ["/docs", "/openapi.json", "/health/ready"] {
                assert!(body.contains(&format!("href=\"{path}\"")), "{path} linked: {body}");
            }
        }
    }

    #[test]
    fn malformed_qualities_and_ranges_are_ignored() {
        let ranges: Vec<(String, f32)> =
            "text/html;q=abc, nonsense, application/json;q=0.4".split(',').filter_map(media_range).collect();
        assert_eq!(ranges, vec![("application/json".to_owned(), 0.4)]);
        assert!((quality_of(&ranges, "text", "html")).abs() < f32::EPSILON);
    }
}
