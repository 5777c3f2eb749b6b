//! Strict query strings.
//!
//! axum's `Query` stops at the first error and reports it in English; list endpoints instead want every
//! problem (unknown parameter, non-numeric page, repeated single-valued parameter) as a localized
//! violation naming the parameter. `locale` is always accepted because the locale middleware reads it.

use galley_kernel::{PageRequest, Violation, Violations};

/// Decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        Self { pairs }
    }

    /// Reports each parameter not in `allowed` (and not `locale`).
    pub fn reject_unknown(&self, allowed: &[&str], violations: &mut Violations) {
        let mut reported: Vec<&str> = Vec::new();
        for (name, _) in &self.pairs {
            if name != "locale" && !allowed.contains(&name.as_str()) && !reported.contains(&name.as_str()) {
                reported.push(name);
                violations.push(Violation::new(name.clone(), "unknown_parameter"));
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
        PageRequest::new(page, limit).map_err(|more| violations.extend(more)).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeated_and_escaped_values() {
        let params = QueryParams::parse(Some("tag=a&tag=b%20c&q=ph%E1%BB%9F+b%C3%B2"));
        assert_eq!(params.all("tag"), vec!["a", "b c"]);
        let mut violations = Violations::new();
        assert_eq!(params.single("q", &mut violations).as_deref(), Some("phở bò"));
        assert!(violations.is_empty());
    }

    #[test]
    fn reports_unknown_duplicate_and_non_numeric_parameters() {
        let params = QueryParams::parse(Some("page=x&limit=1&limit=2&limt=3&limt=4&locale=vi&size=-1"));
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
}
