//! Fetcher settings (configuration section `fetch`) and the private-address allow-list.
//!
//! Every limit exists because a feed URL is chosen by a user, so the server at the other end may be
//! slow, huge, hostile or inside our own network. The defaults match what Miniflux and CommaFeed ship
//! with and suit a worker fetching public feeds; tests shrink them to stay fast.
//!
//! ```toml
//! [fetch]
//! user_agent = "Galley/0.1 (+https://github.com/galley; feed fetcher)"
//! max_body_bytes = 10485760   # larger bodies fail with too_large (checked while streaming)
//! connect_timeout = 5         # seconds to establish TCP (+ TLS)
//! timeout = 20                # seconds for the whole exchange, redirects and body included
//! parse_timeout = 10          # seconds to parse one downloaded feed; longer fails with unparseable_feed
//! max_redirects = 5           # more fail with too_many_redirects
//! allow_private_hosts = []    # e.g. ["rss-bridge.internal", "10.0.3.0/24"]
//! ```
//!
//! `allow_private_hosts` also reads a comma-separated string, which is what an environment variable
//! can carry: `GALLEY__FETCH__ALLOW_PRIVATE_HOSTS=rss-bridge.internal,10.0.3.0/24`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use galley_platform::config::duration_secs;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// The default `User-Agent`: names Galley and where to read about it, so feed owners seeing it in
/// their logs know who is polling them (as Miniflux and CommaFeed do).
pub const DEFAULT_USER_AGENT: &str = "Galley/0.1 (+https://github.com/galley; feed fetcher)";

/// Limits and identity of the HTTP feed fetcher.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FetchSettings {
    /// Sent as `User-Agent` on every request.
    pub user_agent: String,
    /// Largest accepted body in bytes, after decompression (so a gzip bomb is cut off too). A larger
    /// `Content-Length` fails before reading; an undeclared length is counted while streaming.
    pub max_body_bytes: u64,
    /// Time allowed to open the connection (TCP and TLS) to one address.
    #[serde(with = "duration_secs")]
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange: resolving, connecting, redirects and reading the body.
    #[serde(rename = "timeout", with = "duration_secs")]
    pub total_timeout: Duration,
    /// Time allowed to parse and sanitize one downloaded body (CPU work on the blocking pool). With
    /// `timeout` it bounds a whole fetch: a document built to be slow to parse fails with
    /// `unparseable_feed` instead of holding a worker.
    #[serde(with = "duration_secs")]
    pub parse_timeout: Duration,
    /// Redirects followed before failing with `too_many_redirects`.
    pub max_redirects: usize,
    /// Hosts and networks exempt from the private-address block: a host name allows whatever it
    /// resolves to, an address or CIDR block allows the addresses inside it. Empty in production
    /// unless a feed deliberately lives on the internal network.
    #[serde(deserialize_with = "allowed_hosts")]
    pub allow_private_hosts: Vec<AllowedHost>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            max_body_bytes: 10 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            parse_timeout: Duration::from_secs(10),
            max_redirects: 5,
            allow_private_hosts: Vec::new(),
        }
    }
}

/// One allow-list entry: a network (a bare address means just that address) or an exact host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AllowedHost {
    Network(IpNet),
    /// Lower-case, without a trailing dot. Matches that name only, not its subdomains.
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is neither an IP address, a CIDR block nor a host name")]
pub struct InvalidAllowedHost(pub String);

impl FromStr for AllowedHost {
    type Err = InvalidAllowedHost;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let item = raw.trim();
        if let Ok(network) = item.parse::<IpNet>() {
            return Ok(Self::Network(network.trunc()));
        }
        if let Ok(address) = item.parse::<IpAddr>() {
            return Ok(Self::Network(IpNet::from(address)));
        }
        let name = item.trim_end_matches('.').to_ascii_lowercase();
        if is_host_name(&name) { Ok(Self::Host(name)) } else { Err(InvalidAllowedHost(raw.to_owned())) }
    }
}

