//! Images: every engine call about one (`image inspect` in its four questions, `image
//! mount`/`unmount`, `images`, `pull`, `build`, `import`, `load`, `save`, `rmi`) and
//! the host's image store.
//!
//! Each call is a pure invocation builder (`*_invocation`) and, where the answer is
//! read, a pure parser of its output, both unit-tested; the [`Runtime`] methods at the
//! end only join a builder, the executor and a parser. What an image reference means to
//! kanibako (rig names, spellings) is `rig`'s, not this module's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Runtime, RuntimeError};
use crate::process::{Invocation, exit_code};

/// `image inspect --format FORMAT IMAGE`.
fn inspect_invocation(base: Invocation, format: &str, image: &str) -> Invocation {
    base.args(["image", "inspect", "--format", format])
        .arg(image)
}

/// Asks only whether the image is there (its id is ignored).
pub fn exists_invocation(base: Invocation, image: &str) -> Invocation {
    inspect_invocation(base, "{{.Id}}", image)
}

/// What `rig info` shows of an image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageDetails {
    /// The id without its `sha256:` prefix.
    pub id: String,
    pub created: String,
    pub size_bytes: f64,
}

pub fn details_invocation(base: Invocation, image: &str) -> Invocation {
    inspect_invocation(base, "{{.Id}}|{{.Created}}|{{.Size}}", image)
}

pub fn parse_details(stdout: &str) -> Option<ImageDetails> {
    let f: Vec<&str> = stdout.trim().split('|').collect();
    let [id, created, size] = f.as_slice() else {
        return None;
    };
    Some(ImageDetails {
        id: id.trim_start_matches("sha256:").to_owned(),
        created: (*created).to_owned(),
        size_bytes: size.parse().unwrap_or(0.0),
    })
}

/// The image's own environment (its `Env`).
pub fn env_invocation(base: Invocation, image: &str) -> Invocation {
    inspect_invocation(base, "{{json .Config.Env}}", image)
}

/// `["K=V", …]` as a map; entries without `=` are skipped, unreadable output is empty.
pub fn parse_env(stdout: &[u8]) -> BTreeMap<String, String> {
    let list: Vec<String> = serde_json::from_slice(stdout).unwrap_or_default();
    list.into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The registry digest the local image was pulled as.
pub fn digest_invocation(base: Invocation, image: &str) -> Invocation {
    inspect_invocation(base, "{{index .RepoDigests 0}}", image)
}

/// `registry/name@sha256:…` → `sha256:…`.
pub fn parse_digest(stdout: &str) -> Option<String> {
    stdout.trim().split_once('@').map(|(_, d)| d.to_owned())
}

pub fn mount_invocation(base: Invocation, image: &str) -> Invocation {
    base.args(["image", "mount"]).arg(image)
}

pub fn unmount_invocation(base: Invocation, image: &str) -> Invocation {
    base.args(["image", "unmount"]).arg(image)
}

/// Every local image as `repository:tag`.
pub fn list_invocation(base: Invocation) -> Invocation {
    base.args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
}

/// The references of `images`, without untagged (`<none>`) ones.
pub fn parse_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("<none>"))
        .map(str::to_owned)
        .collect()
}

pub fn pull_invocation(base: Invocation, image: &str) -> Invocation {
    base.arg("pull").arg(image)
}

/// `build` of `file` in `context` as `image`, on `base_image` (its `BASE_IMAGE` arg),
/// from scratch. A failed build leaves nothing: no intermediate containers, and on
/// podman (`podman`) no layer images (`<none>`) from the steps before the one that
/// failed.
pub fn build_invocation(
    base: Invocation,
    podman: bool,
    image: &str,
    base_image: &str,
    file: &Path,
    context: &Path,
) -> Invocation {
    let mut inv = base.args(["build", "--no-cache", "--force-rm"]);
    if podman {
        inv = inv.arg("--layers=false");
    }
    inv.args(["-t", image, "--build-arg"])
        .arg(format!("BASE_IMAGE={base_image}"))
        .arg("-f")
        .arg(file)
        .arg(context)
}

/// `import` of a root file system tarball as `image`, with image config `changes`.
pub fn import_invocation(
    base: Invocation,
    tar: &Path,
    changes: &[String],
    image: &str,
) -> Invocation {
    let mut inv = base.arg("import");
    for c in changes {
        inv = inv.arg("--change").arg(c);
    }
    inv.arg(tar).arg(image)
}

