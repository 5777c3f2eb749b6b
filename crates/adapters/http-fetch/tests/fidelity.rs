//! Feed fidelity: real-world shapes that mature readers ingest and feed-rs alone refuses, drops or
//! misreads. Each fixture in `tests/fixtures/` was written for one case; the parser must read it
//! the way a mature reader does.

use std::time::{Duration, Instant};

use galley_http_fetch::parse::{ParseError, parse_feed};
use galley_rss::fetch::ParsedEntry;
use url::Url;

fn base() -> Url {
    Url::parse("http://example.test/feed").expect("base URL")
}

fn parse(body: &[u8]) -> Result<Vec<ParsedEntry>, ParseError> {
    parse_feed(body, None, &base(), Instant::now() + Duration::from_secs(60))
}

fn entries(body: &[u8]) -> Vec<ParsedEntry> {
    match parse(body) {
        Ok(entries) => entries,
        Err(error) => panic!("expected entries, got {error}"),
    }
}

fn titles(entries: &[ParsedEntry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.title.as_str()).collect()
}

fn links(entries: &[ParsedEntry]) -> Vec<Option<&str>> {
    entries.iter().map(|entry| entry.link.as_deref()).collect()
}

#[test]
fn rss_without_a_version_or_with_an_unknown_one_is_read_as_rss_2() {
    let unversioned = entries(include_bytes!("fixtures/rss-no-version.xml"));
    assert_eq!(titles(&unversioned), ["Unversioned one", "Unversioned two"]);
    assert_eq!(unversioned[1].guid.as_deref(), Some("nv-2"));

    let v093 = entries(include_bytes!("fixtures/rss-093.xml"));
    assert_eq!(titles(&v093), ["Point ninety-three"]);
    assert_eq!(v093[0].summary.as_deref(), Some("Old <i>but</i> fine"));

    let v094 = entries(include_bytes!("fixtures/rss-094.xml"));
    assert_eq!(links(&v094), [Some("http://example.test/094/1"), Some("http://example.test/094/2")]);
}

#[test]
fn rss_2_in_the_userland_namespace_has_its_entries() {
    let entries = entries(include_bytes!("fixtures/rss-userland.xml"));
    assert_eq!(titles(&entries), ["Userland item", "Second userland item"]);
    assert_eq!(entries[0].link.as_deref(), Some("http://example.test/userland/1"));
    assert_eq!(entries[0].summary.as_deref(), Some("Namespaced <b>description</b>"));
    assert!(entries[0].published_at.is_some());
}

#[test]
fn rss_0_90_has_its_entries() {
    let entries = entries(include_bytes!("fixtures/rss-090.rdf"));
    assert_eq!(titles(&entries), ["Netscape era one", "Netscape era two"]);
    assert_eq!(links(&entries), [Some("http://example.test/090/1"), Some("http://example.test/090/2")]);
}

#[test]
fn items_that_cannot_be_read_fail_the_feed_instead_of_vanishing() {
    assert_eq!(
        parse(include_bytes!("fixtures/rss-unknown-namespace.xml")),
        Err(ParseError::NoReadableEntries(2))
    );
    // A feed that really has no items is fine: nothing new.
    let empty = br#"<rss version="2.0"><channel><title>quiet</title></channel></rss>"#;
    assert_eq!(parse(empty), Ok(Vec::new()));
}

#[test]
fn linkless_rss_1_items_are_kept_with_their_rdf_about_as_id() {
    let entries = entries(include_bytes!("fixtures/rss10-linkless.rdf"));
    assert_eq!(titles(&entries), ["Linked", "Linkless", ""]);
    assert_eq!(links(&entries), [Some("http://example.test/rdf/1"), None, None]);
    assert_eq!(entries[1].guid.as_deref(), Some("urn:example:rdf:2"));
    assert_eq!(entries[1].summary.as_deref(), Some("No link, only rdf:about"));
    assert!(entries[1].published_at.is_some());
    assert_eq!(entries[2].guid.as_deref(), Some("urn:example:rdf:3"), "an empty item element");
}

#[test]
fn unknown_atom_text_types_are_read_leniently() {
    let entries = entries(include_bytes!("fixtures/atom-lenient-types.xml"));
    assert_eq!(
        titles(&entries),
        ["Plain by MIME name", "Unknown type", "External content", "Markdown content"]
    );
    assert_eq!(entries[0].summary.as_deref(), Some("<p>Upper-case <b>html</b></p>"));
    assert_eq!(entries[1].summary.as_deref(), Some("<p>Unknown <em>html5</em> type</p>"));
    assert_eq!(entries[2].summary, None, "content elsewhere: nothing inline");
    assert_eq!(entries[3].summary.as_deref(), Some("Some *markdown* &amp; text"));
}

#[test]
fn json_feed_fields_of_the_wrong_type_are_coerced_or_dropped_one_by_one() {
    let entries = entries(include_bytes!("fixtures/json-lenient.json"));
    assert_eq!(titles(&entries), ["Numeric id, tags as a string", "Odd fields", "42"]);
    assert_eq!(entries[0].guid.as_deref(), Some("1"));
    assert_eq!(entries[1].link.as_deref(), Some("http://example.test/json/2"));
    assert_eq!(entries[1].thumbnail, None, "an image that is not a string is no image");
    assert_eq!(entries[2].published_at, None, "a numeric date is dropped, the item kept");
    assert_eq!(entries[2].summary.as_deref(), Some("<p>three</p>"));
}

#[test]
fn unlabelled_legacy_bytes_fall_back_to_windows_1252() {
    let cp1252 = entries(include_bytes!("fixtures/cp1252-unlabelled.xml"));
    assert_eq!(cp1252[0].title, "Prix : 5 € — “très” cher");
    assert_eq!(cp1252[0].summary.as_deref(), Some("À bientôt, naïve façade"));
    let latin1 = entries(include_bytes!("fixtures/latin1-unlabelled.xml"));
    assert_eq!(latin1[0].title, "Ärger über Öl");
}

#[test]
fn atom_0_3_base64_content_and_inline_xhtml_titles_are_read() {
    let entries = entries(include_bytes!("fixtures/atom03-base64.xml"));
    assert_eq!(titles(&entries), ["Unwrapped XHTML title", "Default-typed inline markup"]);
    assert_eq!(
        entries[0].summary.as_deref(),
        Some(
            r#"<p>Base64 <b>body</b> with <a href="http://example.test/a" rel="noopener noreferrer nofollow">a link</a></p>"#
        )
    );
    assert_eq!(entries[1].summary.as_deref(), Some("Plain text in base64 &amp; more"));
    assert_eq!(entries[1].link.as_deref(), Some("http://example.test/atom03/2"));
}

#[test]
fn a_permalink_guid_is_the_link_when_there_is_none() {
    let entries = entries(include_bytes!("fixtures/rss-guid-permalink.xml"));
    assert_eq!(
        links(&entries),
        [
            Some("http://example.test/guid/1"),
            Some("https://example.test/guid/2"),
            None,
            None,
            Some("http://example.test/link/5"),
        ]
    );
}

#[test]
fn comments_are_never_the_entry_link() {
    let entries = entries(include_bytes!("fixtures/rss-comments.xml"));
    assert_eq!(links(&entries), [Some("http://example.test/p/1"), None, Some("http://example.test/p/3")]);
}
