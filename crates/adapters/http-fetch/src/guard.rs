//! Applying the address rules where they cannot be dodged: at connect time and on every redirect.
//!
//! Checking a URL's host name before the request is not enough: the name can resolve to a public
//! address for the check and to 127.0.0.1 a moment later when the client connects (DNS rebinding).
//! So [`GuardedResolver`] is the HTTP client's only resolver, and it hands the connector just the
//! addresses the [`AddressPolicy`] allows; the connector can only connect to what was checked. A URL
//! with a literal IP never reaches a resolver, so [`check_url`] checks those before the first request
//! and [`redirect_policy`] before following each redirect (which also enforces the redirect limit and
//! the http(s)-only rule, so a redirect cannot lead to `file:` or a metadata address).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use galley_rss::fetch::FetchErrorCode;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Host, Url};

use crate::address::{AddressPolicy, BlockedAddress};

/// Why a URL or an address was refused before any byte was sent to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("only http and https URLs can be fetched, not `{0}:`")]
    UnsupportedScheme(String),
    #[error("not a fetchable URL: {0}")]
    InvalidUrl(String),
    #[error(transparent)]
    Blocked(#[from] BlockedAddress),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

impl GuardError {
    pub fn code(&self) -> FetchErrorCode {
        match self {
            Self::UnsupportedScheme(_) | Self::InvalidUrl(_) => FetchErrorCode::InvalidUrl,
            Self::Blocked(_) => FetchErrorCode::BlockedAddress,
            Self::TooManyRedirects(_) => FetchErrorCode::TooManyRedirects,
        }
    }
}

/// Checks what can be checked from the URL alone: the scheme, and the address when the host is a
/// literal IP (such URLs bypass the resolver). Host names are left to [`GuardedResolver`].
pub fn check_url(policy: &AddressPolicy, url: &Url) -> Result<(), GuardError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(GuardError::UnsupportedScheme(url.scheme().to_owned()));
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => Ok(policy.check(None, IpAddr::V4(ip))?),
        Some(Host::Ipv6(ip)) => Ok(policy.check(None, IpAddr::V6(ip))?),
        Some(Host::Domain(name)) if !name.is_empty() => Ok(()),
        _ => Err(GuardError::InvalidUrl("no host".to_owned())),
    }
}

/// The redirect rules: at most `max_redirects` hops, each to an http(s) URL passing [`check_url`].
/// Redirects to host names are checked again by the resolver when the client connects.
pub fn redirect_policy(policy: Arc<AddressPolicy>, max_redirects: usize) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        // `previous` starts with the original URL, so it holds one more URL than hops taken so far.
        if attempt.previous().len() > max_redirects {
            return attempt.error(GuardError::TooManyRedirects(max_redirects));
        }
        match check_url(&policy, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(error) => attempt.error(error),
        }
    })
}

