//! What bounds a box beyond its files: its process, memory and CPU limits, the
//! capabilities it gets back after all are dropped, and its network (`box.network`,
//! `box.allow`), each resolved from the settings levels with where it came from, for
//! the launch's plan and `box info`. Pure over a settings stack.
//!
//! Every box also runs with `--cap-drop=ALL` and `no-new-privileges` (see
//! [`crate::runtime::spec::Confinement`]); no setting turns those off. A level within
//! the box's reach (a standalone box's own `project.yaml`) may only tighten what is
//! here ([`Stack::box_in_reach`]): what it would loosen is ignored, with one warning
//! per key at launch ([`Policy::warnings`]).

use std::fmt::Write as _;

use anyhow::Result;

use crate::egress::policy::{List, PolicyBuilder};
use crate::error::UserError;
use crate::runtime::EngineKind;
use crate::runtime::spec::{Limits, Network};
use crate::settings::keys;
use crate::settings::stack::{Origin, Setting, Stack};
use crate::settings::value;

/// `box.network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// The engine's own network.
    Full,
    /// No network of its own; out only through the host-side proxy, to `box.allow`.
    Allowlist,
    /// No network at all: loopback only.
    None,
}

impl NetworkMode {
    pub fn name(self) -> &'static str {
        match self {
            NetworkMode::Full => "full",
            NetworkMode::Allowlist => "allowlist",
            NetworkMode::None => "none",
        }
    }
}

/// The hardening and network policy in force for a box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `None`: unlimited.
    pub pids_limit: Setting<Option<u32>>,
    pub memory: Setting<Option<String>>,
    pub cpus: Setting<Option<String>>,
    pub cap_add: Setting<Vec<String>>,
    pub network: Setting<NetworkMode>,
    /// `box.allow` composed: each layer's entries (outermost first) and the rules that
    /// result.
    pub allow_layers: Vec<(Origin, Vec<String>)>,
    pub allow_rules: Vec<String>,
    /// Keys whose value in a file within the box's reach was ignored, and that file.
    pub ignored: Vec<(&'static str, std::path::PathBuf)>,
}

/// A key's value in force, parsed by `parse`, or a one-line error naming the value
/// and where it is set.
fn typed<T>(
    levels: &Stack,
    name: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Setting<T>> {
    let r = levels.str_setting(name, None)?;
    let raw = r.value.unwrap_or_default();
    match parse(&raw) {
        Ok(value) => Ok(Setting {
            value,
            origin: r.origin,
        }),
        Err(expected) => Err(UserError::new(format!(
            "invalid value for {name}: '{raw}' ({}; expected {expected})",
            r.origin
        ))
        .hint(format!(
            "change it with `kanibako config {name}=VALUE` at that level"
        ))
        .into()),
    }
}

fn optional<T>(
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        parse(raw).map(Some)
    }
}

impl Policy {
    /// The policy for a box whose settings levels are `levels` (with its crab's).
    pub fn resolve(levels: &Stack) -> Result<Self> {
        let pids_limit = typed(levels, "box.pids_limit", |raw| {
            if raw.trim().is_empty() {
                value::pids_limit(keys::DEFAULT_PIDS_LIMIT)
            } else {
                value::pids_limit(raw)
            }
        })?;
        let memory = typed(levels, "box.memory", |raw| {
            optional(raw, |s| value::size(s).map(value::size_text))
        })?;
        let cpus = typed(levels, "box.cpus", |raw| {
            optional(raw, |s| value::cpus(s).map(value::cpus_text))
        })?;
        let cap_add = typed(levels, "box.cap_add", |raw| {
            value::caps(raw).map(|c| c.into_iter().map(str::to_owned).collect())
        })?;
        let network = typed(levels, "box.network", |raw| match raw {
            "" | "full" => Ok(NetworkMode::Full),
            "allowlist" => Ok(NetworkMode::Allowlist),
            "none" => Ok(NetworkMode::None),
            _ => Err(format!("one of {}", value::NETWORK_MODES.join(", "))),
        })?;
        let allow_def = keys::find("box.allow").expect("a built-in key");
        let allow_layers = levels.layers(allow_def)?;
        let mut builder = PolicyBuilder::new();
        for (origin, entries) in &allow_layers {
            for e in entries {
                builder
                    .add(List::Allow, e, &origin.to_string())
                    .map_err(|err| {
                        let mut hints = err.hints();
                        hints.insert(0, "remove or fix that entry at that level".into());
                        hints.into_iter().fold(
                            UserError::new(format!("invalid box.allow entry ({origin}): {err}")),
                            UserError::hint,
                        )
                    })?;
            }
        }
        let allow_rules = builder
            .build()
            .entries()
            .iter()
            .map(|e| e.rule.text().to_owned())
            .collect();
        Ok(Self {
            pids_limit,
            memory,
            cpus,
            cap_add,
            network,
            allow_layers,
            allow_rules,
            ignored: levels.loosening_ignored()?,
        })
    }

