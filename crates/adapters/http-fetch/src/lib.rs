//! The HTTP feed fetcher: the `FeedFetcher` port (`galley_rss::fetch`) on reqwest and feed-rs.
//!
//! The bar is Miniflux and CommaFeed: conditional GET, RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed,
//! gzip and brotli, charset detection, body size and time limits, `Retry-After`, and SSRF protection
//! that checks the address actually connected to, including after redirects.
//!
//! Module map:
//! - [`settings`]: `FetchSettings` (configuration section `fetch`, limits and allow-list documented
//!   there) and `AllowedHost`.
//! - [`address`]: `classify`, the pure address classifier (loopback, private, link-local, ...), and
//!   `AddressPolicy`, the classifier plus the allow-list.
//! - [`guard`]: where the policy is enforced: `GuardedResolver` (connect time, no DNS-rebinding
//!   window), `check_url` (literal IPs, scheme) and the redirect policy; `HostLookup` is the seam
//!   tests use instead of DNS.
//! - [`decode`]: charset detection and transcoding to UTF-8, and the XML-bomb (internal DTD) guard.
//! - [`xml_scan`]: text-level passes for what feed-rs misses (Atom 0.3, lone `media:thumbnail`).
//! - [`normalize`]: the pre-pass that makes feed-rs read what mature readers read (unknown RSS
//!   versions, legacy RSS namespaces, linkless RSS 1.0 items, unknown Atom text types, Atom 0.3
//!   base64, JSON Feed fields of the wrong type) and notes what it drops (`rdf:about`, permalink
//!   guids).
//! - [`parse`]: feed-rs to `ParsedEntry` within a deadline: plain-text titles, ammonia-sanitized
//!   summaries (each field capped, deep markup escaped instead), links and thumbnails.
//! - [`fetcher`]: `HttpFeedFetcher`, the port implementation: one pooled client, status and error
//!   mapping.

pub mod address;
pub mod decode;
pub mod fetcher;
pub mod guard;
pub mod normalize;
pub mod parse;
pub mod settings;
pub mod xml_scan;

pub use address::{AddressClass, AddressPolicy, BlockedAddress, classify};
pub use fetcher::{FetcherSetupError, HttpFeedFetcher};
pub use guard::{GuardedResolver, HostLookup, SystemLookup};
pub use settings::{AllowedHost, DEFAULT_USER_AGENT, FetchSettings};
