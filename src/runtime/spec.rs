//! A container run as a value: [`RunSpec`] says what should run, [`RunSpec::to_args`]
//! renders the engine's argv. Pure: no disk, no processes, so every argv is testable and
//! `--dry-run` prints exactly what would run.
//!
//! The order of the rendered arguments is the contract (spec: upstream-runtime §3.10):
//! mode flags, network, confinement, user mapping, home, workspace, workdir, vault, masks, extra
//! mounts, env, labels, name, entrypoint, image (or rootfs), command.
//!
//! Every `run` kanibako issues is a `RunSpec`: a box's session, and the short runs on an
//! image (`rig extend`, the check of a bootstrapped rig, the tweakcc patch run).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::{EngineKind, labels};

pub use super::user::{BOX_GID, BOX_UID, UserMapping};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Attached, removed on exit. `tty` when our stdin is a terminal.
    Foreground { tty: bool },
    /// Attached like [`RunMode::Foreground`], but kept after it exits (to be committed).
    Kept { tty: bool },
    /// Detached with a terminal (the tmux session of a persistent box).
    Detached,
    /// No input, output captured, removed on exit: a job on an image.
    Batch,
}

/// The network a run gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// The engine's default.
    #[default]
    Default,
    /// None at all (`--network=none`).
    None,
    /// The network namespace of the running container named here
    /// (`--network=container:NAME`): the box beside its browser sidecar, whose DevTools
    /// listen on that namespace's loopback only.
    Container(String),
}

/// What a box may do beyond its files: nothing. Every capability dropped (the rig's
/// entry needs none: it starts as the agent user, never switching to it), no regaining
/// any through a setuid binary of the rig, a bound process count, binds the engine can
/// mark `nosuid,nodev` so marked, and, where the agent's writes land as host root, the
/// set-id filter ([`super::seccomp`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confinement {
    pub seccomp: Option<PathBuf>,
    pub limits: Limits,
}

/// The most processes a confined container may hold (a fork bomb stops there) unless
/// `box.pids_limit` says otherwise.
pub const PIDS_LIMIT: u32 = 4096;

/// The bounds a confined container runs within (`box.pids_limit`, `box.memory`,
/// `box.cpus`, `box.cap_add`), as already checked and canonical text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// `None`: unlimited.
    pub pids: Option<u32>,
    /// In the engines' size syntax (`4g`); `None`: no limit.
    pub memory: Option<String>,
    /// A decimal number of CPUs; `None`: no limit.
    pub cpus: Option<String>,
    /// Capabilities given back after every one is dropped (names without `CAP_`).
    pub cap_add: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pids: Some(PIDS_LIMIT),
            memory: None,
            cpus: None,
            cap_add: Vec::new(),
        }
    }
}