    /// The limits a confined run of this box gets.
    pub fn limits(&self) -> Limits {
        Limits {
            pids: self.pids_limit.value,
            memory: self.memory.value.clone(),
            cpus: self.cpus.value.clone(),
            cap_add: self.cap_add.value.clone(),
        }
    }

    pub fn run_network(&self) -> Network {
        match self.network.value {
            NetworkMode::Full => Network::Default,
            // the proxy's socket is its only way out
            NetworkMode::Allowlist | NetworkMode::None => Network::None,
        }
    }

    /// What a launch on `engine` warns about: each loosening value that was ignored,
    /// and added capabilities that docker does not pass to a non-root user.
    pub fn warnings(&self, engine: EngineKind) -> Vec<String> {
        let mut out: Vec<String> = self
            .ignored
            .iter()
            .map(|(key, file)| {
                format!(
                    "ignoring {key} in {}: a standalone box's own settings file lies in its workspace, which a repository or the box can write, so it may tighten the box's hardening but not loosen it; set it in the system config",
                    crate::fsutil::shown(file).display()
                )
            })
            .collect();
        if engine == EngineKind::Docker && !self.cap_add.value.is_empty() {
            out.push(format!(
                "docker gives added capabilities to a container's root only and the agent is not root, so box.cap_add ({}) has no effect in this box; podman passes them on",
                self.cap_add.value.join(", ")
            ));
        }
        out
    }

