//! Snapshot tests of the engine argv a launch plans, over every engine setup kanibako
//! supports (podman rootless, old rootless, rootful, remote; docker as a user and as
//! root) × run mode. One file per combination under `snapshots/`: a change to any argv
//! shows up there as a diff to review (`cargo insta review`, or `INSTA_UPDATE=always`).

use std::collections::BTreeMap;
use std::path::Path;

use super::companions::Companions;
use super::plan::{PlanInputs, plan};
use crate::boxes::{BoxIdentity, BoxName, ProjectSettings};
use crate::runtime::spec::{BOX_GID, BOX_UID, Mount, RunMode, UserMapping};
use crate::runtime::{EngineInfo, EngineKind};

/// An engine setup: the engine as detected, the invoking uid, and whether keep-id can
/// pin (podman 4.3+).
struct Setup {
    name: &'static str,
    engine: EngineInfo,
    uid: u32,
    pins: bool,
}

fn setup(
    name: &'static str,
    kind: EngineKind,
    rootless: bool,
    remote: bool,
    uid: u32,
    pins: bool,
) -> Setup {
    Setup {
        name,
        engine: EngineInfo {
            kind,
            program: kind.name().into(),
            rootless,
            remote,
        },
        uid,
        pins,
    }
}

fn setups() -> Vec<Setup> {
    vec![
        setup(
            "podman-rootless",
            EngineKind::Podman,
            true,
            false,
            1001,
            true,
        ),
        setup(
            "podman-rootless-before-4.3",
            EngineKind::Podman,
            true,
            false,
            1001,
            false,
        ),
        setup("podman-rootful", EngineKind::Podman, false, false, 0, true),
        setup("podman-remote", EngineKind::Podman, false, true, 1001, true),
        setup(
            "docker-as-user",
            EngineKind::Docker,
            false,
            false,
            1001,
            true,
        ),
        setup("docker-as-root", EngineKind::Docker, false, false, 0, true),
    ]
}

/// The user mapping each setup leads to, from the engine's capabilities.
#[test]
fn each_setup_gets_its_user_mapping() {
    let got: Vec<(&str, UserMapping, bool)> = setups()
        .iter()
        .map(|s| {
            let gid = if s.uid == 0 { 0 } else { 1002 };
            (
                s.name,
                s.engine.user_mapping(s.uid, gid, || s.pins),
                s.engine.cannot_map_root(s.uid),
            )
        })
        .collect();
    let box_user = UserMapping::User {
        uid: BOX_UID,
        gid: BOX_GID,
    };
    assert_eq!(
        got,
        [
            ("podman-rootless", UserMapping::KeepId { pin: true }, false),
            (
                "podman-rootless-before-4.3",
                UserMapping::KeepId { pin: false },
                false
            ),
            (
                "podman-rootful",
                UserMapping::SplitMap {
                    host_uid: 0,
                    host_gid: 0
                },
                false
            ),
            ("podman-remote", box_user.clone(), false),
            (
                "docker-as-user",
                UserMapping::User {
                    uid: 1001,
                    gid: 1002
                },
                false
            ),
            ("docker-as-root", box_user, true),
        ]
    );
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
    let seccomp = matches!(user, UserMapping::SplitMap { host_uid: 0, .. })
        .then(|| "/c/seccomp-no-setid.json".into());
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
        env: BTreeMap::from([
            ("HOME".into(), "/home/agent".into()),
            ("TOKEN".into(), "never-on-argv".into()),
        ]),
        pass_env: Vec::new(),
        entrypoint: Some("/home/agent/.local/bin/claude".into()),
        command: vec!["--continue".into(), "--model".into(), "opus".into()],
        version: "0.1.0".into(),
        data_id: "d0d0d0d0d0d0".into(),
        seccomp,
        limits: Default::default(),
        network: Default::default(),
    }
}

#[test]
fn argv_over_engines_user_mappings_and_run_modes() {
    // Only `comms` is read from these paths (for the mailbox companion).
    let host = crate::host::HostEnv::for_test(Path::new("/"), &[("HOME", "/h")]);
    let mut paths = crate::paths::Paths::resolve(
        &host,
        crate::paths::Bases::from_host(&host).unwrap(),
        &BTreeMap::new(),
    )
    .unwrap();
    paths.comms = "/d/comms".into();
    for s in setups() {
        let gid = if s.uid == 0 { 0 } else { 1002 };
        let user = s.engine.user_mapping(s.uid, gid, || s.pins);
        let (setup, kind) = (s.name, s.engine.kind);
        for (mode_name, mode) in modes() {
            let b = inputs(mode, user.clone());
            let companions = Companions::for_box(&paths, &b.identity);
            let spec = companions.add_to(plan(&b));
            let rootfs = matches!(user, UserMapping::SplitMap { .. })
                .then_some(Path::new("/var/lib/containers/storage/overlay/x/merged"));
            let argv: Vec<String> = spec
                .to_args(kind, rootfs, Some(Path::new("/tmp/kanibako-env")))
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