pub fn load_invocation(base: Invocation, archive: &Path) -> Invocation {
    base.args(["load", "-i"]).arg(archive)
}

/// The reference `load` reports (`Loaded image: localhost/x:1`).
pub fn parse_loaded(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.split_once(": ").map(|(_, r)| r.trim().to_owned()))
}

pub fn save_invocation(base: Invocation, image: &str, tar: &Path) -> Invocation {
    base.args(["save", "-o"]).arg(tar).arg(image)
}

pub fn remove_invocation(base: Invocation, image: &str) -> Invocation {
    base.arg("rmi").arg(image)
}

/// Where podman keeps its images.
pub fn store_invocation(base: Invocation) -> Invocation {
    base.args(["info", "--format", "{{.Store.GraphRoot}}"])
}

/// Images, by reference.
impl Runtime {
    /// Whether `image` is in the local store.
    pub fn image_exists(&self, image: &str) -> bool {
        self.succeeds(&exists_invocation(self.invocation(), image))
    }

    /// Id, creation time and size of a local image; `None` if it is not there.
    pub fn image_details(&self, image: &str) -> Option<ImageDetails> {
        parse_details(
            &self
                .query(&details_invocation(self.invocation(), image))
                .ok()?,
        )
    }

    /// The image's own `Env`; `None` if the image is not there.
    pub fn image_env(&self, image: &str) -> Result<Option<BTreeMap<String, String>>, RuntimeError> {
        let out = self.capture(&env_invocation(self.invocation(), image))?;
        Ok(out.status.success().then(|| parse_env(&out.stdout)))
    }

    /// The registry digest of the local `image`, if it came from a registry.
    pub fn image_digest(&self, image: &str) -> Option<String> {
        parse_digest(
            &self
                .query(&digest_invocation(self.invocation(), image))
                .ok()?,
        )
    }

    /// Mount `image` read-only on the host (rootful podman); where it is.
    pub fn mount_image(&self, image: &str) -> Result<PathBuf, RuntimeError> {
        let out = self.query(&mount_invocation(self.invocation(), image))?;
        Ok(PathBuf::from(out.trim()))
    }

    /// What [`Runtime::mount_image`] runs, for `--dry-run`.
    pub fn mount_image_command(&self, image: &str) -> Invocation {
        mount_invocation(self.invocation(), image)
    }

    /// Release a mount, waiting for it; a failure changes nothing for the caller.
    pub fn unmount_image(&self, image: &str) {
        self.succeeds(&unmount_invocation(self.invocation(), image));
    }

    /// Release a mount in the background: nothing waits on it.
    pub fn unmount_image_later(&self, image: &str) {
        self.exec
            .spawn_detached(&unmount_invocation(self.invocation(), image));
    }

    /// What [`Runtime::unmount_image`] runs, for `--dry-run`.
    pub fn unmount_image_command(&self, image: &str) -> Invocation {
        unmount_invocation(self.invocation(), image)
    }

    /// Every local image as `repository:tag`.
    pub fn image_refs(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(parse_list(
            &self.query(&list_invocation(self.invocation()))?,
        ))
    }

    /// Pull `image`, the engine's progress on our terminal; whether it worked.
    pub fn pull(&self, image: &str) -> bool {
        self.status_with_progress(
            &pull_invocation(self.invocation(), image),
            &format!("Pulling {image}"),
        )
        .is_ok_and(|s| s.success())
    }

    /// Build `file` in `context` as `image` on `base_image`, the engine's output on our
    /// terminal; the build's exit code.
    pub fn build(
        &self,
        image: &str,
        base_image: &str,
        file: &Path,
        context: &Path,
    ) -> Result<i32, RuntimeError> {
        let podman = self.engine.kind == super::EngineKind::Podman;
        let inv = build_invocation(self.invocation(), podman, image, base_image, file, context);
        let status = self
            .status_with_progress(&inv, &format!("Building {image}"))
            .map_err(|e| self.spawn_error(e))?;
        Ok(exit_code(status))
    }