    /// `box info`'s lines: each part of the policy and where it comes from.
    pub fn info_lines(&self) -> Vec<(&'static str, String)> {
        let with = |v: String, o: &Origin| format!("{v} ({o})");
        let caps = if self.cap_add.value.is_empty() {
            "all dropped".to_owned()
        } else {
            format!("all dropped but {}", self.cap_add.value.join(", "))
        };
        let limit = |v: &Option<String>| v.clone().unwrap_or_else(|| "no limit".into());
        let mut allow = String::new();
        for (i, (origin, entries)) in self.allow_layers.iter().enumerate() {
            if i > 0 {
                allow.push_str("; ");
            }
            let _ = write!(allow, "{} ({origin})", entries.join(" "));
        }
        vec![
            (
                "Capabilities",
                format!("{}, no-new-privileges", with(caps, &self.cap_add.origin)),
            ),
            (
                "Processes",
                with(
                    self.pids_limit
                        .value
                        .map_or_else(|| "unlimited".into(), |n| n.to_string()),
                    &self.pids_limit.origin,
                ),
            ),
            (
                "Memory",
                with(limit(&self.memory.value), &self.memory.origin),
            ),
            ("CPUs", with(limit(&self.cpus.value), &self.cpus.origin)),
            (
                "Network",
                with(self.network.value.name().into(), &self.network.origin),
            ),
            (
                "Allow",
                format!("{allow} = {} rules", self.allow_rules.len()),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use crate::settings::keys::Level;
    use crate::settings::stack::Source;
    use std::path::{Path, PathBuf};

    fn levels(boxed: &str, system: &str, in_reach: bool) -> Stack {
        let doc = |p: &str, t: &str| Document::parse(Path::new(p), t).unwrap();
        Stack {
            box_in_reach: in_reach,
            sources: vec![
                Source {
                    level: Level::Box,
                    doc: doc("/p/.kanibako/project.yaml", boxed),
                    env_file: None,
                },
                Source {
                    level: Level::System,
                    doc: doc("/c/kanibako.yaml", system),
                    env_file: None,
                },
            ],
        }
    }

    fn at(level: Level, file: &str) -> Origin {
        Origin::Level {
            level,
            file: PathBuf::from(file),
        }
    }

    #[test]
    fn defaults_bound_processes_only() {
        let p = Policy::resolve(&levels("", "", false)).unwrap();
        assert_eq!(p.limits(), Limits::default());
        assert_eq!(p.run_network(), Network::Default);
        assert_eq!(p.pids_limit.origin, Origin::Default);
        assert!(p.ignored.is_empty());
        assert_eq!(p.allow_rules.len(), 16, "{:?}", p.allow_rules);
    }

    #[test]
    fn every_key_is_typed_with_its_origin() {
        let p = Policy::resolve(&levels(
            "box:\n  pids_limit: 128\n  network: none\n",
            "box:\n  memory: 4096m\n  cpus: 1.50\n  cap_add: [net_raw]\n  allow: ['-@github', example.com]\n",
            false,
        ))
        .unwrap();
        assert_eq!(
            p.limits(),
            Limits {
                pids: Some(128),
                memory: Some("4g".into()),
                cpus: Some("1.5".into()),
                cap_add: vec!["NET_RAW".into()],
            }
        );
        assert_eq!(
            p.pids_limit.origin,
            at(Level::Box, "/p/.kanibako/project.yaml")
        );
        assert_eq!(p.memory.origin, at(Level::System, "/c/kanibako.yaml"));
        assert_eq!(p.run_network(), Network::None);
        assert!(p.allow_rules.contains(&"example.com".to_owned()));
        assert!(!p.allow_rules.contains(&"github.com".to_owned()));
        let lines = p.info_lines();
        assert_eq!(
            lines[0],
            (
                "Capabilities",
                "all dropped but NET_RAW (system: /c/kanibako.yaml), no-new-privileges".into()
            )
        );
        assert_eq!(
            lines[4],
            ("Network", "none (box: /p/.kanibako/project.yaml)".into())
        );
        assert_eq!(p.warnings(EngineKind::Docker).len(), 1);
        assert!(p.warnings(EngineKind::Podman).is_empty());
    }

    /// Issue 13: a standalone box's own file (in its workspace) may tighten, never
    /// loosen: a higher limit, no limit, any added capability, full network or a new
    /// allow rule there is ignored, each with a warning naming the file and the key.
    #[test]
    fn a_file_within_reach_only_tightens() {
        let loose = "box:\n  pids_limit: unlimited\n  memory: 8g\n  cpus: 4\n  cap_add: [NET_RAW]\n  network: full\n  allow: [evil.test, '-@npm']\n";
        let system = "box:\n  memory: 2g\n  cpus: 1\n  network: none\n";
        let p = Policy::resolve(&levels(loose, system, true)).unwrap();
        assert_eq!(
            p.limits(),
            Limits {
                pids: Some(4096),
                memory: Some("2g".into()),
                cpus: Some("1".into()),
                cap_add: Vec::new(),
            }
        );
        assert_eq!(p.run_network(), Network::None);
        assert!(!p.allow_rules.contains(&"evil.test".to_owned()));
        assert!(
            !p.allow_rules.contains(&"registry.npmjs.org".to_owned()),
            "a removal tightens, so it stays"
        );
        let warned: Vec<&str> = p.ignored.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            warned,
            [
                "box.pids_limit",
                "box.memory",
                "box.cpus",
                "box.cap_add",
                "box.network",
                "box.allow"
            ]
        );
        let w = p.warnings(EngineKind::Podman);
        assert_eq!(w.len(), 6);
        assert!(
            w[0].starts_with("ignoring box.pids_limit in /p/.kanibako/project.yaml: "),
            "{w:?}"
        );
        // the same file is obeyed where it tightens
        let tight =
            "box:\n  pids_limit: 64\n  memory: 1g\n  cpus: 0.5\n  cap_add: []\n  network: none\n";
        let p = Policy::resolve(&levels(tight, "box:\n  cap_add: [MKNOD]\n", true)).unwrap();
        assert_eq!(
            p.limits(),
            Limits {
                pids: Some(64),
                memory: Some("1g".into()),
                cpus: Some("0.5".into()),
                cap_add: Vec::new(),
            }
        );
        assert_eq!(p.run_network(), Network::None);
        assert!(p.ignored.is_empty());
        // and where the box is not in reach, the box level loosens freely
        let p = Policy::resolve(&levels(loose, system, false)).unwrap();
        assert_eq!(p.limits().pids, None);
        assert_eq!(p.limits().cap_add, ["NET_RAW"]);
    }

    /// `allowlist` is tighter than `full` and looser than `none`: a box's own file
    /// may choose it over `full`, but not over `none`.
    #[test]
    fn allowlist_sits_between_full_and_none() {
        let own = "box:\n  network: allowlist\n";
        let p = Policy::resolve(&levels(own, "", true)).unwrap();
        assert_eq!(p.network.value, NetworkMode::Allowlist);
        assert_eq!(p.run_network(), Network::None, "no network of its own");
        assert!(p.ignored.is_empty());
        let p = Policy::resolve(&levels(own, "box:\n  network: none\n", true)).unwrap();
        assert_eq!(p.network.value, NetworkMode::None);
        let warned: Vec<&str> = p.ignored.iter().map(|(k, _)| *k).collect();
        assert_eq!(warned, ["box.network"]);
    }

    #[test]
    fn a_bad_value_in_a_file_names_the_file() {
        let err = Policy::resolve(&levels("", "box:\n  memory: lots\n", false))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid value for box.memory: 'lots' (system: /c/kanibako.yaml;"),
            "{err}"
        );
        let err = Policy::resolve(&levels("box:\n  allow: ['*.com']\n", "", false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("box.allow entry (box: /p/.kanibako/project.yaml)"),
            "{err}"
        );
    }
}