impl Limits {
    /// The flags after `--cap-drop=ALL`, in a fixed order.
    fn push_args(&self, a: &mut Vec<OsString>) {
        for cap in &self.cap_add {
            a.push(format!("--cap-add={cap}").into());
        }
        a.push(
            match self.pids {
                Some(n) => format!("--pids-limit={n}"),
                // both engines read -1 as no limit (0 is podman's "its default")
                None => "--pids-limit=-1".to_owned(),
            }
            .into(),
        );
        if let Some(m) = &self.memory {
            a.push(format!("--memory={m}").into());
        }
        if let Some(c) = &self.cpus {
            a.push(format!("--cpus={c}").into());
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A host path bound into the box. `relabel` asks SELinux hosts for the shared `z`
    /// label (safe for concurrent boxes, unlike upstream's private `Z`).
    Bind {
        src: PathBuf,
        dst: String,
        read_only: bool,
        relabel: bool,
    },
    /// An empty read-only tmpfs hiding what is below `dst`.
    Mask { dst: String },
}

impl Mount {
    pub fn dst(&self) -> &str {
        match self {
            Mount::Bind { dst, .. } | Mount::Mask { dst } => dst,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub mode: RunMode,
    pub network: Network,
    pub user: UserMapping,
    /// `None` only for runs that change an image as its root (`rig extend`, the check
    /// of a bootstrapped rig), which mount nothing of the user's.
    pub confined: Option<Confinement>,
    pub workdir: String,
    /// In order: home, workspace, vault, masks, then extra mounts.
    pub mounts: Vec<Mount>,
    /// Passed in a 0600 `--env-file`, so no value ever shows on a process list (and
    /// none leaks into the engine process's own environment, where `HOME` or `PATH`
    /// would change how the engine itself behaves).
    pub env: BTreeMap<String, String>,
    /// Variables the box takes from the engine's own environment (`-e NAME`, no
    /// value): an agent's API key set on the host reaches it without being written
    /// on a command line or into a file.
    pub pass_env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Option<String>,
    pub command: Vec<OsString>,
}

fn bind_arg(
    src: &std::path::Path,
    dst: &str,
    read_only: bool,
    relabel: bool,
    nosuid: bool,
) -> OsString {
    let mut opts = Vec::new();
    if read_only {
        opts.push("ro");
    }
    if relabel {
        opts.push("z");
    }
    if nosuid {
        opts.push("nosuid,nodev");
    }
    let mut s = src.as_os_str().to_owned();
    s.push(":");
    s.push(dst);
    if !opts.is_empty() {
        s.push(":");
        s.push(opts.join(","));
    }
    s
}

impl RunSpec {
    /// A run on `image` that is no box's session: nothing mounted, no environment, and
    /// labelled with its `role` (`rig-extend`, `rig-check`, `tweakcc`) and our version.
    pub fn job(role: &str, name: String, image: &str, mode: RunMode, user: UserMapping) -> Self {
        Self {
            name,
            image: image.to_owned(),
            mode,
            network: Network::Default,
            user,
            confined: None,
            workdir: String::new(),
            mounts: Vec::new(),
            env: BTreeMap::new(),
            pass_env: Vec::new(),
            labels: BTreeMap::from([
                (labels::ROLE.to_owned(), role.to_owned()),
                (
                    labels::VERSION.to_owned(),
                    env!("CARGO_PKG_VERSION").to_owned(),
                ),
            ]),
            entrypoint: None,
            command: Vec::new(),
        }
    }

    /// `run …` for this engine. `rootfs` is the mounted image directory, required for
    /// [`UserMapping::SplitMap`] and ignored otherwise; `env_file` holds [`Self::env`]
    /// (and is needed only when that is not empty).
    pub fn to_args(
        &self,
        kind: EngineKind,
        rootfs: Option<&std::path::Path>,
        env_file: Option<&std::path::Path>,
    ) -> Vec<OsString> {
        debug_assert!(
            self.env.is_empty() || env_file.is_some(),
            "an environment travels only in its file"
        );
        let mut a: Vec<OsString> = vec!["run".into()];
        match self.mode {
            RunMode::Foreground { tty } => {
                a.push(if tty { "-it" } else { "-i" }.into());
                a.push("--rm".into());
            }
            RunMode::Kept { tty } => a.push(if tty { "-it" } else { "-i" }.into()),
            RunMode::Detached => a.push("-dt".into()),
            RunMode::Batch => a.push("--rm".into()),
        }
        // A PID 1 that forwards signals: without it `stop` waits 10 s for a shell that
        // ignores SIGTERM.
        a.push("--init".into());
        match &self.network {
            Network::Default => {}
            Network::None => a.push("--network=none".into()),
            Network::Container(name) => a.push(format!("--network=container:{name}").into()),
        }
        if let Some(c) = &self.confined {
            a.push("--cap-drop=ALL".into());
            a.push("--security-opt=no-new-privileges".into());
            if let Some(profile) = &c.seccomp {
                let mut s = OsString::from("--security-opt=seccomp=");
                s.push(profile);
                a.push(s);
            }
            c.limits.push_args(&mut a);
        }
        self.user.push_args(&mut a);
        let nosuid = self.confined.is_some() && kind.binds_take_nosuid();
        for m in &self.mounts {
            match m {
                Mount::Bind {
                    src,
                    dst,
                    read_only,
                    relabel,
                } => {
                    a.push("-v".into());
                    a.push(bind_arg(src, dst, *read_only, *relabel, nosuid));
                    if dst == "/home/agent/workspace" {
                        a.push("-w".into());
                        a.push(self.workdir.clone().into());
                    }
                }
                Mount::Mask { dst } => {
                    a.push("--mount".into());
                    // A tmpfs that starts as a copy of what it covers would defeat the
                    // mask.
                    a.push(
                        if kind.tmpfs_copies_up() {
                            format!("type=tmpfs,dst={dst},ro,notmpcopyup")
                        } else {
                            format!("type=tmpfs,dst={dst},ro")
                        }
                        .into(),
                    );
                }
            }
        }
        if let Some(f) = env_file.filter(|_| !self.env.is_empty()) {
            a.push("--env-file".into());
            a.push(f.into());
        }
        for name in &self.pass_env {
            a.push("-e".into());
            a.push(name.into());
        }
        for (k, v) in &self.labels {
            a.push("--label".into());
            a.push(format!("{k}={v}").into());
        }
        a.push("--name".into());
        a.push(self.name.clone().into());
        if let Some(e) = &self.entrypoint {
            a.push("--entrypoint".into());
            a.push(e.into());
        }
        match (&self.user, rootfs) {
            (UserMapping::SplitMap { .. }, Some(dir)) => {
                a.push("--rootfs".into());
                let mut r = dir.as_os_str().to_owned();
                r.push(":O");
                a.push(r);
            }
            _ => {
                // Never pull on the way: a missing image fails in milliseconds (and
                // kanibako then says how to get one) instead of waiting on a registry.
                a.insert(1, "--pull=never".into());
                a.push(self.image.clone().into());
            }
        }
        a.extend(self.command.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EngineInfo;
    use std::path::Path;

    fn engine(kind: EngineKind, rootless: bool) -> EngineInfo {
        EngineInfo {
            kind,
            program: PathBuf::from(kind.name()),
            rootless,
            remote: false,
        }
    }

    fn spec(user: UserMapping, mode: RunMode) -> RunSpec {
        RunSpec {
            name: "kanibako-app".into(),
            image: "localhost/rig:1".into(),
            mode,
            network: Network::Default,
            user,
            confined: Some(Confinement::default()),
            workdir: "/home/agent/workspace".into(),
            mounts: vec![
                Mount::Bind {
                    src: "/d/boxes/app/shell".into(),
                    dst: "/home/agent".into(),
                    read_only: false,
                    relabel: true,
                },
                Mount::Bind {
                    src: "/p/app".into(),
                    dst: "/home/agent/workspace".into(),
                    read_only: false,
                    relabel: true,
                },
                Mount::Bind {
                    src: "/p/app/vault/ro".into(),
                    dst: "/home/agent/share-ro".into(),
                    read_only: true,
                    relabel: false,
                },
                Mount::Mask {
                    dst: "/home/agent/workspace/vault".into(),
                },
            ],
            env: BTreeMap::from([
                ("ZED".into(), "secret".into()),
                ("ALPHA".into(), "1".into()),
            ]),
            pass_env: Vec::new(),
            labels: BTreeMap::from([("io.kanibako.box".into(), "app".into())]),
            entrypoint: Some("claude".into()),
            command: vec!["--continue".into()],
        }
    }

    fn render(s: &RunSpec, e: &EngineInfo, rootfs: Option<&Path>) -> String {
        s.to_args(e.kind, rootfs, Some(Path::new("/run/e")))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn rootless_podman_foreground_tty() {
        let s = spec(
            UserMapping::KeepId { pin: true },
            RunMode::Foreground { tty: true },
        );
        assert_eq!(
            render(&s, &engine(EngineKind::Podman, true), None),
            "run --pull=never -it --rm --init --cap-drop=ALL --security-opt=no-new-privileges \
             --pids-limit=4096 --userns=keep-id:uid=1000,gid=1000 \
             -v /d/boxes/app/shell:/home/agent:z,nosuid,nodev \
             -v /p/app:/home/agent/workspace:z,nosuid,nodev \
             -w /home/agent/workspace -v /p/app/vault/ro:/home/agent/share-ro:ro,nosuid,nodev \
             --mount type=tmpfs,dst=/home/agent/workspace/vault,ro,notmpcopyup --env-file /run/e \
             --label io.kanibako.box=app --name kanibako-app --entrypoint claude \
             localhost/rig:1 --continue"
        );
    }

    #[test]
    fn rootful_podman_maps_the_agent_to_the_invoking_user_on_a_mounted_rootfs() {
        let s = spec(
            UserMapping::SplitMap {
                host_uid: 0,
                host_gid: 0,
            },
            RunMode::Foreground { tty: false },
        );
        let out = render(
            &s,
            &engine(EngineKind::Podman, false),
            Some(Path::new("/m/merged")),
        );
        assert!(
            out.starts_with(
                "run -i --rm --init --cap-drop=ALL --security-opt=no-new-privileges \
             --pids-limit=4096 --uidmap 0:2147483648:1000 --uidmap 1000:0:1 \
             --uidmap 1001:2147484649:64535 --gidmap 0:2147483648:1000 --gidmap 1000:0:1 \
             --gidmap 1001:2147484649:64535 --user 1000:1000 -v "
            ),
            "{out}"
        );
        assert!(
            out.ends_with("--entrypoint claude --rootfs /m/merged:O --continue"),
            "{out}"
        );
        assert!(
            !out.contains("localhost/rig:1"),
            "the rootfs replaces the image: {out}"
        );
    }

    #[test]
    fn docker_runs_as_a_plain_user_detached() {
        let s = spec(
            UserMapping::User {
                uid: 1001,
                gid: 1001,
            },
            RunMode::Detached,
        );
        let out = render(&s, &engine(EngineKind::Docker, false), None);
        assert!(
            out.starts_with(
                "run --pull=never -dt --init --cap-drop=ALL --security-opt=no-new-privileges \
                 --pids-limit=4096 --user 1001:1001 -v "
            ),
            "{out}"
        );
        assert!(!out.contains("--rm"));
    }

    #[test]
    fn no_mode_chowns_and_no_value_reaches_argv() {
        for user in [
            UserMapping::KeepId { pin: false },
            UserMapping::SplitMap {
                host_uid: 5,
                host_gid: 5,
            },
            UserMapping::User { uid: 5, gid: 5 },
        ] {
            for kind in [EngineKind::Podman, EngineKind::Docker] {
                let s = spec(user.clone(), RunMode::Foreground { tty: false });
                let out = render(&s, &engine(kind, false), Some(Path::new("/r")));
                assert!(!out.contains("secret"), "{out}");
                assert!(
                    !out.contains(":U") && !out.contains(",U") && !out.contains(":Z"),
                    "{out}"
                );
            }
        }
    }

    /// Issue 10, item 5: a box holds no capability, cannot regain one through a setuid
    /// binary, its binds are `nosuid,nodev` where the engine takes them, and the set-id
    /// filter is passed when there is one; a job that changes an image is not confined.
    #[test]
    fn a_box_is_confined_and_an_image_job_is_not() {
        let mut s = spec(UserMapping::User { uid: 1, gid: 1 }, RunMode::Detached);
        s.confined = Some(Confinement {
            seccomp: Some("/c/f.json".into()),
            ..Confinement::default()
        });
        for kind in [EngineKind::Podman, EngineKind::Docker] {
            let out = render(&s, &engine(kind, false), None);
            for flag in [
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--security-opt=seccomp=/c/f.json",
                "--pids-limit=4096",
            ] {
                assert!(out.contains(flag), "{kind:?}: {out}");
            }
            let binds = out.matches(" -v ").count();
            assert_eq!(
                out.matches(",nosuid,nodev").count(),
                if kind == EngineKind::Podman { binds } else { 0 },
                "{out}"
            );
        }
        let job = RunSpec::job(
            "rig-extend",
            "x".into(),
            "i",
            RunMode::Batch,
            UserMapping::Image,
        );
        let out = render(&job, &engine(EngineKind::Podman, false), None);
        assert!(
            !out.contains("--cap-drop") && !out.contains("nosuid"),
            "{out}"
        );
    }

    /// Issue 13: the box's limits and added capabilities follow `--cap-drop=ALL`, the
    /// same for both engines; no limit means no flag (pids: -1, both engines' "none").
    #[test]
    fn limits_and_added_capabilities_render_for_both_engines() {
        let mut s = spec(UserMapping::User { uid: 1, gid: 1 }, RunMode::Detached);
        s.confined = Some(Confinement {
            seccomp: None,
            limits: Limits {
                pids: Some(64),
                memory: Some("4g".into()),
                cpus: Some("1.5".into()),
                cap_add: vec!["NET_RAW".into(), "SYS_PTRACE".into()],
            },
        });
        for kind in [EngineKind::Podman, EngineKind::Docker] {
            let out = render(&s, &engine(kind, false), None);
            assert!(
                out.contains(
                    "--cap-drop=ALL --security-opt=no-new-privileges --cap-add=NET_RAW \
                     --cap-add=SYS_PTRACE --pids-limit=64 --memory=4g --cpus=1.5 --user"
                ),
                "{kind:?}: {out}"
            );
        }
        s.confined = Some(Confinement {
            seccomp: None,
            limits: Limits {
                pids: None,
                ..Limits::default()
            },
        });
        let out = render(&s, &engine(EngineKind::Podman, true), None);
        assert!(out.contains("--pids-limit=-1 --user"), "{out}");
        assert!(
            !out.contains("--memory") && !out.contains("--cpus"),
            "{out}"
        );
    }

    #[test]
    fn masks_render_after_binds_and_workdir_follows_the_workspace() {
        let s = spec(UserMapping::User { uid: 1, gid: 1 }, RunMode::Detached);
        let out = render(&s, &engine(EngineKind::Docker, false), None);
        let ws = out
            .find("/home/agent/workspace:z -w /home/agent/workspace")
            .or_else(|| out.find("/home/agent/workspace:z,nosuid,nodev -w /home/agent/workspace"))
            .unwrap();
        let mask = out.find("type=tmpfs").unwrap();
        assert!(ws < mask);
    }
}
