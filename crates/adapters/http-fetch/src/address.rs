//! Which IP addresses a feed may be fetched from (the SSRF rules).
//!
//! A feed URL is chosen by a user, so without these rules the worker could be pointed at the cloud
//! metadata service (169.254.169.254), an admin port on loopback or anything else on the internal
//! network. [`classify`] is a pure function over one address, so the rules are tested exhaustively
//! on literal addresses without connecting anywhere; [`AddressPolicy`] adds the operator's
//! allow-list. The `guard` module applies both at connect time and on every redirect.
//!
//! Addresses that embed an IPv4 address and reach it through this host or its network are judged by
//! the embedded address: IPv4-mapped `::ffff:a.b.c.d` (the kernel connects to `a.b.c.d` itself), the
//! NAT64 prefix `64:ff9b::/96` and 6to4 `2002::/16`. Everything outside the IANA global unicast
//! block `2000::/3` is unroutable on the internet and refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::settings::AllowedHost;

/// What kind of network an address belongs to; everything but [`AddressClass::Public`] is refused
/// unless allow-listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable.
    Public,
    /// `0.0.0.0/8` ("this network"; Linux connects `0.0.0.0` to loopback) and `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 `10/8`, `172.16/12`, `192.168/16`; IPv6 unique-local `fc00::/7` and the deprecated
    /// site-local `fec0::/10`.
    Private,
    /// `169.254/16` (including the cloud metadata service `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT `100.64/10` (RFC 6598): inside a provider's network, not the internet.
    SharedAddressSpace,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Special-purpose blocks that are not globally reachable: `192.0.0/24`, `192.88.99/24` (6to4
    /// relays), `198.18/15` (benchmarking), `240/4`; IPv6 `::/8` (IPv4-compatible and -translated,
    /// local-use NAT64), most of `2001::/23` (Teredo, benchmarking, ORCHID), `5f00::/16` (SRv6) and
    /// everything outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == Self::Public
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedAddressSpace => "shared (CGNAT)",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of `ip`. Pure: no resolution, no configuration.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    match ip.octets() {
        [0, ..] => Unspecified,
        [10, ..] => Private,
        [100, 64..=127, ..] => SharedAddressSpace,
        [127, ..] => Loopback,
        [169, 254, ..] => LinkLocal,
        [172, 16..=31, ..] => Private,
        [192, 0, 0, _] | [192, 88, 99, _] => Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [192, 168, ..] => Private,
        [198, 18..=19, ..] => Reserved,
        [224..=239, ..] => Multicast,
        [255, 255, 255, 255] => Broadcast,
        [240..=255, ..] => Reserved,
        _ => Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Loopback,
        // Well-known NAT64 prefix: the translator connects to the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => classify_v4(embedded(high, low)),
        [0x0000..=0x00ff, ..] => Reserved,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x2001, 0x0000..=0x01ff, ..] => ietf_protocol_assignment(ip),
        // 6to4: the embedded IPv4 address is the site the relay forwards to.
        [0x2002, high, low, ..] => classify_v4(embedded(high, low)),
        [0x3fff, 0x0000..=0x0fff, ..] => Documentation,
        [0x5f00, ..] => Reserved,
        [0x2000..=0x3fff, ..] => Public,
        [0xfc00..=0xfdff, ..] => Private,
        [0xfe80..=0xfebf, ..] => LinkLocal,
        [0xfec0..=0xfeff, ..] => Private,
        [0xff00..=0xffff, ..] => Multicast,
        _ => Reserved,
    }
}

/// `2001::/23`: only the anycast services IANA marks globally reachable are public (PCP, TURN and
/// DNS-SD anycast `2001:1::1`–`3`, AMT `2001:3::/32`, AS112 `2001:4:112::/48`); Teredo, benchmarking
/// and ORCHID are not.
fn ietf_protocol_assignment(ip: Ipv6Addr) -> AddressClass {
    match ip.segments() {
        [0x2001, 0x0001, 0, 0, 0, 0, 0, 1..=3] | [0x2001, 0x0003, ..] | [0x2001, 0x0004, 0x0112, ..] => {
            AddressClass::Public
        }
        _ => AddressClass::Reserved,
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is a {class} address and is not allow-listed")]
pub struct BlockedAddress {
    pub ip: IpAddr,
    pub class: AddressClass,
}

/// The classifier plus the operator's allow-list (`fetch.allow_private_hosts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    networks: Vec<IpNet>,
    hosts: Vec<String>,
}

impl AddressPolicy {
    pub fn new(allowed: &[AllowedHost]) -> Self {
        let mut policy = Self::default();
        for entry in allowed {
            match entry {
                AllowedHost::Network(network) => policy.networks.push(*network),
                AllowedHost::Host(name) => policy.hosts.push(name.clone()),
            }
        }
        policy
    }

    /// Whether `ip` may be connected to. `host` is the name it was resolved from (`None` for a
    /// literal address in the URL); an allow-listed name permits every address it resolves to.
    /// IPv4-mapped addresses match IPv4 allow-list entries, since the kernel connects to the IPv4
    /// address they carry.
    pub fn check(&self, host: Option<&str>, ip: IpAddr) -> Result<(), BlockedAddress> {
        let class = classify(ip);
        if class.is_public() {
            return Ok(());
        }
        let canonical = ip.to_canonical();
        if self.networks.iter().any(|network| network.contains(&ip) || network.contains(&canonical)) {
            return Ok(());
        }
        if let Some(host) = host {
            let host = host.trim_end_matches('.');
            if self.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
                return Ok(());
            }
        }
        Err(BlockedAddress { ip, class })
    }
}