/// Letters, digits, `-` and `_` in non-empty dot-separated labels, and a last label that is not all
/// digits: a typo such as `10.0.0.300` or `10.0.0.0/33` is refused instead of silently becoming a
/// host name that never matches.
fn is_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    !name.is_empty()
        && name.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && labels.last().is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(network) => network.fmt(f),
            Self::Host(name) => f.write_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for AllowedHost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A TOML array of entries, or one comma-separated string (environment variables cannot hold arrays).
fn allowed_hosts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<AllowedHost>, D::Error> {
    galley_platform::config::string_list(deserializer)?
        .iter()
        .map(|item| item.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
// figment's Jail fixes the closure's error type; its size does not matter in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;
    use galley_platform::config::{ConfigSource, load_settings};

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Config {
        fetch: FetchSettings,
    }

    fn network(raw: &str) -> AllowedHost {
        AllowedHost::Network(raw.parse().expect("network"))
    }

    #[test]
    fn defaults_match_the_documented_limits() {
        let settings = FetchSettings::default();
        assert_eq!(settings.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(settings.connect_timeout, Duration::from_secs(5));
        assert_eq!(settings.total_timeout, Duration::from_secs(20));
        assert_eq!(settings.parse_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_redirects, 5);
        assert!(settings.user_agent.starts_with("Galley/"));
        assert!(settings.allow_private_hosts.is_empty(), "nothing private is reachable by default");
    }

    #[test]
    fn entries_parse_as_networks_addresses_or_host_names() {
        assert_eq!("127.0.0.1/32".parse(), Ok(network("127.0.0.1/32")));
        assert_eq!(" 10.0.0.7 ".parse(), Ok(network("10.0.0.7/32")));
        assert_eq!("10.1.2.3/8".parse(), Ok(network("10.0.0.0/8")), "host bits are dropped");
        assert_eq!("fd00::/8".parse(), Ok(network("fd00::/8")));
        assert_eq!("::1".parse(), Ok(network("::1/128")));
        assert_eq!("RSS-Bridge.Internal.".parse(), Ok(AllowedHost::Host("rss-bridge.internal".into())));
        assert_eq!("localhost".parse(), Ok(AllowedHost::Host("localhost".into())));
        for bad in ["", "10.0.0.0/33", "10.0.0.300", "http://x", "a..b", "under score!", "[::1]"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_allow_list_reads_a_toml_array_and_the_rest_from_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "default.toml",
                r#"
                [fetch]
                allow_private_hosts = ["127.0.0.1/32", "feeds.internal"]
                timeout = 2.5
                max_body_bytes = 1024
                "#,
            )?;
            let source =
                ConfigSource { dir: jail.directory().to_owned(), profile: String::new(), read_env: false };
            let config: Config = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(
                config.fetch.allow_private_hosts,
                vec![network("127.0.0.1/32"), AllowedHost::Host("feeds.internal".into())]
            );
            assert_eq!(config.fetch.total_timeout, Duration::from_millis(2500));
            assert_eq!(config.fetch.max_body_bytes, 1024);
            assert_eq!(config.fetch.max_redirects, 5, "unset keys keep their defaults");
            Ok(())
        });
    }

    #[test]
    fn the_allow_list_reads_a_comma_separated_environment_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("GALLEY__FETCH__ALLOW_PRIVATE_HOSTS", "127.0.0.1/32, feeds.internal,10.0.3.0/24");
            let source =
                ConfigSource { dir: jail.directory().to_owned(), profile: String::new(), read_env: true };
            let config: Config = load_settings(&source).map_err(|e| e.to_string())?;
            assert_eq!(
                config.fetch.allow_private_hosts,
                vec![
                    network("127.0.0.1/32"),
                    AllowedHost::Host("feeds.internal".into()),
                    network("10.0.3.0/24")
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn an_invalid_entry_fails_configuration_loading() {
        Jail::expect_with(|jail| {
            jail.set_env("GALLEY__FETCH__ALLOW_PRIVATE_HOSTS", "10.0.0.0/33");
            let source =
                ConfigSource { dir: jail.directory().to_owned(), profile: String::new(), read_env: true };
            let error = load_settings::<Config>(&source).expect_err("refused");
            assert!(error.to_string().contains("10.0.0.0/33"), "{error}");
            Ok(())
        });
    }
}
