//! Path entries `{scope}.path.{seeded,share_ro,share_rw}.<name>: host:guest` (spec:
//! upstream-cli-and-data §7.5): seeds are files or trees copied once into a new box's
//! home; shares are mounted on every launch, read-only or read-write.
//!
//! Resolution is pure over the loaded levels; the copy writes through [`SafeDir`], so it
//! lands inside the home whatever the home contains.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::agents::resources::{Resource, Scope as ResourceScope};
use crate::boxes::home::SafeDir;
use crate::output;
use crate::paths::Paths;
use crate::settings::expr::{self, ExprError, Scope, split_bind};
use crate::settings::stack::Stack;

const SCOPES: [&str; 4] = ["system", "crab", "workset", "box"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub name: String,
    pub host: PathBuf,
    /// Below the home (`/home/agent/<rel>`).
    pub guest_rel: PathBuf,
}

struct SeedScope<'a> {
    paths: &'a Paths,
    home: String,
    crab: &'a str,
    guest: bool,
}

impl Scope for SeedScope<'_> {
    fn tilde(&self) -> Option<&str> {
        Some(if self.guest {
            "/home/agent"
        } else {
            &self.home
        })
    }

    fn variable(&self, name: &str) -> Result<Option<String>, ExprError> {
        match name {
            "CRAB" => Ok(Some(self.crab.to_owned())),
            "XDG_DATA_HOME" => Ok(Some(
                self.paths.bases.data_home.to_string_lossy().into_owned(),
            )),
            n if expr::is_known_variable(n) => Ok(None),
            n => Err(ExprError::UnknownVariable(n.to_owned())),
        }
    }

    fn reference(&self, key: &str, _: &mut Vec<String>) -> Result<String, ExprError> {
        let p = &self.paths;
        let dir = match key {
            "system.path.data" => &p.data,
            "system.path.boxes" => &p.boxes,
            "system.path.crabs" => &p.crabs,
            "system.path.comms" => &p.comms,
            "system.path.share_ro" => &p.share_ro,
            "system.path.share_rw" => &p.share_rw,
            "system.path.templates" => &p.templates,
            "system.path.ws_hints" => &p.ws_hints,
            _ => return Err(ExprError::UnknownReference(key.to_owned())),
        };
        Ok(dir.to_string_lossy().into_owned())
    }
}

/// The entries of `kind` (`seeded`, `share_ro`, `share_rw`) in force: per key the most
/// specific level wins; `""` or `empty` there means none. Ordered by scope (system,
/// crab, workset, box), then name. Unusable entries come back as warnings. A
/// standalone box's own level is not read (`trust_box: false`): its file lies in its
/// workspace, and an entry there would pick a host path to copy or mount.
pub fn resolve(
    levels: &Stack,
    paths: &Paths,
    crab: &str,
    kind: &str,
    trust_box: bool,
) -> (Vec<Seed>, Vec<String>) {
    let docs = levels
        .sources
        .iter()
        .filter(|s| trust_box || s.level != crate::settings::keys::Level::Box)
        .map(|s| &s.doc);
    let mut winners: BTreeMap<(usize, String), String> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for doc in docs {
        for (key, value) in doc.flat_strings() {
            let Some((scope, name)) = SCOPES.iter().enumerate().find_map(|(i, s)| {
                key.strip_prefix(&format!("{s}.path.{kind}."))
                    .map(|n| (i, n.to_owned()))
            }) else {
                continue;
            };
            if seen.insert(key.clone()) {
                winners.insert((scope, name), value);
            }
        }
    }
    let home = paths.home().to_string_lossy().into_owned();
    let mut seeds = Vec::new();
    let mut warnings = Vec::new();
    for ((_, name), value) in winners {
        if value.is_empty() || value == "empty" {
            continue;
        }
        let Some((host, guest)) = split_bind(&value) else {
            warnings.push(format!(
                "seed {name}: '{value}' is not host_src:guest_dest; skipping"
            ));
            continue;
        };
        let expand = |s: &str, guest: bool| {
            let scope = SeedScope {
                paths,
                home: home.clone(),
                crab,
                guest,
            };
            expr::expand(s, &scope, &mut Vec::new())
        };
        let (host, guest) = match (expand(host, false), expand(guest, true)) {
            (Ok(h), Ok(g)) => (h, g),
            (Err(e), _) | (_, Err(e)) => {
                warnings.push(format!("seed {name}: {e}; skipping"));
                continue;
            }
        };
        let Some(rel) = guest_below_home(&guest) else {
            warnings.push(format!(
                "seed {name}: guest_dest '{guest}' is outside /home/agent; skipping"
            ));
            continue;
        };
        seeds.push(Seed {
            name,
            host: PathBuf::from(host),
            guest_rel: rel,
        });
    }
    (seeds, warnings)
}

