//! From a feed body to sanitized [`ParsedEntry`] values.
//!
//! `feed-rs` reads RSS 0.9x/1.0/2.0, Atom 1.0 and JSON Feed; Atom 0.3 is upgraded to 1.0 names first
//! and lone `media:thumbnail`s are recovered by [`crate::xml_scan`]. feed-rs does not expand custom XML
//! entities, but a document declaring them is refused before parsing anyway (see
//! [`crate::decode`]), so an XML bomb fails in microseconds. What comes out is untrusted markup
//! that a browser will render, so:
//! - titles become plain text (tags dropped, `<script>`/`<style>` content dropped, whitespace
//!   collapsed): feeds put HTML in titles although most formats say they are text;
//! - summaries (the summary, else the content) are sanitized by ammonia's allow-list (no scripts,
//!   no `on*` attributes, no `javascript:` URLs, `rel="noopener noreferrer nofollow"` on links),
//!   with relative URLs resolved against the feed's address; plain-text summaries are escaped;
//! - links and thumbnails are kept only as absolute http(s) URLs.
//!
//! Thumbnail order: `media:thumbnail`, then image `media:content` or enclosures (by MIME type, or by
//! file extension when the type is missing), then JSON Feed `image`/`banner_image` and image
//! attachments or Atom image enclosure links. (feed-rs drops an item's enclosures when it also has
//! `media:content`; the media content is then the only candidate.)

use std::collections::HashSet;
use std::time::Instant;

use ammonia::UrlRelative;
use feed_rs::model::{Entry, Link, MediaContent, Text};
use galley_rss::fetch::ParsedEntry;
use serde::Deserialize;
use url::Url;

use crate::normalize::{self, ItemFacts, Normalized, PLACEHOLDER_LINK};
use crate::{decode, xml_scan};

/// Why a body is not a usable feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the document declares a DTD internal subset; entity declarations are refused")]
    InternalDtdSubset,
    #[error("not a feed: {0}")]
    NotAFeed(String),
    /// The document has items, but feed-rs read none of them: failing says so, where an empty
    /// result would end the job `done` with everything silently lost.
    #[error("the document has {0} items but none could be read")]
    NoReadableEntries(usize),
    /// Parsing ran past its deadline (checked after the XML/JSON parse and between entries).
    #[error("parsing did not finish in time")]
    DeadlineExceeded,
}

/// Decodes, checks and parses one feed body fetched from `base` (the final URL after redirects),
/// giving up with [`ParseError::DeadlineExceeded`] once `deadline` has passed.
pub fn parse_feed(
    body: &[u8],
    header_charset: Option<&str>,
    base: &Url,
    deadline: Instant,
) -> Result<Vec<ParsedEntry>, ParseError> {
    let in_time = || if Instant::now() < deadline { Ok(()) } else { Err(ParseError::DeadlineExceeded) };
    let text = decode::to_utf8(body, header_charset);
    let text = decode::strip_xml_declaration(&text);
    if decode::has_internal_dtd_subset(text) {
        return Err(ParseError::InternalDtdSubset);
    }
    let text = xml_scan::upgrade_atom03(text);
    let Normalized { text, items, facts } = normalize::normalize(&text);
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base.as_str()))
        // Entries without an id keep none: the caller dedups by link, as the design asks.
        .id_generator(|_, _, _| String::new())
        .sanitize_content(false)
        .build();
    let feed = parser.parse(text.as_bytes()).map_err(|error| ParseError::NotAFeed(error.to_string()))?;
    in_time()?;
    if items > 0 && feed.entries.is_empty() {
        return Err(ParseError::NoReadableEntries(items));
    }
    // Facts line up with entries only when feed-rs kept every item (it does, after the pre-pass).
    let facts = if facts.len() == feed.entries.len() { facts } else { Vec::new() };
    let is_json = text.trim_start().starts_with('{');
    let json_images = if is_json { json_feed_images(&text) } else { Vec::new() };
    let thumbnails = if is_json { Vec::new() } else { xml_scan::media_thumbnails(&text, feed.entries.len()) };
    let cleaners = Cleaners::new(base);
    feed.entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            in_time()?;
            let extra = Extras {
                facts: facts.get(index),
                json: json_images.get(index),
                thumbnail: thumbnails.get(index).and_then(Option::as_deref),
            };
            Ok(convert(entry, extra, base, &cleaners))
        })
        .collect()
}

