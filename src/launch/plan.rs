//! Pure launch planning: everything a launch needs, gathered beforehand, turned into a
//! [`RunSpec`]. No disk, no processes: the whole argv is decided here and unit-tested.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::boxes::BoxIdentity;
use crate::runtime::labels;
use crate::runtime::spec::{Confinement, Limits, Mount, Network, RunMode, RunSpec, UserMapping};

pub const GUEST_HOME: &str = "/home/agent";
pub const GUEST_WORKSPACE: &str = "/home/agent/workspace";
/// Where a box sees the host's image store with `--share-images`.
pub const SHARED_IMAGES: &str = "/var/lib/shared-images";

/// The storage.conf that makes a box's podman use the shared store read-only.
pub fn shared_images_conf() -> String {
    format!(
        "[storage]\n  driver = \"overlay\"\n  [storage.options]\n    additionalimagestores = [\"{SHARED_IMAGES}\"]\n"
    )
}

/// The tmux session a persistent box runs its agent in.
pub const TMUX_SESSION: &str = "kanibako";
/// What attaches a terminal to the box's tmux session, run in its container.
pub fn attach_command() -> Vec<OsString> {
    ["tmux", "attach", "-t", TMUX_SESSION]
        .map(OsString::from)
        .to_vec()
}

/// Where the session wrapper leaves the agent's exit status, relative to the home:
/// empty from the agent's start, its status once it ended by itself.
pub const AGENT_EXIT_FILE: &str = ".local/state/kanibako/agent-exit";
/// Where it leaves the agent's last screen (plain text), relative to the home.
pub const AGENT_OUTPUT_FILE: &str = ".local/state/kanibako/agent-output";
/// Run `"$@"`, leave its exit status and its last screen for the host (tmux passes on
/// neither, and an agent that ends at once may end before anyone attaches), and on
/// failure wait a second so tmux draws the agent's last words into the container log.
const PAUSE_ON_FAILURE: &str = "mkdir -p ~/.local/state/kanibako; : > ~/.local/state/kanibako/agent-exit; \"$@\"; s=$?; tmux capture-pane -p -J -S -40 > ~/.local/state/kanibako/agent-output 2>/dev/null; echo $s > ~/.local/state/kanibako/agent-exit; [ $s -eq 0 ] || sleep 1; exit $s";

/// Environment layers, lowest first (spec: upstream-cli-and-data §7.7): what the image
/// declares (only when kanibako must supply it), the system env file, the crab's `env:`,
/// the workset's, the box env file, then `-e`. An empty value removes the variable.
/// Agent defaults fill only unset names; `KANIBAKO_NAME` is always the box's name.
#[derive(Clone, Debug, Default)]
pub struct EnvLayers {
    pub image: BTreeMap<String, String>,
    pub system: BTreeMap<String, String>,
    pub crab: BTreeMap<String, String>,
    pub workset: BTreeMap<String, String>,
    pub boxed: BTreeMap<String, String>,
    pub cli: BTreeMap<String, String>,
    pub defaults: Vec<(String, String)>,
}

