//! A depth-first walk of a tree in sorted order (a directory before its entries),
//! from open directories only. Entries that vanish while we walk are skipped; a
//! directory swapped for a link between the look and the open is reported as the link
//! it has become.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use super::MAX_DEPTH;
use super::dir::{Dir, Kind, Stat};

/// One entry met on the walk; `rel` is its path from the root.
pub enum Entry<'a> {
    /// Entering a directory (`dir` is it, opened).
    Dir {
        rel: &'a Path,
        stat: Stat,
        dir: &'a Dir,
    },
    /// Leaving a directory, after all its entries.
    DirEnd {
        rel: &'a Path,
        stat: Stat,
        dir: &'a Dir,
    },
    /// A regular file: open it with `parent.open_file(name)`.
    File {
        rel: &'a Path,
        stat: Stat,
        parent: &'a Dir,
        name: &'a OsStr,
    },
    Symlink {
        rel: &'a Path,
        stat: Stat,
        target: OsString,
    },
    /// A FIFO, socket or device.
    Special { rel: &'a Path, stat: Stat },
}

/// What the visitor wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// For a `Dir`: do not descend (no `DirEnd` follows).
    Skip,
}

/// Walk the entries below `root` (not the root itself).
pub fn walk(root: &Dir, visit: &mut dyn FnMut(Entry<'_>) -> io::Result<Step>) -> io::Result<()> {
    walk_dir(root, &mut PathBuf::new(), 0, visit)
}

fn walk_dir(
    dir: &Dir,
    rel: &mut PathBuf,
    depth: usize,
    visit: &mut dyn FnMut(Entry<'_>) -> io::Result<Step>,
) -> io::Result<()> {
    if depth >= MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{}: more than {MAX_DEPTH} directories deep; refusing to go further",
            dir.path().display()
        )));
    }
    for name in dir.entries()? {
        let Some(stat) = dir.stat(&name)? else {
            continue;
        };
        rel.push(&name);
        let result = visit_one(dir, &name, stat, rel, depth, visit);
        rel.pop();
        result?;
    }
    Ok(())
}

fn visit_one(
    dir: &Dir,
    name: &OsStr,
    stat: Stat,
    rel: &mut PathBuf,
    depth: usize,
    visit: &mut dyn FnMut(Entry<'_>) -> io::Result<Step>,
) -> io::Result<()> {
    match stat.kind {
        Kind::Dir => {
            let Some(child) = dir.open_dir(name)? else {
                // Swapped for something else since the look: see it again as that.
                if let Some(now) = dir.stat(name)?
                    && now.kind != Kind::Dir
                {
                    return visit_one(dir, name, now, rel, depth, visit);
                }
                return Ok(());
            };
            let stat = child.stat_self()?;
            if visit(Entry::Dir {
                rel,
                stat,
                dir: &child,
            })? == Step::Skip
            {
                return Ok(());
            }
            walk_dir(&child, rel, depth + 1, visit)?;
            visit(Entry::DirEnd {
                rel,
                stat,
                dir: &child,
            })?;
        }
        Kind::File => {
            visit(Entry::File {
                rel,
                stat,
                parent: dir,
                name,
            })?;
        }
        Kind::Symlink => {
            let target = match dir.read_link(name) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            visit(Entry::Symlink { rel, stat, target })?;
        }
        Kind::Special => {
            visit(Entry::Special { rel, stat })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn sorted_depth_first_and_skippable() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("b/c")).unwrap();
        fs::create_dir_all(r.join("skip/inner")).unwrap();
        fs::write(r.join("a"), "1").unwrap();
        fs::write(r.join("b/c/f"), "2").unwrap();
        std::os::unix::fs::symlink("a", r.join("b/l")).unwrap();
        nix::unistd::mkfifo(&r.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let mut seen = Vec::new();
        walk(&Dir::open(r).unwrap(), &mut |e| {
            let (tag, rel) = match e {
                Entry::Dir { rel, .. } => ("d", rel),
                Entry::DirEnd { rel, .. } => ("/d", rel),
                Entry::File { rel, .. } => ("f", rel),
                Entry::Symlink { rel, .. } => ("l", rel),
                Entry::Special { rel, .. } => ("s", rel),
            };
            let rel = rel.display().to_string();
            seen.push(format!("{tag} {rel}"));
            Ok(if rel == "skip" {
                Step::Skip
            } else {
                Step::Continue
            })
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                "f a", "d b", "d b/c", "f b/c/f", "/d b/c", "l b/l", "/d b", "s fifo", "d skip"
            ]
        );
    }

    #[test]
    fn a_chain_too_deep_is_an_error_not_a_crash() {
        let t = tempfile::tempdir().unwrap();
        let mut p = t.path().to_owned();
        for _ in 0..MAX_DEPTH + 2 {
            p.push("d");
        }
        fs::create_dir_all(&p).unwrap();
        let r = walk(&Dir::open(t.path()).unwrap(), &mut |_| Ok(Step::Continue));
        assert!(r.unwrap_err().to_string().contains("deep"));
    }
}
