//! Small text-level passes over feed XML for the two things feed-rs gets wrong, kept deliberately
//! narrow (Galley has no general XML library besides the one inside feed-rs):
//!
//! - [`upgrade_atom03`]: feed-rs reads only the Atom 1.0 namespace and rejects Atom 0.3's MIME-type
//!   `type` attributes (`text/plain`), so an Atom 0.3 document is rewritten to the Atom 1.0 names it
//!   maps to (namespace, `issued` → `published`, `modified` → `updated`, `tagline` → `subtitle`,
//!   `copyright` → `rights`, text `type`s) before parsing, as Miniflux's dedicated 0.3 parser would
//!   read it.
//! - [`media_thumbnails`]: feed-rs keeps a `media:thumbnail` only when the same item also has a
//!   `media:content`, yet a lone `media:thumbnail` is the most common way feeds attach an image. The
//!   items are located in the raw text (skipping comments and CDATA) and used only when their count
//!   equals the number of entries feed-rs returned, so a scan that went wrong yields no thumbnails
//!   rather than wrong ones.
//!
//! Both are linear in the document's length.

use std::borrow::Cow;

/// The Atom 0.3 namespace.
const ATOM03_NS: &str = "http://purl.org/atom/ns#";
const ATOM10_NS: &str = "http://www.w3.org/2005/Atom";

/// The first element start tag of the document (after the prolog), e.g. `<feed version="0.3" ...>`.
fn root_start_tag(xml: &str) -> Option<&str> {
    let mut position = 0;
    loop {
        let at = position + xml.get(position..)?.find('<')?;
        let rest = &xml[at..];
        let skip_to = |terminator: &str| rest.find(terminator).map(|end| at + end + terminator.len());
        position = if rest.starts_with("<?") {
            skip_to("?>")?
        } else if rest.starts_with("<!--") {
            skip_to("-->")?
        } else if rest.starts_with("<!") {
            skip_to(">")?
        } else {
            return rest.find('>').map(|end| &rest[..=end]);
        };
    }
}

/// An Atom 0.3 document rewritten to Atom 1.0 names; any other document unchanged.
pub fn upgrade_atom03(xml: &str) -> Cow<'_, str> {
    let is_atom03 = xml.trim_start().starts_with('<')
        && root_start_tag(xml).is_some_and(|root| {
            let name = root.trim_start_matches('<');
            (name.starts_with("feed") || name.contains(":feed")) && root.contains(ATOM03_NS)
        });
    if !is_atom03 {
        return Cow::Borrowed(xml);
    }
    let mut upgraded = xml.replace(ATOM03_NS, ATOM10_NS);
    for (old, new) in
        [("issued", "published"), ("modified", "updated"), ("tagline", "subtitle"), ("copyright", "rights")]
    {
        upgraded = rename_element(&upgraded, old, new);
    }
    for (old, new) in [
        ("type=\"text/plain\"", "type=\"text\""),
        ("type='text/plain'", "type='text'"),
        ("type=\"text/html\"", "type=\"html\""),
        ("type='text/html'", "type='html'"),
        ("type=\"application/xhtml+xml\"", "type=\"xhtml\""),
        ("type='application/xhtml+xml'", "type='xhtml'"),
    ] {
        upgraded = upgraded.replace(old, new);
    }
    Cow::Owned(upgraded)
}

/// Renames start and end tags `<old>`, `<old ...>`, `</old>` (unprefixed: Atom 0.3 feeds use the
/// default namespace).
fn rename_element(xml: &str, old: &str, new: &str) -> String {
    let mut renamed = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        renamed.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let (slash, name_start) = match rest.strip_prefix('/') {
            Some(name) => ("/", name),
            None => ("", rest),
        };
        let boundary = name_start.as_bytes().get(old.len()).copied();
        if name_start.starts_with(old) && matches!(boundary, Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n'))
        {
            renamed.push_str(slash);
            renamed.push_str(new);
            rest = &name_start[old.len()..];
        }
    }
    renamed.push_str(rest);
    renamed
}