pub fn layer_env(l: &EnvLayers, box_name: Option<&str>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([("HOME".to_owned(), GUEST_HOME.to_owned())]);
    for layer in [&l.image, &l.system, &l.crab, &l.workset, &l.boxed, &l.cli] {
        for (k, v) in layer {
            // An empty value at a more specific level suppresses the variable (as every
            // setting's explicit "" does): the box does not get it at all.
            if v.is_empty() {
                env.remove(k);
            } else {
                env.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in &l.defaults {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if let Some(n) = box_name {
        env.insert("KANIBAKO_NAME".into(), n.to_owned());
    }
    env
}

/// Everything the plan depends on, read from disk and the host beforehand.
#[derive(Clone, Debug)]
pub struct PlanInputs {
    pub identity: BoxIdentity,
    pub image: String,
    pub mode: RunMode,
    pub user: UserMapping,
    /// Which vault directories exist (`ro`, `rw`).
    pub vault_present: (bool, bool),
    /// Read-only mounts of the agent's install.
    pub agent_mounts: Vec<Mount>,
    /// This kanibako binary, mounted read-only so the box can call it.
    pub self_binary: Option<PathBuf>,
    /// Existing shared-cache directories and their place under the home.
    pub shared: Vec<(PathBuf, String)>,
    /// Named shares (`*.path.share_ro|share_rw.<name>`): source, place under the home,
    /// read-only.
    pub shares: Vec<(PathBuf, PathBuf, bool)>,
    /// The host's image store and the storage.conf that points the box's podman at it
    /// (`--share-images`).
    /// The parts of the host's image store a box may see (host path, place below
    /// [`SHARED_IMAGES`]), and its storage.conf.
    pub image_store: Option<(Vec<(PathBuf, String)>, PathBuf)>,
    pub env: BTreeMap<String, String>,
    /// Host variables the agent takes by name ([`crate::agents::Agent::passed_env`]).
    pub pass_env: Vec<String>,
    pub entrypoint: Option<String>,
    pub command: Vec<OsString>,
    pub version: String,
    /// [`crate::paths::Paths::data_id`] of the data directory launching it.
    pub data_id: String,
    /// The set-id filter, where the agent's writes land as host root
    /// ([`crate::runtime::seccomp`]).
    pub seccomp: Option<PathBuf>,
    /// The box's limits and added capabilities (`box.pids_limit`, …, `box.cap_add`).
    pub limits: Limits,
    /// `box.network`.
    pub network: Network,
}

fn bind(src: PathBuf, dst: &str, read_only: bool) -> Mount {
    Mount::Bind {
        src,
        dst: dst.to_owned(),
        read_only,
        relabel: !read_only,
    }
}

/// The labels that make a container recognisably this box's.
pub fn box_labels(b: &BoxIdentity, version: &str, data_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::BOX.to_owned(),
            b.name.as_ref().map(ToString::to_string).unwrap_or_default(),
        ),
        (labels::HASH.to_owned(), b.hash.clone()),
        (labels::VERSION.to_owned(), version.to_owned()),
        (labels::DATA.to_owned(), data_id.to_owned()),
    ])
}

pub fn plan(i: &PlanInputs) -> RunSpec {
    let b = &i.identity;
    let mut mounts = vec![
        bind(b.shell.clone(), GUEST_HOME, false),
        bind(b.workspace.clone(), GUEST_WORKSPACE, false),
    ];
    if let Some(v) = &b.vault {
        if i.vault_present.0 {
            mounts.push(bind(v.ro.clone(), "/home/agent/share-ro", true));
        }
        if i.vault_present.1 {
            mounts.push(bind(v.rw.clone(), "/home/agent/share-rw", false));
        }
        // A vault inside the workspace (the default layout, a standalone box) is also
        // seen through the workspace mount: its read-only share is hidden there, so it
        // cannot be written that way. Only `ro` itself: the rest of a `vault/` directory
        // may be the project's own files, and `rw` the box writes anyway.
        if i.vault_present.0
            && let Ok(rel) = v.ro.strip_prefix(&b.workspace)
            && let Some(rel) = rel.to_str().filter(|r| !r.is_empty())
        {
            mounts.push(Mount::Mask {
                dst: format!("{GUEST_WORKSPACE}/{rel}"),
            });
        }
    }
    mounts.extend(i.agent_mounts.iter().cloned());
    if let Some(exe) = &i.self_binary {
        mounts.push(Mount::Bind {
            src: exe.clone(),
            dst: "/home/agent/.local/bin/kanibako".into(),
            read_only: true,
            relabel: false,
        });
    }
    for (src, rel) in &i.shared {
        mounts.push(bind(
            src.clone(),
            &format!("{GUEST_HOME}/{}", rel.trim_start_matches('/')),
            false,
        ));
    }
    for (src, rel, read_only) in &i.shares {
        mounts.push(bind(
            src.clone(),
            &format!("{GUEST_HOME}/{}", rel.display()),
            *read_only,
        ));
    }
    if let Some((parts, conf)) = &i.image_store {
        // Image layers and records only: never the store's container state.
        for (src, rel) in parts {
            mounts.push(Mount::Bind {
                src: src.clone(),
                dst: format!("{SHARED_IMAGES}/{rel}"),
                read_only: true,
                relabel: false,
            });
        }
        mounts.push(Mount::Bind {
            src: conf.clone(),
            dst: "/home/agent/.config/containers/storage.conf".into(),
            read_only: true,
            relabel: false,
        });
    }
    let mut labels = box_labels(b, &i.version, &i.data_id);
    if matches!(i.user, UserMapping::SplitMap { .. }) {
        // Such a container runs on a mounted image, which `stop` must unmount.
        labels.insert(labels::ROOTFS.to_owned(), i.image.clone());
    }
    // A persistent session is the agent inside a tmux session that outlives the
    // terminal: `tmux new-session -s kanibako -- <command>`. When the command fails, a
    // short pause lets tmux draw its last words before the session (and the container)
    // ends, so they reach the container log, where "No conversation found" is looked for.
    let (entrypoint, command) = match i.mode {
        RunMode::Detached => {
            let mut cmd: Vec<OsString> = [
                "new-session",
                "-s",
                TMUX_SESSION,
                "--",
                "/bin/sh",
                "-c",
                PAUSE_ON_FAILURE,
                "kanibako",
            ]
            .iter()
            .map(OsString::from)
            .collect();
            cmd.push(
                i.entrypoint
                    .clone()
                    .unwrap_or_else(|| "/bin/bash".into())
                    .into(),
            );
            cmd.extend(i.command.iter().cloned());
            (Some("tmux".to_owned()), cmd)
        }
        RunMode::Foreground { .. } | RunMode::Kept { .. } | RunMode::Batch => {
            (i.entrypoint.clone(), i.command.clone())
        }
    };
    RunSpec {
        name: b.container_name(),
        image: i.image.clone(),
        mode: i.mode,
        network: i.network.clone(),
        user: i.user.clone(),
        confined: Some(Confinement {
            seccomp: i.seccomp.clone(),
            limits: i.limits.clone(),
        }),
        workdir: GUEST_WORKSPACE.into(),
        mounts,
        env: i.env.clone(),
        pass_env: i.pass_env.clone(),
        labels,
        entrypoint,
        command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::{BoxName, Mode, ProjectSettings};
    use std::path::Path;

    fn inputs(mode: Mode) -> PlanInputs {
        let identity = match mode {
            Mode::Standalone => {
                BoxIdentity::standalone("/p/solo".into(), ProjectSettings::default())
            }
            _ => BoxIdentity::default_mode(
                BoxName::parse("app").unwrap(),
                "/p/app".into(),
                Path::new("/d/boxes"),
                ProjectSettings::default(),
            ),
        };
        PlanInputs {
            identity,
            image: "img".into(),
            mode: RunMode::Foreground { tty: false },
            user: UserMapping::User { uid: 1, gid: 1 },
            vault_present: (true, true),
            agent_mounts: Vec::new(),
            self_binary: Some("/usr/bin/kanibako".into()),
            shared: vec![("/d/shared/global/pip".into(), ".cache/pip".into())],
            shares: vec![("/srv/ref".into(), "ref".into(), true)],
            image_store: None,
            env: BTreeMap::new(),
            pass_env: Vec::new(),
            entrypoint: None,
            command: Vec::new(),
            version: "0.1.0".into(),
            data_id: "d0d0d0d0d0d0".into(),
            seccomp: None,
            limits: Default::default(),
            network: Default::default(),
        }
    }

    fn dsts(s: &RunSpec) -> Vec<&str> {
        s.mounts.iter().map(Mount::dst).collect()
    }

    #[test]
    fn mounts_in_the_documented_order() {
        let s = plan(&inputs(Mode::Default));
        assert_eq!(
            dsts(&s),
            [
                "/home/agent",
                "/home/agent/workspace",
                "/home/agent/share-ro",
                "/home/agent/share-rw",
                "/home/agent/workspace/vault/ro",
                "/home/agent/.local/bin/kanibako",
                "/home/agent/.cache/pip",
                "/home/agent/ref",
            ]
        );
        assert!(s.mounts.iter().any(|m| matches!(
            m,
            Mount::Bind { dst, read_only: true, .. } if dst == "/home/agent/ref"
        )));
        assert!(matches!(
            &s.mounts[2],
            Mount::Bind {
                read_only: true,
                ..
            }
        ));
        assert_eq!(s.name, "kanibako-app");
        assert_eq!(s.labels["io.kanibako.box"], "app");
        assert_eq!(s.labels["io.kanibako.version"], "0.1.0");
    }

    #[test]
    fn shared_images_come_last_read_only() {
        let mut i = inputs(Mode::Default);
        i.image_store = Some((
            vec![(
                "/var/lib/containers/storage/overlay-images".into(),
                "overlay-images".into(),
            )],
            "/d/boxes/app/.image-sharing/storage.conf".into(),
        ));
        let s = plan(&i);
        let d = dsts(&s);
        let at = d
            .iter()
            .position(|x| *x == "/var/lib/shared-images/overlay-images")
            .unwrap();
        assert_eq!(d[at + 1], "/home/agent/.config/containers/storage.conf");
        assert_eq!(d.len(), at + 2, "companions add theirs after");
        assert!(matches!(
            &s.mounts[at],
            Mount::Bind {
                read_only: true,
                ..
            }
        ));
        assert!(
            shared_images_conf().contains("additionalimagestores = [\"/var/lib/shared-images\"]")
        );
    }

    #[test]
    fn standalone_boxes_get_no_mask_and_missing_vaults_are_skipped() {
        let mut i = inputs(Mode::Standalone);
        i.vault_present = (false, true);
        let s = plan(&i);
        let d = dsts(&s);
        assert!(
            !d.iter()
                .any(|d| d.starts_with("/home/agent/workspace/vault"))
        );
        assert!(!d.contains(&"/home/agent/share-ro"));
        assert!(d.contains(&"/home/agent/share-rw"));
        assert_eq!(s.labels["io.kanibako.box"], "");
    }

    /// Issue 10 (low): a standalone box's read-only share, which lies in its workspace,
    /// is masked there, so it cannot be written through the workspace mount.
    #[test]
    fn a_standalone_box_s_read_only_share_is_masked_in_its_workspace() {
        let s = plan(&inputs(Mode::Standalone));
        let d = dsts(&s);
        assert!(d.contains(&"/home/agent/share-ro"), "{d:?}");
        assert!(d.contains(&"/home/agent/workspace/vault/ro"), "{d:?}");
        assert!(!d.contains(&"/home/agent/workspace/vault"), "{d:?}");
        let ws = d.iter().position(|x| *x == GUEST_WORKSPACE).unwrap();
        let mask = d
            .iter()
            .position(|x| *x == "/home/agent/workspace/vault/ro")
            .unwrap();
        assert!(ws < mask, "the mask lies over the workspace mount: {d:?}");
    }

    #[test]
    fn a_persistent_run_wraps_the_agent_in_tmux() {
        let mut i = inputs(Mode::Default);
        i.mode = RunMode::Detached;
        i.entrypoint = Some("/home/agent/.local/bin/claude".into());
        i.command = vec!["--continue".into()];
        let s = plan(&i);
        assert_eq!(s.entrypoint.as_deref(), Some("tmux"));
        let cmd: Vec<_> = s
            .command
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            cmd,
            [
                "new-session",
                "-s",
                "kanibako",
                "--",
                "/bin/sh",
                "-c",
                PAUSE_ON_FAILURE,
                "kanibako",
                "/home/agent/.local/bin/claude",
                "--continue"
            ]
        );
        i.entrypoint = None;
        i.command = Vec::new();
        assert_eq!(plan(&i).command.last().unwrap(), "/bin/bash");
    }

    #[test]
    fn env_precedence() {
        let l = EnvLayers {
            image: BTreeMap::from([
                ("LANG".into(), "C.UTF-8".into()),
                ("A".into(), "image".into()),
            ]),
            system: BTreeMap::from([
                ("A".into(), "system".into()),
                ("COLORTERM".into(), "truecolor".into()),
            ]),
            crab: BTreeMap::from([("A".into(), "crab".into())]),
            workset: BTreeMap::from([("W".into(), "ws".into()), ("GONE".into(), "ws".into())]),
            boxed: BTreeMap::from([
                ("A".into(), "box".into()),
                ("B".into(), "box".into()),
                ("GONE".into(), String::new()),
            ]),
            cli: BTreeMap::from([
                ("B".into(), "cli".into()),
                ("KANIBAKO_NAME".into(), "spoof".into()),
            ]),
            defaults: vec![
                (
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                    "1".into(),
                ),
                ("B".into(), "default".into()),
            ],
        };
        let env = layer_env(&l, Some("app"));
        assert_eq!(env["A"], "box");
        assert_eq!(env["B"], "cli");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["HOME"], "/home/agent");
        assert_eq!(env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"], "1");
        assert_eq!(env["KANIBAKO_NAME"], "app", "forced for named boxes");
        assert_eq!(env["W"], "ws");
        assert!(
            !env.contains_key("GONE"),
            "an empty box value suppresses the workset's"
        );
        assert!(
            !layer_env(&l, None).contains_key("KANIBAKO_NAME")
                || layer_env(&l, None)["KANIBAKO_NAME"] == "spoof"
        );
    }
}
