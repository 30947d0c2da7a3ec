//! The git questions `box archive` and `box extract` ask of a project (spec:
//! upstream-runtime §7.2, §7.3): uncommitted changes, unpushed commits, branch, commit
//! and remotes. Upstream's commands, through the executor; the repository's own
//! `core.fsmonitor` (a program a cloned repository or the box can name) is turned off,
//! and only plumbing commands run, which start no filters or hooks.

use std::io;
use std::path::Path;

use super::info::GitState;
use crate::process::{Executor, Invocation};

/// A project is a repository when it has a `.git` directory (not a link to one).
pub fn is_repo(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(".git")).is_ok_and(|m| m.is_dir())
}

fn git(dir: &Path, args: &[&str]) -> Invocation {
    Invocation::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
}

fn text(exec: &dyn Executor, dir: &Path, args: &[&str]) -> io::Result<Option<String>> {
    let out = exec.output(&git(dir, args))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// Whether the work tree or index differ from `HEAD` (a repository without commits
/// counts as changed, as upstream counts it; untracked files do not).
pub fn uncommitted(exec: &dyn Executor, dir: &Path) -> io::Result<bool> {
    let out = exec.output(&git(dir, &["diff-index", "--quiet", "HEAD", "--"]))?;
    Ok(!out.status.success())
}

/// Commits on the current branch its upstream lacks; `None` without an upstream.
pub fn unpushed(exec: &dyn Executor, dir: &Path) -> io::Result<Option<u64>> {
    if text(exec, dir, &["rev-parse", "--abbrev-ref", "HEAD"])?.is_none() {
        return Ok(None);
    }
    let Some(upstream) = text(exec, dir, &["rev-parse", "--abbrev-ref", "@{upstream}"])? else {
        return Ok(None);
    };
    let range = format!("{upstream}..HEAD");
    Ok(text(exec, dir, &["rev-list", &range, "--count"])?.and_then(|n| n.parse().ok()))
}

/// The commit `HEAD` names.
pub fn head(exec: &dyn Executor, dir: &Path) -> io::Result<Option<String>> {
    text(exec, dir, &["rev-parse", "HEAD"])
}

pub fn branch(exec: &dyn Executor, dir: &Path) -> io::Result<Option<String>> {
    text(exec, dir, &["rev-parse", "--abbrev-ref", "HEAD"])
}

/// Branch, commit and fetch remotes; `None` when git cannot say (no commits yet).
pub fn state(exec: &dyn Executor, dir: &Path) -> io::Result<Option<GitState>> {
    let (Some(branch), Some(commit)) = (branch(exec, dir)?, head(exec, dir)?) else {
        return Ok(None);
    };
    let remotes = text(exec, dir, &["remote", "-v"])?
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("(fetch)"))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    Ok(Some(GitState {
        branch,
        commit,
        remotes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::testing::Recorder;

    #[test]
    fn upstreams_questions_with_the_monitor_off() {
        let r = Recorder::default()
            .answer(
                &[
                    "-C",
                    "/p",
                    "-c",
                    "core.fsmonitor=false",
                    "rev-parse",
                    "--abbrev-ref",
                    "HEAD",
                ],
                0,
                "main\n",
            )
            .answer(
                &[
                    "-C",
                    "/p",
                    "-c",
                    "core.fsmonitor=false",
                    "rev-parse",
                    "--abbrev-ref",
                    "@{upstream}",
                ],
                0,
                "origin/main\n",
            )
            .answer(
                &["-C", "/p", "-c", "core.fsmonitor=false", "rev-list"],
                0,
                "2\n",
            )
            .answer(
                &[
                    "-C",
                    "/p",
                    "-c",
                    "core.fsmonitor=false",
                    "rev-parse",
                    "HEAD",
                ],
                0,
                "abc123\n",
            )
            .answer(
                &["-C", "/p", "-c", "core.fsmonitor=false", "remote"],
                0,
                "origin\thttps://x/y.git (fetch)\norigin\thttps://x/y.git (push)\n",
            )
            .answer(
                &["-C", "/p", "-c", "core.fsmonitor=false", "diff-index"],
                1,
                "",
            );
        let p = Path::new("/p");
        assert_eq!(unpushed(&r, p).unwrap(), Some(2));
        assert!(uncommitted(&r, p).unwrap());
        let s = state(&r, p).unwrap().unwrap();
        assert_eq!((s.branch.as_str(), s.commit.as_str()), ("main", "abc123"));
        assert_eq!(s.remotes, [("origin".into(), "https://x/y.git".into())]);
        assert!(
            r.lines().iter().any(
                |l| l == "git -C /p -c core.fsmonitor=false rev-list origin/main..HEAD --count"
            )
        );
    }
}
