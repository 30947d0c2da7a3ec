//! Crab profiles: `$DATA/crabs/<id>.yaml`, one per agent (and the `general` and
//! `no_agent` ones every installation has) — which exist, and the skeleton a new one
//! gets. What a profile's keys mean is the settings keys'; reading them in force is the
//! settings stack's.

use std::path::{Path, PathBuf};

use crate::document::{DocError, Document, Item};

/// Where profile `id` lives.
pub fn path(crabs: &Path, id: &str) -> PathBuf {
    crabs.join(format!("{id}.yaml"))
}

/// The ids of the profile files in `crabs`, sorted.
pub fn ids(crabs: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(crabs)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".yaml")
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// A new profile: its display name and shell, no settings. Built-in defaults such as a
/// model are not written: one written here would beat a value set for all boxes at the
/// system level.
pub fn skeleton(path: &Path, name: &str) -> Document {
    let mut doc = Document::empty(path);
    let fields: [(&[&str], Item); 6] = [
        (&["crab", "name"], name.into()),
        (&["crab", "shell"], "standard".into()),
        (&["crab", "run_args"], Item::List(Vec::new())),
        (&["env"], Item::Map(Vec::new())),
        (&["shared"], Item::Map(Vec::new())),
        (&["tweakcc"], Item::Map(Vec::new())),
    ];
    for (keys, value) in fields {
        doc.set(keys, value)
            .expect("an empty document takes any key");
    }
    doc
}

/// Write profile `id` with display name `name` unless it exists.
pub fn ensure(crabs: &Path, id: &str, name: &str) -> Result<(), DocError> {
    let path = path(crabs, id);
    if path.exists() {
        return Ok(());
    }
    save(&skeleton(&path, name))
}

/// Save a profile: 0600, since its `env:` holds the values users keep tokens in.
pub fn save(doc: &Document) -> Result<(), DocError> {
    crate::fsutil::atomic_write(
        doc.path(),
        doc.to_yaml().as_bytes(),
        crate::fsutil::MODE_SECRET,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_profile_has_its_name_and_no_settings() {
        let t = tempfile::tempdir().unwrap();
        ensure(t.path(), "claude", "Claude Code").unwrap();
        let text = std::fs::read_to_string(path(t.path(), "claude")).unwrap();
        assert_eq!(
            text,
            "crab:\n  name: Claude Code\n  shell: standard\n  run_args: []\nenv: {}\nshared: {}\ntweakcc: {}\n"
        );
        std::fs::write(path(t.path(), "claude"), "crab:\n  model: mine\n").unwrap();
        ensure(t.path(), "claude", "Claude Code").unwrap();
        assert!(
            std::fs::read_to_string(path(t.path(), "claude"))
                .unwrap()
                .contains("mine"),
            "an existing profile is kept"
        );
        std::fs::write(t.path().join("notes.txt"), "").unwrap();
        assert_eq!(ids(t.path()), ["claude"]);
    }
}
