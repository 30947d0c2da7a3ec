//! The typed values of the hardening and network keys (`box.pids_limit`, `box.memory`,
//! `box.cpus`, `box.cap_add`, `box.network`, `box.allow`): their grammar, their
//! canonical text, and which of two values is looser. Pure.
//!
//! "Looser" is what a file within a box's reach (a standalone box's own
//! `project.yaml`) may never do to the value set outside it.

use std::cmp::Ordering;

use crate::egress::policy::{List, PolicyBuilder};

/// Which typed value a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// A positive process count, or `unlimited`.
    PidsLimit,
    /// A memory size in the engines' syntax (`512m`, `4g`); empty: no limit.
    Size,
    /// A positive decimal number of CPUs (`1.5`); empty: no limit.
    Cpus,
    /// Linux capability names, `CAP_` prefix optional, case-insensitive.
    Caps,
    /// Egress rules: `host`, `*.domain`, `host:port`, `@preset`, `-rule`, `-@preset`.
    Allow,
}

impl Type {
    pub fn describe(self) -> &'static str {
        match self {
            Type::PidsLimit => "a positive whole number of processes, or unlimited",
            Type::Size => "a memory size such as 512m or 4g (at least 6m)",
            Type::Cpus => "a positive number of CPUs such as 2 or 1.5",
            Type::Caps => "Linux capability names such as NET_RAW (CAP_ prefix optional)",
            Type::Allow => "host names, *.domain wildcards, host:port or @preset entries",
        }
    }

    /// Whether the value is a list (stored as a YAML sequence).
    pub fn is_list(self) -> bool {
        matches!(self, Type::Caps | Type::Allow)
    }

    /// Whether every level's entries add to the outer levels' (instead of the most
    /// specific level winning whole).
    pub fn layered(self) -> bool {
        self == Type::Allow
    }

    /// The canonical text of `raw`, or why it is not one.
    pub fn check(self, raw: &str) -> Result<String, String> {
        match self {
            Type::PidsLimit => pids_limit(raw).map(|p| match p {
                Some(n) => n.to_string(),
                None => "unlimited".into(),
            }),
            Type::Size if raw.trim().is_empty() => Ok(String::new()),
            Type::Size => size(raw).map(size_text),
            Type::Cpus if raw.trim().is_empty() => Ok(String::new()),
            Type::Cpus => cpus(raw).map(cpus_text),
            Type::Caps => caps(raw).map(|c| c.join(", ")),
            Type::Allow => allow(raw).map(|a| a.join(", ")),
        }
    }
}

/// The items of a list value: separated by commas or white space.
pub fn items(raw: &str) -> Vec<&str> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The most processes a box may hold; `None` is `unlimited`. The pid space of Linux
/// ends at 2^22.
pub fn pids_limit(raw: &str) -> Result<Option<u32>, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match raw.parse::<u32>() {
        Ok(n) if (1..=4_194_304).contains(&n) && raw.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(n))
        }
        _ => Err(Type::PidsLimit.describe().into()),
    }
}

/// The smallest memory limit docker accepts.
const MIN_MEMORY: u64 = 6 << 20;

/// A size in bytes from the engines' syntax: a number, optionally with a fraction, then
/// `b`, `k`, `m`, `g` or `t` (binary multiples, as both engines read them), optionally
/// followed by `b` or `ib`.
pub fn size(raw: &str) -> Result<u64, String> {
    let bad = || Type::Size.describe().to_owned();
    let s = raw.trim().to_ascii_lowercase();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let unit = unit.trim_start();
    // one optional `b` or `ib` after the unit (`4g`, `4gb`, `4gib`; `b` alone: bytes)
    let base = match unit.strip_suffix("ib") {
        Some(u) => u,
        None if unit.len() > 1 => unit.strip_suffix('b').unwrap_or(unit),
        None if unit == "b" => "",
        None => unit,
    };
    let shift = match base {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (num.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut bytes = whole.checked_shl(shift).filter(|b| b >> shift == whole);
    if !frac.is_empty() {
        let f: f64 = format!("0.{frac}").parse().map_err(|_| bad())?;
        bytes = bytes.and_then(|b| b.checked_add((f * (1u64 << shift) as f64) as u64));
    }
    match bytes {
        Some(b) if (MIN_MEMORY..(1u64 << 50)).contains(&b) => Ok(b),
        _ => Err(bad()),
    }
}

/// A size as the engines read it: in the largest unit that holds it whole.
pub fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(40, "t"), (30, "g"), (20, "m"), (10, "k")] {
        if bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}b")
}