#[cfg(test)]
mod tests {
    use super::AddressClass::*;
    use super::*;

    fn class(raw: &str) -> AddressClass {
        classify(raw.parse().unwrap_or_else(|_| panic!("{raw} is a literal address")))
    }

    fn assert_class(expected: AddressClass, addresses: &[&str]) {
        for raw in addresses {
            assert_eq!(class(raw), expected, "{raw}");
        }
    }

    #[test]
    fn public_ipv4_addresses_are_allowed() {
        assert_class(
            Public,
            &[
                "1.1.1.1",
                "8.8.8.8",
                "93.184.216.34",
                "9.255.255.255",
                "11.0.0.0",
                "100.63.255.255",
                "100.128.0.0",
                "126.255.255.255",
                "128.0.0.0",
                "169.253.255.255",
                "169.255.0.0",
                "172.15.255.255",
                "172.32.0.0",
                "192.0.1.0",
                "192.0.3.0",
                "192.88.98.255",
                "192.167.255.255",
                "192.169.0.0",
                "198.17.255.255",
                "198.20.0.0",
                "198.51.99.255",
                "203.0.112.255",
                "223.255.255.255",
            ],
        );
    }

    #[test]
    fn ipv4_special_ranges_are_classified_including_their_edges() {
        assert_class(Unspecified, &["0.0.0.0", "0.1.2.3", "0.255.255.255"]);
        assert_class(Loopback, &["127.0.0.1", "127.0.0.2", "127.0.0.0", "127.255.255.255"]);
        assert_class(
            Private,
            &["10.0.0.0", "10.255.255.255", "172.16.0.0", "172.31.255.255", "192.168.0.0", "192.168.255.255"],
        );
        assert_class(LinkLocal, &["169.254.0.0", "169.254.169.254", "169.254.255.255"]);
        assert_class(SharedAddressSpace, &["100.64.0.0", "100.100.100.200", "100.127.255.255"]);
        assert_class(Multicast, &["224.0.0.0", "224.0.0.251", "239.255.255.255"]);
        assert_class(Broadcast, &["255.255.255.255"]);
        assert_class(
            Documentation,
            &["192.0.2.0", "192.0.2.255", "198.51.100.7", "203.0.113.0", "203.0.113.255"],
        );
        assert_class(
            Reserved,
            &[
                "192.0.0.0",
                "192.0.0.170",
                "192.88.99.1",
                "198.18.0.0",
                "198.19.255.255",
                "240.0.0.0",
                "255.255.255.254",
            ],
        );
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        assert_class(
            Public,
            &[
                "2606:4700:4700::1111",
                "2001:4860:4860::8888",
                "2a00:1450:4001:80b::200e",
                "2000::",
                "3ffe:ffff::",
                "2001:200::",
                "2001:1::1",
                "2001:1::3",
                "2001:3::1",
                "2001:4:112::1",
                "2001:db7:ffff::",
                "2001:db9::",
                "3fff:1000::",
                "2002:0808:0808::1",
                "64:ff9b::808:808",
                "::ffff:8.8.8.8",
            ],
        );
    }