    /// Import a root file system tarball as `image`.
    pub fn import(&self, tar: &Path, changes: &[String], image: &str) -> Result<(), RuntimeError> {
        self.query(&import_invocation(self.invocation(), tar, changes, image))
            .map(drop)
    }

    /// Load an image archive; the reference it reports, if any.
    pub fn load(&self, archive: &Path) -> Result<Option<String>, RuntimeError> {
        Ok(parse_loaded(
            &self.query(&load_invocation(self.invocation(), archive))?,
        ))
    }

    /// Save `image` as an archive at `tar`.
    pub fn save(&self, image: &str, tar: &Path) -> Result<(), RuntimeError> {
        self.query(&save_invocation(self.invocation(), image, tar))
            .map(drop)
    }

    pub fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.query(&remove_invocation(self.invocation(), image))
            .map(drop)
    }

    /// The host's image store, where the engine has one to share ([`super::EngineInfo::shares_image_store`])
    /// and it is a directory here.
    pub fn image_store(&self) -> Option<PathBuf> {
        if !self.engine.shares_image_store() {
            return None;
        }
        self.query(&store_invocation(self.invocation()))
            .ok()
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| p.is_dir())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Invocation {
        Invocation::new("podman")
    }

    #[test]
    fn inspect_questions() {
        assert_eq!(
            exists_invocation(p(), "x").to_string(),
            "podman image inspect --format '{{.Id}}' x"
        );
        assert_eq!(
            details_invocation(p(), "x").to_string(),
            "podman image inspect --format '{{.Id}}|{{.Created}}|{{.Size}}' x"
        );
        assert_eq!(
            env_invocation(p(), "x").to_string(),
            "podman image inspect --format '{{json .Config.Env}}' x"
        );
        assert_eq!(
            digest_invocation(p(), "x").to_string(),
            "podman image inspect --format '{{index .RepoDigests 0}}' x"
        );
    }

    #[test]
    fn answers() {
        let d = parse_details("sha256:abcdef0123456789|2026-01-01 00:00:00|12345678\n").unwrap();
        assert_eq!(d.id, "abcdef0123456789");
        assert_eq!(d.size_bytes, 12_345_678.0);
        assert_eq!(parse_details("a|b"), None);
        let env = parse_env(br#"["PATH=/usr/bin","LANG=C.UTF-8","BARE","X=a=b"]"#);
        assert_eq!(env["X"], "a=b");
        assert_eq!(env.len(), 3);
        assert!(parse_env(b"null").is_empty() && parse_env(b"garbage").is_empty());
        assert_eq!(
            parse_digest("ghcr.io/o/r@sha256:00ff\n").as_deref(),
            Some("sha256:00ff")
        );
        assert_eq!(parse_digest("<no value>"), None);
        assert_eq!(
            parse_list("localhost/a:1\n<none>:<none>\n\nb:latest\n"),
            ["localhost/a:1", "b:latest"]
        );
        assert_eq!(
            parse_loaded("Getting image source signatures\nLoaded image: localhost/x:1\n")
                .as_deref(),
            Some("localhost/x:1")
        );
        assert_eq!(parse_loaded(""), None);
    }

    #[test]
    fn store_and_archive_calls() {
        assert_eq!(
            build_invocation(
                p(),
                true,
                "kanibako-template-js",
                "b:1",
                Path::new("/f"),
                Path::new("/c")
            )
            .to_string(),
            "podman build --no-cache --force-rm --layers=false -t kanibako-template-js --build-arg \
             BASE_IMAGE=b:1 -f /f /c"
        );
        assert_eq!(
            import_invocation(p(), Path::new("/t.tar"), &["ENV A=1".into()], "i").to_string(),
            "podman import --change 'ENV A=1' /t.tar i"
        );
        assert_eq!(
            save_invocation(p(), "i", Path::new("/o.tar")).to_string(),
            "podman save -o /o.tar i"
        );
        assert_eq!(
            load_invocation(p(), Path::new("/o.tar")).to_string(),
            "podman load -i /o.tar"
        );
        assert_eq!(remove_invocation(p(), "i").to_string(), "podman rmi i");
        assert_eq!(
            store_invocation(p()).to_string(),
            "podman info --format '{{.Store.GraphRoot}}'"
        );
        assert_eq!(
            list_invocation(p()).to_string(),
            "podman images --format '{{.Repository}}:{{.Tag}}'"
        );
    }
}