/// The local name of the tag starting at `tag` (just after `<` or `</`): `media:thumbnail` →
/// (`Some("media")`, `thumbnail`).
fn tag_name(tag: &str) -> (Option<&str>, &str) {
    let end = tag.find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/').unwrap_or(tag.len());
    match tag[..end].split_once(':') {
        Some((prefix, local)) => (Some(prefix), local),
        None => (None, &tag[..end]),
    }
}

/// Offsets of the `<` of every tag in `xml`, skipping comments and CDATA sections (and stopping at an
/// unterminated one).
fn tag_starts(xml: &str) -> impl Iterator<Item = usize> + '_ {
    let mut position = 0;
    std::iter::from_fn(move || {
        loop {
            let at = position + xml.get(position..)?.find('<')?;
            let rest = &xml[at..];
            let skip = |terminator: &str| rest.find(terminator).map(|end| at + end + terminator.len());
            if rest.starts_with("<![CDATA[") {
                position = skip("]]>")?;
            } else if rest.starts_with("<!--") {
                position = skip("-->")?;
            } else {
                position = at + 1;
                return Some(at);
            }
        }
    })
}

/// The raw text of each `item`/`entry` element, in document order.
fn entry_blocks(xml: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut open: Option<usize> = None;
    for at in tag_starts(xml) {
        let tag = &xml[at + 1..];
        if let Some(end_tag) = tag.strip_prefix('/') {
            if matches!(tag_name(end_tag).1, "item" | "entry")
                && let Some(start) = open.take()
            {
                blocks.push(&xml[start..at]);
            }
        } else if open.is_none() && matches!(tag_name(tag).1, "item" | "entry") {
            let self_closing = tag.find('>').is_some_and(|end| tag[..end].ends_with('/'));
            if !self_closing {
                open = Some(at);
            }
        }
    }
    blocks
}

/// The `url` attribute of the first prefixed `thumbnail` element (`media:thumbnail`) in `block`.
fn first_thumbnail(block: &str) -> Option<String> {
    tag_starts(block).find_map(|at| {
        let tag = &block[at + 1..];
        match tag_name(tag) {
            (Some(_), "thumbnail") => attribute(&tag[..tag.find('>').unwrap_or(tag.len())], "url"),
            _ => None,
        }
    })
}

/// The unescaped value of attribute `name` in a start tag's text.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + name.len()..];
        if !before.is_some_and(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(value) = rest.trim_start().strip_prefix('=') else { continue };
        let value = value.trim_start();
        let quote = value.chars().next().filter(|q| matches!(q, '"' | '\''))?;
        let value = &value[1..];
        return value.find(quote).map(|end| unescape_xml(&value[..end]));
    }
    None
}

/// Undoes XML escaping in an attribute value: the five predefined entities and character references.
fn unescape_xml(value: &str) -> String {
    let mut unescaped = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        unescaped.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            unescaped.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let character = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match character {
            Some(character) => {
                unescaped.push(character);
                rest = &rest[end + 1..];
            }
            None => {
                unescaped.push('&');
                rest = &rest[1..];
            }
        }
    }
    unescaped.push_str(rest);
    unescaped
}

