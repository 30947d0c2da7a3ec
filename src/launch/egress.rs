//! A launch under `box.network = allowlist`: the proxy's part of the hub's config
//! (the rules from `box.allow`, where decisions are logged), and what the run gets —
//! no network of its own (the plan already says `--network=none`), the proxy variables,
//! and an entry that starts the in-box forwarder before the command
//! ([`crate::egress::entry`], which the box's helpers get too).
//!
//! Fail closed by construction: without the hub, its socket or the forwarder, the box
//! has loopback only.

use std::path::{Path, PathBuf};

use crate::egress::env::{DEFAULT_LISTEN, proxy_env};
use crate::egress::policy::PolicySpec;
use crate::hardening::{NetworkMode, Policy};
use crate::hub::egress::EgressConfig;
use crate::runtime::spec::RunSpec;

/// The host variable of test pins (`name=addr,…`): names answered with these
/// addresses, which are then allowed even though private (a loopback test origin).
pub const PIN_VAR: &str = "KANIBAKO_EGRESS_PIN";

/// Where box `hash`'s proxy logs its decisions: `$STATE/egress/<hash16>.jsonl`, kept
/// after the box stops.
pub fn journal_path(state: &Path, hash: &str) -> PathBuf {
    state
        .join("egress")
        .join(format!("{}.jsonl", &hash[..hash.len().min(16)]))
}

/// The flag a learn session's network mode comes from.
pub const LEARN: &str = "box net learn";

/// The box's hardening policy for this launch: as its settings say, except that a
/// learn session runs under `allowlist` whatever `box.network` is (learning what a
/// box reaches is the way to its allow list).
pub fn policy(k: &super::facts::Known<'_>) -> anyhow::Result<Policy> {
    let mut policy = Policy::resolve(&k.levels)?;
    if k.launch.learn {
        policy.network = crate::settings::stack::Setting::flag(NetworkMode::Allowlist, LEARN);
    }
    Ok(policy)
}

/// A learn session runs in a container of its own: a running one was started without
/// learn mode, so what it reaches would not be learnt.
pub fn refuse_running(b: &crate::boxes::BoxIdentity) -> crate::error::UserError {
    crate::error::UserError::new(format!(
        "box {} is running, and not in learn mode",
        b.display_name()
    ))
    .hint(format!(
        "stop it first (kanibako stop {}), then learn",
        b.display_name()
    ))
}

/// The proxy's config for a box under `policy`, or `None` when it is not `allowlist`.
/// `pins` is [`PIN_VAR`]'s value; `learn`: what no rule allows is let out and logged.
pub fn section(
    policy: &Policy,
    state: &Path,
    hash: &str,
    pins: Option<&str>,
    learn: bool,
) -> Option<EgressConfig> {
    if policy.network.value != NetworkMode::Allowlist {
        return None;
    }
    let pins: Vec<String> = pins
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    // a pinned name is the host user's own test origin: allowed on the ports its
    // rules name, even at a private address
    let allow_private = policy
        .allow_rules
        .iter()
        .filter(|r| {
            let host = r.rsplit_once(':').map_or(r.as_str(), |(h, _)| h);
            pins.iter()
                .any(|p| p.split_once('=').is_some_and(|(n, _)| n == host))
        })
        .cloned()
        .collect();
    Some(EgressConfig {
        policy: PolicySpec {
            allow: policy.allow_rules.clone(),
            allow_private,
            deny: Vec::new(),
            learn,
        },
        journal: journal_path(state, hash),
        pins,
    })
}

/// The proxy's config for this launch, or `None` when the box is not under
/// `allowlist` (or its settings do not resolve: the plan reports that).
pub fn for_launch(k: &super::facts::Known<'_>) -> Option<EgressConfig> {
    let policy = policy(k).ok()?;
    let pins = k.cx.host.var_str(PIN_VAR);
    section(
        &policy,
        &k.cx.paths.state,
        &k.b().hash,
        pins,
        k.launch.learn,
    )
}

