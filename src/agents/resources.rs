//! An agent's resources: the files and directories under its config directory in the
//! box's home (upstream's resource mappings, spec upstream-cli-and-data §9.5) and where
//! each is kept: in the box's own home (`project`), one copy every box mounts from
//! `<shared>/global/<agent>/<path>` (`shared`), or copied from there into a home that
//! lacks it (`seeded`). `resource.<path>` settings pick another scope; this module
//! decides, purely, what that means for one launch.

use std::path::{Path, PathBuf};

/// How a resource is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Project,
    Shared,
    Seeded,
}

impl Scope {
    /// The values `resource.<path>` takes.
    pub const NAMES: [&'static str; 3] = ["shared", "project", "seeded"];

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "project" => Some(Scope::Project),
            "shared" => Some(Scope::Shared),
            "seeded" => Some(Scope::Seeded),
            _ => None,
        }
    }
}

/// One resource of an agent: its path under the config directory (a directory ends in
/// `/`, as upstream spells it and as `resource.<path>` names it) and its usual scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub path: &'static str,
    pub scope: Scope,
}

impl Mapping {
    pub fn is_dir(&self) -> bool {
        self.path.ends_with('/')
    }
}

/// A resource with the scope in force for one box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub scope: Scope,
    pub dir: bool,
    /// The one shared copy: `<global shared>/<agent>/<path>`.
    pub host: PathBuf,
    /// Below the home: `<config dir>/<path>` (no trailing `/`).
    pub guest_rel: String,
}

/// Every resource that is not kept in the box's own home, with the scope `chosen`
/// gives it (`None`: its usual one). A chosen value that is not a scope is reported and
/// the usual scope kept (upstream's launch crashed on it).
pub fn in_force(
    mappings: &[Mapping],
    agent_id: &str,
    config_dir: &str,
    global_shared: &Path,
    mut chosen: impl FnMut(&str) -> Option<String>,
) -> (Vec<Resource>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for m in mappings {
        let scope = match chosen(m.path) {
            None => m.scope,
            Some(v) => Scope::parse(&v).unwrap_or_else(|| {
                warnings.push(format!(
                    "resource.{} = '{v}' is not one of {}; keeping {}",
                    m.path,
                    Scope::NAMES.join(", "),
                    Scope::NAMES
                        .iter()
                        .find(|n| Scope::parse(n) == Some(m.scope))
                        .unwrap_or(&"project")
                ));
                m.scope
            }),
        };
        if scope == Scope::Project {
            continue;
        }
        let rel = m.path.trim_end_matches('/');
        out.push(Resource {
            scope,
            dir: m.is_dir(),
            host: global_shared.join(agent_id).join(rel),
            guest_rel: format!("{config_dir}/{rel}"),
        });
    }
    (out, warnings)
}

/// Whether `path` names a resource of any of `mappings`.
pub fn known(mappings: &[Mapping], path: &str) -> bool {
    mappings.iter().any(|m| m.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[Mapping] = &[
        Mapping {
            path: "projects/",
            scope: Scope::Project,
        },
        Mapping {
            path: "settings.json",
            scope: Scope::Seeded,
        },
    ];

    #[test]
    fn the_chosen_scope_wins_and_a_bad_one_keeps_the_usual() {
        let g = Path::new("/d/shared/global");
        let (r, w) = in_force(M, "claude", ".claude", g, |_| None);
        assert!(w.is_empty());
        assert_eq!(
            r,
            [Resource {
                scope: Scope::Seeded,
                dir: false,
                host: "/d/shared/global/claude/settings.json".into(),
                guest_rel: ".claude/settings.json".into(),
            }]
        );
        let (r, _) = in_force(M, "claude", ".claude", g, |p| {
            Some(
                if p == "projects/" {
                    "shared"
                } else {
                    "project"
                }
                .into(),
            )
        });
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].scope, r[0].dir, r[0].guest_rel.as_str()),
            (Scope::Shared, true, ".claude/projects")
        );
        assert_eq!(r[0].host, Path::new("/d/shared/global/claude/projects"));
        let (r, w) = in_force(M, "claude", ".claude", g, |_| Some("bogus".into()));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].scope, Scope::Seeded);
        assert!(w[0].contains("'bogus' is not one of"), "{w:?}");
        assert!(known(M, "projects/") && !known(M, "projects"));
    }
}
