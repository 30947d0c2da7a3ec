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
        }
    }

    pub fn set(&mut self, k: &str, v: impl AsRef<Path>) -> &mut Self {
        self.extra
            .push((k.into(), v.as_ref().to_string_lossy().into_owned()));
        self
    }

    /// A directory under HOME (created).
    pub fn dir(&self, rel: &str) -> PathBuf {
        let d = self.home.join(rel);
        fs::create_dir_all(&d).unwrap();
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

    /// A fake `podman` that appends its argv to `podman.log` and answers `ps` with the
    /// contents of `ps.json` (empty list if absent).
    pub fn fake_podman(&self) -> PathBuf {
        let log = self.root.path().join("podman.log");
        let ps = self.root.path().join("ps.json");
        self.script(
            "podman",
            &format!(
                "echo \"$*\" >> '{}'\ncase \"$1\" in\n  ps) /bin/cat '{}' 2>/dev/null || echo '[]' ;;\n  --version) echo 'podman version 4.3.1' ;;\nesac\n",
                log.display(),
                ps.display()
            ),
        )
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
        let mut c = Command::new(env!("CARGO_BIN_EXE_kanibako"));
        c.env_clear()
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("PATH", &self.bin)
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
        c
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
