//! Contract suites: one function per behaviour, each given a fresh, empty adapter. The
//! `*_contract_tests!` macros expand them into one `#[tokio::test]` per case, so each adapter's test file
//! is a single macro call and a failure names the broken behaviour.
//!
//! The identity suites never rely on the adapter being empty (random keys and ids per case), so they
//! also run against servers shared between runs.

pub mod attempts;
pub mod bus;
pub mod cache;
pub mod recipe_repository;
pub mod refresh_tokens;
pub mod revocation_list;
pub mod rss;
pub mod signing_keys;
pub mod users;
