//! The in-box user: how the rig's `agent` user relates to the invoking host user on
//! each engine, and the `run` arguments that say so. Which mapping an engine gets is
//! its capability ([`super::EngineInfo::user_mapping`]).

use std::ffi::OsString;

/// The uid and gid of the `agent` user every rig provides (the image contract).
pub const BOX_UID: u32 = 1000;
pub const BOX_GID: u32 = 1000;

/// Where the rest of the box's uid range lands on the host when rootful podman maps the
/// agent to the invoking user: far above any range `/etc/subuid` hands out, so files a
/// box creates as another uid never belong to a real account.
pub const MAPPED_BASE: u32 = 2_147_483_648;
const MAPPED_LEN: u32 = 65_536;

/// How the in-box `agent` user relates to the invoking host user. In every mode the agent
/// is not root inside the box (Claude Code refuses to skip permissions as root) and,
/// except where the engine makes it impossible, what it writes in the workspace belongs
/// to the invoking user on the host. No mode ever chowns the user's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserMapping {
    /// Rootless podman: the user namespace maps the invoking user to the agent
    /// (`--userns=keep-id:uid=1000,gid=1000`; plain `keep-id` on podman older than 4.3).
    KeepId { pin: bool },
    /// Rootful podman: box uid 1000 is the invoking host uid, every other box uid lands
    /// in an unused high range. Podman 4.3 cannot mount image layers under a split map
    /// (overlay "mapped" layers fail), so the image is mounted read-only
    /// (`podman image mount`) and run as `--rootfs <dir>:O` with a throw-away overlay.
    SplitMap { host_uid: u32, host_gid: u32 },
    /// A daemon without per-container user namespaces (docker): run as this uid:gid.
    User { uid: u32, gid: u32 },
    /// Rootless podman beside a browser sidecar: the user namespace of the running
    /// container named here (`--userns=container:NAME`), which keep-id made with the
    /// same mapping, as the agent. Its network namespace is that container's too, and
    /// a container may mount its `/sys` only in a network namespace its own user
    /// namespace owns.
    Joined { container: String },
    /// The image's own user, unmapped: for runs that change the image itself (`rig
    /// extend`, whose result is committed, so it cannot run on a throw-away overlay
    /// the way [`UserMapping::SplitMap`] does) or work on a scratch copy (tweakcc).
    /// Nothing of the user's is mounted into such a run.
    Image,
}

impl UserMapping {
    /// Its arguments to `run`.
    pub(super) fn push_args(&self, out: &mut Vec<OsString>) {
        match self {
            UserMapping::KeepId { pin: true } => {
                out.push(format!("--userns=keep-id:uid={BOX_UID},gid={BOX_GID}").into())
            }
            UserMapping::KeepId { pin: false } => out.push("--userns=keep-id".into()),
            UserMapping::SplitMap { host_uid, host_gid } => {
                for (flag, host) in [("--uidmap", host_uid), ("--gidmap", host_gid)] {
                    let box_id = BOX_UID; // uid and gid are both 1000 by the rig contract
                    for range in [
                        format!("0:{MAPPED_BASE}:{box_id}"),
                        format!("{box_id}:{host}:1"),
                        format!(
                            "{}:{}:{}",
                            box_id + 1,
                            MAPPED_BASE + box_id + 1,
                            MAPPED_LEN - box_id - 1
                        ),
                    ] {
                        out.push(flag.into());
                        out.push(range.into());
                    }
                }
                out.push("--user".into());
                out.push(format!("{BOX_UID}:{BOX_GID}").into());
            }
            UserMapping::User { uid, gid } => {
                out.push("--user".into());
                out.push(format!("{uid}:{gid}").into());
            }
            UserMapping::Joined { container } => {
                out.push(format!("--userns=container:{container}").into());
                out.push("--user".into());
                out.push(format!("{BOX_UID}:{BOX_GID}").into());
            }
            UserMapping::Image => {}
        }
    }
}
