//! `system upgrade [--check]`, and how this kanibako was installed (`system info`'s
//! `Install:` line): a build inside its source checkout, a `cargo install` (whose
//! source cargo recorded), or a binary somewhere else.
//!
//! A checkout is updated as upstream updates its git checkout — `git fetch`, compare
//! with the upstream branch, refuse with uncommitted changes, `git pull --ff-only` —
//! and then installed with `cargo install --locked --path <checkout>`. This is the
//! only command that touches the network on its own.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::cli::system::UpgradeArgs;
use crate::error::{Exit, UserError};
use crate::host::HostEnv;
use crate::process::{Executor, Invocation};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Install {
    /// Built in a git checkout of kanibako (`<repo>/target/<profile>/kanibako`).
    Source { repo: PathBuf, binary: PathBuf },
    /// Any other binary.
    Binary { binary: PathBuf },
}

impl Install {
    /// This process's binary.
    pub fn of_this() -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kanibako"));
        Self::of(&exe)
    }

    /// Like [`Install::of_this`], and a `cargo install --path` build counts as its
    /// checkout's (cargo records the source in `$CARGO_HOME/.crates2.json`).
    pub fn of_this_with_cargo(host: &HostEnv) -> Self {
        let this = Self::of_this();
        let Install::Binary { binary } = &this else {
            return this;
        };
        let cargo_home = host
            .var(crate::host::vars::CARGO_HOME)
            .map(PathBuf::from)
            .or_else(|| host.home().map(|h| h.join(".cargo")));
        let Some(cargo_home) = cargo_home else {
            return this;
        };
        if !binary.starts_with(cargo_home.join("bin")) {
            return this;
        }
        match std::fs::read_to_string(cargo_home.join(".crates2.json"))
            .ok()
            .and_then(|t| cargo_source(&t))
        {
            Some(CargoSource::Path(repo)) if is_checkout(&repo) => Install::Source {
                repo,
                binary: binary.clone(),
            },
            _ => this,
        }
    }

    /// `exe` is a source build when a directory above it named `target` lies in a
    /// git checkout whose `Cargo.toml` is kanibako's.
    pub fn of(exe: &Path) -> Self {
        let repo = exe
            .ancestors()
            .skip(1)
            .find(|d| d.file_name().is_some_and(|n| n == "target"))
            .and_then(Path::parent)
            .filter(|repo| is_checkout(repo));
        match repo {
            Some(repo) => Install::Source {
                repo: repo.to_owned(),
                binary: exe.to_owned(),
            },
            None => Install::Binary {
                binary: exe.to_owned(),
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Install::Source { repo, .. } => format!("source checkout ({})", repo.display()),
            Install::Binary { binary } => format!("binary ({})", binary.display()),
        }
    }
}

/// Where cargo says it installed kanibako from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CargoSource {
    Path(PathBuf),
    Git(String),
    Registry,
}

/// The source of the installed `kanibako` in a `.crates2.json` text
/// (`"kanibako 0.1.0 (path+file:///src/kanibako)"` and the like).
pub fn cargo_source(text: &str) -> Option<CargoSource> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let key = v
        .get("installs")?
        .as_object()?
        .keys()
        .find(|k| k.starts_with("kanibako "))?;
    let src = key.split_once('(')?.1.trim_end_matches(')');
    Some(if let Some(p) = src.strip_prefix("path+file://") {
        CargoSource::Path(PathBuf::from(p))
    } else if let Some(g) = src.strip_prefix("git+") {
        CargoSource::Git(g.split(['?', '#']).next().unwrap_or(g).to_owned())
    } else {
        CargoSource::Registry
    })
}

/// What `system upgrade` does after comparing the checkout with its upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    UpToDate,
    /// Newer commits exist; `--check` stops here.
    Available {
        behind: Option<u32>,
    },
    /// Newer commits exist, but the checkout has changes of its own.
    Dirty,
    /// Pull, then install.
    Upgrade,
}

/// Pure: the step after the fetch.
pub fn verdict(
    current: &str,
    remote: &str,
    dirty: bool,
    check: bool,
    behind: Option<u32>,
) -> Verdict {
    if current == remote {
        Verdict::UpToDate
    } else if check {
        Verdict::Available { behind }
    } else if dirty {
        Verdict::Dirty
    } else {
        Verdict::Upgrade
    }
}

struct Git<'a> {
    exec: &'a dyn Executor,
    repo: &'a Path,
}

