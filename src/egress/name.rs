//! Host names and IP literals as the egress policy compares them: lowercase, without a
//! trailing dot, ASCII only.
//!
//! A request's host must already be ASCII (what RFC 9110 and every URL parser send);
//! a non-ASCII request host is refused, never mapped, so no Unicode look-alike can be
//! normalised into an allowed name on the request side. A *rule* may be written in
//! Unicode: it is converted once, with UTS 46 (IDNA), to the punycode form a client
//! sends. Numeric forms that `inet_aton` accepts (`127.1`, `0x7f.0.0.1`, `2130706433`)
//! are IP literals, as the URL standard says, so they cannot pass as names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a request wants to go: a name (to be resolved only if the policy allows it)
/// or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty host name")]
    Empty,
    #[error("non-ASCII host name (send its punycode form)")]
    NonAscii,
    #[error("character {0:?} is not allowed in a host name")]
    BadChar(char),
    #[error("empty label in host name")]
    EmptyLabel,
    #[error("a label longer than 63 characters")]
    LabelTooLong,
    #[error("host name longer than 253 characters")]
    TooLong,
    #[error("numeric host that is not a valid IP address")]
    BadNumeric,
    #[error("not a valid IPv6 address")]
    BadIpv6,
    #[error("not a valid international domain name")]
    BadIdna,
}

/// A request's host, as sent (IPv6 in brackets), normalised.
pub fn parse_host(raw: &str) -> Result<Host, NameError> {
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(NameError::BadIpv6)?;
        // zone ids (`%25eth0`) name an interface of the proxy's host: never wanted
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| NameError::BadIpv6);
    }
    if !raw.is_ascii() {
        return Err(NameError::NonAscii);
    }
    normalise_ascii(raw)
}

/// A rule's host part (no wildcard), normalised; Unicode is converted to punycode.
pub fn parse_rule_host(raw: &str) -> Result<Host, NameError> {
    if raw.starts_with('[') {
        return parse_host(raw);
    }
    if raw.is_ascii() {
        return normalise_ascii(raw);
    }
    let ascii = idna::domain_to_ascii_cow(raw.as_bytes(), idna::AsciiDenyList::URL)
        .map_err(|_| NameError::BadIdna)?;
    normalise_ascii(&ascii)
}

fn normalise_ascii(raw: &str) -> Result<Host, NameError> {
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if looks_numeric(last) {
        return inet_aton(name)
            .map(|ip| Host::Ip(IpAddr::V4(ip)))
            .ok_or(NameError::BadNumeric);
    }
    if name.len() > 253 {
        return Err(NameError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(NameError::LabelTooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::BadChar(c));
        }
    }
    Ok(Host::Name(name.to_owned()))
}

/// The URL standard's "ends in a number" test: a last label of digits or `0x` hex.
fn looks_numeric(label: &str) -> bool {
    if label.is_empty() {
        return false;
    }
    if let Some(hex) = label.strip_prefix("0x") {
        return hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    label.chars().all(|c| c.is_ascii_digit())
}

/// `inet_aton`'s forms: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the
/// last part fills the remaining bytes.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(h) = p.strip_prefix("0x") {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if rest_bits < 64 && *last >= (1u64 << rest_bits) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i);
    }
    v |= last;
    Some(Ipv4Addr::from(v as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }
    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(parse_host("Example.COM"), Ok(name("example.com")));
        assert_eq!(parse_host("localhost."), Ok(name("localhost")));
        assert_eq!(parse_host("LOCALHOST."), Ok(name("localhost")));
        assert_eq!(parse_host("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(parse_host("localhost.."), Err(NameError::EmptyLabel));
        assert_eq!(parse_host("."), Err(NameError::Empty));
        assert_eq!(parse_host(""), Err(NameError::Empty));
        assert_eq!(parse_host("_dmarc.x-y.org"), Ok(name("_dmarc.x-y.org")));
    }

    #[test]
    fn bad_characters_and_lengths() {
        for (raw, err) in [
            ("a b", NameError::BadChar(' ')),
            ("a%2eb", NameError::BadChar('%')),
            ("a@b", NameError::BadChar('@')),
            ("a:b", NameError::BadChar(':')),
            ("a/b", NameError::BadChar('/')),
            ("a\0b", NameError::BadChar('\0')),
            ("bücher.example", NameError::NonAscii),
            ("ａpi.anthropic.com", NameError::NonAscii),
        ] {
            assert_eq!(parse_host(raw), Err(err), "{raw:?}");
        }
        let label = "a".repeat(63);
        assert!(parse_host(&format!("{label}.com")).is_ok());
        assert_eq!(
            parse_host(&format!("a{label}.com")),
            Err(NameError::LabelTooLong)
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(long.len(), 259);
        assert_eq!(parse_host(&long), Err(NameError::TooLong));
    }

    #[test]
    fn ip_literals_in_every_spelling() {
        assert_eq!(parse_host("127.0.0.1"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("127.0.0.1."), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("[::1]"), Ok(ip("::1")));
        assert_eq!(parse_host("[::FFFF:127.0.0.1]"), Ok(ip("::ffff:127.0.0.1")));
        assert_eq!(parse_host("[fe80::1%25eth0]"), Err(NameError::BadIpv6));
        assert_eq!(parse_host("[::1"), Err(NameError::BadIpv6));
        assert_eq!(parse_host("[example.com]"), Err(NameError::BadIpv6));
        // inet_aton forms are IPs, not names
        assert_eq!(parse_host("127.1"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("2130706433"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("0x7f.0.0.1"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("0x7F000001"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("0177.0.0.1"), Ok(ip("127.0.0.1")));
        assert_eq!(parse_host("10.1"), Ok(ip("10.0.0.1")));
        assert_eq!(parse_host("192.168.257"), Ok(ip("192.168.1.1")));
        assert_eq!(parse_host("0"), Ok(ip("0.0.0.0")));
        assert_eq!(parse_host("256.0.0.1"), Err(NameError::BadNumeric));
        assert_eq!(parse_host("1.2.3.4.5"), Err(NameError::BadNumeric));
        assert_eq!(parse_host("08.1.1.1"), Err(NameError::BadNumeric));
        assert_eq!(parse_host("4294967296"), Err(NameError::BadNumeric));
        assert_eq!(parse_host("foo.123"), Err(NameError::BadNumeric));
        // a numeric label that is not the last one is fine in a name
        assert_eq!(parse_host("123.example"), Ok(name("123.example")));
        assert_eq!(parse_host("0xfoo.example"), Ok(name("0xfoo.example")));
    }

    #[test]
    fn rules_may_be_unicode_and_become_punycode() {
        assert_eq!(
            parse_rule_host("Bücher.Example"),
            Ok(name("xn--bcher-kva.example"))
        );
        assert_eq!(
            parse_rule_host("xn--bcher-kva.example"),
            Ok(name("xn--bcher-kva.example"))
        );
        // UTS 46 maps the full-width form to plain ASCII
        assert_eq!(
            parse_rule_host("ａpi.anthropic.com"),
            Ok(name("api.anthropic.com"))
        );
        assert_eq!(
            parse_rule_host("exa mple.com"),
            Err(NameError::BadChar(' '))
        );
        assert_eq!(parse_rule_host("[::1]"), Ok(ip("::1")));
    }

    #[test]
    fn display_brackets_ipv6() {
        assert_eq!(ip("::1").to_string(), "[::1]");
        assert_eq!(ip("10.0.0.1").to_string(), "10.0.0.1");
        assert_eq!(name("a.b").to_string(), "a.b");
    }
}