/// `spec` as a box under `allowlist` runs it: the proxy variables set (over the user's
/// own: no other proxy is reachable from the box), and the entry wrapped so the forwarder runs first. A run that uses
/// the rig's own entrypoint runs its command (or `/bin/bash`) instead.
pub fn add_to(mut spec: RunSpec) -> RunSpec {
    let listen = DEFAULT_LISTEN.parse().expect("a socket address");
    for (k, v) in proxy_env(listen) {
        spec.env.insert(k.to_owned(), v);
    }
    let (entrypoint, command) =
        crate::egress::entry::wrap(spec.entrypoint.take(), std::mem::take(&mut spec.command));
    spec.entrypoint = Some(entrypoint);
    spec.command = command;
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{Network, RunMode, UserMapping};
    use crate::settings::stack::{Origin, Setting};
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    fn policy(mode: NetworkMode, rules: &[&str]) -> Policy {
        fn s<T>(value: T) -> Setting<T> {
            Setting {
                value,
                origin: Origin::Default,
            }
        }
        Policy {
            pids_limit: s(None),
            memory: s(None),
            cpus: s(None),
            cap_add: s(Vec::new()),
            network: s(mode),
            allow_layers: Vec::new(),
            allow_rules: rules.iter().map(|r| r.to_string()).collect(),
            ignored: Vec::new(),
        }
    }

    #[test]
    fn only_allowlist_has_a_proxy_and_pins_allow_their_own_names_private() {
        let st = Path::new("/s");
        let hash = "0123456789abcdef0123";
        for mode in [NetworkMode::Full, NetworkMode::None] {
            let p = policy(mode, &["a.test"]);
            assert!(section(&p, st, hash, None, false).is_none(), "{mode:?}");
        }
        let p = policy(NetworkMode::Allowlist, &["a.test:8080", "b.test"]);
        let s = section(&p, st, hash, Some("a.test=127.0.0.1, "), false).unwrap();
        assert_eq!(s.policy.allow, ["a.test:8080", "b.test"]);
        assert_eq!(s.policy.allow_private, ["a.test:8080"]);
        assert_eq!(s.pins, ["a.test=127.0.0.1"]);
        assert_eq!(s.journal, Path::new("/s/egress/0123456789abcdef.jsonl"));
        s.validate().unwrap();
        assert!(!s.policy.learn);
        let s = section(&p, st, hash, None, true).unwrap();
        assert!(s.policy.allow_private.is_empty() && s.pins.is_empty());
        assert!(s.policy.learn, "a learn session's proxy lets out and logs");
    }

    #[test]
    fn the_forwarder_starts_before_the_command_and_the_proxy_env_is_set() {
        let spec = RunSpec {
            name: "kanibako-app".into(),
            image: "i".into(),
            mode: RunMode::Batch,
            network: Network::None,
            user: UserMapping::Image,
            confined: None,
            workdir: String::new(),
            mounts: Vec::new(),
            env: BTreeMap::from([("HTTPS_PROXY".into(), "http://mine:1".into())]),
            pass_env: Vec::new(),
            labels: BTreeMap::new(),
            entrypoint: Some("claude".into()),
            command: vec!["--resume".into()],
        };
        let s = add_to(spec.clone());
        assert_eq!(s.entrypoint.as_deref(), Some("/bin/sh"));
        assert_eq!(s.command[0], "-c");
        let script = s.command[1].to_str().unwrap();
        assert!(
            script.starts_with("/home/agent/.local/bin/kanibako egress-forward --detach 127.0.0.1:3128 /run/kanibako/egress.sock "),
            "{script}"
        );
        assert!(script.ends_with("exec \"$@\""));
        assert_eq!(
            s.command[2..],
            ["kanibako-egress", "claude", "--resume"].map(OsString::from)
        );
        assert_eq!(s.env["http_proxy"], "http://127.0.0.1:3128");
        assert_eq!(
            s.env["HTTPS_PROXY"], "http://127.0.0.1:3128",
            "no other is reachable"
        );
        let bare = add_to(RunSpec {
            entrypoint: None,
            command: Vec::new(),
            ..spec
        });
        assert_eq!(bare.command[3], "/bin/bash");
    }
}
