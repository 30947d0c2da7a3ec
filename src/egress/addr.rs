//! What kind of address an IP is: the check that keeps the egress proxy from being used
//! to reach the host, its LAN or anything that is not the public internet (SSRF).
//!
//! Pure: no I/O. IPv6 forms that carry an IPv4 address (mapped, compatible, 6to4,
//! NAT64) are judged by the address they carry, so `::ffff:127.0.0.1` is loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an address. Only [`Class::Public`] is reachable without a rule's
/// private opt-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Public,
    /// `0.0.0.0`, `::`: connecting to it reaches this host.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0`.
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// `169.254/16`, `fe80::/10` (cloud metadata services live here).
    LinkLocal,
    /// `fc00::/7` (RFC 4193).
    UniqueLocal,
    /// `fec0::/10`, deprecated but still routed inside some sites.
    SiteLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18/15`, `2001:2::/48`.
    Benchmarking,
    /// Everything else that is not global unicast: `240/4`, `192.0.0/24`,
    /// `192.88.99/24`, IPv6 outside `2000::/3`, Teredo, ORCHID, local NAT64, discard.
    Reserved,
}

impl Class {
    pub fn is_public(self) -> bool {
        self == Class::Public
    }

    /// Whether a rule that opts in to private addresses may reach this class. Never
    /// the unspecified, multicast or broadcast addresses: a TCP connection to those
    /// is either meaningless or lands on this host by accident.
    pub fn allowed_with_private_opt_in(self) -> bool {
        !matches!(
            self,
            Class::Unspecified | Class::Multicast | Class::Broadcast
        )
    }

    /// The name used in logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Unspecified => "unspecified",
            Class::ThisNetwork => "this-network",
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::SharedCgnat => "shared (CGNAT)",
            Class::LinkLocal => "link-local",
            Class::UniqueLocal => "unique-local",
            Class::SiteLocal => "site-local",
            Class::Multicast => "multicast",
            Class::Broadcast => "broadcast",
            Class::Documentation => "documentation",
            Class::Benchmarking => "benchmarking",
            Class::Reserved => "reserved",
        }
    }
}

/// The class of `ip`.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

pub fn classify_v4(ip: Ipv4Addr) -> Class {
    const TABLE: &[([u8; 4], u32, Class)] = &[
        ([255, 255, 255, 255], 32, Class::Broadcast),
        ([0, 0, 0, 0], 32, Class::Unspecified),
        ([0, 0, 0, 0], 8, Class::ThisNetwork),
        ([10, 0, 0, 0], 8, Class::Private),
        ([100, 64, 0, 0], 10, Class::SharedCgnat),
        ([127, 0, 0, 0], 8, Class::Loopback),
        ([169, 254, 0, 0], 16, Class::LinkLocal),
        ([172, 16, 0, 0], 12, Class::Private),
        ([192, 0, 0, 0], 24, Class::Reserved),
        ([192, 0, 2, 0], 24, Class::Documentation),
        ([192, 88, 99, 0], 24, Class::Reserved),
        ([192, 168, 0, 0], 16, Class::Private),
        ([198, 18, 0, 0], 15, Class::Benchmarking),
        ([198, 51, 100, 0], 24, Class::Documentation),
        ([203, 0, 113, 0], 24, Class::Documentation),
        ([224, 0, 0, 0], 4, Class::Multicast),
        ([240, 0, 0, 0], 4, Class::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Class::Public, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (net & mask)
}

/// The IPv4 address an IPv6 address carries, for the forms where one decides where the
/// packets go: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, SIIT
/// `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(ip, 0xffff_0000_0000, 96) // ::ffff:0:0/96, mapped
        || in_v6(ip, 0xffff_0000_0000_0000, 96) // ::ffff:0:0:0/96, SIIT translated
        || in_v6(ip, 0x0064_ff9b_u128 << 96, 96)
    {
        return Some(low32);
    }
    // ::/96 (compatible), except :: and ::1 which are their own thing
    if in_v6(ip, 0, 96) && bits > 1 {
        return Some(low32);
    }
    if in_v6(ip, 0x2002_u128 << 112, 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

pub fn classify_v6(ip: Ipv6Addr) -> Class {
    let bits = u128::from(ip);
    if bits == 0 {
        return Class::Unspecified;
    }
    if bits == 1 {
        return Class::Loopback;
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    const TABLE: &[(u128, u32, Class)] = &[
        (0xff00_u128 << 112, 8, Class::Multicast),
        (0xfe80_u128 << 112, 10, Class::LinkLocal),
        (0xfec0_u128 << 112, 10, Class::SiteLocal),
        (0xfc00_u128 << 112, 7, Class::UniqueLocal),
        (0x2001_0db8_u128 << 96, 32, Class::Documentation),
        (0x3fff_u128 << 112, 20, Class::Documentation),
        (0x2001_0002_u128 << 96, 48, Class::Benchmarking),
        // Teredo: the embedded client address is obfuscated and may be anything.
        (0x2001_0000_u128 << 96, 32, Class::Reserved),
        // ORCHIDv1/v2: not routable.
        (0x2001_0010_u128 << 96, 28, Class::Reserved),
        (0x2001_0020_u128 << 96, 28, Class::Reserved),
        // local-use NAT64: translates to whatever the local network chose.
        (0x0064_ff9b_0001_u128 << 80, 48, Class::Reserved),
        // discard-only
        (0x0100_u128 << 112, 64, Class::Reserved),
    ];
    if let Some((_, _, class)) = TABLE.iter().find(|(net, p, _)| in_v6(ip, *net, *p)) {
        return *class;
    }
    // Global unicast is 2000::/3; everything else is unassigned or special.
    if in_v6(ip, 0x2000_u128 << 112, 3) {
        Class::Public
    } else {
        Class::Reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Class {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_v4_range() {
        let rows = [
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::ThisNetwork),
            ("0.255.255.255", Class::ThisNetwork),
            ("9.255.255.255", Class::Public),
            ("10.0.0.0", Class::Private),
            ("10.255.255.255", Class::Private),
            ("11.0.0.0", Class::Public),
            ("100.63.255.255", Class::Public),
            ("100.64.0.0", Class::SharedCgnat),
            ("100.127.255.255", Class::SharedCgnat),
            ("100.128.0.0", Class::Public),
            ("126.255.255.255", Class::Public),
            ("127.0.0.1", Class::Loopback),
            ("127.255.255.254", Class::Loopback),
            ("128.0.0.0", Class::Public),
            ("169.253.255.255", Class::Public),
            ("169.254.169.254", Class::LinkLocal),
            ("169.255.0.0", Class::Public),
            ("172.15.255.255", Class::Public),
            ("172.16.0.0", Class::Private),
            ("172.31.255.255", Class::Private),
            ("172.32.0.0", Class::Public),
            ("192.0.0.8", Class::Reserved),
            ("192.0.2.1", Class::Documentation),
            ("192.0.3.0", Class::Public),
            ("192.88.99.1", Class::Reserved),
            ("192.167.255.255", Class::Public),
            ("192.168.0.1", Class::Private),
            ("192.168.255.255", Class::Private),
            ("192.169.0.0", Class::Public),
            ("198.17.255.255", Class::Public),
            ("198.18.0.0", Class::Benchmarking),
            ("198.19.255.255", Class::Benchmarking),
            ("198.20.0.0", Class::Public),
            ("198.51.100.7", Class::Documentation),
            ("203.0.113.9", Class::Documentation),
            ("223.255.255.255", Class::Public),
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.255", Class::Multicast),
            ("240.0.0.1", Class::Reserved),
            ("255.255.255.254", Class::Reserved),
            ("255.255.255.255", Class::Broadcast),
            ("1.1.1.1", Class::Public),
            ("8.8.8.8", Class::Public),
            ("160.79.104.10", Class::Public),
        ];
        for (ip, want) in rows {
            assert_eq!(c(ip), want, "{ip}");
        }
    }

    #[test]
    fn every_v6_range() {
        let rows = [
            ("::", Class::Unspecified),
            ("::1", Class::Loopback),
            ("::2", Class::ThisNetwork), // compatible form of 0.0.0.2
            ("ff02::1", Class::Multicast),
            ("ff0e::1", Class::Multicast),
            ("fe80::1", Class::LinkLocal),
            ("febf::1", Class::LinkLocal),
            ("fec0::1", Class::SiteLocal),
            ("fc00::1", Class::UniqueLocal),
            ("fd12:3456::1", Class::UniqueLocal),
            ("2001:db8::1", Class::Documentation),
            ("3fff::1", Class::Documentation),
            ("3fff:0fff::1", Class::Documentation),
            ("2001:2::1", Class::Benchmarking),
            ("2001::1", Class::Reserved),
            ("2001:10::1", Class::Reserved),
            ("2001:20::1", Class::Reserved),
            ("64:ff9b:1::1", Class::Reserved),
            ("100::1", Class::Reserved),
            ("1::1", Class::Reserved),
            ("4000::1", Class::Reserved),
            ("2606:4700:4700::1111", Class::Public),
            ("2a00:1450:4001::1", Class::Public),
            ("2607:6bc0::10", Class::Public),
        ];
        for (ip, want) in rows {
            assert_eq!(c(ip), want, "{ip}");
        }
    }

    #[test]
    fn v6_forms_carrying_v4_are_judged_by_the_v4() {
        let rows = [
            ("::ffff:127.0.0.1", Class::Loopback),
            ("::ffff:7f00:1", Class::Loopback),
            ("::ffff:10.1.2.3", Class::Private),
            ("::ffff:169.254.169.254", Class::LinkLocal),
            ("::ffff:0.0.0.0", Class::Unspecified),
            ("::ffff:1.1.1.1", Class::Public),
            ("::127.0.0.1", Class::Loopback),
            ("::192.168.1.1", Class::Private),
            ("::8.8.8.8", Class::Public),
            ("::ffff:0:127.0.0.1", Class::Loopback),
            ("64:ff9b::127.0.0.1", Class::Loopback),
            ("64:ff9b::10.0.0.1", Class::Private),
            ("64:ff9b::1.1.1.1", Class::Public),
            ("2002:7f00:1::1", Class::Loopback),
            ("2002:c0a8:101::", Class::Private),
            ("2002:a9fe:a9fe::1", Class::LinkLocal),
            ("2002:0808:0808::1", Class::Public),
        ];
        for (ip, want) in rows {
            assert_eq!(c(ip), want, "{ip}");
        }
        assert_eq!(
            embedded_v4("2002:c0a8:101::".parse().unwrap()),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(embedded_v4("2606:4700::1".parse().unwrap()), None);
        assert_eq!(embedded_v4("::1".parse().unwrap()), None);
    }

    #[test]
    fn private_opt_in_never_reaches_unspecified_multicast_or_broadcast() {
        for ip in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert!(!c(ip).allowed_with_private_opt_in(), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "fd00::1", "169.254.1.1"] {
            assert!(c(ip).allowed_with_private_opt_in(), "{ip}");
            assert!(!c(ip).is_public(), "{ip}");
        }
    }
}
