//! A local-only mount source copied into the box's home once: again only when the
//! source changed (its stamp — size, newest mtime and entry count over the tree —
//! differs from the one kept beside the copy). The copy is made beside its place and
//! renamed over it, so a run never sees half of one.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::boxes::relocation::remove_tree;
use crate::fstree::copy::{CopyOptions, LinkRule, copy_tree};
use crate::fstree::dir::Dir;

/// What a source looks like: changes when any file in it does.
fn stamp(src: &Path) -> io::Result<String> {
    let (mut bytes, mut newest, mut entries) = (0u64, (0i64, 0i64), 0u64);
    let mut todo = vec![src.to_owned()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p)?;
        entries += 1;
        bytes += m.len();
        newest = newest.max((m.mtime(), m.mtime_nsec()));
        if m.is_dir() {
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        }
    }
    Ok(format!("{bytes} {}.{} {entries}\n", newest.0, newest.1))
}

fn stamp_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".stamp");
    s.into()
}

fn sibling(dest: &Path, what: &str) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(format!(".{what}-{}", std::process::id()));
    s.into()
}

/// Copy `src` (a file, or a directory's tree) to `dest` unless the copy there is of
/// the source as it is now; whether it copied.
pub fn once(src: &Path, dest: &Path) -> io::Result<bool> {
    let now = stamp(src)?;
    let stamp_file = stamp_path(dest);
    if std::fs::symlink_metadata(dest).is_ok()
        && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == now)
    {
        return Ok(false);
    }
    if let Some(parent) = dest.parent() {
        // In the box's home, which the box writes: never through a link it left there.
        if std::fs::symlink_metadata(parent).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(parent)?;
        }
        std::fs::create_dir_all(parent)?;
    }
    let tmp = sibling(dest, "new");
    remove_tree(&tmp)?;
    let made = if std::fs::metadata(src)?.is_dir() {
        std::fs::create_dir(&tmp)?;
        let opts = CopyOptions {
            reflink: true,
            link_from: None,
            links: LinkRule::Keep,
        };
        copy_tree(&Dir::open(src)?, &Dir::open(&tmp)?, opts, &|| Ok(())).map(drop)
    } else {
        std::fs::copy(src, &tmp).map(drop)
    };
    if let Err(e) = made {
        let _ = remove_tree(&tmp);
        return Err(e);
    }
    // A directory cannot be renamed over a non-empty one: the old copy goes first.
    let old = sibling(dest, "old");
    if std::fs::symlink_metadata(dest).is_ok() {
        std::fs::rename(dest, &old)?;
    }
    std::fs::rename(&tmp, dest)?;
    let _ = remove_tree(&old);
    crate::fsutil::atomic_write(&stamp_file, now.as_bytes(), 0o644)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_copied_once_and_again_when_it_changes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("install");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/agent"), "v1").unwrap();
        let dest = t.path().join("home/.kanibako-remote/install");
        assert!(once(&src, &dest).unwrap());
        assert_eq!(
            std::fs::read_to_string(dest.join("bin/agent")).unwrap(),
            "v1"
        );
        assert!(!once(&src, &dest).unwrap(), "unchanged: not copied again");
        std::fs::write(src.join("bin/agent"), "v2 longer").unwrap();
        assert!(once(&src, &dest).unwrap());
        assert_eq!(
            std::fs::read_to_string(dest.join("bin/agent")).unwrap(),
            "v2 longer"
        );
        let file = t.path().join("kanibako");
        std::fs::write(&file, "binary").unwrap();
        let fdest = t.path().join("home/.kanibako-remote/kanibako");
        assert!(once(&file, &fdest).unwrap());
        assert!(!once(&file, &fdest).unwrap());
        assert_eq!(std::fs::read_to_string(&fdest).unwrap(), "binary");
        let leftovers: Vec<_> = std::fs::read_dir(t.path().join("home/.kanibako-remote"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".new-") || n.contains(".old-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