/// Turns a host name into addresses. The seam exists so tests can make a name resolve to
/// 127.0.0.2 without touching real DNS.
#[async_trait]
pub trait HostLookup: Send + Sync + fmt::Debug {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` via tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait]
impl HostLookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|address| address.ip()).collect())
    }
}

/// The HTTP client's resolver: resolves, then returns only the addresses the policy allows, and an
/// error carrying [`GuardError::Blocked`] when none is allowed.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    lookup: Arc<dyn HostLookup>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<AddressPolicy>, lookup: Arc<dyn HostLookup>) -> Self {
        Self { policy, lookup }
    }

    /// The allowed addresses of `host`, in resolver order.
    pub async fn allowed_addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let resolved = self.lookup.lookup(host).await.map_err(ResolveError::Lookup)?;
        let mut refused = None;
        let allowed: Vec<IpAddr> = resolved
            .into_iter()
            .filter(|ip| match self.policy.check(Some(host), *ip) {
                Ok(()) => true,
                Err(blocked) => {
                    refused.get_or_insert(blocked);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(blocked)) => Err(ResolveError::Blocked(GuardError::Blocked(blocked))),
            (true, None) => Err(ResolveError::Lookup(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no addresses"),
            ))),
        }
    }
}

/// A failed [`GuardedResolver`] resolution.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name did not resolve (a transient connection failure for the fetch).
    #[error("could not resolve host: {0}")]
    Lookup(#[source] io::Error),
    /// Every address was refused by the policy; the source is the [`GuardError`] the fetcher finds
    /// in reqwest's error chain.
    #[error("refused to connect")]
    Blocked(#[source] GuardError),
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed = resolver.allowed_addresses(&host).await?;
            // Port 0 is replaced by the URL's port (or the scheme's default) by the connector.
            let addresses: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::str::FromStr;

    use super::*;
    use crate::settings::AllowedHost;

    /// A fake resolver table: no DNS traffic at all.
    #[derive(Debug)]
    struct Table(HashMap<&'static str, Vec<IpAddr>>);

    #[async_trait]
    impl HostLookup for Table {
        async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            self.0.get(host).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown host"))
        }
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("literal address")
    }

    fn policy(entries: &[&str]) -> Arc<AddressPolicy> {
        let entries: Vec<AllowedHost> = entries.iter().map(|e| e.parse().expect("entry")).collect();
        Arc::new(AddressPolicy::new(&entries))
    }

    fn resolver(entries: &[&str]) -> GuardedResolver {
        let table = Table(HashMap::from([
            ("rebound.localhost", vec![ip("127.0.0.2")]),
            ("mixed.localhost", vec![ip("127.0.0.2"), ip("127.0.0.1"), ip("::1")]),
            ("metadata.localhost", vec![ip("169.254.169.254"), ip("::ffff:169.254.169.254")]),
            ("public.localhost", vec![ip("93.184.216.34")]),
            ("empty.localhost", vec![]),
        ]));
        GuardedResolver::new(policy(entries), Arc::new(table))
    }

    fn blocked_class(result: Result<Vec<IpAddr>, ResolveError>) -> Option<crate::address::AddressClass> {
        match result {
            Err(ResolveError::Blocked(GuardError::Blocked(blocked))) => Some(blocked.class),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_refused_address_is_blocked() {
        let resolver = resolver(&["127.0.0.1/32"]);
        let result = resolver.allowed_addresses("rebound.localhost").await;
        assert_eq!(blocked_class(result), Some(crate::address::AddressClass::Loopback));
        let metadata = resolver.allowed_addresses("metadata.localhost").await;
        assert_eq!(blocked_class(metadata), Some(crate::address::AddressClass::LinkLocal));
    }

    #[tokio::test]
    async fn only_allowed_addresses_are_handed_to_the_connector() {
        let resolver = resolver(&["127.0.0.1/32"]);
        assert_eq!(
            resolver.allowed_addresses("mixed.localhost").await.expect("one allowed"),
            vec![ip("127.0.0.1")]
        );
        assert_eq!(
            resolver.allowed_addresses("public.localhost").await.expect("public"),
            vec![ip("93.184.216.34")]
        );
    }

    #[tokio::test]
    async fn an_allow_listed_name_admits_its_addresses() {
        let resolver = resolver(&["rebound.localhost"]);
        assert_eq!(
            resolver.allowed_addresses("rebound.localhost").await.expect("allowed"),
            vec![ip("127.0.0.2")]
        );
        assert!(blocked_class(resolver.allowed_addresses("mixed.localhost").await).is_some());
    }

    #[tokio::test]
    async fn resolution_failures_are_lookup_errors_not_blocks() {
        let resolver = resolver(&[]);
        assert!(matches!(
            resolver.allowed_addresses("unknown.localhost").await,
            Err(ResolveError::Lookup(_))
        ));
        assert!(matches!(resolver.allowed_addresses("empty.localhost").await, Err(ResolveError::Lookup(_))));
    }

    #[tokio::test]
    async fn the_reqwest_resolver_returns_the_blocked_error_in_its_chain() {
        let resolver = resolver(&["127.0.0.1/32"]);
        let name = Name::from_str("rebound.localhost").expect("name");
        let error = match resolver.resolve(name).await {
            Ok(_) => panic!("127.0.0.2 must not be returned"),
            Err(error) => error,
        };
        let source = std::error::Error::source(&*error).and_then(|s| s.downcast_ref::<GuardError>());
        assert!(matches!(source, Some(GuardError::Blocked(_))), "{error:?}");

        let name = Name::from_str("mixed.localhost").expect("name");
        let addresses: Vec<SocketAddr> = match resolver.resolve(name).await {
            Ok(addresses) => addresses.collect(),
            Err(error) => panic!("127.0.0.1 is allowed: {error}"),
        };
        assert_eq!(addresses, vec![SocketAddr::new(ip("127.0.0.1"), 0)]);
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_addresses_without_connecting() {
        let policy = policy(&["127.0.0.1/32"]);
        let check = |raw: &str| check_url(&policy, &Url::parse(raw).expect("url")).map_err(|e| e.code());
        assert_eq!(check("http://127.0.0.1:8080/feed"), Ok(()));
        assert_eq!(check("https://feeds.example/rss"), Ok(()), "names are checked at connect time");
        assert_eq!(check("http://127.0.0.2/feed"), Err(FetchErrorCode::BlockedAddress));
        assert_eq!(check("http://169.254.169.254/latest/meta-data/"), Err(FetchErrorCode::BlockedAddress));
        assert_eq!(check("http://[::1]/"), Err(FetchErrorCode::BlockedAddress));
        assert_eq!(check("http://[::ffff:10.0.0.1]/"), Err(FetchErrorCode::BlockedAddress));
        assert_eq!(check("http://[fd00::1]/"), Err(FetchErrorCode::BlockedAddress));
        assert_eq!(check("http://2130706434/"), Err(FetchErrorCode::BlockedAddress), "127.0.0.2 as a number");
        assert_eq!(check("http://0x7f.0.0.2/"), Err(FetchErrorCode::BlockedAddress), "127.0.0.2 in hex");
        assert_eq!(check("http://0/"), Err(FetchErrorCode::BlockedAddress), "0.0.0.0 reaches loopback");
        assert_eq!(check("ftp://127.0.0.1/feed"), Err(FetchErrorCode::InvalidUrl));
        assert_eq!(check("file:///etc/passwd"), Err(FetchErrorCode::InvalidUrl));
        assert_eq!(check("gopher://127.0.0.1:70/"), Err(FetchErrorCode::InvalidUrl));
    }
}
