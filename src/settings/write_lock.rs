//! The lock a read-modify-write of one settings or env file holds: two commands that
//! change the same file one after the other both land (without it, 30 parallel
//! `config` calls kept 6 of their 30 keys). The lock files live under the state
//! directory, one per settings file (named by its path's hash), so none is left in a
//! workspace beside a standalone box's files.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fsutil::{self, FileLock};

/// The lock file for `file`, under `state`.
pub fn lock_path(state: &Path, file: &Path) -> PathBuf {
    // The same file reached by two spellings must share its lock: the directory is
    // resolved (the file itself may not exist yet).
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = parent
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| parent.map(Path::to_path_buf).unwrap_or_default());
    let full = dir.join(file.file_name().unwrap_or_default());
    let hash = Sha256::digest(full.as_os_str().as_encoded_bytes());
    let name = crate::hex::encode(&hash[..16]);
    state.join("locks").join(format!("settings-{name}.lock"))
}

/// Held while `files` are read, changed and written (taken in one order, so two
/// holders of the same pair never wait on each other).
pub struct Held(#[allow(dead_code)] Vec<FileLock>);

pub fn hold(state: &Path, files: &[&Path]) -> io::Result<Held> {
    let mut paths: Vec<PathBuf> = files.iter().map(|f| lock_path(state, f)).collect();
    paths.sort();
    paths.dedup();
    std::fs::create_dir_all(state.join("locks"))?;
    paths
        .iter()
        .map(|p| fsutil::lock_exclusive(p))
        .collect::<io::Result<Vec<_>>>()
        .map(Held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_file_whatever_its_spelling() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        let state = t.path().join("state");
        let one = lock_path(&state, &t.path().join("a/b/env"));
        assert_eq!(one, lock_path(&state, &t.path().join("a/./b/../b/env")));
        assert_ne!(one, lock_path(&state, &t.path().join("a/b/project.yaml")));
        let held = hold(
            &state,
            &[&t.path().join("a/b/env"), &t.path().join("a/b/env")],
        )
        .unwrap();
        assert!(fsutil::is_locked(&one));
        drop(held);
        assert!(!fsutil::is_locked(&one));
    }
}
