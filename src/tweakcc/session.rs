//! tweakcc around one launch: whether the agent's profile enables it, the patched
//! binary held for the session, and the link a detached container gets instead. A
//! failure anywhere is a warning, and the session runs the unpatched binary.

use std::path::{Path, PathBuf};

use super::{CACHE_MAX_BYTES, Cache, patched, settings};
use crate::document::Document;
use crate::fsutil::SharedHold;
use crate::output;
use crate::runtime::Runtime;

/// Where a session's tweakcc work lives.
pub struct Dirs<'a> {
    /// The host home (`~` in a `config:` path).
    pub home: &'a Path,
    /// kanibako's cache: the patched binaries.
    pub cache: &'a Path,
    /// kanibako's state: per-box links, out of every box's reach.
    pub state: &'a Path,
}

/// The patched binary a session runs, kept from eviction while this lives.
pub struct Held {
    pub binary: PathBuf,
    _hold: SharedHold,
}

fn warn(e: impl std::fmt::Display) {
    output::warn(format_args!(
        "tweakcc patching failed, using unpatched binary: {e}"
    ));
}

/// The patched copy of `binary` for a session, made on the image `patch_image` names
/// (the trusted one, asked only when tweakcc is on), if `crab` (the agent's profile)
/// enables tweakcc. `detached_box`: the hash of a box whose container will
/// outlive this process (and so its hold on the cache entry): it runs its own link to
/// the binary, which eviction cannot take.
pub fn for_session(
    rt: &Runtime,
    crab: Option<&Document>,
    dirs: &Dirs<'_>,
    patch_image: &dyn Fn() -> Result<String, String>,
    binary: &Path,
    detached_box: Option<&str>,
) -> Option<Held> {
    let config = match crab?.get_json(&["tweakcc"]) {
        Ok(json) => json,
        Err(e) => {
            warn(e);
            return None;
        }
    };
    let config = match settings(config.as_ref(), dirs.home) {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            warn(e);
            return None;
        }
    };
    let cache = Cache {
        dir: dirs.cache.join("tweakcc"),
        max_bytes: CACHE_MAX_BYTES,
    };
    let image = match patch_image() {
        Ok(i) => i,
        Err(e) => {
            warn(e);
            return None;
        }
    };
    let held = match patched(rt, &cache, &image, binary, &config) {
        Ok(held) => held,
        Err(e) => {
            warn(e);
            return None;
        }
    };
    let binary = detached_box
        .and_then(|hash| own_link(dirs.state, hash, held.path()))
        .unwrap_or_else(|| held.path().to_owned());
    Some(Held {
        binary,
        _hold: held,
    })
}

/// A per-box hard link (a copy across filesystems) to a patched binary, in kanibako's
/// state directory where no box can reach it.
fn own_link(state: &Path, hash: &str, entry: &Path) -> Option<PathBuf> {
    let dir = state.join("tweakcc");
    std::fs::create_dir_all(&dir).ok()?;
    let key = &hash[..16.min(hash.len())];
    let dst = dir.join(key);
    let tmp = dir.join(format!(".{key}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(entry, &tmp)
        .or_else(|_| std::fs::copy(entry, &tmp).map(|_| ()))
        .ok()?;
    std::fs::rename(&tmp, &dst).ok()?;
    Some(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_box_gets_its_own_link_that_outlives_the_entry() {
        let t = tempfile::tempdir().unwrap();
        let entry = t.path().join("entry");
        std::fs::write(&entry, b"patched").unwrap();
        let link = own_link(&t.path().join("state"), &"ab".repeat(32), &entry).unwrap();
        assert_eq!(link, t.path().join("state/tweakcc").join("ab".repeat(8)));
        std::fs::remove_file(&entry).unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"patched");
    }
}