/// What feed-rs dropped for one entry, recovered by a second pass over the text.
#[derive(Debug, Default, Clone, Copy)]
struct Extras<'a> {
    facts: Option<&'a ItemFacts>,
    json: Option<&'a JsonItemImages>,
    thumbnail: Option<&'a str>,
}

struct Cleaners<'a> {
    /// Keeps text only (ammonia's "no tags" builder still drops `<script>` and `<style>` content).
    title: ammonia::Builder<'a>,
    summary: ammonia::Builder<'a>,
}

impl Cleaners<'_> {
    fn new(base: &Url) -> Self {
        let mut summary = ammonia::Builder::default();
        summary
            .url_schemes(HashSet::from(["http", "https", "mailto"]))
            .url_relative(UrlRelative::RewriteWithBase(base.clone()))
            .link_rel(Some("noopener noreferrer nofollow"));
        Self { title: ammonia::Builder::empty(), summary }
    }
}

fn convert(entry: Entry, extras: Extras<'_>, base: &Url, cleaners: &Cleaners<'_>) -> ParsedEntry {
    let thumbnail = thumbnail(&entry, extras, base);
    let summary = summary(&entry, &cleaners.summary);
    let facts = extras.facts.cloned().unwrap_or_default();
    let guid = Some(entry.id.trim().to_owned()).filter(|id| !id.is_empty());
    // An RSS guid is a permalink unless it says otherwise, so it is the page when `<link>` is missing
    // (but only when it really is an absolute web URL: many guids are opaque).
    let permalink = || {
        guid.as_deref()
            .filter(|_| facts.guid_is_permalink)
            .and_then(|guid| Url::parse(guid).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .map(String::from)
    };
    let link = entry_link(&entry.links, base).or_else(permalink);
    ParsedEntry {
        guid: guid.or(facts.about),
        title: entry.title.map(|title| plain_text(&cleaners.title, &title.content)).unwrap_or_default(),
        link,
        thumbnail,
        published_at: entry.published.or(entry.updated),
        summary,
    }
}

/// Markup to plain text: tags removed by ammonia, the entities its serializer writes decoded, runs of
/// whitespace collapsed.
fn plain_text(stripper: &ammonia::Builder<'_>, html: &str) -> String {
    let html = capped(html);
    let text = if nesting_exceeds(html, MAX_NESTING) {
        strip_tags_crudely(html)
    } else {
        decode_serializer_entities(&stripper.clean(html).to_string())
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Deepest element nesting handed to the HTML parser. html5ever's tree builder is quadratic in the
/// depth of open elements (100 000 nested `<div>`s, 550 KB, take 14 s in a release build), so deeper
/// markup, which no genuine feed has, is reduced to escaped text by [`strip_tags_crudely`] instead.
pub const MAX_NESTING: usize = 256;

/// Most bytes of one title or summary handed to HTML work; the rest is cut off (at a character
/// boundary) first. No genuine title or summary comes near it, and it bounds what any one field can
/// cost the sanitizer whatever the markup, since some of html5ever's work grows faster than the
/// input. Summaries are summaries: a reader follows the link for the full article.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// HTML elements that never have content, so opening one does not nest.
const VOID_ELEMENTS: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
    "wbr",
];

/// Elements whose start tag closes an open element of the same name (a `<p>` ends the open `<p>`,
/// an `<li>` the open `<li>`), as the HTML tree builder does.
const SELF_ENDING: [&str; 9] = ["p", "li", "dt", "dd", "option", "tr", "td", "th", "rt"];

/// Whether `html` opens more than `limit` elements at once, as html5ever's tree builder would count
/// them: void elements never open; a `/>` on any other element is ignored (`<div/>` opens a `div`);
/// an end tag closes the innermost open element of its name and everything inside it, and is ignored
/// when no such element is open; `p`, `li` and their kind end an open element of their own name.
/// It still over-counts some implied end tags (`<p><div>`), which only sends such markup to the
/// plain-text path. Linear: the stack it searches never exceeds `limit + 1` names.
fn nesting_exceeds(html: &str, limit: usize) -> bool {
    let mut open: Vec<&str> = Vec::new();
    let innermost = |open: &[&str], name: &str| open.iter().rposition(|o| o.eq_ignore_ascii_case(name));
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let (closing, tag) = match rest.strip_prefix('/') {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        if !tag.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let name = &tag[..tag.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(tag.len())];
        if closing {
            if let Some(position) = innermost(&open, name) {
                open.truncate(position);
            }
            continue;
        }
        if VOID_ELEMENTS.iter().any(|void| void.eq_ignore_ascii_case(name)) {
            continue;
        }
        if SELF_ENDING.iter().any(|kind| kind.eq_ignore_ascii_case(name))
            && let Some(position) = innermost(&open, name)
        {
            open.truncate(position);
        }
        open.push(name);
        if open.len() > limit {
            return true;
        }
    }
    false
}

/// `text` cut to at most [`MAX_FIELD_BYTES`], at a character boundary.
fn capped(text: &str) -> &str {
    if text.len() <= MAX_FIELD_BYTES {
        return text;
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Drops everything between `<` and `>`: the fallback for markup too deep to parse (see
/// [`MAX_NESTING`]). The result is text; callers escape it before using it as HTML.
fn strip_tags_crudely(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => in_tag = true,
            (true, '>') => {
                in_tag = false;
                text.push(' ');
            }
            (false, c) => text.push(c),
            (true, _) => {}
        }
    }
    text
}

/// Reverses the escaping of html5ever's serializer (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&nbsp;`) in
/// one left-to-right pass, so `&amp;lt;` correctly becomes `&lt;`.
fn decode_serializer_entities(text: &str) -> String {
    const ENTITIES: [(&str, &str); 5] =
        [("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&nbsp;", "\u{a0}")];
    let mut decoded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at..];
        match ENTITIES.iter().find(|(entity, _)| rest.starts_with(entity)) {
            Some((entity, character)) => {
                decoded.push_str(character);
                rest = &rest[entity.len()..];
            }
            None => {
                decoded.push('&');
                rest = &rest[1..];
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn is_plain_text(content_type: &impl std::fmt::Display) -> bool {
    content_type.to_string().to_ascii_lowercase().starts_with("text/plain")
}

/// The summary, else the full content, as sanitized HTML; `None` when nothing is left.
fn summary(entry: &Entry, cleaner: &ammonia::Builder<'_>) -> Option<String> {
    let from_summary = entry.summary.as_ref().filter(|text| !text.content.trim().is_empty()).map(text_source);
    let from_content = || {
        let content = entry.content.as_ref()?;
        let body = content.body.as_deref().filter(|body| !body.trim().is_empty())?;
        Some((body, is_plain_text(&content.content_type)))
    };
    let (markup, plain) = from_summary.or_else(from_content)?;
    let markup = capped(markup);
    let html = if plain {
        escape_html(markup)
    } else if nesting_exceeds(markup, MAX_NESTING) {
        escape_html(strip_tags_crudely(markup).trim())
    } else {
        markup.to_owned()
    };
    let clean = cleaner.clean(&html).to_string();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_owned())
}

fn text_source(text: &Text) -> (&str, bool) {
    (text.content.as_str(), is_plain_text(&text.content_type))
}

/// `raw` resolved against `base`, kept only when it is http(s) (no `javascript:` or `data:`).
fn web_url(base: &Url, raw: &str) -> Option<String> {
    let url = base.join(raw.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// The entry's web page: the first alternate link of an HTML-ish type, else the first alternate that
/// is not a media attachment (JSON Feed attachments arrive as untyped-rel links). Links to comments
/// (RSS `<comments>`, `wfw:commentRss`) and the pre-pass's placeholder are never the page.
fn entry_link(links: &[Link], base: &Url) -> Option<String> {
    let alternate = |link: &&Link| {
        link.rel.as_deref().is_none_or(|rel| rel.eq_ignore_ascii_case("alternate"))
            && link.target.is_none()
            && link.href != PLACEHOLDER_LINK
    };
    let html = |link: &&Link| link.media_type.as_deref().is_none_or(|kind| kind.contains("html"));
    let not_media = |link: &&Link| {
        link.media_type.as_deref().is_none_or(|kind| {
            let kind = kind.to_ascii_lowercase();
            !["image/", "audio/", "video/"].iter().any(|prefix| kind.starts_with(prefix))
        })
    };
    links
        .iter()
        .filter(alternate)
        .filter(html)
        .chain(links.iter().filter(alternate).filter(not_media))
        .find_map(|link| web_url(base, &link.href))
}

const IMAGE_EXTENSIONS: [&str; 7] = [".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg"];

fn is_image_content(content: &MediaContent) -> bool {
    match (&content.content_type, &content.url) {
        (Some(kind), _) => kind.to_string().to_ascii_lowercase().starts_with("image/"),
        (None, Some(url)) => {
            let path = url.path().to_ascii_lowercase();
            IMAGE_EXTENSIONS.iter().any(|extension| path.ends_with(extension))
        }
        (None, None) => false,
    }
}

fn thumbnail(entry: &Entry, extras: Extras<'_>, base: &Url) -> Option<String> {
    let thumbnails = entry
        .media
        .iter()
        .flat_map(|media| media.thumbnails.iter().map(|t| t.image.uri.as_str()))
        .chain(extras.thumbnail);
    let images = entry
        .media
        .iter()
        .flat_map(|media| media.content.iter())
        .filter(|content| is_image_content(content))
        .filter_map(|content| content.url.as_ref().map(Url::as_str));
    let json_images = extras
        .json
        .into_iter()
        .flat_map(|item| [item.image.as_deref(), item.banner_image.as_deref()])
        .flatten();
    let image_links = entry
        .links
        .iter()
        .filter(|link| {
            link.media_type.as_deref().is_some_and(|kind| kind.to_ascii_lowercase().starts_with("image/"))
        })
        .map(|link| link.href.as_str());
    thumbnails.chain(images).chain(json_images).chain(image_links).find_map(|raw| web_url(base, raw))
}

/// JSON Feed item images, which feed-rs does not keep; read in a second, lenient pass (any shape
/// mismatch just means no images).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonFeedImages {
    items: Vec<JsonItemImages>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonItemImages {
    image: Option<String>,
    banner_image: Option<String>,
}

fn json_feed_images(text: &str) -> Vec<JsonItemImages> {
    serde_json::from_str::<JsonFeedImages>(text).map(|feed| feed.items).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:1/feeds/rss.xml").expect("url")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    fn parse(body: &str) -> Vec<ParsedEntry> {
        parse_feed(body.as_bytes(), None, &base(), far()).expect("parses")
    }

    fn rss(items: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
            <rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>{items}</channel></rss>"#
        )
    }

    #[test]
    fn titles_become_plain_text() {
        let entries = parse(&rss(
            "<item><title>&lt;b&gt;Bold&lt;/b&gt; &amp;amp; AT&amp;T &lt;script&gt;alert(1)&lt;/script&gt;  spaced\n out &amp;lt;tag&amp;gt; &amp;eacute;</title></item>",
        ));
        assert_eq!(entries[0].title, "Bold & AT&T spaced out <tag> é");
    }

    #[test]
    fn summaries_are_sanitized_and_relative_urls_resolved() {
        let entries = parse(&rss(
            r#"<item><description><![CDATA[<p onclick="steal()">Hi <a href="/post/1" onmouseover="x()">post</a><script>alert(1)</script><img src="pic.png" onerror="x()"><a href="javascript:alert(1)">js</a><iframe src="http://evil/"></iframe></p>]]></description></item>"#,
        ));
        let summary = entries[0].summary.as_deref().expect("summary");
        assert!(!summary.contains("script") && !summary.contains("alert"), "{summary}");
        assert!(
            !summary.contains("onclick") && !summary.contains("onmouseover") && !summary.contains("onerror"),
            "{summary}"
        );
        assert!(!summary.contains("javascript:") && !summary.contains("iframe"), "{summary}");
        assert!(summary.contains(r#"href="http://127.0.0.1:1/post/1""#), "{summary}");
        assert!(summary.contains(r#"src="http://127.0.0.1:1/feeds/pic.png""#), "{summary}");
        assert!(summary.contains("nofollow"), "{summary}");
    }

    #[test]
    fn plain_text_summaries_are_escaped_and_empty_ones_dropped() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>f</id><updated>2026-01-01T00:00:00Z</updated>
            <entry><id>a</id><title>a</title><updated>2026-01-01T00:00:00Z</updated><summary type="text">1 &lt; 2 &amp; &lt;b&gt;</summary></entry>
            <entry><id>b</id><title>b</title><updated>2026-01-01T00:00:00Z</updated><summary type="html">&lt;script&gt;x()&lt;/script&gt;</summary></entry>
        </feed>"#;
        let entries = parse(atom);
        assert_eq!(entries[0].summary.as_deref(), Some("1 &lt; 2 &amp; &lt;b&gt;"));
        assert_eq!(entries[1].summary, None);
    }

    #[test]
    fn the_content_stands_in_for_a_missing_summary() {
        let entries = parse(&rss(
            r#"<item xmlns:content="http://purl.org/rss/1.0/modules/content/"><content:encoded><![CDATA[<b>full</b>]]></content:encoded></item>"#,
        ));
        assert_eq!(entries[0].summary.as_deref(), Some("<b>full</b>"));
    }

    #[test]
    fn links_and_thumbnails_must_be_web_urls() {
        let entries = parse(&rss(
            r#"<item><link>javascript:alert(1)</link><enclosure url="data:image/png;base64,AAAA" type="image/png"/></item>
               <item><link>/relative</link><enclosure url="/audio.mp3" type="audio/mpeg"/><enclosure url="/cover.JPG"/></item>"#,
        ));
        assert_eq!(entries[0].link, None);
        assert_eq!(entries[0].thumbnail, None);
        assert_eq!(entries[1].link.as_deref(), Some("http://127.0.0.1:1/relative"));
        assert_eq!(entries[1].thumbnail.as_deref(), Some("http://127.0.0.1:1/cover.JPG"), "by extension");
    }

    #[test]
    fn media_thumbnail_beats_media_content_beats_enclosure() {
        let entries = parse(&rss(
            r#"<item><enclosure url="http://img/e.png" type="image/png"/><media:content url="http://img/c.png" type="image/png"/><media:thumbnail url="http://img/t.png"/></item>
               <item><media:content url="http://img/v.mp4" type="video/mp4"/><media:content url="http://img/c.webp" medium="image"/></item>
               <item><enclosure url="http://img/a.mp3" type="audio/mpeg"/><enclosure url="http://img/e.png" type="image/png"/></item>"#,
        ));
        assert_eq!(entries[0].thumbnail.as_deref(), Some("http://img/t.png"));
        assert_eq!(entries[1].thumbnail.as_deref(), Some("http://img/c.webp"), "untyped, by extension");
        assert_eq!(entries[2].thumbnail.as_deref(), Some("http://img/e.png"));
    }

    #[test]
    fn missing_ids_stay_missing() {
        let entries = parse(&rss(
            "<item><title>no id</title><link>http://a/1</link></item><item><guid>  g-1 </guid></item>",
        ));
        assert_eq!(entries[0].guid, None);
        assert_eq!(entries[1].guid.as_deref(), Some("g-1"));
    }

    #[test]
    fn json_feed_images_and_attachments_are_thumbnails() {
        let json = r#"{"version":"https://jsonfeed.org/version/1.1","title":"t","items":[
            {"id":"1","url":"/one","title":"<i>One</i>","image":"/img/one.png","content_text":"a < b"},
            {"id":"2","title":"Two","attachments":[{"url":"http://img/two.jpg","mime_type":"image/jpeg"}],"content_html":"<p>two</p>"},
            {"id":"3","title":"Three","content_html":"<p>three</p>"}
        ]}"#;
        let entries = parse(json);
        assert_eq!(entries[0].title, "One");
        assert_eq!(entries[0].link.as_deref(), Some("http://127.0.0.1:1/one"));
        assert_eq!(entries[0].thumbnail.as_deref(), Some("http://127.0.0.1:1/img/one.png"));
        assert_eq!(entries[0].summary.as_deref(), Some("a &lt; b"));
        assert_eq!(entries[1].thumbnail.as_deref(), Some("http://img/two.jpg"));
        assert_eq!(entries[1].link, None, "an attachment is not the entry's page");
        assert_eq!(entries[2].thumbnail, None);
    }

    #[test]
    fn hostile_or_broken_documents_are_errors() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><rss version="2.0"><channel><title>&lol2;</title></channel></rss>"#;
        assert_eq!(parse_feed(bomb.as_bytes(), None, &base(), far()), Err(ParseError::InternalDtdSubset));
        for broken in [
            "",
            "   ",
            "<html><body>not a feed</body></html>",
            "<rss version=\"2.0\"><channel><item>",
            "{\"items\": 3}",
            "\u{0}\u{1}binary",
            "<<<<",
        ] {
            assert!(parse_feed(broken.as_bytes(), None, &base(), far()).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let depth = 50_000;
        let elements = format!(
            "<rss version=\"2.0\"><channel><item><description>{}{}</description></item></channel></rss>",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        let started = Instant::now();
        let entries = parse_feed(elements.as_bytes(), None, &base(), far()).expect("parses");
        assert_eq!(entries[0].summary, None, "only empty elements: nothing left");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let escaped = format!(
            "<rss version=\"2.0\"><channel><item><description>{}{}</description></item></channel></rss>",
            "&lt;div&gt;".repeat(depth),
            "&lt;/div&gt;".repeat(depth)
        );
        let entries = parse_feed(escaped.as_bytes(), None, &base(), far()).expect("parses");
        assert_eq!(entries[0].summary, None);
        // Deep, but within MAX_FIELD_BYTES, so the text in the middle survives the cap.
        let deep_but_short = 2 * MAX_NESTING;
        let titled = format!(
            "<rss version=\"2.0\"><channel><item><title>{}deep &amp;amp; title{}</title><description>{}text &amp;lt;x&amp;gt;{}</description></item></channel></rss>",
            "&lt;b&gt;".repeat(deep_but_short),
            "&lt;/b&gt;".repeat(deep_but_short),
            "&lt;i&gt;".repeat(deep_but_short),
            "&lt;/i&gt;".repeat(deep_but_short)
        );
        let entries = parse_feed(titled.as_bytes(), None, &base(), far()).expect("parses");
        assert_eq!(entries[0].title, "deep &amp; title", "degraded: tags dropped, entities kept");
        assert_eq!(entries[0].summary.as_deref(), Some("text &amp;lt;x&amp;gt;"), "escaped text");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let json = format!(
            "{{\"version\":\"https://jsonfeed.org/version/1\",\"title\":\"t\",\"items\":{}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(parse_feed(json.as_bytes(), None, &base(), far()).is_err());
    }

    #[test]
    fn nesting_is_measured_roughly_but_linearly() {
        assert!(!nesting_exceeds("<p>a<br>b<img src=x><hr/><b>c</b></p>", 2));
        assert!(nesting_exceeds("<div><section><p>", 2));
        assert!(!nesting_exceeds(&"<div></div>".repeat(10_000), 1));
        assert!(nesting_exceeds(&"<div>".repeat(300), MAX_NESTING));
        assert!(!nesting_exceeds("1 < 2 and <3 <> </", 0));
        assert_eq!(strip_tags_crudely("<b>bold</b> & <i>it"), " bold  &  it");
    }

    #[test]
    fn self_closed_elements_open_and_unmatched_end_tags_close_nothing() {
        assert!(nesting_exceeds(&"<div/>".repeat(MAX_NESTING + 1), MAX_NESTING), "<div/> opens a div");
        assert!(!nesting_exceeds(&"<br/><img src=x />".repeat(1000), 0), "void elements never open");
        let unmatched = format!("{}{}{}", "<div>".repeat(200), "</span>".repeat(200), "<div>".repeat(100));
        assert!(nesting_exceeds(&unmatched, MAX_NESTING), "</span> closes no div");
        let closing = format!("{}{}", "<div><span>".repeat(100), "</div>".repeat(100));
        assert!(
            !nesting_exceeds(&format!("{closing}{closing}{closing}"), MAX_NESTING),
            "</div> closes the span too"
        );
        assert!(!nesting_exceeds(&"<p>paragraph <li>item ".repeat(1000), 4), "<p> ends the open <p>");
    }

    #[test]
    fn fields_are_capped_before_html_work() {
        let long = format!("{}{}", "é".repeat(MAX_FIELD_BYTES), "tail");
        let cut = capped(&long);
        assert!(cut.len() <= MAX_FIELD_BYTES && cut.len() > MAX_FIELD_BYTES - 2);
        assert!(!cut.contains("tail"));
        assert_eq!(capped("short"), "short");
        let entries =
            parse(&rss(&format!("<item><title>{}</title></item>", "t".repeat(3 * MAX_FIELD_BYTES))));
        assert_eq!(entries[0].title.len(), MAX_FIELD_BYTES);
    }

    #[test]
    fn parsing_stops_at_its_deadline() {
        let past = Instant::now();
        let body = rss("<item><title>a</title></item>");
        assert_eq!(parse_feed(body.as_bytes(), None, &base(), past), Err(ParseError::DeadlineExceeded));
    }

    #[test]
    fn entity_decoding_is_single_pass() {
        assert_eq!(
            decode_serializer_entities("&amp;lt; &lt;&gt;&quot;&nbsp;&unknown; &"),
            "&lt; <>\"\u{a0}&unknown; &"
        );
    }
}
