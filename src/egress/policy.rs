//! The egress policy: which `host:port` a box may reach, decided from the name alone,
//! before any DNS.
//!
//! Rules are `host`, `*.domain` (sub-domains only, never `domain` itself), `host:port`,
//! `IP`, `IP:port` and `[IPv6]:port`. In an allow list a rule without a port means 80
//! and 443; in the deny list it means every port, and deny always wins. IP literals
//! are refused unless a rule names that IP. Names resolving to non-public addresses are
//! refused later, by the proxy, unless the rule that allowed the name came from the
//! `allow_private` list. Pure: no I/O.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::addr::{self, Class};
use super::name::{self, Host, NameError};
use super::preset;

/// The reserved name the in-box self-test asks for: always refused (and it could not
/// resolve anyway: `.invalid` is reserved by RFC 6761), so a 403 for it proves that the
/// path goes through kanibako's proxy.
pub const SENTINEL: &str = "kanibako-egress-selftest.invalid";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// `*.d`: names ending in `.d`.
    Subdomains(String),
    Ip(IpAddr),
}

/// One rule, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pattern: Pattern,
    port: Option<u16>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("empty rule")]
    Empty,
    #[error("{rule:?}: {source}")]
    Name { rule: String, source: NameError },
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    Port(String),
    #[error("{0:?}: `*` may only stand as the first label, as in *.example.com")]
    Wildcard(String),
    #[error("{0:?} is too broad: a wildcard needs a domain of at least two labels")]
    TooBroad(String),
    #[error("{0:?}: no such preset")]
    UnknownPreset(String),
    #[error("{0:?} is a {1} address")]
    PrivateIp(String, &'static str),
    #[error("{0:?} is a {1} address, which no rule can reach")]
    Unreachable(String, &'static str),
}

impl RuleError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            RuleError::UnknownPreset(_) => vec![format!(
                "the presets are {}",
                preset::PRESETS
                    .iter()
                    .map(|p| format!("@{}", p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
            RuleError::PrivateIp(..) => {
                vec!["a rule that may reach a private address belongs in allow_private".into()]
            }
            RuleError::TooBroad(_) => vec!["name the hosts instead, as in api.example.com".into()],
            _ => Vec::new(),
        }
    }
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RuleError::Empty);
        }
        let (host, port) = split_port(text)?;
        let bad_name = |source| RuleError::Name {
            rule: text.to_owned(),
            source,
        };
        let pattern = if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(RuleError::Wildcard(text.into()));
            }
            match name::parse_rule_host(domain).map_err(bad_name)? {
                Host::Name(d) if d.contains('.') => Pattern::Subdomains(d),
                Host::Name(_) => return Err(RuleError::TooBroad(text.into())),
                Host::Ip(_) => return Err(RuleError::Wildcard(text.into())),
            }
        } else if host.contains('*') {
            return Err(RuleError::Wildcard(text.into()));
        } else {
            match name::parse_rule_host(host).map_err(bad_name)? {
                Host::Name(n) => Pattern::Exact(n),
                Host::Ip(ip) => Pattern::Ip(ip),
            }
        };
        let mut text = match &pattern {
            Pattern::Exact(n) => n.clone(),
            Pattern::Subdomains(d) => format!("*.{d}"),
            Pattern::Ip(ip) => Host::Ip(*ip).to_string(),
        };
        if let Some(p) = port {
            text.push_str(&format!(":{p}"));
        }
        Ok(Rule {
            pattern,
            port,
            text,
        })
    }

    /// The normalised form, as logs and `box info` show it.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn host_matches(&self, host: &Host) -> bool {
        match (&self.pattern, host) {
            (Pattern::Exact(r), Host::Name(n)) => r == n,
            (Pattern::Subdomains(d), Host::Name(n)) => n
                .strip_suffix(d.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Pattern::Ip(r), Host::Ip(ip)) => r == ip,
            _ => false,
        }
    }

    fn allows(&self, host: &Host, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        port_ok && self.host_matches(host)
    }

    fn denies(&self, host: &Host, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.host_matches(host)
    }

    fn ip_class(&self) -> Option<Class> {
        match self.pattern {
            Pattern::Ip(ip) => Some(addr::classify(ip)),
            _ => None,
        }
    }
}

