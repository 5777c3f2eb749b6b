//! Entity tags for optimistic concurrency. Galley's tags are strong and opaque to clients: `"<revision>"`.
//!
//! `If-Match` and `If-None-Match` carry `*` or a comma-separated list of entity tags (RFC 9110 §8.8.3,
//! §13.1.1, §13.1.2), possibly spread over several header lines, and a tag may itself contain commas
//! (`"a,b"`). The lists are parsed here by the RFC's grammar, in one pass, rather than with the `headers`
//! crate: its `IfMatch` can only answer "does this one tag pass?", while a write needs the whole set of
//! revisions the client accepts before the use case reads the store (the check and the compare-and-swap
//! happen there, against the revision it actually read).
//!
//! Comparison follows RFC 9110 §8.8.3.2: `If-Match` uses the strong function (a weak tag never matches,
//! and `"03"` is not `"3"`), `If-None-Match` the weak one (`W/"3"` matches `"3"`). Malformed members match
//! nothing.

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

/// What an `If-Match` header allows a write to proceed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header, or `*`: no revision condition.
    Any,
    /// The write may proceed only at one of these revisions (in the client's order). Empty when the
    /// header names none of ours (weak, foreign or malformed tags): then the condition never holds.
    Revisions(Vec<u64>),
}

/// The `ETag` value for a revision.
pub fn etag(revision: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Reads `If-Match` (RFC 9110 §13.1.1): any of the listed strong tags that is one of our revisions.
pub fn if_match(headers: &HeaderMap) -> IfMatch {
    match members(headers.get_all(header::IF_MATCH).iter()) {
        None => IfMatch::Any,
        Some(Members::Any) => IfMatch::Any,
        Some(Members::Tags(tags)) => IfMatch::Revisions(
            tags.iter().filter(|tag| !tag.weak).filter_map(|tag| revision_of(tag.opaque)).collect(),
        ),
    }
}

/// Whether `If-None-Match` lists the current revision (weak comparison, so `W/"3"` matches), or `*`.
pub fn if_none_match_hits(headers: &HeaderMap, revision: u64) -> bool {
    match members(headers.get_all(header::IF_NONE_MATCH).iter()) {
        None => false,
        Some(Members::Any) => true,
        Some(Members::Tags(tags)) => tags.iter().any(|tag| revision_of(tag.opaque) == Some(revision)),
    }
}

/// Whether `If-None-Match` lists the entity tag `current` (a complete `ETag` value such as `"3"` or
/// `W/"l12ab"`) by the weak comparison (RFC 9110 §8.8.3.2: `W/` prefixes are ignored), or is `*`.
pub fn if_none_match_lists(headers: &HeaderMap, current: &HeaderValue) -> bool {
    lists_weakly(headers.get_all(header::IF_NONE_MATCH).iter(), current)
}

/// The `If-None-Match` lines of a request, taken on their own: an axum `HeaderMap` extractor would
/// copy every header of every request just so the read path can look at this one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfNoneMatch(Vec<HeaderValue>);

impl IfNoneMatch {
    /// The `If-None-Match` lines of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self(headers.get_all(header::IF_NONE_MATCH).iter().cloned().collect())
    }

    /// Whether the lines list `current` by the weak comparison, as RFC 9110 prescribes for GET.
    pub fn lists(&self, current: &HeaderValue) -> bool {
        lists_weakly(self.0.iter(), current)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// Whether the `If-None-Match` field `lines` list `current` (weak comparison).
fn lists_weakly<'a>(lines: impl Iterator<Item = &'a HeaderValue>, current: &HeaderValue) -> bool {
    let Some(current) = current.to_str().ok().and_then(parse_single) else { return false };
    match members(lines) {
        None => false,
        Some(Members::Any) => true,
        Some(Members::Tags(tags)) => tags.iter().any(|tag| tag.opaque == current.opaque),
    }
}

/// `value` as exactly one entity tag.
fn parse_single(value: &str) -> Option<EntityTag<'_>> {
    let mut tags = Vec::with_capacity(1);
    match parse_list(value, &mut tags) {
        false if tags.len() == 1 => tags.pop(),
        _ => None,
    }
}

