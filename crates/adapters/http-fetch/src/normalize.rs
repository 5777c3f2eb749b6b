//! The normalising pre-pass: rewrites what real feeds do, and feed-rs refuses or silently drops, into
//! what feed-rs reads, and notes per item what feed-rs does not keep. Mature readers (browsers,
//! Miniflux, feedparser) accept all of it, so Galley must too.
//!
//! XML documents go through one streaming pass of quick-xml (the reader feed-rs itself is built on)
//! that collects small text edits, applied at the end; everything else is left byte for byte as it
//! was. A document quick-xml cannot read is returned unchanged, so feed-rs reports the error itself.
//! - `<rss>` without a `version`, or with one feed-rs does not know (0.93, 0.94, "2.0.1"), is read as
//!   RSS 2.0 (`version="2.0"`), which every later version is compatible with.
//! - The namespaces of RSS 2.0 in Userland's namespace (`http://backend.userland.com/rss2`) and of RSS
//!   0.90 (`http://my.netscape.com/rdf/simple/0.9/`) are replaced by RSS 1.0's, the one feed-rs
//!   recognises for RSS elements; otherwise every element is "unknown" and the feed has no entries.
//! - RSS 1.0 items without a `<link>`, which feed-rs drops, get a placeholder link
//!   ([`PLACEHOLDER_LINK`]) that the converter removes again; their `rdf:about` is noted as the id.
//! - Atom text constructs (`title`, `subtitle`, `summary`, `rights`, `content`) with a `type` feed-rs
//!   refuses (which fails the whole document) get the nearest known one: MIME names and case variants
//!   are mapped, anything else reads as `html` when it mentions HTML, else `text`. A text or HTML
//!   construct that holds child elements (inline markup without the XHTML `div`, as Atom 0.3
//!   `mode="xml"` titles do) is read as `xhtml`, since feed-rs would keep only the text before the
//!   first element. `content` keeps any real MIME type, and loses one that is not when it has `src`.
//! - Atom 0.3 `mode="base64"` constructs are decoded and re-escaped as text.
//!
//! Per item (RSS `item`, Atom `entry`, in document order) it records [`ItemFacts`], and it counts
//! the items, so that a document with items that yields no entries fails instead of ending `done`
//! with nothing ingested.
//!
//! JSON Feeds are made lenient per field ([`lenient_json_feed`]): a field of the wrong type is
//! coerced when the intent is plain (a `tags` string is one tag, a numeric `id` is its digits) and
//! dropped otherwise, instead of refusing the whole feed.
//!
//! Both passes are linear in the document's length.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine as _;
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use serde_json::{Map, Value};

/// The `href` of the link given to linkless RSS 1.0 items so that feed-rs keeps them; not a web URL,
/// so it can never become an entry's link.
pub const PLACEHOLDER_LINK: &str = "urn:galley:no-link";

const RSS10_NS: &str = "http://purl.org/rss/1.0/";
const ATOM10_NS: &str = "http://www.w3.org/2005/Atom";
/// Namespaces that mean "RSS" but that feed-rs does not know.
const LEGACY_RSS_NAMESPACES: [&str; 3] = [
    "http://backend.userland.com/rss2",
    "http://backend.userland.com/rss2/",
    "http://my.netscape.com/rdf/simple/0.9/",
];
/// RSS versions feed-rs dispatches on; every other `<rss>` is read as 2.0.
const KNOWN_RSS_VERSIONS: [&str; 4] = ["2.0", "0.91", "0.92", ""];
const ATOM_TEXT_CONSTRUCTS: [&str; 5] = ["title", "subtitle", "summary", "rights", "content"];

/// What the pre-pass learnt about one item that feed-rs does not keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFacts {
    /// RSS 1.0 `rdf:about`: the item's URI, its id when it has no other.
    pub about: Option<String>,
    /// The RSS `<guid>` is a permalink (`isPermaLink` absent or not `false`), so it may stand in for a
    /// missing `<link>`.
    pub guid_is_permalink: bool,
}

/// The pre-pass's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    pub text: Cow<'a, str>,
    /// How many items (RSS `item`, Atom `entry`, JSON Feed `items`) the document has.
    pub items: usize,
    /// Per item, in document order; empty for JSON and for documents the pass could not read.
    pub facts: Vec<ItemFacts>,
}

