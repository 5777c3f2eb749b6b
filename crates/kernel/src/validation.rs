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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, violation: Violation) {
        self.0.push(violation);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    /// `Ok(value)` when no rule was broken, else the collected violations.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Whether some violation has this field and code (handy in tests and specs).
    pub fn contains(&self, field: &str, code: &str) -> bool {
        self.0.iter().any(|v| v.field == field && v.code == code)
    }
}

impl From<Violation> for Violations {
    fn from(violation: Violation) -> Self {
        Self(vec![violation])
    }
}

impl Extend<Violation> for Violations {
    fn extend<I: IntoIterator<Item = Violation>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for violation in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{violation}")?;
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
    fn into_result_is_ok_only_without_violations() {
        assert_eq!(Violations::new().into_result(7), Ok(7));
        let err = Violations::from(Violation::new("q", "too_long")).into_result(7);
        assert!(err.is_err());
    }
}