fn split_port(text: &str) -> Result<(&str, Option<u16>), RuleError> {
    let parse_port = |p: &str| -> Result<Option<u16>, RuleError> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(RuleError::Port(text.into())),
        }
    };
    if text.starts_with('[') {
        let end = text.find(']').ok_or_else(|| RuleError::Name {
            rule: text.into(),
            source: NameError::BadIpv6,
        })?;
        let (host, rest) = text.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Ok((host, parse_port(p)?)),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(RuleError::Port(text.into())),
        };
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Ok((host, parse_port(p)?)),
        None => Ok((text, None)),
    }
}

/// Which list an entry goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum List {
    Allow,
    /// Allowed, and may resolve to loopback or private addresses (a corporate registry,
    /// a service on the host).
    AllowPrivate,
    Deny,
}

impl List {
    pub fn name(self) -> &'static str {
        match self {
            List::Allow => "allow",
            List::AllowPrivate => "allow_private",
            List::Deny => "deny",
        }
    }
}

/// A rule in force, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub rule: Rule,
    pub list: List,
    /// `@name` for a preset's rules, else the caller's origin (a settings level).
    pub origin: String,
}

/// Why a request was allowed or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// An allow rule matched.
    Rule,
    /// No rule matched, but learn mode allows and logs.
    Learn,
    NoRule,
    IpLiteral,
    /// A deny rule matched.
    Denied,
    Sentinel,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::Learn => "learn",
            Reason::NoRule => "no_rule",
            Reason::IpLiteral => "ip_literal",
            Reason::Denied => "deny_rule",
            Reason::Sentinel => "sentinel",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `Some(private_ok)` when allowed: whether the name may resolve to a non-public
    /// address.
    pub allowed: Option<bool>,
    pub reason: Reason,
    /// The rule that decided, in its normalised text.
    pub rule: Option<String>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.allowed.is_some()
    }
}

/// The policy of one box.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    entries: Vec<Entry>,
    learn: bool,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_allowed() { "allow" } else { "deny" };
        match &self.rule {
            Some(r) => write!(f, "{verdict} ({}: {r})", self.reason.code()),
            None => write!(f, "{verdict} ({})", self.reason.code()),
        }
    }
}

impl Policy {
    /// Decide on `host:port`. Never resolves anything.
    pub fn decide(&self, host: &Host, port: u16) -> Decision {
        let deny = |reason, rule: Option<&Rule>| Decision {
            allowed: None,
            reason,
            rule: rule.map(|r| r.text.clone()),
        };
        if matches!(host, Host::Name(n) if n == SENTINEL) {
            return deny(Reason::Sentinel, None);
        }
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.list == List::Deny && e.rule.denies(host, port))
        {
            return deny(Reason::Denied, Some(&e.rule));
        }
        let mut matching = self
            .entries
            .iter()
            .filter(|e| e.list != List::Deny && e.rule.allows(host, port));
        let first = matching.next();
        let private = first
            .into_iter()
            .chain(matching)
            .find(|e| e.list == List::AllowPrivate);
        if let Some(e) = private.or(first) {
            return Decision {
                allowed: Some(e.list == List::AllowPrivate),
                reason: Reason::Rule,
                rule: Some(e.rule.text.clone()),
            };
        }
        if self.learn {
            return Decision {
                allowed: Some(false),
                reason: Reason::Learn,
                rule: None,
            };
        }
        match host {
            Host::Ip(_) => deny(Reason::IpLiteral, None),
            Host::Name(_) => deny(Reason::NoRule, None),
        }
    }

    /// The rules in force, in the order they were added.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Learn mode: what no rule allows is allowed (and logged) instead of refused.
    pub fn learn(&self) -> bool {
        self.learn
    }
}