    #[test]
    fn ipv6_special_ranges_are_classified() {
        assert_class(Unspecified, &["::"]);
        assert_class(Loopback, &["::1"]);
        assert_class(
            Private,
            &["fc00::", "fd12:3456:789a::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::1"],
        );
        assert_class(LinkLocal, &["fe80::", "fe80::1", "febf:ffff::"]);
        assert_class(Multicast, &["ff00::", "ff02::1", "ff0e::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
        assert_class(Documentation, &["2001:db8::", "2001:db8:ffff::1", "3fff::", "3fff:fff:ffff::"]);
        assert_class(
            Reserved,
            &[
                "::2",
                "::127.0.0.1",
                "::8.8.8.8",
                "::ffff:0:8.8.8.8",
                "64:ff9b:1::1",
                "100::1",
                "2001::1",
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "2001:1::4",
                "2001:2::1",
                "2001:10::1",
                "2001:20::1",
                "2001:1ff::",
                "5f00::1",
                "1000::",
                "4000::1",
                "e000::",
            ],
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_as_the_ipv4_address_they_carry() {
        assert_eq!(class("::ffff:127.0.0.1"), Loopback);
        assert_eq!(class("::ffff:7f00:2"), Loopback);
        assert_eq!(class("::ffff:10.0.0.1"), Private);
        assert_eq!(class("::ffff:169.254.169.254"), LinkLocal);
        assert_eq!(class("::ffff:100.64.0.1"), SharedAddressSpace);
        assert_eq!(class("::ffff:0.0.0.0"), Unspecified);
        assert_eq!(class("::ffff:255.255.255.255"), Broadcast);
    }

    #[test]
    fn nat64_and_6to4_addresses_are_judged_by_the_embedded_ipv4_address() {
        assert_eq!(class("64:ff9b::127.0.0.1"), Loopback);
        assert_eq!(class("64:ff9b::a9fe:a9fe"), LinkLocal, "169.254.169.254 behind NAT64");
        assert_eq!(class("64:ff9b::192.168.1.1"), Private);
        assert_eq!(class("64:ff9b::0.0.0.0"), Unspecified);
        assert_eq!(class("2002:7f00:0001::"), Loopback);
        assert_eq!(class("2002:0a00:0001::1"), Private);
        assert_eq!(class("2002:a9fe:a9fe::"), LinkLocal);
    }

    fn allow(entries: &[&str]) -> AddressPolicy {
        let entries: Vec<AllowedHost> = entries.iter().map(|e| e.parse().expect("entry")).collect();
        AddressPolicy::new(&entries)
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("literal address")
    }

    #[test]
    fn without_an_allow_list_only_public_addresses_pass() {
        let policy = AddressPolicy::default();
        assert_eq!(policy.check(None, ip("93.184.216.34")), Ok(()));
        assert_eq!(policy.check(Some("example.com"), ip("2606:4700::1")), Ok(()));
        assert_eq!(
            policy.check(None, ip("169.254.169.254")),
            Err(BlockedAddress { ip: ip("169.254.169.254"), class: LinkLocal })
        );
        assert_eq!(policy.check(Some("localhost"), ip("127.0.0.1")).map_err(|b| b.class), Err(Loopback));
        assert_eq!(policy.check(Some("localhost"), ip("::1")).map_err(|b| b.class), Err(Loopback));
    }

    #[test]
    fn allow_listed_networks_admit_only_the_addresses_inside_them() {
        let policy = allow(&["127.0.0.1/32", "10.1.0.0/16", "fd00::/8"]);
        assert_eq!(policy.check(None, ip("127.0.0.1")), Ok(()));
        assert_eq!(policy.check(None, ip("::ffff:127.0.0.1")), Ok(()), "mapped form of an allowed address");
        assert_eq!(policy.check(None, ip("10.1.255.255")), Ok(()));
        assert_eq!(policy.check(None, ip("fd12::1")), Ok(()));
        assert!(policy.check(None, ip("127.0.0.2")).is_err());
        assert!(policy.check(Some("anything"), ip("127.0.0.2")).is_err());
        assert!(policy.check(None, ip("10.2.0.1")).is_err());
        assert!(policy.check(None, ip("::1")).is_err());
        assert!(policy.check(None, ip("64:ff9b::127.0.0.1")).is_err(), "NAT64 is a different path");
        assert!(policy.check(None, ip("169.254.169.254")).is_err());
    }

    #[test]
    fn allow_listed_host_names_admit_whatever_they_resolve_to() {
        let policy = allow(&["feeds.internal"]);
        assert_eq!(policy.check(Some("feeds.internal"), ip("10.9.8.7")), Ok(()));
        assert_eq!(policy.check(Some("FEEDS.Internal."), ip("127.0.0.2")), Ok(()));
        assert!(policy.check(Some("other.internal"), ip("10.9.8.7")).is_err());
        assert!(policy.check(Some("sub.feeds.internal"), ip("10.9.8.7")).is_err(), "no subdomains");
        assert!(policy.check(None, ip("10.9.8.7")).is_err(), "a literal address is not the name");
    }
}
