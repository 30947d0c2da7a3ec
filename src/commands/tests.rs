//! Command-level tests: whole commands through the library ([`dispatch`]), in a
//! throw-away home, with the recording executor in place of the engine. They pin the
//! engine calls each command makes, in order — including the one made on the rig
//! freshness check's background thread — for setups a CLI run cannot choose (rootful
//! or rootless podman whatever user runs the tests).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use super::dispatch;
use crate::cli::{self, Cli};
use crate::context::Context;
use crate::error::Exit;
use crate::host::HostEnv;
use crate::process::testing::Recorder;

const RIG: &str = "ghcr.io/doctorjei/kanibako-oci:latest";

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    bin: PathBuf,
    project: PathBuf,
    uid: u32,
}

impl Home {
    /// A home with `podman` and `claude` on `PATH`, and a project directory `p/app`, for
    /// a user of `uid` (0: podman is rootful).
    fn new(uid: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (home, bin) = (root.join("home"), root.join("bin"));
        let project = home.join("p/app");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        // podman's limits configured, as on the test machines: no `--ulimit` in the runs
        // whatever this host's limits are (runtime::limits)
        std::fs::write(
            root.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )
        .unwrap();
        for program in ["podman", "claude"] {
            let p = bin.join(program);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self {
            _dir: dir,
            home,
            bin,
            project,
            uid,
        }
    }

    fn host(&self) -> HostEnv {
        let mut h = HostEnv::for_test(
            &self.project,
            &[
                ("HOME", self.home.to_str().unwrap()),
                ("PATH", self.bin.to_str().unwrap()),
                (
                    "CONTAINERS_CONF",
                    self.bin.with_file_name("containers.conf").to_str().unwrap(),
                ),
            ],
        );
        h.uid = self.uid;
        h.gid = self.uid;
        h
    }

    /// `kanibako ARGS…` from the project directory, the engine answered by `rec`.
    fn run(&self, rec: &Arc<Recorder>, args: &[&str]) -> anyhow::Result<Exit> {
        let argv = std::iter::once("kanibako")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let cli = Cli::try_parse_from(cli::with_default_command(argv)).unwrap();
        let cx = Context::load(self.host(), rec.clone()).unwrap();
        dispatch(&cx, cli.command)
    }

    /// The box `p/app`'s hash: what its containers are labelled with.
    fn hash(&self) -> String {
        crate::boxes::project_hash(&self.project)
    }

    fn metadata(&self) -> PathBuf {
        self.home.join(".local/share/kanibako/boxes/app")
    }
}

/// The engine's calls so far, as their arguments; the freshness check (on its own
/// thread, so at no fixed place) is left out.
fn engine_calls(rec: &Recorder) -> Vec<String> {
    rec.calls()
        .iter()
        .filter(|inv| inv.program.file_name() == Some("podman".as_ref()))
        .map(|inv| {
            inv.args
                .iter()
                .map(|a| crate::process::shell_quote(&a.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|line| !line.contains("RepoDigests"))
        .collect()
}

/// Wait (bounded) for a call made on a background thread.
fn eventually_called(rec: &Recorder, needle: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if rec.lines().iter().any(|l| l.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn shell_on_rootful_podman_mounts_the_rig_runs_on_it_and_releases_it() {
    let h = Home::new(0);
    let rec = Arc::new(
        Recorder::default()
            .answer(&["image", "mount"], 0, "/m/merged\n")
            .answer(
                &["image", "inspect", "--format", "{{json .Config.Env}}"],
                0,
                r#"["PATH=/usr/bin:/bin","LANG=C.UTF-8"]"#,
            ),
    );
    assert_eq!(
        h.run(&rec, &["shell", "--", "true"]).unwrap(),
        Exit::Code(0)
    );
    let calls = engine_calls(&rec);
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert_eq!(calls[0], format!("image mount {RIG}"));
    assert_eq!(
        calls[1],
        format!("image inspect --format '{{{{json .Config.Env}}}}' {RIG}")
    );
    assert!(
        calls[2].starts_with("run -i --rm --init --cap-drop=ALL --security-opt=no-new-privileges ")
            && calls[2]
                .contains(" --pids-limit=4096 --uidmap 0:2147483648:1000 --uidmap 1000:0:1 "),
        "{}",
        calls[2]
    );
    assert!(
        calls[2]
            .ends_with("--entrypoint /bin/sh --rootfs /m/merged:O -c 'exec \"$@\"' kanibako true"),
        "{}",
        calls[2]
    );
    assert_eq!(calls[3], format!("image unmount {RIG}"));
    // The day's freshness check asks the engine from its own thread: recorded too.
    assert!(
        eventually_called(&rec, "image inspect --format '{{index .RepoDigests 0}}'"),
        "{:#?}",
        rec.lines()
    );
}

#[test]
fn start_on_rootless_podman_asks_the_version_once_and_continues_the_second_time() {
    let h = Home::new(1000);
    // No container of the box (an agent session holds the lock, so the engine is asked).
    let none = || Recorder::default().answer(&["container", "inspect"], 125, "");
    let rec = Arc::new(none().answer(&["--version"], 0, "podman version 4.3.1\n"));
    h.run(&rec, &["start", "--ephemeral"]).unwrap();
    let calls = engine_calls(&rec);
    assert_eq!(calls[0], "--version", "{calls:#?}");
    assert!(calls[1].starts_with("container inspect "), "{calls:#?}");
    assert_eq!(calls.len(), 3, "{calls:#?}");
    let run = calls.last().unwrap();
    assert!(
        run.starts_with(
            "run --pull=never -i --rm --init --cap-drop=ALL --security-opt=no-new-privileges \
             --pids-limit=4096 --userns=keep-id:uid=1000,gid=1000 "
        ),
        "{run}"
    );
    assert!(
        run.ends_with(&format!(
            "--entrypoint /home/agent/.local/bin/claude {RIG} --dangerously-skip-permissions --model opus"
        )),
        "a new box starts a new conversation: {run}"
    );
    assert!(
        !run.contains("--label io.kanibako.rootfs"),
        "only a rootfs run is labelled with its image"
    );
    // the agent kept a conversation in the workspace: the next start continues it
    let kept = h
        .home
        .join(".local/share/kanibako/boxes/app/shell/.claude/projects/-home-agent-workspace");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("c.jsonl"), "{}\n").unwrap();
    let rec = Arc::new(none());
    h.run(&rec, &["start", "--ephemeral"]).unwrap();
    let calls = engine_calls(&rec);
    assert!(
        !calls.iter().any(|c| c == "--version"),
        "the version is remembered: {calls:#?}"
    );
    assert!(
        calls.last().unwrap().ends_with(" --continue --model opus"),
        "{calls:#?}"
    );
}

#[test]
fn shell_joins_the_running_container_of_its_box_and_never_another_boxs() {
    let h = Home::new(1000);
    let rec = Arc::new(Recorder::default());
    h.run(&rec, &["create"]).unwrap();
    // a launch left its marker: only then is the engine asked
    std::fs::write(h.metadata().join(".kanibako.container"), "kanibako-app\n").unwrap();
    let ours = format!("true|{}|<no value>\n", h.hash());
    let rec = Arc::new(Recorder::default().answer(&["container", "inspect", "--format"], 0, &ours));
    assert_eq!(
        h.run(&rec, &["shell", "--", "ls", "-la"]).unwrap(),
        Exit::Code(0)
    );
    let calls = engine_calls(&rec);
    // the version decides the user mapping (keep-id pinning): asked once, remembered
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[0], "--version");
    let calls = &calls[1..];
    assert!(
        calls[0].starts_with("container inspect --format "),
        "{calls:#?}"
    );
    assert_eq!(calls[1], "exec -i kanibako-app ls -la");

    let rec = Arc::new(Recorder::default().answer(
        &["container", "inspect", "--format"],
        0,
        "true|another-box|\n",
    ));
    let err = h.run(&rec, &["shell", "--", "ls"]).unwrap_err();
    assert!(
        err.to_string().contains("belongs to another box"),
        "{err:#}"
    );
    assert!(
        engine_calls(&rec)
            .iter()
            .all(|c| !c.starts_with("exec") && !c.starts_with("run")),
        "nothing ran"
    );
}

#[test]
fn stop_stops_and_removes_the_boxs_labelled_container() {
    let h = Home::new(1000);
    h.run(&Arc::new(Recorder::default()), &["create"]).unwrap();
    let ps = format!(
        r#"[{{"Names":["kanibako-app"],"State":"running","Image":"{RIG}","Labels":{{"io.kanibako.hash":"{}"}}}},
            {{"Names":["kanibako-app2"],"State":"running","Image":"x","Labels":{{"io.kanibako.hash":"other"}}}}]"#,
        h.hash()
    );
    let rec = Arc::new(Recorder::default().answer(&["ps"], 0, &ps).answer(
        &["rm", "-f"],
        0,
        "kanibako-app\n",
    ));
    assert_eq!(h.run(&rec, &["stop"]).unwrap(), Exit::Success);
    assert_eq!(
        engine_calls(&rec),
        [
            "ps -a --format json",
            "stop -t 10 kanibako-app",
            "rm -f kanibako-app"
        ]
    );
}

#[test]
fn rig_extend_runs_a_labelled_kept_shell_and_commits_it() {
    let h = Home::new(1000);
    let rec = Arc::new(Recorder::default().answer(&["images"], 0, "busybox:1\n"));
    assert_eq!(
        h.run(&rec, &["rig", "extend", "mine", "--from", "busybox:1"])
            .unwrap(),
        Exit::Success
    );
    let calls = engine_calls(&rec);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(calls[0], "images --format '{{.Repository}}:{{.Tag}}'");
    assert_eq!(calls[1], "rm -f kanibako-extend-mine");
    assert_eq!(
        calls[2],
        format!(
            "run --pull=never -i --init --label io.kanibako.role=rig-extend --label io.kanibako.version={version} --name kanibako-extend-mine --entrypoint /bin/bash busybox:1"
        )
    );
    assert!(
        calls[3].starts_with("cp ") && calls[3].ends_with(" kanibako-extend-mine:/etc/"),
        "{calls:#?}"
    );
    assert_eq!(
        calls[4..],
        [
            "commit kanibako-extend-mine localhost/kanibako-rig-mine:latest",
            "rm -f kanibako-extend-mine"
        ]
    );
    let rigs = std::fs::read_to_string(Path::new(&h.home).join(".local/share/kanibako/rigs.yaml"))
        .unwrap();
    assert!(
        rigs.contains("mine:\n    kind: extended\n    source: busybox:1\n    source_type: extend\n    image: localhost/kanibako-rig-mine:latest\n"),
        "{rigs}"
    );
}
