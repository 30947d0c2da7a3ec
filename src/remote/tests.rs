//! The remote run's plan: what is mapped, what is copied, what is refused.
use super::*;
use crate::runtime::EngineKind;

fn engine(remote: bool) -> EngineInfo {
    EngineInfo {
        kind: EngineKind::Podman,
        program: "podman".into(),
        rootless: false,
        remote,
    }
}

fn bind(src: &str, dst: &str) -> Mount {
    Mount::Bind {
        src: src.into(),
        dst: dst.into(),
        read_only: false,
        relabel: true,
    }
}

fn spec(mounts: Vec<Mount>) -> RunSpec {
    RunSpec {
        name: "kanibako-app".into(),
        image: "i".into(),
        mode: crate::runtime::spec::RunMode::Detached,
        network: Default::default(),
        user: crate::runtime::spec::UserMapping::Image,
        confined: None,
        pass_env: Vec::new(),
        workdir: String::new(),
        mounts,
        env: Default::default(),
        labels: Default::default(),
        entrypoint: None,
        command: Vec::new(),
    }
}

fn facts<'a>(local_only: &[&str]) -> Facts<'a> {
    Facts {
        workspace: Path::new("/p/app"),
        home: Path::new("/d/boxes/app/shell"),
        local_only: local_only.iter().map(PathBuf::from).collect(),
        share_images: false,
        allowlist: false,
        browser: false,
    }
}

fn at(value: Option<&str>) -> Setting<Option<String>> {
    Setting {
        value: value.map(str::to_owned),
        origin: Origin::Default,
    }
}

fn why() -> Option<String> {
    Some("CONTAINER_HOST=ssh://build".into())
}

#[test]
fn a_local_engine_changes_nothing() {
    assert_eq!(
        Remote::plan(&engine(false), None, at(Some("/srv/app")), facts(&[])).unwrap(),
        None
    );
}

#[test]
fn the_project_follows_remote_path_and_local_only_sources_are_copied_into_the_home() {
    let r = Remote::plan(
        &engine(true),
        why(),
        at(Some("/srv/work/app")),
        facts(&["/usr/bin/kanibako", "/h/.local/share/claude"]),
    )
    .unwrap()
    .unwrap();
    let s = r.adapt(spec(vec![
        bind("/d/boxes/app/shell", "/home/agent"),
        bind("/p/app", "/home/agent/workspace"),
        bind("/p/app/vault/ro", "/home/agent/share-ro"),
        bind("/p/apple", "/x"),
        bind("/usr/bin/kanibako", "/home/agent/.local/bin/kanibako"),
        bind("/h/.local/share/claude", "/home/agent/.local/share/claude"),
        Mount::Mask {
            dst: "/home/agent/workspace/vault/ro".into(),
        },
    ]));
    let srcs: Vec<String> = s
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind { src, .. } => Some(src.display().to_string()),
            Mount::Mask { .. } => None,
        })
        .collect();
    assert_eq!(
        srcs,
        [
            "/d/boxes/app/shell",
            "/srv/work/app",
            "/srv/work/app/vault/ro",
            "/p/apple",
            "/d/boxes/app/shell/.kanibako-remote/usr_bin_kanibako",
            "/d/boxes/app/shell/.kanibako-remote/h_.local_share_claude",
        ]
    );
    assert_eq!(s.mounts.len(), 7, "the mask stays");
    assert_eq!(
        r.copies(),
        [
            Copy {
                src: "/usr/bin/kanibako".into(),
                dest: "/d/boxes/app/shell/.kanibako-remote/usr_bin_kanibako".into()
            },
            Copy {
                src: "/h/.local/share/claude".into(),
                dest: "/d/boxes/app/shell/.kanibako-remote/h_.local_share_claude".into()
            },
        ]
    );
    // without box.remote_path the project is at the same path there
    let same = Remote::plan(&engine(true), why(), at(None), facts(&[]))
        .unwrap()
        .unwrap();
    let s = same.adapt(spec(vec![bind("/p/app", "/home/agent/workspace")]));
    assert_eq!(s.mounts, [bind("/p/app", "/home/agent/workspace")]);
}

#[test]
fn what_a_remote_engine_cannot_have_is_refused_in_one_line() {
    let msg = |f: Facts<'_>, path: Option<&str>| {
        let e = Remote::plan(&engine(true), why(), at(path), f).unwrap_err();
        let u = e.downcast_ref::<UserError>().expect("a user error");
        (u.to_string(), u.hints.join(" "))
    };
    let (m, h) = msg(
        Facts {
            share_images: true,
            ..facts(&[])
        },
        None,
    );
    assert!(
        m.contains("--share-images") && m.contains("ssh://build"),
        "{m}"
    );
    assert!(h.contains("--no-share-images"), "{h}");
    let (m, _) = msg(
        Facts {
            allowlist: true,
            ..facts(&[])
        },
        None,
    );
    assert!(m.contains("allowlist"), "{m}");
    let (m, h) = msg(
        Facts {
            browser: true,
            ..facts(&[])
        },
        None,
    );
    assert!(m.contains("--browser") && m.contains("ssh://build"), "{m}");
    assert!(h.contains("leave out --browser"), "{h}");
    let (m, _) = msg(facts(&[]), Some("srv/app"));
    assert!(m.contains("not an absolute path"), "{m}");
    assert!(!m.contains('\n'));
}

#[test]
fn a_missing_source_is_named_with_what_to_do() {
    let r = Remote::plan(&engine(true), why(), at(Some("/srv/app")), facts(&[]))
        .unwrap()
        .unwrap();
    let text = |e: anyhow::Error| {
        let u = e.downcast::<UserError>().unwrap();
        (u.to_string(), u.hints.join(" "))
    };
    let (m, h) = text(r.missing(Path::new("/srv/app")));
    assert!(
        m.contains("/srv/app") && m.contains("box.remote_path"),
        "{m}"
    );
    assert!(h.contains("box config box.remote_path="), "{h}");
    let plain = Remote::plan(&engine(true), why(), at(None), facts(&[]))
        .unwrap()
        .unwrap();
    let (m, h) = text(plain.missing(Path::new("/p/app")));
    assert!(
        m.starts_with("the project directory /p/app does not exist on the engine's host"),
        "{m}"
    );
    assert!(h.contains("box.remote_path"), "{h}");
    let (m, h) = text(plain.missing(Path::new("/d/boxes/app/shell")));
    assert!(m.contains("/d/boxes/app/shell"), "{m}");
    assert!(h.contains("data directory"), "{h}");
}
