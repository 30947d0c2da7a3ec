//! What the engine knows of a box's container, learnt with at most one `inspect`, and
//! only where one may exist: a launch left its marker, or holds the session lock.
//! A stale marker (nothing there) is cleared on the way.

use anyhow::Result;

use crate::boxes::BoxIdentity;
use crate::fsutil;
use crate::host::HostEnv;
use crate::runtime::Runtime;
use crate::runtime::containers::ContainerState;

/// Whose a container under the box's name is, by its `io.kanibako.hash` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Ours,
    /// No label: started by the Python tool (or by hand).
    Unlabelled,
    /// Another box's, under a colliding name (a workset member `a/b-c` and a box `a-b-c`).
    Other,
}

/// The box's container as one `inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    Absent,
    /// `rootfs`: the image a rootful-podman container runs on, to unmount after it.
    Running {
        owner: Owner,
        rootfs: Option<String>,
    },
    Stopped {
        owner: Owner,
        rootfs: Option<String>,
    },
}

/// What an `inspect` answer (`None`: no such container) means for box `hash`.
pub fn existing(state: Option<ContainerState>, hash: &str) -> Existing {
    let Some(s) = state else {
        return Existing::Absent;
    };
    let owner = match s.hash.as_deref() {
        Some(h) if h == hash => Owner::Ours,
        Some(_) => Owner::Other,
        None => Owner::Unlabelled,
    };
    if s.running {
        Existing::Running {
            owner,
            rootfs: s.rootfs,
        }
    } else {
        Existing::Stopped {
            owner,
            rootfs: s.rootfs,
        }
    }
}

/// What a launch learnt of the box's container.
pub struct Seen {
    pub existing: Existing,
    /// Whether the engine was asked: when it was not, a container nobody told us about
    /// may still hold the name.
    pub asked: bool,
}

/// The box's container; the engine is asked only where one may exist. A dry run
/// changes nothing, not even a stale marker. `joining` (a `shell`, which only needs to
/// know the box runs): a launch's marker and the box's hub holding its lock say so
/// without asking — the hub lives exactly as long as the box's container, and should
/// the container have just gone, the `exec` fails with the engine's own words.
pub fn gather(
    host: &HostEnv,
    rt: &Runtime,
    b: &BoxIdentity,
    dry_run: bool,
    joining: bool,
) -> Result<Seen> {
    let marker = b.container_marker();
    let marked = marker.exists();
    let may_exist = marked || b.session_active() || fsutil::is_symlink(&marker);
    if !may_exist {
        return Ok(Seen {
            existing: Existing::Absent,
            asked: false,
        });
    }
    if joining && marked && !dry_run && hub_holds_box(host, b) {
        return Ok(Seen {
            existing: Existing::Running {
                owner: Owner::Ours,
                rootfs: None,
            },
            asked: false,
        });
    }
    let existing = existing(rt.container_state(&b.container_name())?, &b.hash);
    if existing == Existing::Absent && !dry_run {
        let _ = std::fs::remove_file(&marker);
    }
    Ok(Seen {
        existing,
        asked: true,
    })
}

/// Whether the box's helper hub runs, and is not on its way out (it ends when the
/// box's container does).
fn hub_holds_box(host: &HostEnv, b: &BoxIdentity) -> bool {
    matches!(
        crate::hub::status_of(host, &b.hash),
        crate::hub::HubStatus::Running {
            stopping: false,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(running: bool, hash: Option<&str>) -> Option<ContainerState> {
        Some(ContainerState {
            running,
            hash: hash.map(str::to_owned),
            rootfs: Some("img".into()),
        })
    }

    #[test]
    fn the_hash_label_says_whose_it_is() {
        assert_eq!(existing(None, "h"), Existing::Absent);
        assert_eq!(
            existing(state(true, Some("h")), "h"),
            Existing::Running {
                owner: Owner::Ours,
                rootfs: Some("img".into())
            }
        );
        assert!(matches!(
            existing(state(false, Some("x")), "h"),
            Existing::Stopped {
                owner: Owner::Other,
                ..
            }
        ));
        assert!(matches!(
            existing(state(true, None), "h"),
            Existing::Running {
                owner: Owner::Unlabelled,
                ..
            }
        ));
    }
}
