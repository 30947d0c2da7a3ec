//! Where kanibako keeps things on the host: the XDG base directories and the
//! `system.path.*` tier of data directories (spec: upstream-cli-and-data §5.1).
//!
//! Resolution is pure given a [`HostEnv`] and the `system.path` values of the global
//! config; creating directories is [`Paths::ensure_base_dirs`]'s job, kept apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::host::{HostEnv, vars};
use crate::settings::expr::{self, ExprError, Scope};

/// The `system.path.*` leaves and their default expressions, in the order the Python
/// tool writes them.
pub const SYSTEM_PATH_DEFAULTS: &[(&str, &str)] = &[
    ("data", "$XDG_DATA_HOME/kanibako"),
    ("boxes", "@system.path.data/boxes"),
    ("crabs", "@system.path.data/crabs"),
    ("comms", "@system.path.data/comms"),
    ("share_ro", "@system.path.data/share_ro"),
    ("share_rw", "@system.path.data/share_rw"),
    ("templates", "@system.path.data/templates"),
    ("ws_hints", "@system.path.data/worksets.yaml"),
];

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("HOME is not set; kanibako needs a home directory")]
    NoHome,
    #[error("system.path.{leaf}: {error}")]
    Expr { leaf: String, error: ExprError },
}

/// The XDG base directories, before the global config is read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bases {
    /// The invoking user (what owns the directories kanibako may trust).
    pub uid: u32,
    pub home: PathBuf,
    pub config_home: PathBuf,
    pub data_home: PathBuf,
    pub state_home: PathBuf,
    pub cache_home: PathBuf,
    pub runtime_dir: PathBuf,
}

impl Bases {
    pub fn from_host(host: &HostEnv) -> Result<Self, PathsError> {
        let home = host.home().ok_or(PathsError::NoHome)?;
        // A set XDG variable is made absolute and symlink-resolved (as upstream does);
        // an empty one counts as unset.
        let xdg = |var: &str, default: &str| match host.var(var) {
            Some(v) => {
                let p = host.cwd.join(v);
                p.canonicalize().unwrap_or(p)
            }
            None => home.join(default),
        };
        Ok(Self {
            uid: host.uid,
            config_home: xdg(vars::XDG_CONFIG_HOME, ".config"),
            data_home: xdg(vars::XDG_DATA_HOME, ".local/share"),
            state_home: xdg(vars::XDG_STATE_HOME, ".local/state"),
            cache_home: xdg(vars::XDG_CACHE_HOME, ".cache"),
            runtime_dir: match host.var(vars::XDG_RUNTIME_DIR) {
                Some(v) => PathBuf::from(v),
                None => PathBuf::from(format!("/run/user/{}", host.uid)),
            },
            home,
        })
    }

    /// `$CFG/kanibako.yaml`.
    pub fn config_file(&self) -> PathBuf {
        self.config_home.join("kanibako.yaml")
    }

    /// Where kanibako before 1.x kept its config.
    pub fn legacy_config_file(&self) -> PathBuf {
        self.config_home.join("kanibako").join("kanibako.yaml")
    }
}

/// The id of the data directory at `data`: the first 12 hex digits of the sha256 of its
/// path (unique enough to tell apart the data directories sharing one engine, short
/// enough to read in `podman ps`).
pub fn data_id(data: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(data.as_os_str().as_encoded_bytes());
    crate::hex::encode(&digest[..6])
}

/// Every host location kanibako uses, resolved (serialised for a process the host
/// starts with them, such as a box's hub).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Paths {
    pub bases: Bases,
    pub config_file: PathBuf,
    pub data: PathBuf,
    pub boxes: PathBuf,
    pub crabs: PathBuf,
    pub comms: PathBuf,
    pub share_ro: PathBuf,
    pub share_rw: PathBuf,
    pub templates: PathBuf,
    pub ws_hints: PathBuf,
    /// `$XDG_STATE_HOME/<leaf of data>`: follows a renamed data dir, as upstream does.
    pub state: PathBuf,
    pub cache: PathBuf,
    /// `$XDG_RUNTIME_DIR/kanibako`, for sockets.
    pub runtime: PathBuf,
}

struct TierScope<'a> {
    bases: &'a Bases,
    home: String,
    user: &'a BTreeMap<String, String>,
}

impl TierScope<'_> {
    fn raw(&self, leaf: &str) -> Option<&str> {
        self.user.get(leaf).map(String::as_str).or_else(|| {
            SYSTEM_PATH_DEFAULTS
                .iter()
                .find(|(l, _)| *l == leaf)
                .map(|(_, d)| *d)
        })
    }
}

impl Scope for TierScope<'_> {
    fn tilde(&self) -> Option<&str> {
        Some(&self.home)
    }

    fn variable(&self, name: &str) -> Result<Option<String>, ExprError> {
        match name {
            "XDG_DATA_HOME" => Ok(Some(self.bases.data_home.to_string_lossy().into_owned())),
            n if expr::is_known_variable(n) => Ok(None),
            n => Err(ExprError::UnknownVariable(n.to_owned())),
        }
    }

    fn reference(&self, key: &str, chain: &mut Vec<String>) -> Result<String, ExprError> {
        let raw = key
            .strip_prefix("system.path.")
            .and_then(|leaf| self.raw(leaf))
            .ok_or_else(|| ExprError::UnknownReference(key.to_owned()))?;
        expr::expand(raw, self, chain)
    }
}