/// `/home/agent/x/y` → `x/y`; anything outside (or climbing out with `..`) → `None`.
fn guest_below_home(guest: &str) -> Option<PathBuf> {
    let rel = Path::new(guest).strip_prefix("/home/agent").ok()?;
    rel.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then(|| rel.to_owned())
        .filter(|r| !r.as_os_str().is_empty())
}

/// Copy the seeds into the home; a missing source is a warning.
pub fn apply(home: &SafeDir, seeds: &[Seed]) -> std::io::Result<()> {
    for s in seeds {
        if s.host.is_dir() {
            super::prep::copy_template(&s.host, home, &s.guest_rel)?;
        } else if s.host.is_file() {
            let (Some(parent), Some(name)) = (s.guest_rel.parent(), s.guest_rel.file_name()) else {
                continue;
            };
            let dir = home.create_dir_all(parent)?;
            dir.replace(OsStr::new(name), &std::fs::read(&s.host)?, 0o644)?;
        } else {
            output::warn(format_args!(
                "seed {}: host_src '{}' does not exist; skipping",
                s.name,
                s.host.display()
            ));
        }
    }
    Ok(())
}

/// The `seeded` agent resources the home lacks, copied from their shared copy where
/// there is one (nothing is made on the host side).
pub fn apply_resources(home: &SafeDir, found: &[Resource]) -> std::io::Result<()> {
    for r in found.iter().filter(|r| r.scope == ResourceScope::Seeded) {
        let rel = Path::new(&r.guest_rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let present = home
            .open_dir(parent)?
            .is_some_and(|d| d.kind(name).is_some());
        if present || crate::fsutil::is_symlink(&r.host) {
            continue;
        }
        if r.dir && r.host.is_dir() {
            super::prep::copy_template(&r.host, home, rel)?;
        } else if !r.dir && r.host.is_file() {
            let dir = home.create_dir_all(parent)?;
            dir.replace(name, &std::fs::read(&r.host)?, 0o644)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use crate::host::HostEnv;
    use crate::paths::Bases;
    use crate::settings::keys::Level;
    use crate::settings::stack::Source;

    fn paths() -> Paths {
        let h = HostEnv::for_test(Path::new("/"), &[("HOME", "/home/alice")]);
        Paths::resolve(&h, Bases::from_host(&h).unwrap(), &Default::default()).unwrap()
    }

    fn doc(text: &str) -> Document {
        Document::parse(Path::new("x.yaml"), text).unwrap()
    }

    #[test]
    fn precedence_suppression_and_guards() {
        let source = |level, text: &str| Source {
            level,
            doc: doc(text),
            env_file: None,
        };
        let levels = Stack {
            box_in_reach: false,
            sources: vec![
                source(Level::Box, "system:\n  path:\n    seeded:\n      off: ''\n"),
                source(
                    Level::Crab,
                    "crab:\n  path:\n    seeded:\n      hist: '~/h-$CRAB:~/.hist'\n",
                ),
                source(
                    Level::System,
                    "system:\n  path:\n    seeded:\n      gitcfg: ~/gitconfig:~/.gitconfig\n      off: /x:~/x\n      bad: /x:/etc/x\n      esc: /x:/home/agent/../etc\n      none: empty\n",
                ),
            ],
        };
        let (seeds, warnings) = resolve(&levels, &paths(), "claude", "seeded", true);
        assert_eq!(
            seeds,
            vec![
                Seed {
                    name: "gitcfg".into(),
                    host: "/home/alice/gitconfig".into(),
                    guest_rel: ".gitconfig".into()
                },
                Seed {
                    name: "hist".into(),
                    host: "/home/alice/h-claude".into(),
                    guest_rel: ".hist".into()
                },
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("outside /home/agent")));
        // an untrusted box level (a standalone box's own file) is not read: its `off`
        // no longer suppresses the system's
        let (seeds, _) = resolve(&levels, &paths(), "claude", "seeded", false);
        assert!(seeds.iter().any(|s| s.name == "off"), "{seeds:?}");
        // shares are the same entries under their own kind
        let shares = Stack {
            box_in_reach: false,
            sources: vec![source(
                Level::Box,
                "box:\n  path:\n    share_ro:\n      ref: /srv/ref:~/ref\n",
            )],
        };
        let (found, _) = resolve(&shares, &paths(), "claude", "share_ro", true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].guest_rel, PathBuf::from("ref"));
        assert!(
            resolve(&shares, &paths(), "claude", "share_ro", false)
                .0
                .is_empty()
        );
    }
}
