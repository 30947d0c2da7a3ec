//! First-run initialisation and the silent migrations of older layouts
//! (spec: upstream-cli-and-data §5.3, §5.10).
//!
//! Runs when `$CFG/kanibako.yaml` does not exist yet. Writes only what is missing, so a
//! data directory shared with the Python tool is never clobbered.

use std::fs;
use std::io::ErrorKind;

use crate::agents::profile;
use crate::document::{Document, Item};
use crate::envfile;
use crate::fsutil;
use crate::output;
use crate::paths::{Bases, Paths, SYSTEM_PATH_DEFAULTS};
use anyhow::{Context as _, Result};

/// Leaves written into a new `kanibako.yaml`, as documentation of the tier. (`share_ro`
/// and `share_rw` are left to their defaults, as upstream does.)
const WRITTEN_LEAVES: &[&str] = &["data", "boxes", "crabs", "comms", "templates", "ws_hints"];

/// The crab profiles every installation has: `general` (shell mode) and `no_agent`.
/// Built-in defaults such as a model are not written: they stay below every level.
const BUILTIN_CRABS: &[&str] = &["general", "no_agent"];

fn default_config(paths: &Paths) -> Document {
    let mut doc = Document::empty(&paths.config_file);
    let tier = SYSTEM_PATH_DEFAULTS
        .iter()
        .filter(|(leaf, _)| WRITTEN_LEAVES.contains(leaf))
        .map(|(leaf, expr)| ((*leaf).to_owned(), (*expr).to_owned()))
        .collect();
    doc.set(&["system", "path"], Item::Map(tier))
        .expect("an empty document takes any key");
    doc
}

/// Create what a first run creates; returns the (new) global config.
pub fn initialize(paths: &Paths) -> Result<Document> {
    let config = default_config(paths);
    for dir in [
        paths.data.join("containers"),
        paths.boxes.clone(),
        paths.templates.join("general/base"),
        paths.templates.join("general/standard"),
        paths.comms.join("mailbox"),
        paths.crabs.clone(),
    ] {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = paths.comms.join("broadcast.log");
    if !log.exists() && !fsutil::is_symlink(&log) {
        fsutil::atomic_write(&log, b"", fsutil::MODE_CONFIG)?;
    }
    for id in BUILTIN_CRABS {
        profile::ensure(&paths.crabs, id, "Shell")?;
        fs::create_dir_all(paths.templates.join(id).join("standard"))?;
    }
    let env_file = paths.system_env_file();
    let mut env =
        envfile::read(&env_file).with_context(|| format!("reading {}", env_file.display()))?;
    if !env.contains_key("COLORTERM") {
        env.insert("COLORTERM".into(), "truecolor".into());
        envfile::write(&env_file, &env)?;
    }
    // Written last: its existence is what marks the installation as initialised.
    config.save()?;
    Ok(config)
}

/// `$CFG/kanibako/kanibako.yaml` → `$CFG/kanibako.yaml`.
pub fn migrate_legacy_config(bases: &Bases) -> Result<()> {
    let (old, new) = (bases.legacy_config_file(), bases.config_file());
    if new.exists() || !old.is_file() {
        return Ok(());
    }
    fs::create_dir_all(&bases.config_home)?;
    fs::rename(&old, &new)
        .with_context(|| format!("moving {} to {}", old.display(), new.display()))?;
    output::say(format_args!(
        "Migrated config: {} → {}",
        old.display(),
        new.display()
    ));
    if let Some(dir) = old.parent() {
        // Only removed when empty; anything else the user keeps there stays.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}

/// `$CFG/kanibako/env` → `$DATA/env`, and `$DATA/settings/` → the boxes directory.
pub fn migrate_legacy_data(paths: &Paths) -> Result<()> {
    let old_env = paths.bases.config_home.join("kanibako").join("env");
    let new_env = paths.system_env_file();
    if old_env.is_file() && !new_env.exists() {
        fs::create_dir_all(&paths.data)?;
        fs::rename(&old_env, &new_env)?;
        output::say(format_args!(
            "Migrated: {} → {}",
            old_env.display(),
            new_env.display()
        ));
    }
    let old_boxes = paths.data.join("settings");
    if old_boxes.is_dir() && !paths.boxes.exists() {
        match fs::rename(&old_boxes, &paths.boxes) {
            Ok(()) => output::say(format_args!(
                "Migrated: {} → {}",
                old_boxes.display(),
                paths.boxes.display()
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("moving the legacy settings directory"),
        }
    }
    Ok(())
}
