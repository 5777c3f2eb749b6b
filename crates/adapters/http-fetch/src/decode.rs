//! Turning a feed body's bytes into UTF-8 text the parser can trust.
//!
//! Feeds in the wild mislabel their charset in both directions (a server default of
//! `charset=ISO-8859-1` on a UTF-8 file, a windows-1252 file calling itself UTF-8), so the rules are
//! the pragmatic ones Miniflux settled on rather than a strict reading of RFC 7303:
//! 1. a byte-order mark wins (UTF-8, UTF-16LE/BE);
//! 2. a body declared UTF-16 (header or XML prolog) is decoded as such;
//! 3. a body that is valid UTF-8 is UTF-8, whatever it claims (a legacy-encoded body with any
//!    non-ASCII byte is practically never valid UTF-8, and for pure ASCII the answer is the same);
//! 4. otherwise the `charset` of `Content-Type`, then the prolog's `encoding`, skipping labels that
//!    say UTF-8 (they were just proven wrong); labels follow the WHATWG Encoding Standard, so
//!    `ISO-8859-1` decodes as windows-1252 like browsers do (`€` and curly quotes survive);
//! 5. with no usable label, windows-1252 (what browsers fall back to for unlabelled legacy text,
//!    and what unlabelled non-UTF-8 feeds nearly always are), unless the body is UTF-8 with a few
//!    stray bytes (more valid non-ASCII characters than invalid sequences): that stays UTF-8 with
//!    the stray bytes replaced by U+FFFD, rather than turning every accent into mojibake.
//!
//! The XML declaration is then removed, because the parser would otherwise decode the already
//! converted text a second time using the `encoding` it names.
//!
//! [`has_internal_dtd_subset`] is the entity-expansion ("billion laughs") guard: a feed whose
//! `DOCTYPE` carries an internal subset is refused before parsing. Feeds have no use for declaring
//! entities, and refusing the subset outright also covers parameter and external entities.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// The body as UTF-8, following the rules in the module docs.
pub fn to_utf8<'a>(body: &'a [u8], header_charset: Option<&str>) -> Cow<'a, str> {
    if let Some((encoding, bom_length)) = Encoding::for_bom(body) {
        return encoding.decode_without_bom_handling(&body[bom_length..]).0;
    }
    let header = header_charset.and_then(|label| Encoding::for_label(label.trim().as_bytes()));
    let prolog = prolog_encoding(body).and_then(Encoding::for_label);
    if let Some(utf16) = [header, prolog].into_iter().flatten().find(|e| *e == UTF_16LE || *e == UTF_16BE) {
        return utf16.decode_without_bom_handling(body).0;
    }
    if let Ok(text) = std::str::from_utf8(body) {
        return Cow::Borrowed(text);
    }
    let declared = [header, prolog].into_iter().flatten().find(|e| *e != UTF_8);
    declared.unwrap_or_else(|| unlabelled_encoding(body)).decode_without_bom_handling(body).0
}

/// Rule 5: UTF-8 when the body is mostly UTF-8, else windows-1252. Linear.
fn unlabelled_encoding(body: &[u8]) -> &'static Encoding {
    let (mut non_ascii, mut invalid) = (0usize, 0usize);
    for chunk in body.utf8_chunks() {
        non_ascii += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        invalid += usize::from(!chunk.invalid().is_empty());
    }
    if non_ascii > invalid { UTF_8 } else { WINDOWS_1252 }
}