/// Builds a [`Policy`] from entries given outermost level first, so that an inner
/// level can remove what an outer one added.
///
/// An entry is a rule, `@preset`, `-rule` (drop that rule from this list) or
/// `-@preset` (drop the preset's rules from this list).
#[derive(Debug, Default)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, list: List, entry: &str, origin: &str) -> Result<(), RuleError> {
        let entry = entry.trim();
        if let Some(removed) = entry.strip_prefix('-') {
            let removed = removed.trim();
            if removed.starts_with('@') {
                let p = preset::find(removed)
                    .ok_or_else(|| RuleError::UnknownPreset(removed.into()))?;
                let tag = format!("@{}", p.name);
                self.policy
                    .entries
                    .retain(|e| !(e.list == list && e.origin == tag));
            } else {
                let rule = Rule::parse(removed)?;
                self.policy
                    .entries
                    .retain(|e| !(e.list == list && e.rule.text == rule.text));
            }
            return Ok(());
        }
        if entry.starts_with('@') {
            let p = preset::find(entry).ok_or_else(|| RuleError::UnknownPreset(entry.into()))?;
            for r in p.rules {
                self.push(list, Rule::parse(r)?, &format!("@{}", p.name))?;
            }
            return Ok(());
        }
        self.push(list, Rule::parse(entry)?, origin)
    }

    fn push(&mut self, list: List, rule: Rule, origin: &str) -> Result<(), RuleError> {
        if let Some(class) = rule.ip_class() {
            if !class.allowed_with_private_opt_in() {
                return Err(RuleError::Unreachable(rule.text, class.name()));
            }
            if list == List::Allow && !class.is_public() {
                return Err(RuleError::PrivateIp(rule.text, class.name()));
            }
        }
        let dup = self
            .policy
            .entries
            .iter()
            .any(|e| e.list == list && e.rule == rule);
        if !dup {
            self.policy.entries.push(Entry {
                rule,
                list,
                origin: origin.to_owned(),
            });
        }
        Ok(())
    }

    pub fn learn(&mut self, on: bool) -> &mut Self {
        self.policy.learn = on;
        self
    }

    pub fn build(self) -> Policy {
        self.policy
    }
}

/// A policy as a file holds it (the form `kanibako egress-serve --policy` reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub allow_private: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub learn: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{list}[{index}]: {source}")]
pub struct SpecError {
    pub list: &'static str,
    pub index: usize,
    #[source]
    pub source: RuleError,
}

impl PolicySpec {
    pub fn compile(&self, origin: &str) -> Result<Policy, SpecError> {
        let mut b = PolicyBuilder::new();
        for (list, entries) in [
            (List::Allow, &self.allow),
            (List::AllowPrivate, &self.allow_private),
            (List::Deny, &self.deny),
        ] {
            for (index, e) in entries.iter().enumerate() {
                b.add(list, e, origin).map_err(|source| SpecError {
                    list: list.name(),
                    index,
                    source,
                })?;
            }
        }
        b.learn(self.learn);
        Ok(b.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], private: &[&str], deny: &[&str]) -> Policy {
        PolicySpec {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            allow_private: private.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            learn: false,
        }
        .compile("test")
        .unwrap()
    }

    fn h(s: &str) -> Host {
        name::parse_host(s).unwrap()
    }

    fn allowed(p: &Policy, host: &str, port: u16) -> bool {
        p.decide(&h(host), port).is_allowed()
    }

    #[test]
    fn exact_rules_default_to_80_and_443() {
        let p = policy(&["example.com"], &[], &[]);
        assert!(allowed(&p, "example.com", 443));
        assert!(allowed(&p, "example.com", 80));
        assert!(!allowed(&p, "example.com", 22));
        assert!(!allowed(&p, "example.com", 8443));
        assert!(!allowed(&p, "www.example.com", 443));
        assert!(!allowed(&p, "example.com.evil.test", 443));
        assert!(!allowed(&p, "notexample.com", 443));
        let d = p.decide(&h("example.com"), 443);
        assert_eq!(d.reason, Reason::Rule);
        assert_eq!(d.rule.as_deref(), Some("example.com"));
        assert_eq!(d.allowed, Some(false));
    }

    #[test]
    fn case_and_trailing_dot_do_not_matter() {
        let p = policy(&["Example.COM."], &[], &[]);
        assert!(allowed(&p, "EXAMPLE.com", 443));
        assert!(allowed(&p, "example.com.", 443));
        assert_eq!(p.entries()[0].rule.text(), "example.com");
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let p = policy(&["*.example.com"], &[], &[]);
        assert!(allowed(&p, "a.example.com", 443));
        assert!(allowed(&p, "a.b.example.com", 443));
        assert!(!allowed(&p, "example.com", 443));
        assert!(!allowed(&p, "aexample.com", 443));
        assert!(name::parse_host(".example.com").is_err());
        assert!(!allowed(&p, "a.example.com", 22));
        for bad in [
            "*",
            "*.com",
            "a.*.com",
            "*example.com",
            "**.example.com",
            "*.*.com",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(Rule::parse("*.com"), Err(RuleError::TooBroad(_))));
    }

