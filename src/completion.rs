//! Shell completion: `kanibako completions SHELL` prints a script that asks kanibako
//! itself what to complete (clap_complete's dynamic mode, through the
//! `KANIBAKO_COMPLETE` variable), so box, workset, rig and crab names come from the
//! registry at the moment of the Tab press, not from when the script was written.
//!
//! Which argument takes which kind of name is decided here, from the command tree,
//! so the clap types in [`crate::cli`] stay free of completion code. Names are read
//! from files only (`names.yaml`, `rigs.yaml`, crab profiles): no engine call, and no
//! start-up work, so a Tab press writes nothing.

use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate, PathCompleter};
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::Cli;
use crate::cli::system::CompletionShell;

/// The variable the completion scripts set when they call kanibako.
pub const VAR: &str = "KANIBAKO_COMPLETE";

/// The kinds of names completed from the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// Box names (`NAME`, `WORKSET/NAME`), and paths: every box argument takes either.
    Box,
    Workset,
    Rig,
    Crab,
}

/// Pure: which names the argument `id` (with `value_name`, positional or not) of the
/// command at `path` (`["box", "info"]`) takes.
pub fn kind_of(
    path: &[&str],
    id: &str,
    value_name: Option<&str>,
    positional: bool,
) -> Option<Names> {
    let top = path.first().copied().unwrap_or("");
    let leaf = path.last().copied().unwrap_or("");
    match value_name {
        Some("IMAGE" | "RIG") => return Some(Names::Rig),
        Some("CRAB") => return Some(Names::Crab),
        Some("WS") => return Some(Names::Workset),
        _ => {}
    }
    if !positional {
        return None;
    }
    match top {
        // `rig extend/add/bootstrap NAME` names a new rig.
        "rig" | "image" if id == "name" && !matches!(leaf, "extend" | "add" | "bootstrap") => {
            Some(Names::Rig)
        }
        "workset" if id == "workset" || (id == "name" || id == "target") && leaf != "create" => {
            Some(Names::Workset)
        }
        "workset" if id == "project" => Some(Names::Box),
        "rig" | "image" | "workset" | "egress" | "_hub" => None,
        _ if leaf == "create" => None,
        _ if matches!(
            id,
            "target" | "project" | "path" | "source_path" | "old_path"
        ) =>
        {
            Some(Names::Box)
        }
        _ => None,
    }
}

/// The command tree with a completer on every argument that takes names.
pub fn command() -> clap::Command {
    attach(Cli::command(), Vec::new())
}

fn attach(cmd: clap::Command, path: Vec<String>) -> clap::Command {
    let here = path.clone();
    let cmd = cmd.mut_args(move |a| {
        let p: Vec<&str> = here.iter().map(String::as_str).collect();
        let value_name = a
            .get_value_names()
            .and_then(|v| v.first())
            .map(|s| s.as_str().to_owned());
        match kind_of(
            &p,
            a.get_id().as_str(),
            value_name.as_deref(),
            a.is_positional(),
        ) {
            Some(kind) => a.add(ArgValueCompleter::new(move |current: &std::ffi::OsStr| {
                candidates(kind, current)
            })),
            None => a,
        }
    });
    cmd.mut_subcommands(move |sub| {
        let mut p = path.clone();
        p.push(sub.get_name().to_owned());
        attach(sub, p)
    })
}

