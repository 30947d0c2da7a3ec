//! How this kanibako was installed: a build inside its source checkout, or a binary
//! somewhere else (`system info`'s `Install:` line, and what `system upgrade` does).

use std::path::{Path, PathBuf};

use serde::Serialize;

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

/// A git checkout of kanibako itself.
pub fn is_checkout(dir: &Path) -> bool {
    dir.join(".git").exists()
        && std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| {
            t.lines()
                .map(str::trim)
                .any(|l| l.replace(' ', "") == "name=\"kanibako\"")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