    #[test]
    fn explicit_ports() {
        let p = policy(&["git.example.com:22", "example.com:8443"], &[], &[]);
        assert!(allowed(&p, "git.example.com", 22));
        assert!(!allowed(&p, "git.example.com", 443));
        assert!(allowed(&p, "example.com", 8443));
        assert!(!allowed(&p, "example.com", 443));
        for bad in [
            "a.com:0",
            "a.com:65536",
            "a.com:x",
            "a.com:",
            "a.com:+1",
            "a.com: 1",
        ] {
            assert!(matches!(Rule::parse(bad), Err(RuleError::Port(_))), "{bad}");
        }
    }

    #[test]
    fn deny_wins_and_without_a_port_covers_every_port() {
        let p = policy(
            &["*.example.com", "x.example.com:22"],
            &["y.example.com"],
            &["x.example.com", "*.bad.example.com"],
        );
        assert!(allowed(&p, "a.example.com", 443));
        for port in [22, 80, 443] {
            let d = p.decide(&h("x.example.com"), port);
            assert_eq!(d.reason, Reason::Denied, "{port}");
            assert_eq!(d.rule.as_deref(), Some("x.example.com"));
        }
        assert!(!allowed(&p, "q.bad.example.com", 443));
        let p = policy(&["example.com"], &[], &["example.com:80"]);
        assert!(allowed(&p, "example.com", 443));
        assert!(!allowed(&p, "example.com", 80));
    }

    #[test]
    fn ip_literals_need_a_rule_naming_them() {
        let p = policy(
            &["example.com", "1.1.1.1:443", "[2606:4700::1]:443"],
            &[],
            &[],
        );
        let d = p.decide(&h("8.8.8.8"), 443);
        assert_eq!(d.reason, Reason::IpLiteral);
        assert!(allowed(&p, "1.1.1.1", 443));
        assert!(!allowed(&p, "1.1.1.1", 80));
        assert!(allowed(&p, "[2606:4700::1]", 443));
        assert!(allowed(&p, "[2606:4700:0::1]", 443));
        assert!(!allowed(&p, "[::1]", 443));
        assert_eq!(p.decide(&h("[::1]"), 443).reason, Reason::IpLiteral);
        // numeric spellings are the same IP and get no name rule
        assert_eq!(p.decide(&h("127.1"), 443).reason, Reason::IpLiteral);
        assert!(allowed(&p, "0x01010101", 443));
    }

    #[test]
    fn private_ip_rules_belong_in_allow_private() {
        let mut b = PolicyBuilder::new();
        let e = b.add(List::Allow, "127.0.0.1:8080", "t").unwrap_err();
        assert!(matches!(e, RuleError::PrivateIp(_, "loopback")));
        assert!(!e.hints().is_empty());
        b.add(List::AllowPrivate, "127.0.0.1:8080", "t").unwrap();
        b.add(List::AllowPrivate, "[::ffff:10.0.0.1]:8080", "t")
            .unwrap();
        for never in [
            "0.0.0.0:80",
            "[::]:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
        ] {
            assert!(matches!(
                b.add(List::AllowPrivate, never, "t"),
                Err(RuleError::Unreachable(..))
            ));
        }
        let p = b.build();
        assert_eq!(p.decide(&h("127.0.0.1"), 8080).allowed, Some(true));
    }

    #[test]
    fn localhost_and_its_spoofs_get_no_rule_by_default() {
        let p = policy(&["@claude"], &[], &[]);
        for host in ["localhost", "localhost.", "LOCALHOST", "a.localhost"] {
            assert_eq!(p.decide(&h(host), 443).reason, Reason::NoRule, "{host}");
        }
    }

    #[test]
    fn a_private_rule_wins_over_a_public_one_for_the_same_host() {
        let p = policy(&["reg.corp.example"], &["reg.corp.example"], &[]);
        assert_eq!(p.decide(&h("reg.corp.example"), 443).allowed, Some(true));
        let p = policy(&["reg.corp.example"], &[], &[]);
        assert_eq!(p.decide(&h("reg.corp.example"), 443).allowed, Some(false));
    }

