//! Copy-once seeds (`{scope}.path.seeded.<name>: host_src:guest_dest`): files or trees
//! copied into a new box's home (spec: upstream-cli-and-data §7.5).
//!
//! Resolution is pure over the loaded levels; the copy writes through [`SafeDir`], so it
//! lands inside the home whatever the home contains.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::boxes::home::SafeDir;
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

/// The seeds in force: per key the most specific level wins; `""` or `empty` there means
/// no seed. Ordered by scope (system, crab, workset, box), then name. Unusable entries
/// come back as warnings.
pub fn resolve(levels: &Stack, paths: &Paths, crab: &str) -> (Vec<Seed>, Vec<String>) {
    let docs = levels.docs();
    let mut winners: BTreeMap<(usize, String), String> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for doc in docs {
        for (key, value) in doc.flat_strings() {
            let Some((scope, name)) = SCOPES.iter().enumerate().find_map(|(i, s)| {
                key.strip_prefix(&format!("{s}.path.seeded."))
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
            eprintln!(
                "Warning: seed {}: host_src '{}' does not exist; skipping",
                s.name,
                s.host.display()
            );
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
        let (seeds, warnings) = resolve(&levels, &paths(), "claude");
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
    }
}
