//! The configuration one box's hub runs with (`<rt>/hub.json`): which box, which
//! director container, which engine, where its files go, its limits, and optionally how
//! helpers run and where the box lives on the host (for `crab fork`). Written by
//! whoever starts the hub on the host, never by a box: it is read only if it is a
//! regular file of ours that nobody else may write.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::engine::HelperTemplate;
use super::limits::Limits;
use super::rundir::Owner;
use crate::runtime::{EngineInfo, EngineKind};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub program: PathBuf,
    /// `podman` or `docker`.
    pub kind: String,
    #[serde(default)]
    pub rootless: bool,
    #[serde(default)]
    pub remote: bool,
}

impl EngineConfig {
    pub fn from_info(e: &EngineInfo) -> Self {
        Self {
            program: e.program.clone(),
            kind: e.kind.name().into(),
            rootless: e.rootless,
            remote: e.remote,
        }
    }

    pub fn info(&self) -> Result<EngineInfo, String> {
        let kind = match self.kind.as_str() {
            "podman" => EngineKind::Podman,
            "docker" => EngineKind::Docker,
            other => return Err(format!("unknown engine kind {other:?}")),
        };
        Ok(EngineInfo {
            kind,
            program: self.program.clone(),
            rootless: self.rootless,
            remote: self.remote,
        })
    }
}

fn default_true() -> bool {
    true
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_director_timeout() -> u64 {
    60_000
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The box's project hash (the `io.kanibako.hash` label).
    pub box_hash: String,
    /// Its name, as `hello` reports it (empty for standalone boxes).
    #[serde(default)]
    pub box_name: String,
    /// The director's container name.
    pub director: String,
    pub runtime_dir: PathBuf,
    /// The box's message log (`$DATA/logs/<box>/helper-messages.jsonl`).
    pub message_log: PathBuf,
    /// The hub's own log: lifecycle, refusals, engine failures (JSON lines).
    pub hub_log: PathBuf,
    pub engine: EngineConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub member_owner: Option<Owner>,
    /// How helpers run; without it `spawn` is refused as unavailable.
    #[serde(default)]
    pub helper: Option<HelperTemplate>,
    /// The pid-namespace cross-check (off only where the engine runs elsewhere, so
    /// container pids mean nothing here).
    #[serde(default = "default_true")]
    pub peer_check: bool,
    /// How long to wait for the director's container to be running.
    #[serde(default = "default_director_timeout")]
    pub director_timeout_ms: u64,
    /// How long the director watcher waits (or until the first connection) before it
    /// asks the engine anything. An ephemeral launch ends its hub itself when its run
    /// returns, so there the watcher only guards against a launch that died, and a
    /// short session costs no engine call of the hub's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub watch_after_ms: u64,
    /// Where the box lives on the host, for `crab fork`; without it `fork` is refused
    /// as unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkConfig>,
    /// The box's egress proxy (`box.network = allowlist`), served as `egress.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<super::egress::EgressConfig>,
}

/// What the hub needs to fork its box: the host's resolved locations (data, boxes,
/// `names.yaml`, …) and the box's project directory. The hub finds the box there again
/// at each fork and checks it is still this box (by its hash); nothing of it comes
/// from a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkConfig {
    pub paths: crate::paths::Paths,
    pub workspace: PathBuf,
}

impl ForkConfig {
    /// For box `b` under `paths` (what the launch writes).
    pub fn for_box(paths: &crate::paths::Paths, b: &crate::boxes::BoxIdentity) -> Self {
        Self {
            paths: paths.clone(),
            workspace: b.workspace.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a private file of this user; not read")]
    NotPrivate(PathBuf),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A container name as engines allow it: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub fn is_container_name(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= 200
        && b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl HubConfig {
    fn validate(&self) -> Result<(), String> {
        if self.box_hash.len() < 16 || !self.box_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("box_hash must be the box's hex project hash".into());
        }
        if !is_container_name(&self.director) {
            return Err(format!(
                "director {:?} is not a container name",
                self.director
            ));
        }
        for (what, p) in [
            ("runtime_dir", &self.runtime_dir),
            ("message_log", &self.message_log),
            ("hub_log", &self.hub_log),
            ("engine.program", &self.engine.program),
        ] {
            if !p.is_absolute() {
                return Err(format!("{what} must be an absolute path"));
            }
        }
        self.engine.info()?;
        if let Some(e) = &self.egress {
            e.validate()?;
        }
        if let Some(f) = &self.fork {
            for (what, p) in [
                ("fork.workspace", &f.workspace),
                ("fork.paths.data", &f.paths.data),
                ("fork.paths.boxes", &f.paths.boxes),
            ] {
                if !p.is_absolute() {
                    return Err(format!("{what} must be an absolute path"));
                }
            }
        }
        Ok(())
    }

    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file()
            || meta.uid() != nix::unistd::geteuid().as_raw()
            || meta.mode() & 0o022 != 0
        {
            return Err(ConfigError::NotPrivate(path.to_owned()));
        }
        let mut text = String::new();
        file.take(1 << 20).read_to_string(&mut text).map_err(io)?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Write atomically, 0600 (a helper template may carry the box's environment).
    pub fn save(&self, path: &Path) -> Result<(), crate::fsutil::FsError> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        crate::fsutil::atomic_write(path, &text, crate::fsutil::MODE_SECRET)
    }
}

#[cfg(test)]
pub fn sample(rt: &Path) -> HubConfig {
    HubConfig {
        box_hash: "0123456789abcdef0123456789abcdef".into(),
        box_name: "app".into(),
        director: "kanibako-app".into(),
        runtime_dir: rt.to_owned(),
        message_log: rt.join("logs/helper-messages.jsonl"),
        hub_log: rt.join("logs/hub.log"),
        engine: EngineConfig {
            program: "/usr/bin/podman".into(),
            kind: "podman".into(),
            rootless: false,
            remote: false,
        },
        limits: Limits::default(),
        member_owner: None,
        helper: None,
        peer_check: true,
        director_timeout_ms: 60_000,
        watch_after_ms: 0,
        fork: None,
        egress: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_configs_load_back_and_bad_ones_say_why() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hub.json");
        let cfg = sample(d.path());
        cfg.save(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(HubConfig::load(&p).unwrap(), cfg);

        let mut bad = cfg.clone();
        bad.director = "--privileged".into();
        bad.save(&p).unwrap();
        let err = HubConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("not a container name"), "{err}");

        std::fs::write(&p, r#"{"box_hash": "x", "surprise": 1}"#).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = HubConfig::load(&p).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");

        cfg.save(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            HubConfig::load(&p),
            Err(ConfigError::NotPrivate(_))
        ));
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(HubConfig::load(&link).is_err());
    }
}