/// One well-formed entity tag of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The characters between the quotes.
    opaque: &'a str,
}

/// A precondition header's value: `*`, or the well-formed tags of its list.
#[derive(Debug, PartialEq, Eq)]
enum Members<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// Every line of one header field, as one list; `None` when the header is absent.
fn members<'a>(lines: impl Iterator<Item = &'a HeaderValue>) -> Option<Members<'a>> {
    let mut lines = lines.peekable();
    lines.peek()?;
    let mut tags = Vec::new();
    for line in lines {
        // A line that is not visible ASCII holds no tag of ours; it still makes the header present.
        let Ok(line) = line.to_str() else { continue };
        if parse_list(line, &mut tags) {
            return Some(Members::Any);
        }
    }
    Some(Members::Tags(tags))
}

/// Appends the well-formed tags of one field line to `tags`, skipping malformed members. Returns true
/// when the line is (or contains) `*`.
fn parse_list<'a>(line: &'a str, tags: &mut Vec<EntityTag<'a>>) -> bool {
    let is_separator = |c: char| c == ',' || c == ' ' || c == '\t';
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(is_separator);
        if rest.is_empty() {
            return false;
        }
        if let Some(after) = rest.strip_prefix('*')
            && after.trim_start_matches([' ', '\t']).chars().next().is_none_or(|c| c == ',')
        {
            return true;
        }
        let (weak, tag) = match rest.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        if let Some(quoted) = tag.strip_prefix('"')
            && let Some(end) = quoted.find('"')
        {
            let after = quoted[end + 1..].trim_start_matches([' ', '\t']);
            if after.is_empty() || after.starts_with(',') {
                let opaque = &quoted[..end];
                if opaque.bytes().all(is_etagc) {
                    tags.push(EntityTag { weak, opaque });
                }
                rest = after;
                continue;
            }
        }
        // Malformed member: skip to the next comma.
        rest = rest.find(',').map_or("", |comma| &rest[comma + 1..]);
    }
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3); obs-text never reaches here (not `to_str`).
fn is_etagc(byte: u8) -> bool {
    byte == 0x21 || (0x23..=0x7e).contains(&byte)
}