impl Paths {
    /// Resolve the tier; `user` holds `system.path.<leaf>` expressions from the global
    /// config (string values only; nested share tables are not directories).
    pub fn resolve(
        host: &HostEnv,
        bases: Bases,
        user: &BTreeMap<String, String>,
    ) -> Result<Self, PathsError> {
        let scope = TierScope {
            bases: &bases,
            home: bases.home.to_string_lossy().into_owned(),
            user,
        };
        let mut resolved = BTreeMap::new();
        for (leaf, _) in SYSTEM_PATH_DEFAULTS {
            let key = format!("system.path.{leaf}");
            let raw = scope.raw(leaf).expect("every leaf has a default");
            let value =
                expr::expand(raw, &scope, &mut vec![key]).map_err(|error| PathsError::Expr {
                    leaf: (*leaf).to_owned(),
                    error,
                })?;
            resolved.insert(*leaf, host.cwd.join(value));
        }
        let take = |leaf: &str| resolved[leaf].clone();
        let data = take("data");
        let leaf = data
            .file_name()
            .map_or_else(|| "kanibako".into(), |n| n.to_owned());
        Ok(Self {
            config_file: bases.config_file(),
            boxes: take("boxes"),
            crabs: take("crabs"),
            comms: take("comms"),
            share_ro: take("share_ro"),
            share_rw: take("share_rw"),
            templates: take("templates"),
            ws_hints: take("ws_hints"),
            state: bases.state_home.join(&leaf),
            cache: bases.cache_home.join(&leaf),
            runtime: bases.runtime_dir.join("kanibako"),
            data,
            bases,
        })
    }

    /// A short stable id of the data directory, the value of the
    /// [`crate::runtime::labels::DATA`] label on every container started from it.
    pub fn data_id(&self) -> String {
        data_id(&self.data)
    }

    pub fn names_file(&self) -> PathBuf {
        self.data.join("names.yaml")
    }

    /// Lock taken around every read-modify-write of `names.yaml`.
    pub fn names_lock(&self) -> PathBuf {
        self.data.join(".names.lock")
    }

    pub fn system_env_file(&self) -> PathBuf {
        self.data.join("env")
    }

    /// Rigs added, extended, imported or bootstrapped (`$DATA/rigs.yaml`).
    pub fn rigs_file(&self) -> PathBuf {
        self.data.join("rigs.yaml")
    }

    /// The user's own rig templates (`$DATA/containers/Containerfile.template-*`).
    pub fn rig_templates(&self) -> PathBuf {
        self.data.join("containers")
    }

    /// Default-workset config (`$DATA/config.yaml`).
    pub fn default_workset_config(&self) -> PathBuf {
        self.data.join("config.yaml")
    }

    pub fn home(&self) -> &Path {
        &self.bases.home
    }

    /// The invoking user's uid.
    pub fn uid(&self) -> u32 {
        self.bases.uid
    }

    /// Where kanibako records the standalone boxes the user made or agreed to use
    /// (their metadata lies in their workspace, which anyone who can write there
    /// could have made).
    pub fn adopted_standalone(&self, hash: &str) -> PathBuf {
        self.data.join("standalone").join(hash)
    }

    /// The directories every command may rely on existing.
    pub fn ensure_base_dirs(&self) -> std::io::Result<()> {
        for dir in [
            &self.bases.config_home,
            &self.data,
            &self.state,
            &self.cache,
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostEnv {
        HostEnv::for_test(Path::new("/work"), &[("HOME", "/home/alice")])
    }

    fn resolve(user: &[(&str, &str)]) -> Result<Paths, PathsError> {
        let h = host();
        let user = user
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Paths::resolve(&h, Bases::from_host(&h).unwrap(), &user)
    }

    #[test]
    fn defaults_follow_xdg() {
        let p = resolve(&[]).unwrap();
        assert_eq!(
            p.config_file,
            Path::new("/home/alice/.config/kanibako.yaml")
        );
        assert_eq!(p.data, Path::new("/home/alice/.local/share/kanibako"));
        assert_eq!(
            p.boxes,
            Path::new("/home/alice/.local/share/kanibako/boxes")
        );
        assert_eq!(
            p.ws_hints,
            Path::new("/home/alice/.local/share/kanibako/worksets.yaml")
        );
        assert_eq!(p.state, Path::new("/home/alice/.local/state/kanibako"));
        assert_eq!(p.cache, Path::new("/home/alice/.cache/kanibako"));
        assert_eq!(p.runtime, Path::new("/run/user/1000/kanibako"));
    }

    #[test]
    fn a_renamed_data_dir_moves_state_and_cache() {
        let p = resolve(&[("data", "~/kbdata")]).unwrap();
        assert_eq!(p.data, Path::new("/home/alice/kbdata"));
        assert_eq!(p.boxes, Path::new("/home/alice/kbdata/boxes"));
        assert_eq!(p.state, Path::new("/home/alice/.local/state/kbdata"));
        assert_eq!(p.cache, Path::new("/home/alice/.cache/kbdata"));
    }

    #[test]
    fn tier_errors_are_reported() {
        let e = resolve(&[("boxes", "@system.path.data/mybox-$CRAB")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "system.path.boxes: Variable $CRAB is not set in this context."
        );
        let e = resolve(&[("boxes", "@system.path.boxes/x")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "system.path.boxes: Cyclic @-reference: system.path.boxes -> system.path.boxes"
        );
        let e = resolve(&[("boxes", "@system.path.nosuch/x")]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("Unknown @-reference: system.path.nosuch")
        );
    }

    #[test]
    fn empty_xdg_counts_as_unset_and_relative_is_made_absolute() {
        let h = HostEnv::for_test(
            Path::new("/work"),
            &[
                ("HOME", "/home/alice"),
                ("XDG_CONFIG_HOME", ""),
                ("XDG_DATA_HOME", "rel/data"),
            ],
        );
        let b = Bases::from_host(&h).unwrap();
        assert_eq!(b.config_home, Path::new("/home/alice/.config"));
        assert_eq!(b.data_home, Path::new("/work/rel/data"));
    }
}
