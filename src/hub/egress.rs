//! The box's egress proxy as one of the hub's per-member services (`box.network =
//! allowlist`): `egress.sock` beside the control socket in every member's directory,
//! behind the same identity check, living and dying with the hub. The proxy itself is
//! [`crate::egress::proxy`]; this only configures and hosts it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::server::{Accepted, Hub, Service};
use crate::egress::journal::{self, Journal};
use crate::egress::policy::PolicySpec;
use crate::egress::proxy::{self, Proxy};
use crate::egress::resolve::{Resolver, StaticResolver, SystemResolver};

/// What the hub's config says of the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// The rules, from `box.allow` (composed by the launch).
    pub policy: PolicySpec,
    /// The decision log (JSON lines), read by `kanibako box net log`.
    pub journal: PathBuf,
    /// Names answered with these addresses instead of DNS (`NAME=ADDR`); a host-side
    /// test hook (`KANIBAKO_EGRESS_PIN`), never from a box.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<String>,
}

impl EgressConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.journal.is_absolute() {
            return Err("egress.journal must be an absolute path".into());
        }
        self.policy
            .compile("hub config")
            .map_err(|e| format!("egress.policy: {e}"))?;
        self.resolver().map(|_| ())
    }

    fn resolver(&self) -> Result<Arc<dyn Resolver>, String> {
        if self.pins.is_empty() {
            return Ok(Arc::new(SystemResolver));
        }
        let mut r = StaticResolver::new().with_fallback(Arc::new(SystemResolver));
        for p in &self.pins {
            let (name, addr) = p
                .split_once('=')
                .and_then(|(n, a)| Some((n, a.parse::<IpAddr>().ok()?)))
                .ok_or_else(|| format!("egress.pins: {p:?} is not NAME=ADDR"))?;
            r = r.pin(name.trim_end_matches('.'), &[addr]);
        }
        Ok(Arc::new(r))
    }

    /// The proxy this config describes, its journal opened.
    pub fn proxy(&self) -> Result<Proxy, String> {
        let policy = self
            .policy
            .compile("hub config")
            .map_err(|e| format!("egress.policy: {e}"))?;
        if let Some(dir) = self.journal.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let journal = Journal::open(&self.journal, journal::DEFAULT_MAX_BYTES)
            .map_err(|e| format!("opening the egress log {}: {e}", self.journal.display()))?;
        crate::egress::ignore_sigpipe();
        crate::egress::raise_fd_limit();
        Ok(Proxy::new(
            policy,
            self.resolver()?,
            journal,
            proxy::Limits::default(),
        ))
    }
}

/// The proxy served on `egress.sock`.
pub struct Egress(pub Proxy);

impl Service for Egress {
    fn socket_name(&self) -> &'static str {
        crate::egress::SOCKET_NAME
    }

    // The proxy keeps its own budget across all members (429 beyond it).
    fn max_connections(&self, _limits: &Limits) -> usize {
        self.0.max_tunnels()
    }

    fn serve(&self, _hub: &Arc<Hub>, conn: Accepted) {
        self.0.serve_here(conn.stream, &conn.member.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_checked_before_the_hub_serves_it() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = EgressConfig {
            policy: PolicySpec {
                allow: vec!["example.com".into()],
                ..Default::default()
            },
            journal: d.path().join("logs/egress.jsonl"),
            pins: vec!["example.com=192.0.2.7".into()],
        };
        cfg.validate().unwrap();
        let p = cfg.proxy().unwrap();
        assert!(p.max_tunnels() > 0);
        assert!(
            d.path().join("logs").is_dir(),
            "the journal's directory made"
        );
        cfg.pins = vec!["example.com".into()];
        assert!(cfg.validate().unwrap_err().contains("NAME=ADDR"));
        cfg.pins.clear();
        cfg.policy.allow = vec!["*.com".into()];
        assert!(cfg.validate().unwrap_err().starts_with("egress.policy"));
        cfg.policy.allow.clear();
        cfg.journal = "rel.jsonl".into();
        assert!(cfg.validate().is_err());
    }
}