/// The revision an opaque tag stands for, if it is exactly how we write one (no sign, no leading zero).
fn revision_of(opaque: &str) -> Option<u64> {
    let canonical = !opaque.is_empty()
        && opaque.bytes().all(|b| b.is_ascii_digit())
        && (opaque.len() == 1 || !opaque.starts_with('0'));
    canonical.then(|| opaque.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderName;

    fn headers(name: HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn if_none_match_lists_compares_any_tag_weakly() {
        let list_tag = HeaderValue::from_static("W/\"l0a1b\"");
        let lists = |values: &[&'static str], tag: &HeaderValue| {
            if_none_match_lists(&headers(header::IF_NONE_MATCH, values), tag)
        };
        assert!(lists(&["W/\"l0a1b\""], &list_tag));
        assert!(lists(&["\"l0a1b\""], &list_tag), "weak comparison ignores W/");
        assert!(lists(&["\"x\", W/\"l0a1b\""], &list_tag), "any member of the list");
        assert!(lists(&["\"x\"", "W/\"l0a1b\""], &list_tag), "over several header lines");
        assert!(lists(&["*"], &list_tag));
        assert!(!lists(&["W/\"l0a1c\""], &list_tag));
        assert!(!lists(&[], &list_tag), "no header, no match");
        assert!(lists(&["\"7\""], &HeaderValue::from_static("\"7\"")));
        assert!(!lists(&["\"07\""], &HeaderValue::from_static("\"7\"")), "opaque tags compare exactly");
        assert!(
            !lists(&["*"], &HeaderValue::from_static("not a tag")),
            "a malformed current tag never matches"
        );
    }

    fn if_match_of(values: &[&'static str]) -> IfMatch {
        if_match(&headers(header::IF_MATCH, values))
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&HeaderMap::new()), IfMatch::Any);
        assert_eq!(if_match_of(&["*"]), IfMatch::Any);
        assert_eq!(if_match_of(&["\"3\""]), IfMatch::Revisions(vec![3]));
        assert_eq!(if_match_of(&["W/\"3\""]), IfMatch::Revisions(vec![]), "strong comparison");
        assert_eq!(if_match_of(&["3"]), IfMatch::Revisions(vec![]), "unquoted is malformed");
        assert_eq!(if_match_of(&["\"03\""]), IfMatch::Revisions(vec![]), "not how we write 3");
        assert_eq!(if_match_of(&[""]), IfMatch::Revisions(vec![]));
    }

    #[test]
    fn if_match_keeps_every_listed_revision() {
        assert_eq!(if_match_of(&["\"1\", \"2\" ,\"7\""]), IfMatch::Revisions(vec![1, 2, 7]));
        assert_eq!(if_match_of(&["\"x\", \"4\""]), IfMatch::Revisions(vec![4]));
        assert_eq!(if_match_of(&["\"1\"", "\"9\""]), IfMatch::Revisions(vec![1, 9]), "several lines");
        assert_eq!(if_match_of(&[", ,\"5\",,"]), IfMatch::Revisions(vec![5]), "empty list members");
        assert_eq!(if_match_of(&["W/\"1\", \"2\""]), IfMatch::Revisions(vec![2]));
        assert_eq!(if_match_of(&["\"1\", *"]), IfMatch::Any);
    }

    #[test]
    fn commas_inside_tags_and_malformed_members() {
        assert_eq!(if_match_of(&["\"a,5\", \"6\""]), IfMatch::Revisions(vec![6]), "a comma inside a tag");
        assert_eq!(if_match_of(&["\"1\"garbage, \"2\""]), IfMatch::Revisions(vec![2]));
        assert_eq!(if_match_of(&["\"3"]), IfMatch::Revisions(vec![]), "unterminated");
        assert_eq!(if_match_of(&["\"1 2\", \"3\""]), IfMatch::Revisions(vec![3]), "no spaces in a tag");
        assert_eq!(if_match_of(&["*x, \"3\""]), IfMatch::Revisions(vec![3]), "`*x` is not `*`");
        assert_eq!(
            if_match_of(&["w/\"3\""]),
            IfMatch::Revisions(vec![]),
            "the weak prefix is case-sensitive"
        );
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let hits = |values: &[&'static str], revision| {
            if_none_match_hits(&headers(header::IF_NONE_MATCH, values), revision)
        };
        assert!(hits(&["W/\"3\""], 3));
        assert!(hits(&["\"1\", \"3\""], 3));
        assert!(hits(&["\"1\"", "W/\"3\""], 3));
        assert!(hits(&["*"], 3));
        assert!(!hits(&["\"2\""], 3));
        assert!(!hits(&["\"03\""], 3));
        assert!(!if_none_match_hits(&HeaderMap::new(), 3));
        assert_eq!(etag(3), HeaderValue::from_static("\"3\""));
    }

    #[test]
    fn a_long_list_is_read_in_one_pass() {
        let line: String = (0..20_000).map(|i| format!("\"{i}\", ")).collect();
        let mut map = HeaderMap::new();
        map.insert(header::IF_MATCH, HeaderValue::from_str(&line).expect("header"));
        let IfMatch::Revisions(revisions) = if_match(&map) else { panic!("a list") };
        assert_eq!(revisions.len(), 20_000);
        assert_eq!(revisions.last(), Some(&19_999));
    }

    #[test]
    fn the_if_none_match_extract_reads_every_line_and_nothing_else() {
        let tag = HeaderValue::from_static("W/\"lab12\"");
        let mut map = headers(header::IF_NONE_MATCH, &["\"other\"", "\"x\", W/\"lab12\""]);
        map.insert(header::IF_MATCH, HeaderValue::from_static("\"lab12\""));
        assert!(IfNoneMatch::from_headers(&map).lists(&tag), "the second line lists it");
        assert!(!IfNoneMatch::from_headers(&headers(header::IF_MATCH, &["\"lab12\""])).lists(&tag));
        assert!(!IfNoneMatch::default().lists(&tag), "no header lists nothing");
        assert!(IfNoneMatch::from_headers(&headers(header::IF_NONE_MATCH, &["*"])).lists(&tag));
    }
}
