//! A hermetic environment for running the real `kanibako` binary: a temporary `HOME`,
//! no inherited XDG variables, and a `PATH` whose container engine is whatever the test
//! chooses (a recording fake, a real engine, or none).
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Env {
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    pub bin: PathBuf,
    extra: Vec<(String, String)>,
    /// Variables removed even when passed through (`CONTAINERS_CONF`).
    removed: Vec<String>,
    /// Run kanibako as this (uid, gid) instead of ourselves.
    user: Option<(u32, u32)>,
    /// Put the system's bin directories on PATH after ours (for real engines).
    system_path: bool,
    /// A copy of the binary any user can run (the build dir may be private).
    exe: PathBuf,
}

/// Variables passed through from the test's own environment: what a real engine needs.
const PASS_THROUGH: &[&str] = &[
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "DOCKER_HOST",
    "XDG_RUNTIME_DIR",
];

impl Env {
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("kb-test-")
            .tempdir()
            .unwrap();
        let home = root.path().join("home");
        let bin = root.path().join("bin");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&bin).unwrap();
        Self {
            home: home.canonicalize().unwrap(),
            bin: bin.canonicalize().unwrap(),
            root,
            extra: Vec::new(),
            removed: Vec::new(),
            user: None,
            system_path: false,
            exe: PathBuf::from(env!("CARGO_BIN_EXE_kanibako")),
        }
    }

    /// The same environment running another kanibako binary (an installed one).
    pub fn with_exe(mut self, exe: &Path) -> Self {
        self.exe = exe.to_owned();
        self
    }

    /// An environment whose kanibako runs as `name` (an existing account), with the
    /// system PATH so real engines are found.
    pub fn as_user(name: &str) -> Self {
        let mut e = Self::new();
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, name]).output().unwrap();
            assert!(out.status.success(), "no user {name}");
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let exe = e.root.path().join("kanibako");
        fs::copy(env!("CARGO_BIN_EXE_kanibako"), &exe).unwrap();
        fs::set_permissions(e.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        e.exe = exe;
        e.user = Some((uid, gid));
        e.system_path = true;
        e.chown_all(e.root.path());
        e
    }

    /// A real-engine environment as ourselves.
    pub fn with_system_path() -> Self {
        let mut e = Self::new();
        e.system_path = true;
        e
    }

    pub fn uid(&self) -> u32 {
        self.user.map_or_else(nix_uid, |(u, _)| u)
    }

    /// Whether kanibako runs as root here, so that podman is rootful: the rig then runs
    /// as a mounted rootfs under a split user map (`image mount`, `--rootfs`, the image's
    /// environment passed on). As anyone else podman is rootless (`keep-id`, the image
    /// run directly). Tests of the launch argv hold for both.
    pub fn rootful_podman(&self) -> bool {
        self.uid() == 0
    }

    /// Hand everything below `dir` to the test user (no-op when running as ourselves).
    pub fn chown_all(&self, dir: &Path) {
        let Some((uid, gid)) = self.user else { return };
        let _ = std::os::unix::fs::lchown(dir, Some(uid), Some(gid));
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    self.chown_all(&p);
                } else {
                    let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
                }
            }
        }
    }

    pub fn set(&mut self, k: &str, v: impl AsRef<Path>) -> &mut Self {
        self.extra
            .push((k.into(), v.as_ref().to_string_lossy().into_owned()));
        self
    }

    /// Leave `k` out of the environment, even where it would be passed through.
    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.removed.push(k.into());
        self
    }

    /// A directory under HOME (created, and owned by the test user if there is one).
    pub fn dir(&self, rel: &str) -> PathBuf {
        let d = self.home.join(rel);
        fs::create_dir_all(&d).unwrap();
        self.chown_all(&self.home);
        d.canonicalize().unwrap()
    }

    pub fn data(&self) -> PathBuf {
        self.home.join(".local/share/kanibako")
    }

    pub fn names_yaml(&self) -> String {
        fs::read_to_string(self.data().join("names.yaml")).unwrap_or_default()
    }

    /// An executable script in the private bin dir (first on PATH).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.bin.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A fake `podman` that appends its argv to `podman.log` and answers from files in
    /// the test root: `ps.json` for `ps`, `container.state` for `container inspect`
    /// (absent: no container), `rm.gone` to make `rm -f` find nothing (it then prints
    /// no name, as podman does), `no.image` for a rig that is not local (`image
    /// inspect`/`mount` fail, and so does a `run` of it), `exit.code` for `run`/`exec`,
    /// whose `--env-file` it copies to `run.env`, `run.sleep` for how many seconds a
    /// `run` lasts.
    pub fn fake_podman(&self) -> PathBuf {
        let r = self.root.path().display().to_string();
        self.script(
            "podman",
            &format!(
                r#"echo "$*" >> '{r}/podman.log'
case "$1" in
  ps) /bin/cat '{r}/ps.json' 2>/dev/null || echo '[]' ;;
  --version) echo 'podman version 4.3.1' ;;
  container) [ -f '{r}/container.state' ] || exit 125; /bin/cat '{r}/container.state' ;;
  image)
    case "$2" in
      inspect) [ -f '{r}/no.image' ] && exit 125; echo '["PATH=/usr/bin:/bin","LANG=C.UTF-8"]' ;;
      mount) [ -f '{r}/no.image' ] && exit 125; echo /fake/rootfs ;;
    esac ;;
  rm) [ -f '{r}/rm.gone' ] || eval echo \"\${{$#}}\" ;;
  run|exec)
    # `--pull=never` with a missing image fails at once (a `--rootfs` run has none).
    [ "$1" = run ] && [ -f '{r}/no.image' ] && case " $* " in *" --rootfs "*) ;; *) exit 125 ;; esac
    while [ $# -gt 0 ]; do [ "$1" = --env-file ] && /bin/cp "$2" '{r}/run.env'; shift; done
    [ -f '{r}/run.sleep' ] && /bin/sleep "$(/bin/cat '{r}/run.sleep')"
    exit $(/bin/cat '{r}/exit.code' 2>/dev/null || echo 0) ;;
esac
"#
            ),
        )
    }

    /// A file in the test root (the fake engine's answers and records).
    pub fn root_file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The argv of the fake engine's last call starting with `word`.
    pub fn last_call(&self, word: &str) -> Option<String> {
        self.podman_log()
            .lines()
            .rev()
            .find(|l| l.starts_with(word))
            .map(str::to_owned)
    }

    pub fn set_ps(&self, json: &str) {
        fs::write(self.root.path().join("ps.json"), json).unwrap();
    }

    pub fn podman_log(&self) -> String {
        fs::read_to_string(self.root.path().join("podman.log")).unwrap_or_default()
    }

    /// PATH: our bin dir, then the system's basic dirs (so real engines are found only
    /// when the test wants them: see `with_system_path`).
    pub fn cmd(&self, cwd: &Path, args: &[&str]) -> Command {
        self.program_cmd(&self.exe.clone(), cwd, args)
    }

    /// Any program, run as kanibako would be (same user, same environment): for driving
    /// the engine directly.
    pub fn program_cmd(&self, program: &Path, cwd: &Path, args: &[&str]) -> Command {
        let mut c = match self.user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        let path = if self.system_path {
            format!(
                "{}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.bin.display()
            )
        } else {
            self.bin.display().to_string()
        };
        c.env_clear()
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("PATH", path)
            .env("LANG", "C.UTF-8")
            .args(args);
        for var in PASS_THROUGH {
            if let Ok(v) = std::env::var(var) {
                c.env(var, v);
            }
        }
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        for k in &self.removed {
            c.env_remove(k);
        }
        c
    }

    /// The same command as [`Env::cmd`], as one shell line (for a tmux pane).
    pub fn shell_line(&self, cwd: &Path, args: &[&str]) -> String {
        let c = self.cmd(cwd, args);
        let q = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let mut line = format!("cd {} && env -i", q(cwd.as_os_str()));
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(" {}={}", k.to_string_lossy(), q(v)));
            }
        }
        line.push(' ');
        line.push_str(&q(c.get_program()));
        for a in c.get_args() {
            line.push(' ');
            line.push_str(&q(a));
        }
        line
    }

    pub fn run(&self, cwd: &Path, args: &[&str]) -> Run {
        Run::from(self.cmd(cwd, args).output().unwrap())
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// A handled failure: exit 1 and exactly one `Error:` line (hints may follow).
    #[track_caller]
    pub fn fails(self) -> Self {
        assert_eq!(self.code, 1, "expected exit 1: {self:#?}");
        let errors = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("Error: "))
            .count();
        assert_eq!(errors, 1, "expected one Error: line: {self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn nix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether an engine-dependent test must fail (CI) instead of skipping (a developer's
/// machine without the engine).
pub fn engine_required() -> bool {
    std::env::var("KANIBAKO_TEST_REQUIRE_ENGINE").is_ok_and(|v| v == "1")
}

/// A snapshot of every file under `dir` with its content, to prove nothing changed.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
                out.push((p, Vec::new()));
            } else {
                let content = fs::read(&p).unwrap_or_default();
                out.push((p, content));
            }
        }
    }
    out.sort();
    out
}
