//! Strict query strings.
//!
//! axum's `Query` stops at the first error and reports it in English; list endpoints instead want every
//! problem (unknown parameter, non-numeric page, repeated single-valued parameter) as a localized
//! violation naming the parameter. `locale` is always accepted because the locale middleware reads it.
//!
//! The work is bounded whatever a client sends: at most [`QueryParams::MAX_PARAMETERS`] pairs are
//! decoded (a longer query string is refused as a whole with one violation), repeated names are
//! reported once (in linear time), and a name echoed in a violation is cut to
//! [`QueryParams::MAX_ECHOED_NAME_CHARS`].

use std::collections::HashSet;

use galley_kernel::{PageRequest, Violation, Violations};

/// Decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Most parameters one query string may carry (`locale` included); every Galley endpoint needs far
    /// fewer, even with ten repeated `tag`s.
    pub const MAX_PARAMETERS: usize = 64;
    /// Longest parameter name quoted back in a violation, so a huge name does not make a huge problem.
    pub const MAX_ECHOED_NAME_CHARS: usize = 64;

    /// Decodes the query string, refusing one with more than [`Self::MAX_PARAMETERS`] parameters
    /// without decoding the rest (violation `too_many_parameters` on field `query`).
    pub fn parse(query: Option<&str>) -> Result<Self, Violations> {
        let mut pairs = Vec::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if pairs.len() == Self::MAX_PARAMETERS {
                let violation =
                    Violation::new("query", "too_many_parameters").with("max", Self::MAX_PARAMETERS);
                return Err(violation.into());
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// Reports each parameter not in `allowed` (and not `locale`), once per name.
    pub fn reject_unknown(&self, allowed: &[&str], violations: &mut Violations) {
        let mut reported: HashSet<&str> = HashSet::new();
        for (name, _) in &self.pairs {
            let name = name.as_str();
            if name != "locale" && !allowed.contains(&name) && reported.insert(name) {
                violations.push(Violation::new(echoed(name), "unknown_parameter"));
            }
        }
    }

    /// Every value given for `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone()).collect()
    }
    /// The single value of `name`; repeating it is a violation.
    pub fn single(&self, name: &str, violations: &mut Violations) -> Option<String> {
        let mut values = self.pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value);
        let first = values.next()?;
        if values.next().is_some() {
            violations.push(Violation::new(name, "duplicate_parameter"));
        }
        Some(first.clone())
    }

    /// `page` (default 1) and `limit` (default [`PageRequest::DEFAULT_LIMIT`]) as a checked page
    /// request; every problem is added to `violations` and gives `None`.
    pub fn page(&self, violations: &mut Violations) -> Option<PageRequest> {
        let page = self.single_u32("page", violations).unwrap_or(1);
        let limit = self.single_u32("limit", violations).unwrap_or(PageRequest::DEFAULT_LIMIT);
        PageRequest::new(page, limit).map_err(|more| violations.append(more)).ok()
    }

    /// The single value of `name` as a `u32`; non-numeric (or negative, or huge) values are violations
    /// and give `None`.
    pub fn single_u32(&self, name: &str, violations: &mut Violations) -> Option<u32> {
        let raw = self.single(name, violations)?;
        match raw.trim().parse::<u32>() {
            Ok(value) => Some(value),
            Err(_) if raw.trim().parse::<i128>().is_ok() => {
                violations.push(Violation::new(name, "out_of_range").with("min", 1u32).with("max", u32::MAX));
                None
            }
            Err(_) => {
                violations.push(Violation::new(name, "invalid_integer"));
                None
            }
        }
    }
}

/// `name`, or its first [`QueryParams::MAX_ECHOED_NAME_CHARS`] characters and an ellipsis.
fn echoed(name: &str) -> String {
    match name.char_indices().nth(QueryParams::MAX_ECHOED_NAME_CHARS) {
        None => name.to_owned(),
        Some((cut, _)) => format!("{}…", &name[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeated_and_escaped_values() {
        let params = QueryParams::parse(Some("tag=a&tag=b%20c&q=ph%E1%BB%9F+b%C3%B2")).expect("few");
        assert_eq!(params.all("tag"), vec!["a", "b c"]);
        let mut violations = Violations::new();
        assert_eq!(params.single("q", &mut violations).as_deref(), Some("phở bò"));
        assert!(violations.is_empty());
    }

    #[test]
    fn reports_unknown_duplicate_and_non_numeric_parameters() {
        let params =
            QueryParams::parse(Some("page=x&limit=1&limit=2&limt=3&limt=4&locale=vi&size=-1")).expect("few");
        let mut violations = Violations::new();
        params.reject_unknown(&["page", "limit", "size"], &mut violations);
        assert_eq!(params.single_u32("page", &mut violations), None);
        assert_eq!(params.single_u32("limit", &mut violations), Some(1));
        assert_eq!(params.single_u32("size", &mut violations), None);
        assert!(violations.contains("limt", "unknown_parameter"));
        assert!(violations.contains("page", "invalid_integer"));
        assert!(violations.contains("limit", "duplicate_parameter"));
        assert!(violations.contains("size", "out_of_range"));
        assert_eq!(violations.len(), 4, "{violations}");
    }

    #[test]
    fn at_most_64_parameters_are_decoded() {
        let at_limit = vec!["tag=a"; QueryParams::MAX_PARAMETERS].join("&");
        assert_eq!(QueryParams::parse(Some(&at_limit)).expect("at the limit").all("tag").len(), 64);
        let over = format!("{at_limit}&q=x");
        let violations = QueryParams::parse(Some(&over)).expect_err("over the limit");
        assert!(violations.contains("query", "too_many_parameters"));
        assert_eq!(violations.len(), 1);
        // Empty segments are not parameters.
        assert!(QueryParams::parse(Some(&format!("{at_limit}&&&"))).is_ok());
    }

    #[test]
    fn unknown_names_are_reported_once_and_cut_short() {
        let long = "n".repeat(10_000);
        let query = format!("{long}=1&{long}=2&x=1&x=2&x=3");
        let params = QueryParams::parse(Some(&query)).expect("few");
        let mut violations = Violations::new();
        params.reject_unknown(&[], &mut violations);
        assert_eq!(violations.len(), 2, "{violations}");
        assert!(violations.contains("x", "unknown_parameter"));
        let fields: Vec<usize> = violations.iter().map(|v| v.field.chars().count()).collect();
        assert_eq!(fields[0], QueryParams::MAX_ECHOED_NAME_CHARS + 1, "cut, with an ellipsis");
    }
}
