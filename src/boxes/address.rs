//! A box as a user names it on the command line, from any directory: a registered
//! `NAME`, `WORKSET/NAME` (a workset's member), or a PATH. A bare name that two boxes
//! answer to (a default-mode box and a workset member, or members of two worksets) is
//! an error listing them, never a guess. Paths go to [`super::resolve`] unchanged.

use std::path::{Path, PathBuf};

use super::error::BoxError;
use super::registry::Registry;
use super::resolve::{self, Resolution};
use super::worksets::{self, Workset};
use super::{BoxIdentity, BoxName};
use crate::paths::Paths;

/// What a command-line word names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address<'a> {
    /// A word with no `/`: a registered box or a workset member.
    Name(&'a str),
    /// `WORKSET/NAME` where WORKSET is a registered workset.
    Member { workset: &'a str, name: &'a str },
    /// Anything else: a directory (relative to the current one).
    Path(&'a str),
}

/// Read `word` (pure): `exists_here` is whether something of that name is in the
/// current directory (a real directory wins over a name, as upstream), `is_workset`
/// whether a word is a registered workset.
pub fn parse<'a>(
    word: &'a str,
    exists_here: bool,
    is_workset: &dyn Fn(&str) -> bool,
) -> Address<'a> {
    if exists_here || word.is_empty() || word.starts_with('.') || word.starts_with('/') {
        return Address::Path(word);
    }
    match word.split_once('/') {
        None => Address::Name(word),
        Some((ws, name))
            if !name.is_empty() && !name.contains('/') && !ws.is_empty() && is_workset(ws) =>
        {
            Address::Member { workset: ws, name }
        }
        Some(_) => Address::Path(word),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("'{name}' names {} boxes: {}", .candidates.len(), .candidates.join(", "))]
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Box(#[from] BoxError),
}

impl AddressError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            AddressError::Ambiguous { candidates, .. } => vec![format!(
                "name one of them: WORKSET/NAME for a workset member, or the project directory (e.g. {})",
                candidates.last().map_or("", String::as_str)
            )],
            AddressError::Box(b) => b.hints(),
        }
    }
}

/// One box a bare name may mean, and how to name it unambiguously.
struct Candidate {
    label: String,
    identity: BoxIdentity,
}

fn candidates(paths: &Paths, name: &str) -> Result<Vec<Candidate>, BoxError> {
    let registry = Registry::load(&paths.names_file())?;
    let mut out = Vec::new();
    if let (Some(path), Some(n)) = (registry.projects.get(name), BoxName::from_registry(name)) {
        out.push(Candidate {
            label: path.display().to_string(),
            identity: resolve::registered(paths, n, path.clone())?,
        });
    }
    for (ws_name, root) in worksets::registered(paths)? {
        let Ok(ws) = Workset::load(&ws_name, &root) else {
            continue;
        };
        if ws.member(name).is_some() {
            out.push(Candidate {
                label: format!("{ws_name}/{name}"),
                identity: ws.identity(name)?,
            });
        }
    }
    Ok(out)
}

/// The box `target` names (`None`: the current directory), as [`resolve::resolve`]
/// does, plus `WORKSET/NAME` and the ambiguity check.
pub fn resolve(
    paths: &Paths,
    cwd: &Path,
    target: Option<&str>,
) -> Result<Resolution, AddressError> {
    let Some(word) = target.filter(|t| !t.is_empty()) else {
        return Ok(resolve::resolve(paths, cwd, None)?);
    };
    let known = worksets::registered(paths)?;
    let exists_here = cwd.join(word).symlink_metadata().is_ok();
    match parse(word, exists_here, &|w| known.contains_key(w)) {
        Address::Path(p) => Ok(resolve::resolve(paths, cwd, Some(p))?),
        Address::Member { workset, name } => {
            let ws = Workset::find(paths, workset)?;
            if ws.member(name).is_none() {
                return Err(BoxError::NoMember {
                    workset: workset.into(),
                    project: name.into(),
                }
                .into());
            }
            Ok(Resolution::Found(ws.identity(name)?))
        }
        Address::Name(name) => {
            let mut found = candidates(paths, name)?;
            // Inside a workset, its own member is meant (as upstream resolves a name).
            if found.len() > 1
                && let Ok(here) = cwd.canonicalize()
                && let Some(i) = found.iter().position(|c| {
                    c.identity
                        .workset
                        .as_ref()
                        .is_some_and(|(_, root)| inside(&here, root))
                })
            {
                return Ok(Resolution::Found(found.swap_remove(i).identity));
            }
            match found.len() {
                0 => Ok(resolve::resolve(paths, cwd, Some(name))?),
                1 => Ok(Resolution::Found(found.remove(0).identity)),
                _ => Err(AddressError::Ambiguous {
                    name: name.into(),
                    candidates: found.into_iter().map(|c| c.label).collect(),
                }),
            }
        }
    }
}

fn inside(dir: &Path, root: &Path) -> bool {
    let root: PathBuf = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    dir.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(w: &str) -> bool {
        w == "client"
    }

    #[test]
    fn words_name_boxes_members_or_paths() {
        assert_eq!(parse("app", false, &ws), Address::Name("app"));
        assert_eq!(
            parse("client/web", false, &ws),
            Address::Member {
                workset: "client",
                name: "web"
            }
        );
        // not a registered workset: a relative path
        assert_eq!(parse("other/web", false, &ws), Address::Path("other/web"));
        // something of that name here wins, as upstream
        assert_eq!(parse("app", true, &ws), Address::Path("app"));
        assert_eq!(parse("client/web", true, &ws), Address::Path("client/web"));
        for p in [
            "./app",
            "../app",
            "/abs/app",
            ".",
            "client/web/x",
            "client/",
        ] {
            assert_eq!(parse(p, false, &ws), Address::Path(p), "{p}");
        }
    }

    #[test]
    fn an_ambiguous_name_lists_its_candidates() {
        let e = AddressError::Ambiguous {
            name: "web".into(),
            candidates: vec!["/p/web".into(), "client/web".into()],
        };
        assert_eq!(e.to_string(), "'web' names 2 boxes: /p/web, client/web");
        assert!(e.hints()[0].contains("client/web"));
    }
}