/// Normalises an XML or JSON feed (see the module docs).
pub fn normalize(text: &str) -> Normalized<'_> {
    if text.trim_start().starts_with('{') {
        return match lenient_json_feed(text) {
            Some((json, items)) => Normalized { text: Cow::Owned(json), items, facts: Vec::new() },
            None => Normalized { text: Cow::Borrowed(text), items: 0, facts: Vec::new() },
        };
    }
    match XmlPass::run(text) {
        Some(pass) => {
            let text = apply(text, pass.edits);
            Normalized { text, items: pass.facts.len(), facts: pass.facts }
        }
        None => Normalized { text: Cow::Borrowed(text), items: 0, facts: Vec::new() },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Rss,
    Rdf,
    Atom,
    Other,
}

/// An element the pass is watching, opened at `depth` (the root is at 0).
#[derive(Debug)]
struct Frame {
    depth: usize,
    kind: FrameKind,
}

#[derive(Debug)]
enum FrameKind {
    Channel,
    Item {
        /// Prefix of the item's tag (with its colon), reused for the placeholder link.
        prefix: String,
        has_link: bool,
    },
    TextConstruct(TextConstruct),
}

#[derive(Debug)]
struct TextConstruct {
    /// The start tag already needs writing again (a namespace was fixed).
    rewrite: bool,
    /// The start tag's range and its rewritten form, decided once the element's content is known.
    tag: Range<usize>,
    element: OwnedStart,
    declared_type: Option<String>,
    is_content: bool,
    has_src: bool,
    has_children: bool,
    base64: bool,
    /// The text between the start and end tag (only tracked for base64).
    text: Option<Range<usize>>,
}

/// A start tag's name and raw attributes, kept to write it again with one attribute changed.
#[derive(Debug, Clone)]
struct OwnedStart {
    name: String,
    attributes: Vec<(String, String)>,
    empty: bool,
}

