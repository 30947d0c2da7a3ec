//! Snapshot tests of the engine argv a launch plans, over every engine setup kanibako
//! supports (podman rootless, old rootless, rootful, remote; docker as a user and as
//! root) × run mode. One file per combination under `snapshots/`: a change to any argv
//! shows up there as a diff to review (`cargo insta review`, or `INSTA_UPDATE=always`).

use std::collections::BTreeMap;
use std::path::Path;

use super::plan::{PlanInputs, plan};
use crate::boxes::{BoxIdentity, BoxName, ProjectSettings};
use crate::runtime::EngineKind;
use crate::runtime::spec::{BOX_GID, BOX_UID, Mount, RunMode, UserMapping};

/// The engine setups, each with the in-box user it leads to.
fn setups() -> Vec<(&'static str, EngineKind, UserMapping)> {
    vec![
        (
            "podman-rootless",
            EngineKind::Podman,
            UserMapping::KeepId { pin: true },
        ),
        (
            "podman-rootless-before-4.3",
            EngineKind::Podman,
            UserMapping::KeepId { pin: false },
        ),
        (
            "podman-rootful",
            EngineKind::Podman,
            UserMapping::SplitMap {
                host_uid: 0,
                host_gid: 0,
            },
        ),
        (
            "podman-remote",
            EngineKind::Podman,
            UserMapping::User {
                uid: BOX_UID,
                gid: BOX_GID,
            },
        ),
        (
            "docker-as-user",
            EngineKind::Docker,
            UserMapping::User {
                uid: 1001,
                gid: 1002,
            },
        ),
        (
            "docker-as-root",
            EngineKind::Docker,
            UserMapping::User {
                uid: BOX_UID,
                gid: BOX_GID,
            },
        ),
    ]
}

fn modes() -> [(&'static str, RunMode); 3] {
    [
        ("foreground-tty", RunMode::Foreground { tty: true }),
        ("foreground", RunMode::Foreground { tty: false }),
        ("detached", RunMode::Detached),
    ]
}

/// A default-mode box with a vault, the agent's mounts, a shared cache, a named share
/// and some environment: every kind of argument a launch renders.
fn inputs(mode: RunMode, user: UserMapping) -> PlanInputs {
    PlanInputs {
        identity: BoxIdentity::default_mode(
            BoxName::parse("app").unwrap(),
            "/p/app".into(),
            Path::new("/d/boxes"),
            ProjectSettings::default(),
        ),
        image: "localhost/rig:1".into(),
        mode,
        user,
        vault_present: (true, true),
        agent_mounts: vec![
            Mount::Bind {
                src: "/h/.local/share/claude".into(),
                dst: "/home/agent/.local/share/claude".into(),
                read_only: true,
                relabel: false,
            },
            Mount::Bind {
                src: "/h/.local/share/claude/versions/2.0".into(),
                dst: "/home/agent/.local/bin/claude".into(),
                read_only: true,
                relabel: false,
            },
        ],
        self_binary: Some("/usr/bin/kanibako".into()),
        shared: vec![("/d/shared/global/pip".into(), ".cache/pip".into())],
        shares: vec![("/srv/ref".into(), "ref".into(), true)],
        image_store: None,
        comms: Some("/d/comms".into()),
        env: BTreeMap::from([
            ("HOME".into(), "/home/agent".into()),
            ("TOKEN".into(), "never-on-argv".into()),
        ]),
        entrypoint: Some("/home/agent/.local/bin/claude".into()),
        command: vec!["--continue".into(), "--model".into(), "opus".into()],
        version: "0.1.0".into(),
    }
}

#[test]
fn argv_over_engines_user_mappings_and_run_modes() {
    for (setup, kind, user) in setups() {
        for (mode_name, mode) in modes() {
            let spec = plan(&inputs(mode, user.clone()));
            let rootfs = matches!(user, UserMapping::SplitMap { .. })
                .then_some(Path::new("/var/lib/containers/storage/overlay/x/merged"));
            let argv: Vec<String> = spec
                .to_args(kind, rootfs, Path::new("/tmp/kanibako-env"))
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert!(
                !argv.iter().any(|a| a.contains("never-on-argv")),
                "no value on argv"
            );
            insta::assert_snapshot!(format!("{setup}__{mode_name}"), argv.join("\n"));
        }
    }
}