/// CPUs in thousandths (what `--cpus` resolves to at best).
pub fn cpus(raw: &str) -> Result<u32, String> {
    let bad = || Type::Cpus.describe().to_owned();
    let raw = raw.trim();
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 3 {
        return Err(bad());
    }
    if raw.contains('.') && frac.is_empty() {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let frac: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    match whole.checked_mul(1000).and_then(|w| w.checked_add(frac)) {
        Some(m) if m > 0 && m <= 4_096_000 => Ok(m),
        _ => Err(bad()),
    }
}

pub fn cpus_text(millis: u32) -> String {
    let s = format!("{}.{:03}", millis / 1000, millis % 1000);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The Linux capabilities (capability.h, 6.x), without `CAP_`.
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Capability names, canonical (upper case, no `CAP_`), each once, in the order given.
/// `ALL` is refused: a box gets the capabilities it names, never every one.
pub fn caps(raw: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for item in items(raw) {
        let up = item.to_ascii_uppercase();
        let name = up.strip_prefix("CAP_").unwrap_or(&up);
        let Some(cap) = CAPABILITIES.iter().find(|c| **c == name) else {
            return Err(if name == "ALL" {
                "capability names, not ALL (name each one the box needs)".into()
            } else {
                format!("a Linux capability name; '{item}' is none")
            });
        };
        if !out.contains(cap) {
            out.push(*cap);
        }
    }
    Ok(out)
}

/// Egress entries, each checked as the proxy's policy reads it (a rule, a preset, or
/// the removal of either).
pub fn allow(raw: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in items(raw) {
        PolicyBuilder::new()
            .add(List::Allow, item, "")
            .map_err(|e| e.to_string())?;
        out.push(item.to_owned());
    }
    Ok(out)
}

/// Whether `inner` gives a box more than `outer` (both canonical or raw text of `ty`;
/// a value that does not parse is never looser: it fails where it is used).
pub fn looser(ty: Type, inner: &str, outer: &str) -> bool {
    match ty {
        Type::PidsLimit => match (pids_limit(inner), pids_limit(outer)) {
            (Ok(None), Ok(Some(_))) => true,
            (Ok(Some(i)), Ok(Some(o))) => i > o,
            _ => false,
        },
        Type::Size => limit_looser(inner, outer, size),
        Type::Cpus => limit_looser(inner, outer, |s| cpus(s).map(u64::from)),
        Type::Caps => match (caps(inner), caps(outer)) {
            (Ok(i), Ok(o)) => i.iter().any(|c| !o.contains(c)),
            _ => false,
        },
        // Entries at a level add to the outer ones: any addition is looser.
        Type::Allow => items(inner).iter().any(|e| !e.starts_with('-')),
    }
}

/// An optional limit: empty is no limit, the loosest.
fn limit_looser(inner: &str, outer: &str, parse: impl Fn(&str) -> Result<u64, String>) -> bool {
    let get = |s: &str| -> Option<Option<u64>> {
        if s.trim().is_empty() {
            Some(None)
        } else {
            parse(s).ok().map(Some)
        }
    };
    match (get(inner), get(outer)) {
        (Some(None), Some(Some(_))) => true,
        (Some(Some(i)), Some(Some(o))) => i.cmp(&o) == Ordering::Greater,
        _ => false,
    }
}

/// `box.network`: how much network a box has, tightest first.
pub const NETWORK_MODES: &[&str] = &["none", "allowlist", "full"];

/// Whether network mode `inner` is looser than `outer`.
pub fn network_looser(inner: &str, outer: &str) -> bool {
    let rank = |m: &str| NETWORK_MODES.iter().position(|x| *x == m);
    matches!((rank(inner), rank(outer)), (Some(i), Some(o)) if i > o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_limits() {
        assert_eq!(pids_limit("64"), Ok(Some(64)));
        assert_eq!(pids_limit("Unlimited"), Ok(None));
        for bad in ["0", "-1", "+5", "1.5", "", "lots", "4194305"] {
            assert!(pids_limit(bad).is_err(), "{bad}");
        }
        assert!(looser(Type::PidsLimit, "5000", "4096"));
        assert!(looser(Type::PidsLimit, "unlimited", "4096"));
        assert!(!looser(Type::PidsLimit, "64", "4096"));
        assert!(!looser(Type::PidsLimit, "64", "unlimited"));
    }

    #[test]
    fn sizes_in_the_engines_syntax() {
        assert_eq!(size("4g"), Ok(4 << 30));
        assert_eq!(size("4G"), Ok(4 << 30));
        assert_eq!(size("512m"), Ok(512 << 20));
        assert_eq!(size("512MiB"), Ok(512 << 20));
        assert_eq!(size("1.5g"), Ok(3 << 29));
        assert_eq!(size("8388608"), Ok(8 << 20));
        for bad in [
            "",
            "g",
            "4x",
            "-4g",
            "1m",
            "4.g",
            "4gbb",
            "4 g b",
            "99999999999999t",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
        assert_eq!(size_text(4 << 30), "4g");
        assert_eq!(size_text(3 << 29), "1536m");
        assert_eq!(Type::Size.check("4096M").unwrap(), "4g");
        assert!(looser(Type::Size, "8g", "4g"));
        assert!(looser(Type::Size, "", "4g"), "no limit is looser than one");
        assert!(!looser(Type::Size, "2g", "4g"));
        assert!(!looser(Type::Size, "2g", ""));
    }

    #[test]
    fn cpus_as_decimals() {
        assert_eq!(cpus("2"), Ok(2000));
        assert_eq!(cpus("1.5"), Ok(1500));
        assert_eq!(cpus("0.25"), Ok(250));
        for bad in ["0", "0.0", "-1", "1.", ".5", "1.2345", "two", ""] {
            assert!(cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(cpus_text(1500), "1.5");
        assert_eq!(cpus_text(2000), "2");
        assert!(looser(Type::Cpus, "4", "2"));
        assert!(!looser(Type::Cpus, "0.5", "2"));
    }

    #[test]
    fn capabilities_are_known_names() {
        assert_eq!(
            caps("net_raw, CAP_SYS_PTRACE NET_RAW"),
            Ok(vec!["NET_RAW", "SYS_PTRACE"])
        );
        assert!(caps("ALL").unwrap_err().contains("not ALL"));
        assert!(caps("NET_RAWR").is_err());
        assert_eq!(caps(""), Ok(vec![]));
        assert!(looser(Type::Caps, "NET_RAW", ""));
        assert!(!looser(Type::Caps, "", "NET_RAW"));
        assert!(!looser(Type::Caps, "net_raw", "NET_RAW, MKNOD"));
    }

    #[test]
    fn allow_entries_are_policy_rules() {
        assert_eq!(
            allow("*.example.com, @npm -@github api.x.org:8443").unwrap(),
            ["*.example.com", "@npm", "-@github", "api.x.org:8443"]
        );
        assert!(allow("*.com").is_err());
        assert!(allow("@nosuch").is_err());
        assert!(allow("a*.example.com").is_err());
        assert!(looser(Type::Allow, "-@npm, evil.test", ""));
        assert!(!looser(Type::Allow, "-@npm", ""));
    }

    #[test]
    fn network_modes_order() {
        assert!(network_looser("full", "none"));
        assert!(!network_looser("none", "full"));
        assert!(!network_looser("full", "full"));
        assert!(network_looser("full", "allowlist"));
        assert!(network_looser("allowlist", "none"));
        assert!(!network_looser("allowlist", "full"));
        assert!(!network_looser("none", "allowlist"));
    }
}
