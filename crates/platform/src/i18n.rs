//! Localization with Project Fluent.
//!
//! Every user-facing sentence lives in a `.ftl` file per locale; code refers to messages by id and passes
//! named arguments, and plural forms are chosen by Fluent's plural rules (never by concatenating strings).
//! Each crate contributes its own resources (`platform` ships the generic HTTP and validation messages;
//! services add theirs) through [`LocalizerBuilder::add_resource`].
//!
//! The request's locale is negotiated by [`Locale::negotiate`]: `?locale=` first, else `Accept-Language`
//! honouring q-values, else English. Unknown locales fall back to English.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// Generic HTTP problem and validation messages shared by every service.
pub const PLATFORM_RESOURCES: [(Locale, &str); 2] = [
    (Locale::En, include_str!("../locales/en/platform.ftl")),
    (Locale::Vi, include_str!("../locales/vi/platform.ftl")),
];

/// The locales Galley answers in. Adding one means adding its `.ftl` files; a test checks completeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    En,
    Vi,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Vi];

    /// BCP 47 tag, as sent in `Content-Language`.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Vi => "vi",
        }
    }

    /// Matches a language tag on its primary language (`vi-VN` → `vi`), case-insensitively.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?;
        Locale::ALL.into_iter().find(|locale| locale.as_str().eq_ignore_ascii_case(primary))
    }

    /// Picks the response locale: a supported `?locale=` wins, then the best supported entry of
    /// `Accept-Language` (highest q first, `q=0` meaning "not acceptable"), then English.
    pub fn negotiate(query_locale: Option<&str>, accept_language: Option<&str>) -> Locale {
        if let Some(locale) = query_locale.and_then(Locale::from_tag) {
            return locale;
        }
        accept_language.and_then(best_accepted).unwrap_or_default()
    }

    fn language_identifier(self) -> LanguageIdentifier {
        match self {
            Locale::En => unic_langid::langid!("en"),
            Locale::Vi => unic_langid::langid!("vi"),
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `Accept-Language` (RFC 9110 §12.5.4). Written by hand because the header is tiny and the Fluent
/// negotiation crate ignores q-values; entries keep their order when weights tie.
fn best_accepted(header: &str) -> Option<Locale> {
    let mut candidates: Vec<(u16, usize, Locale)> = header
        .split(',')
        .enumerate()
        .filter_map(|(position, entry)| {
            let mut parts = entry.split(';');
            let tag = parts.next()?.trim();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .map_or(Some(1000), parse_qvalue)?;
            let locale = if tag == "*" { Some(Locale::default()) } else { Locale::from_tag(tag) }?;
            (weight > 0).then_some((weight, position, locale))
        })
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    candidates.first().map(|(_, _, locale)| *locale)
}

/// A q-value in thousandths; `None` when malformed (the entry is then ignored).
fn parse_qvalue(raw: &str) -> Option<u16> {
    let value: f32 = raw.trim().parse().ok()?;
    if (0.0..=1.0).contains(&value) {
        // The range check above makes the cast lossless.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some((value * 1000.0).round() as u16)
    } else {
        None
    }
}

/// A named argument for a message.
#[derive(Debug, Clone)]
pub enum MessageArg {
    Number(i64),
    Text(String),
}

impl From<i64> for MessageArg {
    fn from(value: i64) -> Self {
        Self::Number(value)
    }
}

impl From<&str> for MessageArg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for MessageArg {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum I18nError {
    #[error("locale {locale}: resource does not parse: {details}")]
    Parse { locale: Locale, details: String },
    #[error("locale {locale}: message defined twice: {details}")]
    Duplicate { locale: Locale, details: String },
}

/// Collects `.ftl` resources per locale, then builds an immutable [`Localizer`].
#[derive(Debug, Default)]
pub struct LocalizerBuilder {
    resources: Vec<(Locale, String)>,
}

impl LocalizerBuilder {
    #[must_use]
    pub fn add_resource(mut self, locale: Locale, source: &str) -> Self {
        self.resources.push((locale, source.to_owned()));
        self
    }

    #[must_use]
    pub fn add_resources(self, resources: &[(Locale, &str)]) -> Self {
        resources.iter().fold(self, |builder, (locale, source)| builder.add_resource(*locale, source))
    }

    pub fn build(self) -> Result<Localizer, I18nError> {
        let mut bundles = HashMap::new();
        for locale in Locale::ALL {
            let mut bundle = FluentBundle::new_concurrent(vec![locale.language_identifier()]);
            // Unicode isolation marks are meant for bidi UIs; in JSON they are noise.
            bundle.set_use_isolating(false);
            bundles.insert(locale, bundle);
        }
        for (locale, source) in self.resources {
            let resource = FluentResource::try_new(source)
                .map_err(|(_, errors)| I18nError::Parse { locale, details: format!("{errors:?}") })?;
            if let Some(bundle) = bundles.get_mut(&locale) {
                bundle
                    .add_resource(resource)
                    .map_err(|errors| I18nError::Duplicate { locale, details: format!("{errors:?}") })?;
            }
        }
        Ok(Localizer { bundles })
    }
}

/// Immutable, thread-safe message catalogue. Cheap to share behind an `Arc`.
pub struct Localizer {
    bundles: HashMap<Locale, FluentBundle<FluentResource>>,
}

impl fmt::Debug for Localizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Localizer").field("locales", &self.bundles.keys().collect::<Vec<_>>()).finish()
    }
}

impl Localizer {
    pub fn builder() -> LocalizerBuilder {
        LocalizerBuilder::default()
    }

    /// Whether `id` exists in `locale`'s catalogue.
    pub fn has_message(&self, locale: Locale, id: &str) -> bool {
        self.bundles.get(&locale).is_some_and(|bundle| bundle.has_message(id))
    }

    /// Formats message `id` in `locale`, falling back to English and finally to the id itself, so a
    /// missing translation degrades instead of failing a response (the completeness test catches it).
    pub fn message(&self, locale: Locale, id: &str, args: &[(&str, MessageArg)]) -> String {
        self.format(locale, id, args).or_else(|| self.format(Locale::En, id, args)).unwrap_or_else(|| {
            tracing::warn!(id, %locale, "missing translation");
            id.to_owned()
        })
    }

    fn format(&self, locale: Locale, id: &str, args: &[(&str, MessageArg)]) -> Option<String> {
        let bundle = self.bundles.get(&locale)?;
        let pattern = bundle.get_message(id)?.value()?;
        let mut fluent_args = FluentArgs::with_capacity(args.len());
        for (name, value) in args {
            let value = match value {
                MessageArg::Number(n) => FluentValue::from(*n),
                MessageArg::Text(text) => FluentValue::String(Cow::Borrowed(text.as_str())),
            };
            fluent_args.set(*name, value);
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(id, %locale, ?errors, "translation formatted with errors");
        }
        Some(text.into_owned())
    }

    /// Message ids present in some locale but missing from another: `(locale missing it, id)`.
    /// Used by each crate's completeness test.
    pub fn missing_translations(resources: &[(Locale, &str)]) -> Vec<(Locale, String)> {
        let ids_of = |locale: Locale| -> Vec<String> {
            resources
                .iter()
                .filter(|(l, _)| *l == locale)
                .flat_map(|(_, source)| message_ids(source))
                .collect()
        };
        let all: std::collections::BTreeSet<String> = Locale::ALL.into_iter().flat_map(ids_of).collect();
        let mut missing = Vec::new();
        for locale in Locale::ALL {
            let present: std::collections::BTreeSet<String> = ids_of(locale).into_iter().collect();
            missing.extend(all.difference(&present).map(|id| (locale, id.clone())));
        }
        missing
    }
}

/// Message ids defined at the start of lines (`id = ...`) in an `.ftl` source.
fn message_ids(source: &str) -> Vec<String> {
    FluentResource::try_new(source.to_owned())
        .map(|resource| {
            resource
                .entries()
                .filter_map(|entry| match entry {
                    fluent_syntax::ast::Entry::Message(message) => Some(message.id.name.to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn localizer() -> Localizer {
        Localizer::builder().add_resources(&PLATFORM_RESOURCES).build().expect("platform resources parse")
    }

    #[test]
    fn query_locale_wins_over_accept_language() {
        assert_eq!(Locale::negotiate(Some("vi"), Some("en")), Locale::Vi);
        assert_eq!(Locale::negotiate(Some("VI-vn"), None), Locale::Vi);
        assert_eq!(Locale::negotiate(Some("en"), Some("vi")), Locale::En);
    }

    #[test]
    fn unknown_query_locale_falls_through_to_the_header_then_english() {
        assert_eq!(Locale::negotiate(Some("fr"), Some("vi")), Locale::Vi);
        assert_eq!(Locale::negotiate(Some("fr"), None), Locale::En);
        assert_eq!(Locale::negotiate(None, None), Locale::En);
        assert_eq!(Locale::negotiate(None, Some("de, fr;q=0.9")), Locale::En);
    }

    #[test]
    fn accept_language_honours_q_values_and_order() {
        assert_eq!(Locale::negotiate(None, Some("en;q=0.4, vi;q=0.8")), Locale::Vi);
        assert_eq!(Locale::negotiate(None, Some("fr, vi-VN;q=0.9, en;q=0.8")), Locale::Vi);
        assert_eq!(Locale::negotiate(None, Some("vi;q=0, en;q=0.1")), Locale::En);
        assert_eq!(Locale::negotiate(None, Some("vi;q=0.5, en;q=0.5")), Locale::Vi);
        assert_eq!(Locale::negotiate(None, Some("vi;q=abc, en;q=0.2")), Locale::En);
        assert_eq!(Locale::negotiate(None, Some("vi;q=2")), Locale::En);
        assert_eq!(Locale::negotiate(None, Some(",,;;")), Locale::En);
    }

    #[test]
    fn plural_forms_come_from_fluent() {
        let localizer = localizer();
        let one = localizer.message(Locale::En, "violation-too_short", &[("min", 1.into())]);
        let many = localizer.message(Locale::En, "violation-too_short", &[("min", 3.into())]);
        assert_eq!(one, "must be at least 1 character long");
        assert_eq!(many, "must be at least 3 characters long");
        let vi = localizer.message(Locale::Vi, "violation-too_short", &[("min", 3.into())]);
        assert_eq!(vi, "phải dài ít nhất 3 ký tự");
    }

    #[test]
    fn missing_messages_fall_back_to_english_then_to_the_id() {
        let localizer =
            Localizer::builder().add_resource(Locale::En, "only-english = Hello\n").build().expect("parses");
        assert_eq!(localizer.message(Locale::Vi, "only-english", &[]), "Hello");
        assert_eq!(localizer.message(Locale::Vi, "nowhere", &[]), "nowhere");
    }

    #[test]
    fn platform_catalogues_are_complete_in_every_locale() {
        assert_eq!(Localizer::missing_translations(&PLATFORM_RESOURCES), Vec::new());
        localizer();
    }

    #[test]
    fn broken_resources_are_reported() {
        let result = Localizer::builder().add_resource(Locale::En, "= no id\n").build();
        assert!(matches!(result, Err(I18nError::Parse { .. })));
    }
}