    #[test]
    fn presets_expand_and_can_be_removed_by_a_later_level() {
        let mut b = PolicyBuilder::new();
        for e in preset::DEFAULT_ALLOW {
            b.add(List::Allow, e, "system").unwrap();
        }
        b.add(List::Allow, "-@github", "box").unwrap();
        b.add(List::Allow, "-pypi.org", "box").unwrap();
        b.add(List::Allow, "example.org", "box").unwrap();
        let p = b.build();
        assert!(allowed(&p, "api.anthropic.com", 443));
        assert!(allowed(&p, "registry.npmjs.org", 443));
        assert!(allowed(&p, "files.pythonhosted.org", 443));
        assert!(!allowed(&p, "pypi.org", 443));
        assert!(!allowed(&p, "github.com", 443));
        assert!(allowed(&p, "example.org", 443));
        let origins: Vec<_> = p.entries().iter().map(|e| e.origin.as_str()).collect();
        assert!(origins.contains(&"@claude") && origins.contains(&"box"));
        let mut b = PolicyBuilder::new();
        assert!(matches!(
            b.add(List::Allow, "@nope", "x"),
            Err(RuleError::UnknownPreset(_))
        ));
        assert!(b.add(List::Allow, "-@nope", "x").is_err());
        // removing what nobody added is no error (an outer level may not have it)
        b.add(List::Allow, "-example.com", "x").unwrap();
        b.add(List::Allow, "-@npm", "x").unwrap();
    }

    #[test]
    fn learn_allows_what_no_rule_names_but_deny_still_wins() {
        let mut spec = PolicySpec {
            deny: vec!["evil.test".into()],
            learn: true,
            ..Default::default()
        };
        let p = spec.compile("t").unwrap();
        let d = p.decide(&h("anything.test"), 8443);
        assert_eq!((d.allowed, d.reason), (Some(false), Reason::Learn));
        assert!(allowed(&p, "1.1.1.1", 443));
        assert_eq!(p.decide(&h("evil.test"), 443).reason, Reason::Denied);
        assert_eq!(p.decide(&h(SENTINEL), 443).reason, Reason::Sentinel);
        spec.learn = false;
        assert_eq!(
            spec.compile("t")
                .unwrap()
                .decide(&h("anything.test"), 443)
                .reason,
            Reason::NoRule
        );
    }

    #[test]
    fn the_sentinel_is_refused_even_when_a_rule_names_it() {
        let p = policy(&[SENTINEL], &[SENTINEL], &[]);
        let d = p.decide(&h(SENTINEL), 443);
        assert_eq!(d.reason, Reason::Sentinel);
        assert!(!d.is_allowed());
    }

    #[test]
    fn idna_rules_match_the_punycode_a_client_sends() {
        let p = policy(&["bücher.example"], &[], &[]);
        assert!(allowed(&p, "xn--bcher-kva.example", 443));
        assert!(allowed(&p, "XN--BCHER-KVA.example.", 443));
        assert_eq!(p.entries()[0].rule.text(), "xn--bcher-kva.example");
    }

    #[test]
    fn rule_texts_are_normalised() {
        for (raw, norm) in [
            ("Example.com", "example.com"),
            (" a.b:22 ", "a.b:22"),
            ("*.Example.Com.", "*.example.com"),
            ("[2606:4700:0:0::1]:443", "[2606:4700::1]:443"),
            ("1.1.1.1", "1.1.1.1"),
            ("0x01010101:443", "1.1.1.1:443"),
        ] {
            assert_eq!(Rule::parse(raw).unwrap().text(), norm, "{raw}");
        }
        for bad in [
            "",
            "  ",
            "a b",
            "[::1",
            "[::1]x",
            "a.com:1:2",
            "http://a.com",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spec_errors_name_the_list_and_index() {
        let spec: PolicySpec =
            serde_json::from_str(r#"{"allow": ["a.com", "*.com"], "deny": []}"#).unwrap();
        let e = spec.compile("t").unwrap_err();
        assert_eq!((e.list, e.index), ("allow", 1));
        assert!(e.to_string().starts_with("allow[1]: "), "{e}");
        assert!(serde_json::from_str::<PolicySpec>(r#"{"alow": []}"#).is_err());
    }

    #[test]
    fn decisions_display() {
        let p = policy(&["a.com"], &[], &[]);
        assert_eq!(
            p.decide(&h("a.com"), 443).to_string(),
            "allow (rule: a.com)"
        );
        assert_eq!(p.decide(&h("b.com"), 443).to_string(), "deny (no_rule)");
    }
}