/// The first `media:thumbnail` URL of each of the document's `entries` items, or nothing when the
/// document has none or its items cannot be lined up with the parsed entries.
pub fn media_thumbnails(xml: &str, entries: usize) -> Vec<Option<String>> {
    if !xml.contains(":thumbnail") {
        return Vec::new();
    }
    let blocks = entry_blocks(xml);
    if blocks.len() != entries {
        return Vec::new();
    }
    blocks.into_iter().map(first_thumbnail).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atom03_is_rewritten_to_atom10_names() {
        let atom03 = r#"<?xml version="1.0"?><!-- c --><feed version="0.3" xmlns="http://purl.org/atom/ns#"><tagline>t</tagline>
            <entry><title type="text/plain">x</title><issued>2025-01-05T10:00:00Z</issued><modified>2025-01-06T10:00:00Z</modified>
            <summary type='text/html'>&lt;b&gt;s&lt;/b&gt;</summary><content type="application/xhtml+xml"><div/></content><issuedX/></entry></feed>"#;
        let upgraded = upgrade_atom03(atom03);
        assert!(upgraded.contains(r#"xmlns="http://www.w3.org/2005/Atom""#));
        assert!(upgraded.contains("<subtitle>t</subtitle>"));
        assert!(upgraded.contains("<published>2025-01-05T10:00:00Z</published>"));
        assert!(upgraded.contains("<updated>2025-01-06T10:00:00Z</updated>"));
        assert!(upgraded.contains(r#"<title type="text">"#) && upgraded.contains("<summary type='html'>"));
        assert!(upgraded.contains(r#"<content type="xhtml">"#));
        assert!(upgraded.contains("<issuedX/>"), "only whole names are renamed");
    }

    #[test]
    fn other_documents_are_left_alone() {
        for xml in [
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="text/plain">x</title><issued/></feed>"#,
            r#"<rss version="2.0"><channel><description>see http://purl.org/atom/ns#</description></channel></rss>"#,
            "{\"title\": \"<feed xmlns='http://purl.org/atom/ns#'>\"}",
            "",
        ] {
            assert!(matches!(upgrade_atom03(xml), Cow::Borrowed(_)), "{xml}");
        }
    }

    #[test]
    fn lone_media_thumbnails_are_found_per_item() {
        let rss = r#"<rss xmlns:media="http://search.yahoo.com/mrss/"><channel>
            <item><title>a</title><media:thumbnail width="1" url="http://img/a.jpg?x=1&amp;y=2"/></item>
            <!-- <item> in a comment </item> -->
            <item><description><![CDATA[<item><media:thumbnail url="http://evil/"/></item>]]></description></item>
            <item><media:group><media:thumbnail url='http://img/c.jpg'></media:thumbnail></media:group></item>
        </channel></rss>"#;
        assert_eq!(
            media_thumbnails(rss, 3),
            vec![Some("http://img/a.jpg?x=1&y=2".to_owned()), None, Some("http://img/c.jpg".to_owned())]
        );
        assert!(media_thumbnails(rss, 2).is_empty(), "a count mismatch yields nothing");
        assert!(media_thumbnails("<rss><item/></rss>", 1).is_empty());
    }

    #[test]
    fn atom_entries_and_prefixed_items_are_blocks_too() {
        let atom = r#"<a:feed xmlns:a="http://www.w3.org/2005/Atom"><a:entry><m:thumbnail url="u1"/></a:entry><a:entry></a:entry></a:feed>"#;
        assert_eq!(media_thumbnails(atom, 2), vec![Some("u1".to_owned()), None]);
        let rdf = r#"<rdf:RDF><channel><items><rdf:Seq><rdf:li resource="x"/></rdf:Seq></items></channel><item rdf:about="x"><media:thumbnail url="u"/></item></rdf:RDF>"#;
        assert_eq!(media_thumbnails(rdf, 1), vec![Some("u".to_owned())]);
    }

    #[test]
    fn attributes_are_unescaped_and_matched_whole() {
        assert_eq!(
            attribute(r#"media:thumbnail xurl="no" url="a&#38;b&#x26;c&lt;""#, "url"),
            Some("a&b&c<".into())
        );
        assert_eq!(attribute("media:thumbnail url = 'q' ", "url"), Some("q".into()));
        assert_eq!(attribute("media:thumbnail url=unquoted", "url"), None);
        assert_eq!(unescape_xml("&bogus; & &#xZZ; &#1114112;"), "&bogus; & &#xZZ; &#1114112;");
    }

    #[test]
    fn unterminated_markup_does_not_loop_or_panic() {
        for xml in
            ["<item", "<item><![CDATA[", "<item><!--", "</", "<", "<item><media:thumbnail url=\"", "<<<>>>"]
        {
            let _ = media_thumbnails(&format!("{xml}:thumbnail"), 1);
            let _ = upgrade_atom03(xml);
            let _ = root_start_tag(xml);
        }
    }
}
