//! Listing recipes: which page, which tags (any or all), which words, in which order.
//!
//! Search semantics every store must honour (the repository contract suite checks them):
//! - `tags` with [`TagMatch::Any`] keeps recipes having at least one of the tags; with [`TagMatch::All`],
//!   recipes having every tag. Tags compare after trimming and lower-casing.
//! - `text` is split on whitespace into terms; a recipe matches when *every* term occurs, case-insensitively,
//!   as a substring of its name, one of its tags or one of its ingredients ([`crate::Recipe::search_text`]).
//! - Order is by the chosen [`RecipeSort`], ties broken by id so paging is stable.

use std::collections::HashSet;
use std::fmt::Write as _;

use galley_kernel::{PageRequest, Violation, Violations};

use crate::model::limits::TAG_MAX_CHARS;

/// How several `tag` filters combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TagMatch {
    #[default]
    Any,
    All,
}

impl TagMatch {
    pub const CHOICES: &'static str = "any, all";

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "any" => Some(Self::Any),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecipeSort {
    /// Newest first (the default).
    #[default]
    PublishedDesc,
    PublishedAsc,
    /// Alphabetical, case-insensitive.
    Name,
}

impl RecipeSort {
    pub const CHOICES: &'static str = "-published_at, published_at, name";

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "-published_at" => Some(Self::PublishedDesc),
            "published_at" => Some(Self::PublishedAsc),
            "name" => Some(Self::Name),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublishedDesc => "-published_at",
            Self::PublishedAsc => "published_at",
            Self::Name => "name",
        }
    }
}

/// A validated listing request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecipeQuery {
    pub page: PageRequest,
    /// Normalised (trimmed, lower-cased, de-duplicated) tag filters.
    pub tags: Vec<String>,
    pub tag_match: TagMatch,
    /// Lower-cased search terms; empty means no text filter.
    pub terms: Vec<String>,
    pub sort: RecipeSort,
}

impl RecipeQuery {
    pub const MAX_TAG_FILTERS: usize = 10;
    pub const MAX_TEXT_CHARS: usize = 200;

    /// Normalises and checks the filters, reporting every problem.
    pub fn new(
        page: PageRequest,
        tags: &[String],
        tag_match: TagMatch,
        text: Option<&str>,
        sort: RecipeSort,
    ) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        if tags.len() > Self::MAX_TAG_FILTERS {
            violations.push(Violation::new("tag", "too_many_items").with("max", Self::MAX_TAG_FILTERS));
        }
        // Only the allowed number is looked at: the request fails anyway, and its cost stays bounded.
        let tags = &tags[..tags.len().min(Self::MAX_TAG_FILTERS)];
        let mut normalised: Vec<String> = Vec::with_capacity(tags.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(tags.len());
        let (mut blank_reported, mut long_reported) = (false, false);
        for raw in tags {
            let tag = raw.trim().to_lowercase();
            if tag.is_empty() {
                if !blank_reported {
                    violations.push(Violation::new("tag", "blank"));
                    blank_reported = true;
                }
            } else if tag.chars().count() > TAG_MAX_CHARS {
                // No stored tag is longer, so such a filter could never match.
                if !long_reported {
                    violations.push(Violation::new("tag", "too_long").with("max", TAG_MAX_CHARS));
                    long_reported = true;
                }
            } else if seen.insert(tag.clone()) {
                normalised.push(tag);
            }
        }
        let text = text.unwrap_or_default();
        if text.chars().count() > Self::MAX_TEXT_CHARS {
            violations.push(Violation::new("q", "too_long").with("max", Self::MAX_TEXT_CHARS));
        }
        let terms = text.split_whitespace().map(str::to_lowercase).collect();
        violations.into_result(Self { page, tags: normalised, tag_match, terms, sort })
    }

    /// A canonical string naming this query, used in cache keys: equal queries give equal keys.
    pub fn canonical(&self) -> String {
        let mut key = format!(
            "p={}&l={}&m={}&s={}",
            self.page.page(),
            self.page.limit(),
            match self.tag_match {
                TagMatch::Any => "any",
                TagMatch::All => "all",
            },
            self.sort.as_str()
        );
        let mut tags = self.tags.clone();
        tags.sort();
        for tag in tags {
            // Percent-style escaping keeps separators in user text from colliding with ours.
            let _ = write!(key, "&t={}", escape(&tag));
        }
        for term in &self.terms {
            let _ = write!(key, "&q={}", escape(term));
        }
        key
    }
}

fn escape(text: &str) -> String {
    text.replace('%', "%25").replace('&', "%26").replace('=', "%3D")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(tags: &[&str], text: Option<&str>) -> Result<RecipeQuery, Violations> {
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        RecipeQuery::new(PageRequest::default(), &tags, TagMatch::Any, text, RecipeSort::default())
    }

    #[test]
    fn normalises_tags_and_terms() -> Result<(), Violations> {
        let q = query(&[" Soup", "soup", "VEGAN"], Some("  Garlic   NOODLES "))?;
        assert_eq!(q.tags, vec!["soup", "vegan"]);
        assert_eq!(q.terms, vec!["garlic", "noodles"]);
        Ok(())
    }

    #[test]
    fn rejects_blank_tags_too_many_tags_and_long_text() {
        let many: Vec<String> = (0..=RecipeQuery::MAX_TAG_FILTERS).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let long = "a".repeat(RecipeQuery::MAX_TEXT_CHARS + 1);
        let violations = query(&many, Some(&long)).expect_err("invalid");
        assert!(violations.contains("tag", "too_many_items"));
        assert!(violations.contains("q", "too_long"));
        assert!(query(&[" "], None).expect_err("blank").contains("tag", "blank"));
        let long = "t".repeat(TAG_MAX_CHARS + 1);
        assert!(query(&[&long], None).expect_err("long").contains("tag", "too_long"));
        assert!(query(&[&"t".repeat(TAG_MAX_CHARS)], None).is_ok());
    }

    #[test]
    fn thousands_of_tags_cost_little_and_report_little() {
        let many: Vec<String> = (0..100_000).map(|i| format!(" {i} ")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        let violations = query(&many, None).expect_err("too many");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(violations.len(), 1, "{violations}");
        let blanks = vec![" "; 10];
        assert_eq!(query(&blanks, None).expect_err("blank").len(), 1, "one blank violation per query");
    }

    #[test]
    fn canonical_key_ignores_tag_order_and_escapes_separators() -> Result<(), Violations> {
        assert_eq!(query(&["a", "b"], None)?.canonical(), query(&["b", "a"], None)?.canonical());
        assert_ne!(query(&["a&t=b"], None)?.canonical(), query(&["a", "b"], None)?.canonical());
        Ok(())
    }

    #[test]
    fn parses_the_documented_choices_only() {
        assert_eq!(RecipeSort::parse("-published_at"), Some(RecipeSort::PublishedDesc));
        assert_eq!(RecipeSort::parse("name"), Some(RecipeSort::Name));
        assert_eq!(RecipeSort::parse("-name"), None);
        assert_eq!(TagMatch::parse("all"), Some(TagMatch::All));
        assert_eq!(TagMatch::parse("ALL"), None);
    }
}
