//! Rule violations.
//!
//! A violation names the offending field (a JSON path such as `ingredients[2]`), a stable machine code
//! (`too_long`, `required`, ...) and the parameters the rule was checked against. It carries no prose:
//! the HTTP layer turns `code` + `params` into a sentence in the caller's language, so the same violation
//! reads correctly in English and Vietnamese and plural forms come from the translation, not from code.

use std::fmt;

/// A value a rule was checked against, passed to the translation as a named argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Number(i64),
    Text(String),
}

impl From<i64> for ParamValue {
    fn from(value: i64) -> Self {
        Self::Number(value)
    }
}

impl From<usize> for ParamValue {
    fn from(value: usize) -> Self {
        Self::Number(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<u32> for ParamValue {
    fn from(value: u32) -> Self {
        Self::Number(i64::from(value))
    }
}

impl From<&str> for ParamValue {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for ParamValue {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

/// One broken rule on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending value (`name`, `tags[1]`), or the query parameter name.
    pub field: String,
    /// Stable machine code; also selects the translated message (`violation-<code>`).
    pub code: &'static str,
    /// Named arguments for the translated message (`min`, `max`, `allowed`, ...).
    pub params: Vec<(&'static str, ParamValue)>,
}

impl Violation {
    pub fn new(field: impl Into<String>, code: &'static str) -> Self {
        Self { field: field.into(), code, params: Vec::new() }
    }

    /// Adds a named argument (builder style).
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Into<ParamValue>) -> Self {
        self.params.push((name, value.into()));
        self
    }

    /// Looks a parameter up by name.
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params.iter().find(|(key, _)| *key == name).map(|(_, value)| value)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.code)
    }
}

/// Every rule an input broke, collected rather than stopping at the first, so a client can fix them all
/// in one round trip.
///
/// At most [`Violations::MAX_LISTED`] are kept; further ones are only counted. A hostile request (a
/// thousand blank tags) must not make the server build, or send, a problem a thousand entries long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    listed: Vec<Violation>,
    /// Violations found beyond [`Violations::MAX_LISTED`], counted but not kept.
    unlisted: usize,
}

impl Violations {
    /// How many violations one input reports in detail; enough for any honest mistake.
    pub const MAX_LISTED: usize = 50;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, violation: Violation) {
        if self.listed.len() < Self::MAX_LISTED {
            self.listed.push(violation);
        } else {
            self.unlisted = self.unlisted.saturating_add(1);
        }
    }

    /// Adds every violation of `other`, keeping its count of unlisted ones.
    pub fn append(&mut self, other: Violations) {
        let unlisted = other.unlisted;
        self.extend(other.listed);
        self.unlisted = self.unlisted.saturating_add(unlisted);
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// Every violation found, listed or not.
    pub fn len(&self) -> usize {
        self.listed.len().saturating_add(self.unlisted)
    }

    /// How many violations were found but are not listed.
    pub fn unlisted(&self) -> usize {
        self.unlisted
    }

    /// The listed violations, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.listed.iter()
    }

    /// `Ok(value)` when no rule was broken, else the collected violations.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Whether some listed violation has this field and code (handy in tests and specs).
    pub fn contains(&self, field: &str, code: &str) -> bool {
        self.listed.iter().any(|v| v.field == field && v.code == code)
    }
}

impl From<Violation> for Violations {
    fn from(violation: Violation) -> Self {
        Self { listed: vec![violation], unlisted: 0 }
    }
}

impl Extend<Violation> for Violations {
    fn extend<I: IntoIterator<Item = Violation>>(&mut self, iter: I) {
        for violation in iter {
            self.push(violation);
        }
    }
}

/// Yields the listed violations only; use [`Violations::unlisted`] first for the rest's count.
impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;

    fn into_iter(self) -> Self::IntoIter {
        self.listed.into_iter()
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for violation in &self.listed {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{violation}")?;
        }
        if self.unlisted > 0 {
            write!(f, "; and {} more", self.unlisted)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_violation_and_reports_them_in_order() {
        let mut violations = Violations::new();
        violations.push(Violation::new("name", "required"));
        violations.push(Violation::new("tags[0]", "too_long").with("max", 50usize));
        assert_eq!(violations.len(), 2);
        assert!(violations.contains("tags[0]", "too_long"));
        assert_eq!(violations.to_string(), "name: required; tags[0]: too_long");
        assert_eq!(violations.iter().nth(1).and_then(|v| v.param("max")), Some(&ParamValue::Number(50)));
    }

    #[test]
    fn only_the_first_fifty_are_kept_and_the_rest_are_counted() {
        let mut violations = Violations::new();
        for index in 0..10_000 {
            violations.push(Violation::new(format!("tags[{index}]"), "blank"));
        }
        assert_eq!(violations.iter().count(), Violations::MAX_LISTED);
        assert_eq!(violations.len(), 10_000);
        assert_eq!(violations.unlisted(), 10_000 - Violations::MAX_LISTED);
        assert!(violations.contains("tags[49]", "blank"));
        assert!(!violations.contains("tags[50]", "blank"));

        let mut merged = Violations::from(Violation::new("name", "required"));
        merged.append(violations);
        assert_eq!(merged.len(), 10_001);
        assert_eq!(merged.iter().count(), Violations::MAX_LISTED);
        assert!(merged.to_string().ends_with("; and 9951 more"), "{merged}");
    }

    #[test]
    fn into_result_is_ok_only_without_violations() {
        assert_eq!(Violations::new().into_result(7), Ok(7));
        let err = Violations::from(Violation::new("q", "too_long")).into_result(7);
        assert!(err.is_err());
    }
}
