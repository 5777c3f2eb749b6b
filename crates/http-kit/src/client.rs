//! Who is on the other end: the client's address and whether it reached us over TLS.
//!
//! The socket peer is the client unless it is a configured trusted proxy (nginx). Then the client is the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left can be
//! forged by the client), else `X-Real-IP`; and `X-Forwarded-Proto: https` from a trusted proxy means the
//! client used TLS. Headers from untrusted peers are ignored, so nobody can dodge per-address sign-in
//! limits by sending `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The resolved client of a request (set by the standard stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientInfo {
    /// `None` when the server runs without socket information (in-process tests).
    pub ip: Option<IpAddr>,
    /// Whether the client's connection used TLS (terminated here or at a trusted proxy).
    pub secure: bool,
}

impl ClientInfo {
    /// Resolves the client from the socket peer and, for trusted peers, the forwarding headers.
    pub fn resolve(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let Some(peer) = peer.map(|p| canonical(p.ip())) else { return Self::default() };
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return Self { ip: Some(peer), secure: false };
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok().map(canonical))
            .collect();
        let from_chain = forwarded.iter().rev().find(|ip| !is_trusted(ip)).copied();
        let real_ip = || {
            headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(canonical)
        };
        let secure = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        Self { ip: Some(from_chain.or_else(real_ip).unwrap_or(peer)), secure }
    }
}

impl ClientInfo {
    /// The address that per-client budgets count against: an IPv4 address as it is, an IPv6 address by
    /// its /64 (one subscriber's network: a client rotating through its own /64 stays one client).
    /// Requests without socket information share the unspecified address.
    pub fn budget_key(&self) -> IpAddr {
        match self.ip {
            Some(IpAddr::V6(v6)) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
            Some(v4) => v4,
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// `::ffff:1.2.3.4` and `1.2.3.4` are the same client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientInfo>().copied().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().expect("ip"), 40000))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let info = ClientInfo::resolve(
            peer("127.0.0.9"),
            &headers(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-real-ip", "1.2.3.4"),
                ("x-forwarded-proto", "https"),
            ]),
            &nets(&["127.0.0.1/32"]),
        );
        assert_eq!(info, ClientInfo { ip: "127.0.0.9".parse().ok(), secure: false });
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let info = ClientInfo::resolve(
            peer("127.0.0.1"),
            &headers(&[
                ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3"),
                ("x-forwarded-proto", "https"),
            ]),
            &trusted,
        );
        assert_eq!(info.ip, "203.0.113.7".parse().ok(), "the forged left-most entry is ignored");
        assert!(info.secure);
    }

    #[test]
    fn x_real_ip_then_the_peer_are_fallbacks() {
        let trusted = nets(&["127.0.0.1/32"]);
        let real =
            ClientInfo::resolve(peer("127.0.0.1"), &headers(&[("x-real-ip", "198.51.100.2")]), &trusted);
        assert_eq!(real.ip, "198.51.100.2".parse().ok());
        let bare =
            ClientInfo::resolve(peer("127.0.0.1"), &headers(&[("x-forwarded-for", "garbage")]), &trusted);
        assert_eq!(bare.ip, "127.0.0.1".parse().ok());
        assert!(!bare.secure);
    }

    #[test]
    fn ipv4_mapped_addresses_are_normalised() {
        let info = ClientInfo::resolve(peer("::ffff:127.0.0.5"), &HeaderMap::new(), &[]);
        assert_eq!(info.ip, "127.0.0.5".parse().ok());
        assert_eq!(ClientInfo::resolve(None, &HeaderMap::new(), &[]), ClientInfo::default());
    }

    #[test]
    fn budgets_count_ipv6_clients_by_their_64() {
        let key = |ip: &str| ClientInfo { ip: ip.parse().ok(), secure: false }.budget_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.9").to_string(), "203.0.113.9");
        assert_ne!(key("203.0.113.9"), key("203.0.113.10"));
        assert_eq!(ClientInfo::default().budget_key().to_string(), "::");
    }
}
