//! Feed addresses.

use std::fmt;

use galley_kernel::{Violation, Violations};
use serde::{Deserialize, Serialize};

/// Longest accepted URL, in characters (what browsers and most servers handle).
pub const MAX_CHARS: usize = 2048;

/// An absolute http(s) URL without credentials, normalised (lower-case scheme and host, default port
/// dropped). Address safety (private networks) is the fetcher's job, at connect time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeedUrl(String);

impl FeedUrl {
    /// Checks the rules, reporting each broken one on field `url`.
    pub fn parse(raw: &str) -> Result<Self, Violations> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Violation::new("url", "blank").into());
        }
        if raw.chars().count() > MAX_CHARS {
            return Err(Violation::new("url", "too_long").with("max", MAX_CHARS).into());
        }
        let Ok(parsed) = url::Url::parse(raw) else {
            return Err(Violation::new("url", "invalid_url").into());
        };
        let mut violations = Violations::new();
        if !matches!(parsed.scheme(), "http" | "https") {
            violations.push(Violation::new("url", "unsupported_scheme").with("allowed", "http, https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            violations.push(Violation::new("url", "invalid_url"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            violations.push(Violation::new("url", "credentials_in_url"));
        }
        violations.into_result(Self(parsed.to_string()))
    }

    /// A URL read back from storage (already validated when stored).
    pub fn from_trusted(url: String) -> Self {
        Self(url)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> Vec<&'static str> {
        FeedUrl::parse(raw).err().map(|v| v.iter().map(|v| v.code).collect()).unwrap_or_default()
    }

    #[test]
    fn accepts_and_normalises_http_and_https() {
        assert_eq!(
            FeedUrl::parse(" HTTPS://Example.COM:443/feed.xml ").map(|u| u.0),
            Ok("https://example.com/feed.xml".into())
        );
        assert!(FeedUrl::parse("http://127.0.0.1:8080/rss").is_ok());
        assert!(FeedUrl::parse("http://[::1]/rss").is_ok());
    }

    #[test]
    fn refuses_other_schemes_relative_urls_and_credentials() {
        assert_eq!(code("ftp://example.com/feed"), ["unsupported_scheme"]);
        assert_eq!(code("file:///etc/passwd"), ["unsupported_scheme", "invalid_url"]);
        assert_eq!(code("/feed.xml"), ["invalid_url"]);
        assert_eq!(code("example.com/feed"), ["invalid_url"]);
        assert_eq!(code("https://user:secret@example.com/feed"), ["credentials_in_url"]);
        assert_eq!(code("https://user@example.com/feed"), ["credentials_in_url"]);
        assert_eq!(code("  "), ["blank"]);
    }

    #[test]
    fn refuses_overlong_urls() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_CHARS));
        assert_eq!(code(&long), ["too_long"]);
        let fits = format!("https://example.com/{}", "a".repeat(MAX_CHARS - 20));
        assert!(FeedUrl::parse(&fits).is_ok());
    }
}
