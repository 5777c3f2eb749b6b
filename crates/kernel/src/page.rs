//! Pagination shared by every list endpoint: `page` (1-based), `limit`, and an accurate `total`.

use crate::validation::{Violation, Violations};

/// A validated page request. Construct with [`PageRequest::new`], which enforces the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    page: u32,
    limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;
    /// Far beyond any real listing; it keeps `offset()` well inside what every store accepts.
    pub const MAX_PAGE: u32 = 1_000_000;

    /// Checks `1 <= page <= MAX_PAGE` and `1 <= limit <= MAX_LIMIT`, reporting each broken bound.
    pub fn new(page: u32, limit: u32) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        if !(1..=Self::MAX_PAGE).contains(&page) {
            violations
                .push(Violation::new("page", "out_of_range").with("min", 1u32).with("max", Self::MAX_PAGE));
        }
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            violations
                .push(Violation::new("limit", "out_of_range").with("min", 1u32).with("max", Self::MAX_LIMIT));
        }
        violations.into_result(Self { page, limit })
    }

    pub fn page(&self) -> u32 {
        self.page
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Number of items to skip; cannot overflow thanks to the bounds checked in `new`.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, limit: Self::DEFAULT_LIMIT }
    }
}

/// One page of results plus the total number of matches, so clients can render pagers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub request: PageRequest,
    pub total: u64,
}

impl<T> Page<T> {
    /// Pages needed to show `total` items; zero when nothing matched.
    pub fn total_pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.request.limit()))
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), request: self.request, total: self.total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_each_out_of_range_bound() {
        let violations = PageRequest::new(0, 101).err().unwrap_or_default();
        assert!(violations.contains("page", "out_of_range"));
        assert!(violations.contains("limit", "out_of_range"));
        assert!(PageRequest::new(PageRequest::MAX_PAGE + 1, 1).is_err());
        assert!(PageRequest::new(1, 0).is_err());
    }

    #[test]
    fn offset_and_total_pages() -> Result<(), Violations> {
        let request = PageRequest::new(3, 20)?;
        assert_eq!(request.offset(), 40);
        let page = Page { items: vec![1, 2], request, total: 41 };
        assert_eq!(page.total_pages(), 3);
        let empty: Page<u8> = Page { items: vec![], request, total: 0 };
        assert_eq!(empty.total_pages(), 0);
        let largest = PageRequest::new(PageRequest::MAX_PAGE, PageRequest::MAX_LIMIT)?;
        assert_eq!(largest.offset(), 99_999_900);
        Ok(())
    }
}
