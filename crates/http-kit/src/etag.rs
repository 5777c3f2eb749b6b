//! Entity tags for optimistic concurrency. Galley's tags are strong and opaque to clients: `"<revision>"`.

use axum::http::{HeaderMap, HeaderValue, header};

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// No header, or `*`: no revision condition.
    Any,
    /// The write may proceed only at this revision.
    Revision(u64),
    /// Only tags that cannot be ours (weak or foreign): the condition can never hold (412).
    Never,
}

/// The `ETag` value for a revision.
pub fn etag(revision: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn parse_tag(tag: &str) -> Option<u64> {
    tag.trim().strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

/// Reads `If-Match` (RFC 9110 §13.1.1). Weak tags never match (strong comparison). A list of several of
/// our tags keeps the first one, as a revision can equal only one of them.
pub fn if_match(headers: &HeaderMap) -> IfMatch {
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    if values.is_empty() || values.iter().any(|v| v.trim() == "*") {
        return IfMatch::Any;
    }
    values.iter().find_map(|v| parse_tag(v)).map_or(IfMatch::Never, IfMatch::Revision)
}

/// Whether `If-None-Match` lists the current revision (weak comparison, so `W/"3"` matches), or `*`.
pub fn if_none_match_hits(headers: &HeaderMap, revision: u64) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || parse_tag(tag.strip_prefix("W/").unwrap_or(tag)) == Some(revision)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_static(value));
        map
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&HeaderMap::new()), IfMatch::Any);
        assert_eq!(if_match(&headers(header::IF_MATCH, "*")), IfMatch::Any);
        assert_eq!(if_match(&headers(header::IF_MATCH, "\"3\"")), IfMatch::Revision(3));
        assert_eq!(if_match(&headers(header::IF_MATCH, "\"x\", \"4\"")), IfMatch::Revision(4));
        assert_eq!(if_match(&headers(header::IF_MATCH, "W/\"3\"")), IfMatch::Never);
        assert_eq!(if_match(&headers(header::IF_MATCH, "3")), IfMatch::Never);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, "W/\"3\""), 3));
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, "\"1\", \"3\""), 3));
        assert!(if_none_match_hits(&headers(header::IF_NONE_MATCH, "*"), 3));
        assert!(!if_none_match_hits(&headers(header::IF_NONE_MATCH, "\"2\""), 3));
        assert!(!if_none_match_hits(&HeaderMap::new(), 3));
        assert_eq!(etag(3), HeaderValue::from_static("\"3\""));
    }
}
