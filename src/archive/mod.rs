//! Box archives (spec: upstream-runtime §7.2, §7.3): one `.txz` per box — an xz
//! tarball whose one top directory, named by the full project hash, holds the box's
//! metadata directory (its home as `shell/`) and `kanibako-archive-info.txt` — in the
//! Python tool's format, so each tool extracts the other's archives.
//!
//! What ours add: the info file carries a manifest with a sha256 of every member
//! ([`manifest`]); credentials are left out unless asked for (upstream defect 7) and
//! the file is 0600; links pointing outside the box, FIFOs and devices are never
//! archived. Extracting checks every member ([`member`]) while it streams into a
//! private staging directory ([`extract`]), which becomes the box's metadata in one
//! rename only when all passed, the registry updated last (defect 11).
//!
//! This module asks no questions and prints nothing; `commands::archive` does.

pub mod encoder;
pub mod extract;
#[cfg(test)]
mod fuzz;
pub mod git;
pub mod info;
pub mod manifest;
pub mod member;
pub mod pack;
pub mod unpack;

use crate::agents;
use crate::boxes::{BoxIdentity, CONTAINER_MARKER, LOCK_FILE};

/// Files of one machine's running sessions: never archived, never extracted.
pub const RUNTIME_FILES: &[&str] = &[LOCK_FILE, CONTAINER_MARKER];

/// The box's env file (`KEY=VALUE`, meant for secrets such as API keys).
pub const ENV_FILE: &str = "env";

/// Paths below the archive's top directory that hold credentials: each agent's login
/// in the home, and the box's env file.
pub fn credential_paths() -> Vec<String> {
    let mut out: Vec<String> = agents::all()
        .iter()
        .filter_map(|a| a.credentials())
        .map(|c| format!("shell/{}/{}", c.dir, c.file))
        .collect();
    out.push(ENV_FILE.into());
    out
}

/// What `archive` leaves out of `b`'s archive.
pub fn exclusions(include_credentials: bool) -> Vec<String> {
    let mut out: Vec<String> = RUNTIME_FILES.iter().map(|s| (*s).to_owned()).collect();
    out.push(info::FILE.into());
    if !include_credentials {
        out.extend(credential_paths());
    }
    out
}

/// Upstream's default archive name: `kanibako-<name or basename>-<stamp>.txz`.
pub fn default_file_name(b: &BoxIdentity, now: u64) -> String {
    let label = match &b.name {
        Some(n) => n.to_string(),
        None => b
            .workspace
            .file_name()
            .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned()),
    };
    let stamp = crate::vault::SnapshotName::new(now, crate::vault::Form::Dir).stamp();
    format!("kanibako-{label}-{stamp}.txz")
}

/// The `Archive date:` form, `2026-02-21T10:30:00Z`.
pub fn archive_date(now: u64) -> String {
    let c = crate::clock::Civil::from_epoch(now);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_named_below_the_top() {
        assert_eq!(
            credential_paths(),
            [
                "shell/.claude/.credentials.json",
                "shell/.codex/auth.json",
                "env"
            ]
        );
        assert!(exclusions(true).iter().all(|p| !p.contains("credentials")));
        assert!(exclusions(false).contains(&".kanibako.lock".to_owned()));
        assert_eq!(archive_date(1_795_714_981), "2026-11-26T17:43:01Z");
    }
}