impl Git<'_> {
    fn inv(&self, args: &[&str]) -> Invocation {
        Invocation::new("git").arg("-C").arg(self.repo).args(args)
    }

    /// stdout of a git call that must succeed; the error names the call.
    fn out(&self, args: &[&str]) -> Result<String> {
        let inv = self.inv(args);
        let o = self
            .exec
            .output(&inv)
            .map_err(|e| UserError::new(format!("cannot run git: {e}")).hint("install git"))?;
        if !o.status.success() {
            return Err(UserError::new(format!(
                "`{inv}` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
            .into());
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }

    fn ok(&self, args: &[&str]) -> Option<String> {
        self.out(args).ok()
    }
}

pub fn upgrade(host: &HostEnv, exec: &dyn Executor, a: &UpgradeArgs) -> Result<Exit> {
    let repo = match &a.source {
        Some(dir) => {
            let dir = host.cwd.join(dir);
            if !is_checkout(&dir) {
                return Err(UserError::new(format!(
                    "{} is not a git checkout of kanibako",
                    dir.display()
                ))
                .into());
            }
            dir
        }
        None => match Install::of_this_with_cargo(host) {
            Install::Source { repo, .. } => repo,
            Install::Binary { binary } => return Err(how_to_upgrade(host, &binary).into()),
        },
    };
    let git = Git { exec, repo: &repo };
    let dirty = !git.out(&["status", "--porcelain"])?.is_empty();
    let current = git.out(&["rev-parse", "HEAD"])?;
    println!("Repository: {}", repo.display());
    println!("Current: {}", &current[..current.len().min(8)]);
    crate::output::say("Checking for updates...");
    git.out(&["fetch", "--quiet"])
        .map_err(|e| UserError::new(format!("Failed to fetch from remote: {e}")))?;
    let upstream = git
        .ok(&["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"])
        .or_else(|| {
            ["origin/main", "origin/master"]
                .into_iter()
                .find(|b| git.ok(&["rev-parse", "--verify", "--quiet", b]).is_some())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            UserError::new(format!(
                "{}: the branch has no upstream, and there is no origin/main or origin/master",
                repo.display()
            ))
            .hint("git branch --set-upstream-to=origin/BRANCH")
        })?;
    let remote = git.out(&["rev-parse", &upstream])?;
    let behind = git
        .ok(&["rev-list", "--count", &format!("HEAD..{upstream}")])
        .and_then(|n| n.parse().ok());
    match verdict(&current, &remote, dirty, a.check, behind) {
        Verdict::UpToDate => {
            println!("Up to date.");
            return Ok(Exit::Success);
        }
        Verdict::Available { behind } => {
            print_available(behind, &remote);
            println!("Run `kanibako system upgrade` to install it.");
            return Ok(Exit::Success);
        }
        Verdict::Dirty => {
            print_available(behind, &remote);
            return Err(UserError::new(format!(
                "{} has uncommitted changes; not upgrading",
                repo.display()
            ))
            .hint("commit or stash them (`git stash`), then run `kanibako system upgrade` again")
            .into());
        }
        Verdict::Upgrade => print_available(behind, &remote),
    }
    crate::output::say("Pulling latest changes...");
    git.out(&["pull", "--ff-only", "--quiet"])?;
    let install = static_build(host, Invocation::new("cargo").args(["install", "--locked"]))
        .arg("--path")
        .arg(&repo);
    crate::output::say(format_args!("+ {install}"));
    let status = exec.status(&install).map_err(|e| {
        UserError::new(format!("cannot run cargo: {e}")).hint(
            "install Rust (https://rustup.rs), then: cargo install --locked --path <checkout>",
        )
    })?;
    if !status.success() {
        return Err(UserError::new(format!(
            "`{install}` failed (exit {})",
            crate::process::exit_code(status)
        ))
        .hint("the checkout is updated; fix the build and run the same command again")
        .into());
    }
    println!("Upgraded successfully.");
    Ok(Exit::Success)
}

fn print_available(behind: Option<u32>, remote: &str) {
    match behind {
        Some(n) => println!("{n} commit(s) available"),
        None => println!("updates available"),
    }
    println!("Latest: {}", &remote[..remote.len().min(8)]);
}

/// What to tell the user of a binary kanibako cannot update itself.
fn how_to_upgrade(host: &HostEnv, binary: &Path) -> UserError {
    let cargo_home = host
        .var(crate::host::vars::CARGO_HOME)
        .map(PathBuf::from)
        .or_else(|| host.home().map(|h| h.join(".cargo")));
    let recorded = cargo_home
        .filter(|c| binary.starts_with(c.join("bin")))
        .and_then(|c| std::fs::read_to_string(c.join(".crates2.json")).ok())
        .and_then(|t| cargo_source(&t));
    let e = UserError::new(format!(
        "{} is not a build in a kanibako checkout, so it cannot update itself",
        binary.display()
    ));
    match recorded {
        Some(CargoSource::Git(url)) => e.hint(format!(
            "it came from `cargo install --git`: cargo install --locked --force --git {url} kanibako"
        )),
        Some(CargoSource::Registry) => {
            e.hint("it came from crates.io: cargo install --locked --force kanibako")
        }
        _ => e
            .hint("in a kanibako checkout: git pull --ff-only && cargo install --locked --path .")
            .hint("or let kanibako do it there: kanibako system upgrade --source <checkout>"),
    }
}

/// A git checkout of kanibako itself.
pub fn is_checkout(dir: &Path) -> bool {
    dir.join(".git").exists()
        && std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| {
            t.lines()
                .map(str::trim)
                .any(|l| l.replace(' ', "") == "name=\"kanibako\"")
        })
}

/// On glibc Linux, `cargo install` links kanibako statically, as the quick start does:
/// the same file is mounted into every box as its `kanibako` (the helper and egress
/// client), and a static one runs in any rig, even one without a C library. An
/// explicit `--target` keeps the flag off build scripts and proc macros, which cannot
/// be linked statically.
fn static_build(host: &HostEnv, inv: Invocation) -> Invocation {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return inv;
    }
    let mut flags = host.var_str("RUSTFLAGS").unwrap_or_default().to_owned();
    if !flags.is_empty() {
        flags.push(' ');
    }
    flags.push_str("-C target-feature=+crt-static");
    let mut inv = inv
        .arg("--target")
        .arg(format!("{}-unknown-linux-gnu", std::env::consts::ARCH));
    inv.env.push(("RUSTFLAGS".into(), flags.into()));
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_records_where_it_installed_from() {
        let t = |k: &str| {
            format!(
                r#"{{"installs": {{"{k}": {{}}, "ripgrep 14.0.0 (registry+https://github.com/rust-lang/crates.io-index)": {{}}}}}}"#
            )
        };
        assert_eq!(
            cargo_source(&t("kanibako 0.1.0 (path+file:///src/kanibako)")),
            Some(CargoSource::Path("/src/kanibako".into()))
        );
        assert_eq!(
            cargo_source(&t("kanibako 0.1.0 (git+https://example.org/kb.git#abc123)")),
            Some(CargoSource::Git("https://example.org/kb.git".into()))
        );
        assert_eq!(
            cargo_source(&t(
                "kanibako 0.1.0 (registry+https://github.com/rust-lang/crates.io-index)"
            )),
            Some(CargoSource::Registry)
        );
        assert_eq!(cargo_source(&t("other 1.0.0 (path+file:///x)")), None);
        assert_eq!(cargo_source("not json"), None);
    }

    #[test]
    fn the_verdict() {
        assert_eq!(verdict("a", "a", true, false, None), Verdict::UpToDate);
        assert_eq!(
            verdict("a", "b", true, true, Some(2)),
            Verdict::Available { behind: Some(2) },
            "--check reports even with local changes"
        );
        assert_eq!(verdict("a", "b", true, false, Some(2)), Verdict::Dirty);
        assert_eq!(verdict("a", "b", false, false, Some(2)), Verdict::Upgrade);
    }

    #[test]
    fn a_build_in_a_checkout_is_a_source_install() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("kanibako");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("target/release")).unwrap();
        std::fs::write(repo.join("Cargo.toml"), "[package]\nname = \"kanibako\"\n").unwrap();
        let exe = repo.join("target/release/kanibako");
        assert_eq!(
            Install::of(&exe),
            Install::Source {
                repo: repo.clone(),
                binary: exe.clone()
            }
        );
        std::fs::write(repo.join("Cargo.toml"), "[package]\nname = \"other\"\n").unwrap();
        assert!(matches!(Install::of(&exe), Install::Binary { .. }));
        assert!(matches!(
            Install::of(Path::new("/usr/local/bin/kanibako")),
            Install::Binary { .. }
        ));
    }
}