impl OwnedStart {
    fn new(start: &BytesStart<'_>, empty: bool) -> Self {
        let attributes = start
            .attributes()
            .with_checks(false)
            .flatten()
            .map(|attribute| (attribute.key.0.to_owned(), attribute.value.into_owned()))
            .collect();
        Self { name: start.name().0.to_owned(), attributes, empty }
    }

    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// The value of the attribute whose local name is `local` (any prefix).
    fn attribute_local(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| name.rsplit(':').next() == Some(local))
            .map(|(_, value)| value.as_str())
    }

    /// Sets (in place, else at the end) or removes attribute `key`.
    fn set(&mut self, key: &str, value: Option<&str>) {
        let Some(value) = value else {
            self.attributes.retain(|(name, _)| name != key);
            return;
        };
        match self.attributes.iter_mut().find(|(name, _)| name == key) {
            Some((_, existing)) => value.clone_into(existing),
            None => self.attributes.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The tag as text. Values are still escaped (they are the raw values read); a `"` inside one
    /// (possible when it was single-quoted) is escaped for the double quotes written here.
    fn write(&self) -> String {
        let mut tag = format!("<{}", self.name);
        for (name, value) in &self.attributes {
            tag.push_str(&format!(" {name}=\"{}\"", value.replace('"', "&quot;")));
        }
        tag.push_str(if self.empty { "/>" } else { ">" });
        tag
    }
}

#[derive(Debug, Default)]
struct XmlPass {
    edits: Vec<(Range<usize>, String)>,
    facts: Vec<ItemFacts>,
}

impl XmlPass {
    fn run(text: &str) -> Option<Self> {
        let mut reader = NsReader::from_str(text);
        let mut pass = Self::default();
        let mut format = Format::Other;
        let mut frames: Vec<Frame> = Vec::new();
        let mut depth = 0usize;
        loop {
            let before = usize::try_from(reader.buffer_position()).ok()?;
            let (namespace, event) = reader.read_resolved_event().ok()?;
            let namespace = match namespace {
                ResolveResult::Bound(namespace) => Some(namespace.0.to_owned()),
                ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
            };
            let after = usize::try_from(reader.buffer_position()).ok()?;
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let empty = matches!(event, Event::Empty(_));
                    let mut element = OwnedStart::new(start, empty);
                    let local = start.local_name().as_ref().to_owned();
                    let mut changed = fix_namespaces(&mut element);
                    if depth == 0 {
                        format = match local.as_str() {
                            "rss" => {
                                let version = element.attribute("version").map(str::trim);
                                if !version.is_some_and(|v| KNOWN_RSS_VERSIONS.contains(&v)) {
                                    element.set("version", Some("2.0"));
                                    changed = true;
                                }
                                Format::Rss
                            }
                            "RDF" => Format::Rdf,
                            "feed" if namespace.as_deref().is_none_or(|ns| ns == ATOM10_NS) => Format::Atom,
                            _ => Format::Other,
                        };
                    }
                    if let Some(Frame { kind: FrameKind::TextConstruct(parent), .. }) = frames.last_mut() {
                        parent.has_children = true;
                    }
                    let parent_depth = frames.last().map(|frame| frame.depth);
                    let parent = frames.last().map(|frame| &frame.kind);
                    let is_rss_name = namespace.as_deref().is_none_or(is_rss_namespace);
                    // feed-rs reads unqualified names in an Atom document as Atom.
                    let is_atom_name = namespace.as_deref().is_none_or(|ns| ns == ATOM10_NS);
                    let kind = match (format, local.as_str(), parent) {
                        // Items are counted whatever their namespace, so that items feed-rs cannot
                        // place still count for the "items but no entries" check.
                        (Format::Rss, "channel", None) if depth == 1 => Some(FrameKind::Channel),
                        (Format::Rss, "item", Some(FrameKind::Channel)) | (Format::Rdf, "item", None)
                            if depth == 1 || parent_depth == Some(depth - 1) =>
                        {
                            let item = pass.start_item(&element);
                            match item {
                                FrameKind::Item { prefix, .. } if empty && format == Format::Rdf => {
                                    // `<item rdf:about="…"/>`: written out with its placeholder link.
                                    let mut open = element.clone();
                                    open.empty = false;
                                    let replacement = format!(
                                        "{}{}</{}>",
                                        open.write(),
                                        placeholder_link(&prefix),
                                        open.name
                                    );
                                    pass.edits.push((before..after, replacement));
                                    changed = false;
                                    None
                                }
                                item => Some(item),
                            }
                        }
                        (Format::Atom, "entry", None) if depth == 1 => {
                            pass.facts.push(ItemFacts::default());
                            None
                        }
                        (Format::Atom, name, _) if is_atom_name && ATOM_TEXT_CONSTRUCTS.contains(&name) => {
                            let construct = TextConstruct {
                                rewrite: changed,
                                tag: before..after,
                                declared_type: element.attribute("type").map(str::to_owned),
                                is_content: name == "content",
                                has_src: element.attribute("src").is_some(),
                                has_children: false,
                                base64: element
                                    .attribute("mode")
                                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("base64")),
                                text: None,
                                element: element.clone(),
                            };
                            // The start tag is written when the element ends, once its content is known.
                            changed = false;
                            if empty {
                                pass.finish_text_construct(text, construct);
                                None
                            } else {
                                Some(FrameKind::TextConstruct(construct))
                            }
                        }
                        _ => None,
                    };
                    if let Some(Frame { kind: FrameKind::Item { has_link, .. }, depth: item_depth }) =
                        frames.last_mut()
                        && *item_depth + 1 == depth
                        && is_rss_name
                    {
                        pass.item_child(&local, &element, has_link);
                    }
                    if changed {
                        pass.edits.push((before..after, element.write()));
                    }
                    if !empty {
                        if let Some(kind) = kind {
                            frames.push(Frame { depth, kind });
                        }
                        depth += 1;
                    }
                }
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    if let Some(Frame { kind: FrameKind::TextConstruct(construct), .. }) = frames.last_mut()
                        && construct.base64
                    {
                        let range = construct.text.get_or_insert(before..after);
                        range.end = after;
                    }
                }
                Event::End(_) => {
                    depth = depth.checked_sub(1)?;
                    if frames.last().is_some_and(|frame| frame.depth == depth)
                        && let Some(frame) = frames.pop()
                    {
                        match frame.kind {
                            FrameKind::TextConstruct(construct) => {
                                pass.finish_text_construct(text, construct)
                            }
                            FrameKind::Item { has_link: false, prefix, .. } if format == Format::Rdf => {
                                pass.edits.push((before..before, placeholder_link(&prefix)));
                            }
                            FrameKind::Item { .. } | FrameKind::Channel => {}
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Some(pass)
    }

    /// Records a new item and what to watch inside it.
    fn start_item(&mut self, element: &OwnedStart) -> FrameKind {
        let about = element.attribute_local("about").map(|about| unescape(about).trim().to_owned());
        self.facts.push(ItemFacts { about: about.filter(|a| !a.is_empty()), guid_is_permalink: false });
        let prefix =
            element.name.rsplit_once(':').map(|(prefix, _)| format!("{prefix}:")).unwrap_or_default();
        FrameKind::Item { prefix, has_link: false }
    }

    /// A direct child of an item: a `link` or a `guid`.
    fn item_child(&mut self, local: &str, element: &OwnedStart, has_link: &mut bool) {
        match local {
            "link" => *has_link = true,
            "guid" => {
                if let Some(facts) = self.facts.last_mut() {
                    facts.guid_is_permalink = element
                        .attribute("isPermaLink")
                        .is_none_or(|value| !value.trim().eq_ignore_ascii_case("false"));
                }
            }
            _ => {}
        }
    }

    fn finish_text_construct(&mut self, text: &str, mut construct: TextConstruct) {
        if construct.base64
            && let Some(range) = construct.text.clone()
        {
            let encoded: String = text[range.clone()].chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            self.edits.push((range, escape(&decoded)));
            construct.element.set("mode", None);
        }
        let declared = construct.declared_type.as_deref();
        let mut known = known_text_type(declared, construct.is_content, construct.has_src);
        if construct.has_children
            && !construct.base64
            && matches!(known.as_deref(), None | Some("text" | "html"))
        {
            known = Some("xhtml".to_owned());
        }
        if known.as_deref() != declared || construct.base64 || construct.rewrite {
            construct.element.set("type", known.as_deref());
            self.edits.push((construct.tag, construct.element.write()));
        }
    }
}

/// Replaces legacy RSS namespace URIs in `xmlns` declarations; whether anything changed.
fn fix_namespaces(element: &mut OwnedStart) -> bool {
    let mut changed = false;
    for (name, value) in &mut element.attributes {
        let declares = name == "xmlns" || name.starts_with("xmlns:");
        if declares && LEGACY_RSS_NAMESPACES.contains(&value.trim()) {
            *value = RSS10_NS.to_owned();
            changed = true;
        }
    }
    changed
}

fn is_rss_namespace(namespace: &str) -> bool {
    namespace == RSS10_NS || LEGACY_RSS_NAMESPACES.contains(&namespace)
}

/// The `type` feed-rs should see for an Atom text construct declared with `declared` (`None`: no
/// attribute).
fn known_text_type(declared: Option<&str>, is_content: bool, has_src: bool) -> Option<String> {
    let raw = declared?;
    let value = raw.trim().to_ascii_lowercase();
    let looks_like_mime = |v: &str| {
        v.split_once('/').is_some_and(|(kind, sub)| {
            let token = |t: &str| {
                !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            };
            token(kind) && token(sub.split(';').next().unwrap_or_default().trim())
        })
    };
    let known = match value.as_str() {
        "text" | "html" | "xhtml" => value.clone(),
        "text/plain" | "plain" => "text".to_owned(),
        "text/html" => "html".to_owned(),
        "application/xhtml+xml" => "xhtml".to_owned(),
        _ if is_content && looks_like_mime(&value) => return Some(raw.to_owned()),
        // `src` content must carry a MIME type (feed-rs refuses anything else): drop the attribute.
        _ if has_src => return None,
        v if v.contains("xhtml") => "xhtml".to_owned(),
        v if v.contains("html") => "html".to_owned(),
        _ => "text".to_owned(),
    };
    if has_src && matches!(known.as_str(), "text" | "html" | "xhtml") {
        return None;
    }
    Some(known)
}

fn placeholder_link(prefix: &str) -> String {
    format!("<{prefix}link>{PLACEHOLDER_LINK}</{prefix}link>")
}

/// `text` with `edits` (non-overlapping ranges) applied.
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> Cow<'_, str> {
    if edits.is_empty() {
        return Cow::Borrowed(text);
    }
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let mut out = String::with_capacity(text.len() + 64 * edits.len());
    let mut position = 0;
    for (range, replacement) in edits {
        if range.start < position {
            continue;
        }
        out.push_str(&text[position..range.start]);
        out.push_str(&replacement);
        position = range.end;
    }
    out.push_str(&text[position..]);
    Cow::Owned(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Undoes XML escaping of an attribute value (the predefined entities and character references).
fn unescape(value: &str) -> Cow<'_, str> {
    quick_xml::escape::unescape(value).unwrap_or(Cow::Borrowed(value))
}

/// A JSON Feed with every field of the wrong type coerced or removed, and its number of items;
/// `None` when `text` is not a JSON object (feed-rs then reports the error).
pub fn lenient_json_feed(text: &str) -> Option<(String, usize)> {
    let mut document: Value = serde_json::from_str(text).ok()?;
    let feed = document.as_object_mut()?;
    match feed.get("title") {
        Some(Value::String(_)) => {}
        Some(Value::Number(number)) => {
            let title = number.to_string();
            feed.insert("title".into(), Value::String(title));
        }
        _ => {
            feed.insert("title".into(), Value::String(String::new()));
        }
    }
    for key in ["home_page_url", "feed_url", "language", "description", "icon", "favicon"] {
        optional_string(feed, key);
    }
    people(feed);
    let items = match feed.remove("items") {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Object(mut item) => {
                    lenient_item(&mut item);
                    Some(Value::Object(item))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let count = items.len();
    feed.insert("items".into(), Value::Array(items));
    Some((document.to_string(), count))
}

fn lenient_item(item: &mut Map<String, Value>) {
    for key in [
        "id",
        "url",
        "external_url",
        "title",
        "content_html",
        "content_text",
        "summary",
        "date_published",
        "date_modified",
        "image",
        "banner_image",
    ] {
        optional_string(item, key);
    }
    people(item);
    match item.remove("tags") {
        Some(Value::String(tag)) => {
            item.insert("tags".into(), Value::Array(vec![Value::String(tag)]));
        }
        Some(Value::Array(tags)) => {
            let tags = tags.into_iter().filter_map(|tag| scalar_string(&tag).map(Value::String)).collect();
            item.insert("tags".into(), Value::Array(tags));
        }
        _ => {}
    }
    if let Some(Value::Array(attachments)) = item.remove("attachments") {
        let attachments = attachments
            .into_iter()
            .filter_map(|attachment| {
                let Value::Object(mut attachment) = attachment else { return None };
                if !attachment.get("url").is_some_and(Value::is_string) {
                    return None;
                }
                if !attachment.get("mime_type").is_some_and(Value::is_string) {
                    attachment.insert("mime_type".into(), Value::String("application/octet-stream".into()));
                }
                optional_string(&mut attachment, "title");
                if attachment.get("size_in_bytes").is_some_and(|size| size.as_u64().is_none()) {
                    attachment.remove("size_in_bytes");
                }
                Some(Value::Object(attachment))
            })
            .collect();
        item.insert("attachments".into(), Value::Array(attachments));
    }
}

/// `author` must be an object and `authors` an array of objects; a bare name becomes `{"name": …}`.
fn people(object: &mut Map<String, Value>) {
    let person = |value: Value| match value {
        Value::String(name) => {
            Some(Value::Object(Map::from_iter([("name".to_owned(), Value::String(name))])))
        }
        Value::Object(mut person) => {
            optional_string(&mut person, "name");
            optional_string(&mut person, "url");
            Some(Value::Object(person))
        }
        _ => None,
    };
    if let Some(author) = object.remove("author").and_then(person) {
        object.insert("author".into(), author);
    }
    match object.remove("authors") {
        Some(Value::Array(authors)) => {
            object.insert("authors".into(), Value::Array(authors.into_iter().filter_map(person).collect()));
        }
        Some(single @ (Value::Object(_) | Value::String(_))) => {
            object.insert("authors".into(), Value::Array(person(single).into_iter().collect()));
        }
        _ => {}
    }
}

/// Keeps `key` when it is a string, turns a number into its digits, removes anything else.
fn optional_string(object: &mut Map<String, Value>, key: &str) {
    match object.get(key) {
        None | Some(Value::String(_)) => {}
        Some(value) => match scalar_string(value) {
            Some(text) => {
                object.insert(key.to_owned(), Value::String(text));
            }
            None => {
                object.remove(key);
            }
        },
    }
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_feed_rs_reads_as_they_are_pass_unchanged() {
        for xml in [
            r#"<rss version="2.0"><channel><item><title>a</title><link>http://a/</link></item></channel></rss>"#,
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">t</title><entry><title>e</title></entry></feed>"#,
            r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"><item><link>x</link></item></rdf:RDF>"#,
            "<rss><channel><item></channel></rss>",
            "not xml at all",
            "",
        ] {
            assert!(matches!(normalize(xml).text, Cow::Borrowed(_)), "{xml}");
        }
    }

    #[test]
    fn unknown_rss_versions_become_2_0_and_legacy_namespaces_rss_1_0() {
        let text = normalize(r#"<rss version='0.94' a="x>y"><channel/></rss>"#).text;
        assert_eq!(text, r#"<rss version="2.0" a="x>y"><channel/></rss>"#);
        let text = normalize(r#"<rss xmlns="http://backend.userland.com/rss2"><channel/></rss>"#).text;
        assert_eq!(text, r#"<rss xmlns="http://purl.org/rss/1.0/" version="2.0"><channel/></rss>"#);
    }

    #[test]
    fn items_are_counted_and_their_facts_noted() {
        let rss = r#"<rss version="2.0"><channel>
            <item><guid>http://a/1</guid></item>
            <item><guid isPermaLink=" FALSE ">http://a/2</guid></item>
            <item><title>no guid</title><other><item/></other></item>
            <item/>
        </channel></rss>"#;
        let normalized = normalize(rss);
        assert_eq!(normalized.items, 4);
        let permalinks: Vec<bool> = normalized.facts.iter().map(|f| f.guid_is_permalink).collect();
        assert_eq!(permalinks, [true, false, false, false]);
        let rdf = r#"<r:RDF xmlns:r="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:rss="http://purl.org/rss/1.0/">
            <rss:item r:about="a&amp;b"><rss:title>t</rss:title></rss:item></r:RDF>"#;
        let normalized = normalize(rdf);
        assert_eq!(normalized.facts[0].about.as_deref(), Some("a&b"));
        assert!(
            normalized
                .text
                .contains("<rss:title>t</rss:title><rss:link>urn:galley:no-link</rss:link></rss:item>")
        );
    }

    #[test]
    fn atom_text_types_are_mapped_to_known_ones() {
        assert_eq!(known_text_type(None, false, false), None);
        assert_eq!(known_text_type(Some(" Text/HTML "), false, false).as_deref(), Some("html"));
        assert_eq!(known_text_type(Some("text/plain"), true, false).as_deref(), Some("text"));
        assert_eq!(known_text_type(Some("XHTML"), false, false).as_deref(), Some("xhtml"));
        assert_eq!(known_text_type(Some("weird"), false, false).as_deref(), Some("text"));
        assert_eq!(known_text_type(Some("text/markdown"), true, false).as_deref(), Some("text/markdown"));
        assert_eq!(known_text_type(Some("text/markdown"), false, false).as_deref(), Some("text"));
        assert_eq!(known_text_type(Some("html"), true, true), None, "src needs a MIME type or none");
        assert_eq!(known_text_type(Some("image/png"), true, true).as_deref(), Some("image/png"));
    }

    #[test]
    fn json_feed_fields_are_coerced_per_field() {
        let (json, items) = lenient_json_feed(
            r#"{"version":"v","title":7,"icon":[],"authors":"me","items":[{"id":5,"tags":"t","author":{"name":1}},3]}"#,
        )
        .expect("an object");
        assert_eq!(items, 1);
        let value: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(value["title"], "7");
        assert!(value.get("icon").is_none());
        assert_eq!(value["authors"][0]["name"], "me");
        assert_eq!(value["items"][0]["id"], "5");
        assert_eq!(value["items"][0]["tags"][0], "t");
        assert_eq!(value["items"][0]["author"]["name"], "1");
        assert_eq!(lenient_json_feed("[1, 2]"), None);
        assert_eq!(lenient_json_feed("{not json"), None);
    }
}