/// The `charset` parameter of a `Content-Type` value, unquoted.
pub fn content_type_charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim().eq_ignore_ascii_case("charset").then(|| value.trim().trim_matches(['"', '\'']))
    })
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>` declaration, read from the raw bytes
/// (the declaration is ASCII in every ASCII-compatible encoding).
fn prolog_encoding(body: &[u8]) -> Option<&[u8]> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = body.get(start..)?.strip_prefix(b"<?xml")?;
    let declaration = &rest[..rest.windows(2).position(|w| w == b"?>")?.min(rest.len())];
    let at = declaration.windows(8).position(|w| w == b"encoding")?;
    let after = declaration.get(at + 8..)?;
    let after = after.get(after.iter().position(|b| !b.is_ascii_whitespace())?..)?.strip_prefix(b"=")?;
    let after = after.get(after.iter().position(|b| !b.is_ascii_whitespace())?..)?;
    let quote = *after.first().filter(|q| matches!(q, b'"' | b'\''))?;
    let value = after.get(1..)?;
    value.get(..value.iter().position(|b| *b == quote)?)
}

/// `text` without a leading XML declaration (see the module docs for why).
pub fn strip_xml_declaration(text: &str) -> &str {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    match trimmed.strip_prefix("<?xml").and_then(|rest| rest.find("?>").map(|end| &rest[end + 2..])) {
        Some(rest) if trimmed[5..].starts_with(|c: char| c.is_ascii_whitespace()) => rest,
        _ => text,
    }
}

/// Whether the document's prolog has a `DOCTYPE` with an internal subset (`<!DOCTYPE rss [ ... ]>`),
/// the only place entities can be declared. Only the prolog is scanned, so an article quoting a
/// DOCTYPE in its content is not affected.
pub fn has_internal_dtd_subset(text: &str) -> bool {
    let mut rest = text.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("<?") {
            match after.find("?>") {
                Some(end) => rest = &after[end + 2..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix("<!--") {
            match after.find("-->") {
                Some(end) => rest = &after[end + 3..],
                None => return false,
            }
        } else if rest.get(..9).is_some_and(|head| head.eq_ignore_ascii_case("<!DOCTYPE")) {
            return doctype_opens_subset(&rest[9..]);
        } else {
            return false;
        }
    }
}

/// Scans a DOCTYPE declaration up to its end, skipping quoted literals: `[` before `>` opens an
/// internal subset.
fn doctype_opens_subset(declaration: &str) -> bool {
    let mut quote = None;
    for c in declaration.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => return true,
            (None, '>') => return false,
            (None, _) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_declared_in_the_prolog_is_transcoded() {
        let body = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss><title>Caf\xe9 cr\xe8me \xc4rger</title></rss>";
        let text = to_utf8(body, None);
        assert!(text.contains("Café crème Ärger"), "{text}");
    }

    #[test]
    fn the_header_charset_is_used_when_the_prolog_is_silent() {
        let body = b"<rss><title>Na\xefve \x80 \x93quoted\x94</title></rss>";
        assert!(to_utf8(body, Some("windows-1252")).contains("Naïve € “quoted”"));
        assert!(to_utf8(body, Some("ISO-8859-1")).contains("Naïve € “quoted”"), "WHATWG: latin1 is cp1252");
    }

    #[test]
    fn the_header_wins_over_the_prolog_when_both_name_legacy_encodings() {
        let body = b"<?xml version='1.0' encoding='ISO-8859-1'?><t>\xe0\xe9</t>";
        assert_eq!(to_utf8(body, Some("koi8-r")), encoding_rs::KOI8_R.decode_without_bom_handling(body).0);
        assert_ne!(to_utf8(body, Some("koi8-r")), to_utf8(body, None));
    }

    #[test]
    fn valid_utf8_wins_over_a_wrong_label() {
        let body = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><t>Café</t>".as_bytes();
        assert!(to_utf8(body, Some("iso-8859-1")).contains("Café"));
    }

    #[test]
    fn a_wrong_utf8_label_falls_back_to_the_other_label() {
        let body = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><t>Caf\xe9</t>";
        assert!(to_utf8(body, Some("utf-8")).contains("Café"));
    }

    #[test]
    fn unlabelled_legacy_bytes_are_windows_1252() {
        assert_eq!(to_utf8(b"<t>Caf\xe9 \x80 \x93q\x94</t>", None), "<t>Café € “q”</t>");
        assert_eq!(to_utf8(b"<t>a\xffb</t>", Some("utf-8")), "<t>aÿb</t>", "a UTF-8 label proven wrong");
    }

    #[test]
    fn stray_bytes_in_mostly_utf8_text_are_replaced() {
        assert_eq!(
            to_utf8(
                "<t>Café crème \u{2014} "
                    .as_bytes()
                    .iter()
                    .chain(b"\xff</t>")
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice(),
                None
            ),
            "<t>Café crème \u{2014} \u{fffd}</t>"
        );
    }

    #[test]
    fn byte_order_marks_win() {
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend("<t>é</t>".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(to_utf8(&utf16, Some("iso-8859-1")), "<t>é</t>");
        assert_eq!(to_utf8("\u{feff}<t>é</t>".as_bytes(), None), "<t>é</t>");
    }

    #[test]
    fn charset_is_read_from_the_content_type() {
        assert_eq!(content_type_charset("text/xml; charset=ISO-8859-1"), Some("ISO-8859-1"));
        assert_eq!(content_type_charset("application/rss+xml;Charset=\"utf-8\""), Some("utf-8"));
        assert_eq!(content_type_charset("text/xml"), None);
        assert_eq!(content_type_charset("text/xml; q=1"), None);
    }

    #[test]
    fn prolog_encoding_is_found_or_not() {
        assert_eq!(
            prolog_encoding(b"  <?xml version=\"1.0\" encoding = 'koi8-r' ?><a/>"),
            Some(&b"koi8-r"[..])
        );
        assert_eq!(prolog_encoding(b"<?xml version=\"1.0\"?><a encoding=\"x\"/>"), None);
        assert_eq!(prolog_encoding(b"<rss/>"), None);
        assert_eq!(prolog_encoding(b"<?xml encoding=\"unterminated"), None);
        assert_eq!(prolog_encoding(b""), None);
    }

    #[test]
    fn the_xml_declaration_is_stripped() {
        assert_eq!(
            strip_xml_declaration("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<rss/>"),
            "\n<rss/>"
        );
        assert_eq!(strip_xml_declaration("\u{feff} <?xml version='1.0'?><rss/>"), "<rss/>");
        assert_eq!(
            strip_xml_declaration("<?xml-stylesheet href='a'?><rss/>"),
            "<?xml-stylesheet href='a'?><rss/>"
        );
        assert_eq!(strip_xml_declaration("<rss/>"), "<rss/>");
        assert_eq!(strip_xml_declaration("<?xml "), "<?xml ");
        assert_eq!(strip_xml_declaration("{\"version\": 1}"), "{\"version\": 1}");
    }

    #[test]
    fn internal_dtd_subsets_are_detected_in_the_prolog_only() {
        let bomb = "<?xml version=\"1.0\"?>\n<!-- c --><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><rss/>";
        assert!(has_internal_dtd_subset(bomb));
        assert!(has_internal_dtd_subset("<!doctype rss [<!ENTITY % p SYSTEM \"http://x/\">]><rss/>"));
        assert!(!has_internal_dtd_subset(
            "<!DOCTYPE rss PUBLIC \"-//Netscape Communications//DTD RSS 0.91//EN\" \"http://my.netscape.com/publish/formats/rss-0.91.dtd\"><rss/>"
        ));
        assert!(!has_internal_dtd_subset("<!DOCTYPE rss SYSTEM \"odd[name].dtd\"><rss/>"));
        assert!(!has_internal_dtd_subset(
            "<rss><description><![CDATA[<!DOCTYPE x [<!ENTITY a 'b'>]>]]></description></rss>"
        ));
        assert!(!has_internal_dtd_subset("{\"items\": []}"));
        assert!(!has_internal_dtd_subset("<?xml unterminated"));
    }
}
