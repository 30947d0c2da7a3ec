//! What learn mode proposes: from a decision log, the rules that would have allowed
//! what no rule allowed, with how often and how much each was used.
//!
//! Pure. Proposals are exact hosts (a port only when it is not 80 or 443): widening
//! to a wildcard is the user's call, never inferred.

use std::collections::BTreeMap;

use super::journal::Record;
use super::name;
use super::policy::{Policy, Reason, Rule};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proposal {
    /// In rule syntax, normalised.
    pub rule: String,
    pub connections: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub members: Vec<String>,
}

/// Rules for what `records` show was allowed only by learn mode (or refused for want
/// of a rule), leaving out what `policy` already allows. Most used first.
pub fn propose(records: &[Record], policy: &Policy) -> Vec<Proposal> {
    let mut by_rule: BTreeMap<String, Proposal> = BTreeMap::new();
    for r in records {
        let wanted = r.decision == "learn"
            || (r.decision == "deny" && (r.reason == "no_rule" || r.reason == "ip_literal"));
        if !wanted || r.port == 0 {
            continue;
        }
        let Ok(host) = name::parse_host(&r.host) else {
            continue;
        };
        if policy.decide(&host, r.port).reason == Reason::Rule {
            continue;
        }
        let text = if r.port == 80 || r.port == 443 {
            host.to_string()
        } else {
            format!("{host}:{}", r.port)
        };
        let Ok(rule) = Rule::parse(&text) else {
            continue;
        };
        let p = by_rule.entry(rule.text().to_owned()).or_default();
        p.rule = rule.text().to_owned();
        p.connections += 1;
        p.bytes_up += r.bytes_up;
        p.bytes_down += r.bytes_down;
        if !p.members.contains(&r.member) {
            p.members.push(r.member.clone());
        }
    }
    let mut out: Vec<Proposal> = by_rule.into_values().collect();
    out.sort_by(|a, b| b.connections.cmp(&a.connections).then(a.rule.cmp(&b.rule)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::policy::PolicySpec;

    fn rec(host: &str, port: u16, decision: &str, reason: &str, member: &str) -> Record {
        Record {
            host: host.into(),
            port,
            decision: decision.into(),
            reason: reason.into(),
            member: member.into(),
            bytes_up: 10,
            bytes_down: 100,
            ..Default::default()
        }
    }

    #[test]
    fn proposes_exact_hosts_with_counts() {
        let policy = PolicySpec {
            allow: vec!["known.test".into()],
            learn: true,
            ..Default::default()
        }
        .compile("t")
        .unwrap();
        let records = [
            rec("api.anthropic.com", 443, "learn", "learn", "director"),
            rec("api.anthropic.com", 443, "learn", "learn", "h1"),
            rec("api.anthropic.com", 80, "learn", "learn", "director"),
            rec("git.example.com", 22, "learn", "learn", "director"),
            rec("known.test", 443, "allow", "rule", "director"),
            rec("refused.test", 443, "deny", "no_rule", "director"),
            rec("1.1.1.1", 443, "deny", "ip_literal", "director"),
            rec("denied.test", 443, "deny", "deny_rule", "director"),
            rec(
                "kanibako-egress-selftest.invalid",
                443,
                "deny",
                "sentinel",
                "director",
            ),
            rec("lo.test", 443, "deny", "non_public", "director"),
            rec("", 0, "error", "bad_request", "director"),
            rec("BAD HOST", 443, "learn", "learn", "director"),
        ];
        let p = propose(&records, &policy);
        let rules: Vec<_> = p.iter().map(|p| p.rule.as_str()).collect();
        assert_eq!(
            rules,
            [
                "api.anthropic.com",
                "1.1.1.1",
                "git.example.com:22",
                "refused.test"
            ]
        );
        assert_eq!(p[0].connections, 3);
        assert_eq!((p[0].bytes_up, p[0].bytes_down), (30, 300));
        assert_eq!(p[0].members, ["director", "h1"]);
    }
}