/// The names of `kind` starting with `current` (and, for boxes, matching paths).
fn candidates(kind: Names, current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let mut out: Vec<CompletionCandidate> = names(kind)
        .into_iter()
        .filter(|n| n.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect();
    if kind == Names::Box {
        use clap_complete::engine::ValueCompleter;
        out.extend(PathCompleter::dir().complete(current));
    }
    out
}

/// Every name of `kind` kanibako knows, sorted; nothing when the files cannot be read.
pub fn names(kind: Names) -> Vec<String> {
    let Ok(host) = crate::host::HostEnv::capture() else {
        return Vec::new();
    };
    let exec = std::sync::Arc::new(crate::process::SystemExecutor);
    let Ok((cx, _)) = crate::diagnose::probe::context(&host, exec) else {
        return Vec::new();
    };
    names_in(kind, &cx.paths)
}

/// [`names`] from the files under `paths`.
pub fn names_in(kind: Names, paths: &crate::paths::Paths) -> Vec<String> {
    let mut out: Vec<String> = match kind {
        Names::Box => {
            let mut v: Vec<String> = crate::boxes::registry::Registry::load(&paths.names_file())
                .map(|r| r.projects.into_keys().collect())
                .unwrap_or_default();
            if let Ok(sets) = crate::boxes::worksets::registered(paths) {
                for (name, root) in sets {
                    if let Ok(ws) = crate::boxes::worksets::Workset::load(&name, &root) {
                        v.extend(
                            ws.identities()
                                .iter()
                                .map(|b| format!("{name}/{}", b.display_name())),
                        );
                    }
                }
            }
            v
        }
        Names::Workset => crate::boxes::worksets::registered(paths)
            .map(|m| m.into_keys().collect())
            .unwrap_or_default(),
        Names::Rig => {
            let mut v: Vec<String> = crate::rig::SHORTHANDS
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            if let Ok(r) = crate::rig::registry::Rigs::load(&paths.rigs_file()) {
                v.extend(r.records.into_iter().map(|(n, _)| n));
            }
            v.extend(crate::rig::template::names(&paths.rig_templates()));
            v
        }
        Names::Crab => {
            let mut v: Vec<String> = crate::agents::known_ids()
                .into_iter()
                .map(str::to_owned)
                .collect();
            v.extend(yaml_stems(&paths.crabs));
            v
        }
    };
    out.sort();
    out.dedup();
    out
}

fn yaml_stems(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml").map(str::to_owned)
        })
        .collect()
}

fn shell(s: CompletionShell) -> &'static dyn EnvCompleter {
    match s {
        CompletionShell::Bash => &Bash,
        CompletionShell::Zsh => &Zsh,
        CompletionShell::Fish => &Fish,
        CompletionShell::Elvish => &Elvish,
        CompletionShell::Powershell => &Powershell,
    }
}

/// The script for `shell` that calls `completer` (this binary) on every Tab.
pub fn registration(s: CompletionShell, completer: &Path) -> String {
    let mut buf = Vec::new();
    shell(s)
        .write_registration(
            VAR,
            "kanibako",
            "kanibako",
            &completer.to_string_lossy(),
            &mut buf,
        )
        .expect("writing to memory");
    String::from_utf8_lossy(&buf).into_owned()
}

/// Answer a completion request, if this run is one (the scripts set [`VAR`]); whether
/// it was. Done before anything else, so a Tab press costs no start-up work.
pub fn answer(args: &[OsString]) -> bool {
    let cwd = std::env::current_dir().ok();
    match clap_complete::CompleteEnv::with_factory(command)
        .var(VAR)
        .try_complete(args.iter().cloned(), cwd.as_deref())
    {
        Ok(done) => done,
        Err(e) => e.exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_arguments_take_which_names() {
        assert_eq!(
            kind_of(&["box", "info"], "target", None, true),
            Some(Names::Box)
        );
        assert_eq!(kind_of(&["shell"], "project", None, true), Some(Names::Box));
        assert_eq!(kind_of(&["create"], "path", None, true), None);
        assert_eq!(
            kind_of(&["rig", "prep"], "name", None, true),
            Some(Names::Rig)
        );
        assert_eq!(kind_of(&["rig", "extend"], "name", None, true), None);
        assert_eq!(
            kind_of(&["start"], "rig", Some("IMAGE"), false),
            Some(Names::Rig)
        );
        assert_eq!(
            kind_of(&["crab", "info"], "crab_id", Some("CRAB"), true),
            Some(Names::Crab)
        );
        assert_eq!(
            kind_of(&["workset", "rm"], "name", None, true),
            Some(Names::Workset)
        );
        assert_eq!(kind_of(&["workset", "create"], "name", None, true), None);
        assert_eq!(
            kind_of(&["workset", "disconnect"], "workset", None, true),
            Some(Names::Workset)
        );
        assert_eq!(kind_of(&["start"], "model", Some("MODEL"), false), None);
    }

    #[test]
    fn the_tree_with_completers_is_still_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_shell_gets_a_script_calling_this_binary() {
        for s in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
            CompletionShell::Elvish,
            CompletionShell::Powershell,
        ] {
            let script = registration(s, Path::new("/opt/kb/kanibako"));
            assert!(script.contains("/opt/kb/kanibako"), "{s:?}: {script}");
            assert!(script.contains(VAR), "{s:?}: {script}");
        }
    }
}
