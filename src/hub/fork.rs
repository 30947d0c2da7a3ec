//! `fork` in the hub: the box's project directory (from the hub's config, never from
//! the request) is resolved again on the host, checked to still be this hub's box, and
//! forked by [`crate::boxes::fork`], which gives the new box its own copy of the home
//! and vault. Only the director may ask (see [`super::server`]'s `fork`).

use super::budget::Refusal;
use super::config::ForkConfig;
use super::protocol::{ErrorCode, ForkName, ForkResult};
use super::server::Forker;
use crate::boxes::fork::{self, ForkError};
use crate::boxes::registry::Registry;
use crate::boxes::resolve::{self, Resolution};

/// Forks the box at `cfg.workspace`, whose project hash is `hash`.
pub struct BoxForker {
    cfg: ForkConfig,
    hash: String,
}

impl BoxForker {
    pub fn new(cfg: ForkConfig, hash: &str) -> Self {
        Self {
            cfg,
            hash: hash.to_owned(),
        }
    }
}

/// The wire code for why a fork failed.
pub fn code(e: &ForkError) -> ErrorCode {
    match e {
        ForkError::Exists(_) => ErrorCode::Conflict,
        ForkError::Workset(_) | ForkError::NoParent(_) => ErrorCode::Unavailable,
        ForkError::NoWorkspace(_) => ErrorCode::NotFound,
        ForkError::Copy(_) | ForkError::Name(_) | ForkError::Record(_) => ErrorCode::Internal,
    }
}

impl Forker for BoxForker {
    fn fork(&self, name: &ForkName) -> Result<ForkResult, Refusal> {
        let paths = &self.cfg.paths;
        let gone = |why: String| {
            (
                ErrorCode::NotFound,
                format!(
                    "this box is no longer at {} ({why})",
                    self.cfg.workspace.display()
                ),
            )
        };
        let reg = Registry::load(&paths.names_file())
            .map_err(|e| (ErrorCode::Internal, format!("reading the registry: {e}")))?;
        let src = match resolve::resolve_dir(paths, &reg, &self.cfg.workspace) {
            Ok(Resolution::Found(b)) => b,
            Ok(Resolution::Unregistered(_)) => {
                return Err(gone("no box is registered there".into()));
            }
            Err(e) => return Err(gone(e.to_string())),
        };
        if src.hash != self.hash || src.workspace != self.cfg.workspace {
            return Err(gone("another box is registered there".into()));
        }
        drop(reg);
        let done =
            fork::fork(paths, &src, name, &|| Ok(())).map_err(|e| (code(&e), e.to_string()))?;
        Ok(ForkResult {
            path: done.workspace.to_string_lossy().into_owned(),
            name: done.name,
        })
    }
}
