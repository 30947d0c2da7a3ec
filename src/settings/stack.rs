//! The settings a box (or a workset, a crab, the system) sees: its level documents,
//! most specific first, and the rules that pick a value from them.
//!
//! Precedence is box > workset > crab > system > built-in default. The first level that
//! sets a key wins, and an explicitly empty value wins too ("none": it does not fall
//! through). Every resolved value knows where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::{self, KeyDef, KeyRef, Level};
use crate::document::Document;
use crate::envfile;
use anyhow::Result;

/// One level: its document and, where it has one, its env file.
#[derive(Clone, Debug)]
pub struct Source {
    pub level: Level,
    pub doc: Document,
    pub env_file: Option<PathBuf>,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Level { level: Level, file: PathBuf },
    Default,
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Level { level, file } => {
                write!(f, "{level}: {}", crate::fsutil::shown(file).display())
            }
            Origin::Default => f.write_str("default"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A typed value in force, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn flag(value: T, flag: &'static str) -> Self {
        Self {
            value,
            origin: Origin::Flag(flag),
        }
    }
}

/// A resolved value: `Some("")` is an explicit "none"; `None` is unset everywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub value: Option<String>,
    pub origin: Option<Origin>,
}

impl Resolved {
    /// The value unless it is unset or explicitly empty.
    pub fn get(&self) -> Option<&str> {
        self.value.as_deref().filter(|v| !v.is_empty())
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stack {
    /// Most specific first.
    pub sources: Vec<Source>,
    /// The box level's file lies within the box's reach (a standalone box's own
    /// `project.yaml`, in its workspace): it may tighten the [`HARDENING`] keys, never
    /// loosen them.
    pub box_in_reach: bool,
}

impl Stack {
    pub fn source(&self, level: Level) -> Option<&Source> {
        self.sources.iter().find(|s| s.level == level)
    }

    pub fn doc(&self, level: Level) -> Option<&Document> {
        self.source(level).map(|s| &s.doc)
    }

    /// The documents, most specific first.
    pub fn docs(&self) -> impl Iterator<Item = &Document> {
        self.sources.iter().map(|s| &s.doc)
    }

    /// The value `key` has at `level` itself (not inherited), as text. A value the
    /// Python tool wrote unasked (its generated `model: opus`, a pinned default image)
    /// counts as not set.
    pub fn at(&self, level: Level, key: &KeyRef) -> Result<Option<String>> {
        let Some(src) = self.source(level) else {
            return Ok(None);
        };
        if let KeyRef::Env(name) = key {
            return Ok(match &src.env_file {
                Some(f) => envfile::read(f)?.remove(name),
                None if level == Level::Crab => src
                    .doc
                    .get_string_map(&["env"])?
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v),
                None => None,
            });
        }
        if let KeyRef::Known(k) = key
            && !k.levels.contains(&level)
        {
            return Ok(None);
        }
        if let KeyRef::Resource(_) = key
            && !keys::RESOURCE_LEVELS.contains(&level)
        {
            return Ok(None);
        }
        let path = key.doc_path();
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let value = match key {
            // A list-typed key reads as its items joined, and a scalar there as a list
            // written on one line.
            KeyRef::Known(KeyDef {
                kind: keys::Kind::Typed(t),
                ..
            }) if t.is_list() => match src.doc.get_list(&path)? {
                Some(items) => Some(items.join(", ")),
                None => src.doc.get_str(&path)?,
            },
            // A known key holds one value: a list or a mapping there is an error that
            // names the file and line, never a value made of its items.
            KeyRef::Known(_) => src.doc.get_str(&path)?,
            // A list (the Python tool's run_args) reads as its items joined.
            _ => match src.doc.get_list(&path)? {
                Some(items) => Some(items.join(" ")),
                None => src.doc.get_scalar(&path)?,
            },
        };
        if let (
            KeyRef::Known(KeyDef {
                python_default: Some((pd, pl)),
                ..
            }),
            Some(v),
        ) = (key, &value)
            && *pl == level
            && v == pd
        {
            return Ok(None);
        }
        Ok(value)
    }

    /// The value in force for `key` and where it came from; `default` overrides the
    /// key's own built-in default (an agent's model, say).
    pub fn resolve_with(&self, key: &KeyRef, default: Option<&str>) -> Result<Resolved> {
        if let KeyRef::Known(def) = key
            && HARDENING.contains(&def.name)
        {
            return self.resolve_hardening(def);
        }
        self.resolve_in(&self.sources, key, default)
    }

    fn resolve_in(
        &self,
        sources: &[Source],
        key: &KeyRef,
        default: Option<&str>,
    ) -> Result<Resolved> {
        for src in sources {
            if let Some(v) = self.at(src.level, key)? {
                let file = match key {
                    KeyRef::Env(_) => src
                        .env_file
                        .clone()
                        .unwrap_or_else(|| src.doc.path().to_owned()),
                    _ => src.doc.path().to_owned(),
                };
                return Ok(Resolved {
                    value: Some(v),
                    origin: Some(Origin::Level {
                        level: src.level,
                        file,
                    }),
                });
            }
        }
        let default = default.or(match key {
            KeyRef::Known(k) => k.default,
            _ => None,
        });
        Ok(Resolved {
            value: default.map(str::to_owned),
            origin: default.map(|_| Origin::Default),
        })
    }

    pub fn resolve(&self, key: &KeyRef) -> Result<Resolved> {
        self.resolve_with(key, None)
    }

    /// The sources outside the box's reach (all but a box level within it).
    fn outer_sources(&self) -> Vec<Source> {
        self.sources
            .iter()
            .filter(|s| !(self.box_in_reach && s.level == Level::Box))
            .cloned()
            .collect()
    }

    /// A hardening key: a layered list is every level's entries, outermost first, after
    /// the default; any other the most specific level's value. Either way a box level
    /// within the box's reach counts only where it tightens.
    fn resolve_hardening(&self, def: &'static KeyDef) -> Result<Resolved> {
        let key = KeyRef::Known(def);
        if matches!(def.kind, keys::Kind::Typed(t) if t.layered()) {
            let layers = self.layers(def)?;
            let entries: Vec<String> = layers.iter().map(|(_, e)| e.join(", ")).collect();
            return Ok(Resolved {
                value: Some(entries.join(", ")),
                origin: layers.last().map(|(o, _)| o.clone()),
            });
        }
        let all = self.resolve_in(&self.sources, &key, None)?;
        if self.loosened_from_reach(def, &all)? {
            return self.resolve_in(&self.outer_sources(), &key, None);
        }
        Ok(all)
    }

    /// A layered key's entries: the default's, then each level's, outermost first,
    /// with where they came from. A box level within the box's reach keeps only its
    /// removals (`-entry`).
    pub fn layers(&self, def: &'static KeyDef) -> Result<Vec<(Origin, Vec<String>)>> {
        let key = KeyRef::Known(def);
        let mut out: Vec<(Origin, Vec<String>)> = Vec::new();
        if let Some(d) = def.default {
            out.push((
                Origin::Default,
                super::value::items(d).into_iter().map(Into::into).collect(),
            ));
        }
        for src in self.sources.iter().rev() {
            let Some(v) = self.at(src.level, &key)? else {
                continue;
            };
            let confined = self.box_in_reach && src.level == Level::Box;
            let kept: Vec<String> = super::value::items(&v)
                .into_iter()
                .filter(|e| !confined || e.starts_with('-'))
                .map(Into::into)
                .collect();
            if !kept.is_empty() {
                let origin = Origin::Level {
                    level: src.level,
                    file: src.doc.path().to_owned(),
                };
                out.push((origin, kept));
            }
        }
        Ok(out)
    }

    /// Whether `r` (the value over every level) comes from a box level within the
    /// box's reach and gives the box more than the levels outside it do.
    fn loosened_from_reach(&self, def: &'static KeyDef, r: &Resolved) -> Result<bool> {
        let from_box = matches!(
            &r.origin,
            Some(Origin::Level {
                level: Level::Box,
                ..
            })
        );
        if !self.box_in_reach || !from_box {
            return Ok(false);
        }
        let outer = self.resolve_in(&self.outer_sources(), &KeyRef::Known(def), None)?;
        Ok(looser(
            def,
            r.value.as_deref().unwrap_or(""),
            outer.value.as_deref().unwrap_or(""),
        ))
    }

    /// The hardening keys whose value at a box level within the box's reach is
    /// ignored because it would loosen the box: each key's name and the file, for one
    /// warning line each at launch.
    pub fn loosening_ignored(&self) -> Result<Vec<(&'static str, PathBuf)>> {
        let Some(src) = self.source(Level::Box).filter(|_| self.box_in_reach) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for name in HARDENING {
            let def = keys::find(name).expect("a built-in key");
            let key = KeyRef::Known(def);
            let Some(v) = self.at(Level::Box, &key)? else {
                continue;
            };
            let ignored = match def.kind {
                keys::Kind::Typed(t) if t.layered() => looser(def, &v, ""),
                _ => self.loosened_from_reach(def, &self.resolve_in(&self.sources, &key, None)?)?,
            };
            if ignored {
                out.push((def.name, src.doc.path().to_owned()));
            }
        }
        Ok(out)
    }

    /// Whether storing `value` for `key` at a box level within the box's reach would
    /// be ignored at launch because it loosens the box (`box config` refuses it).
    pub fn would_loosen_from_reach(&self, key: &KeyRef, value: &str) -> Result<bool> {
        let KeyRef::Known(def) = key else {
            return Ok(false);
        };
        if !self.box_in_reach || !HARDENING.contains(&def.name) {
            return Ok(false);
        }
        if matches!(def.kind, keys::Kind::Typed(t) if t.layered()) {
            return Ok(looser(def, value, ""));
        }
        let outer = self.resolve_in(&self.outer_sources(), key, None)?;
        Ok(looser(def, value, outer.value.as_deref().unwrap_or("")))
    }

    /// A known key by name (a typo here is a bug, not user input).
    pub fn known(&self, name: &str) -> Result<Resolved> {
        let def = keys::find(name).unwrap_or_else(|| panic!("unknown built-in key {name}"));
        self.resolve(&KeyRef::Known(def))
    }

    pub fn bool(&self, name: &str) -> Result<bool> {
        Ok(self.bool_setting(name)?.value)
    }

    /// A boolean key in force and its origin; unset, empty or unreadable is false.
    pub fn bool_setting(&self, name: &str) -> Result<Setting<bool>> {
        let r = self.known(name)?;
        Ok(Setting {
            value: r
                .get()
                .and_then(crate::document::parse_bool)
                .unwrap_or(false),
            origin: r.origin.unwrap_or(Origin::Default),
        })
    }

    /// A string key in force (an explicit empty value stays empty) and its origin.
    pub fn str_setting(
        &self,
        name: &str,
        default: Option<&str>,
    ) -> Result<Setting<Option<String>>> {
        let def = keys::find(name).unwrap_or_else(|| panic!("unknown built-in key {name}"));
        let r = self.resolve_with(&KeyRef::Known(def), default)?;
        Ok(Setting {
            value: r.value,
            origin: r.origin.unwrap_or(Origin::Default),
        })
    }

    /// The rig: the first level that names one, else the built-in default.
    pub fn image(&self) -> Result<String> {
        Ok(self.image_setting()?.value)
    }

    /// [`Stack::image`] and where it came from.
    pub fn image_setting(&self) -> Result<Setting<String>> {
        let r = self.known("box.image")?;
        Ok(match (r.get().map(str::to_owned), r.origin) {
            (Some(value), Some(origin)) => Setting { value, origin },
            _ => Setting {
                value: keys::DEFAULT_IMAGE.to_owned(),
                origin: Origin::Default,
            },
        })
    }

    /// `box.crab`: which agent runs (`None` = whichever is installed).
    pub fn crab_id(&self) -> Result<Option<String>> {
        Ok(self.known("box.crab")?.get().map(str::to_owned))
    }

    /// A crab state key (`model`, …); `default` is the agent's own.
    pub fn crab_state(&self, key: &str, default: Option<&str>) -> Result<Option<String>> {
        let def = keys::find(key).expect("a crab state key");
        Ok(self.resolve_with(&KeyRef::Known(def), default)?.value)
    }

    /// The crab's `run_args` list.
    pub fn run_args(&self) -> Result<Vec<String>> {
        let Some(crab) = self.doc(Level::Crab) else {
            return Ok(Vec::new());
        };
        Ok(match crab.get_list(&["crab", "run_args"])? {
            Some(items) => items,
            None => crab
                .get_scalar(&["crab", "run_args"])?
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    }

    /// Env layers for a launch, lowest first: system, crab, workset, box.
    pub fn env_layers(&self) -> Result<[BTreeMap<String, String>; 4]> {
        let file = |l: Level| -> Result<BTreeMap<String, String>> {
            match self.source(l).and_then(|s| s.env_file.as_deref()) {
                Some(f) => Ok(envfile::read(f)?),
                None => Ok(BTreeMap::new()),
            }
        };
        let crab = match self.doc(Level::Crab) {
            Some(c) => c.get_string_map(&["env"])?.into_iter().collect(),
            None => BTreeMap::new(),
        };
        Ok([
            file(Level::System)?,
            crab,
            file(Level::Workset)?,
            file(Level::Box)?,
        ])
    }

    /// The crab file's `shared:` caches.
    pub fn crab_shared(&self) -> Result<Vec<(String, String)>> {
        match self.doc(Level::Crab) {
            Some(c) => Ok(c.get_string_map(&["shared"])?),
            None => Ok(Vec::new()),
        }
    }

    /// Global shared caches: the most specific non-empty `shared:` map, whole (as
    /// upstream: maps are not merged key by key).
    pub fn shared(&self) -> Result<Vec<(String, String)>> {
        for src in &self.sources {
            if src.level == Level::Crab {
                continue;
            }
            let map = src.doc.get_string_map(&["shared"])?;
            if !map.is_empty() {
                return Ok(map);
            }
        }
        Ok(Vec::new())
    }

    /// Every key set at `level` (for `config` without a key), as display name and value.
    pub fn overrides(&self, level: Level) -> Result<Vec<(String, String)>> {
        let Some(src) = self.source(level) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for k in keys::KEYS {
            // What a box is (its mode, layout, and the choices made when it was created)
            // is not an override unless it differs from the default.
            if k.read_only {
                continue;
            }
            if let Some(v) = self.at(level, &KeyRef::Known(k))? {
                if k.path.first() == Some(&"project") && Some(v.as_str()) == k.default {
                    continue;
                }
                out.push((k.name.to_owned(), v));
            }
        }
        if level == Level::Crab {
            for f in ["name", "shell"] {
                if let Some(v) = src.doc.get_str(&["crab", f])? {
                    out.push((f.to_owned(), v));
                }
            }
            let args = self.run_args()?;
            if !args.is_empty() {
                out.push(("run_args".into(), args.join(" ")));
            }
        }
        for (k, v) in src.doc.get_string_map(&["shared"])? {
            out.push((format!("shared.{k}"), v));
        }
        if keys::RESOURCE_LEVELS.contains(&level) {
            for (k, v) in src.doc.get_string_map(&["resource_overrides"])? {
                out.push((format!("resource.{k}"), v));
            }
        }
        for (k, v) in src.doc.flat_strings() {
            if share_key(&k) {
                out.push((k, v));
            }
        }
        let env: Vec<(String, String)> = match (&src.env_file, level) {
            (Some(f), _) => envfile::read(f)?.into_iter().collect(),
            (None, Level::Crab) => src.doc.get_string_map(&["env"])?,
            _ => Vec::new(),
        };
        out.extend(env.into_iter().map(|(k, v)| (format!("env.{k}"), v)));
        Ok(out)
    }
}

/// Settings that widen what a box sees or runs with: which image (and so which
/// setuid binaries and entrypoint; the browser sidecar's too, which shares the box's
/// network), which host agent's login, the host's image store.
/// Never read from a file inside the box's workspace.
pub const WIDENING: &[&str] = &[
    "box.image",
    "box.browser_image",
    "box.crab",
    "box.share_images",
    // it names what of the engine's host the box gets mounted
    "box.remote_path",
];

/// A settings file that lies inside a box's workspace (a standalone box's own
/// `project.yaml`), which a cloned repository or the box itself can have written:
/// every widening setting in it is dropped, with a warning naming the file and the
/// key. (Its shares, seeds and shared caches are never read either: see
/// `launch::seeds` and `launch::mounts`.) Narrowing a box, such as
/// `box.share_images: false`, stays.
pub fn confine(mut doc: Document) -> Document {
    for name in WIDENING {
        let def = keys::find(name).expect("a built-in key");
        match doc.get_scalar(def.path) {
            Ok(Some(v)) if narrows(def, &v) || python_default(def, &v) => continue,
            Ok(None) if !matches!(doc.get_json(def.path), Ok(Some(v)) if !v.is_null()) => {
                continue;
            }
            // an intermediate that is not a mapping: reading it fails as usual
            Err(_) => continue,
            _ => {}
        }
        crate::output::warn(format_args!(
            "ignoring {name} in {}: a standalone box's own settings file lies in its workspace, which a repository or the box can write; set it with a flag or in the system config",
            crate::fsutil::shown(doc.path()).display()
        ));
        doc.remove(def.path);
    }
    doc
}

/// The keys that bound what a box may do (processes, memory, CPUs, capabilities,
/// network). A level within the box's reach may tighten them, never loosen them.
pub const HARDENING: &[&str] = &[
    "box.pids_limit",
    "box.memory",
    "box.cpus",
    "box.cap_add",
    "box.network",
    "box.allow",
];

/// Whether hardening value `inner` gives a box more than `outer`.
fn looser(def: &KeyDef, inner: &str, outer: &str) -> bool {
    match def.kind {
        keys::Kind::Typed(t) => super::value::looser(t, inner, outer),
        // `box.network`; empty is the default, full
        _ => {
            let or_full = |v: &str| if v.is_empty() { "full" } else { v }.to_owned();
            super::value::network_looser(&or_full(inner), &or_full(outer))
        }
    }
}

/// Whether `value` turns `def` off (a box may always see less).
fn narrows(def: &KeyDef, value: &str) -> bool {
    def.kind == keys::Kind::Bool && crate::document::parse_bool(value) == Some(false)
}

/// Whether `value` is what the Python tool wrote for `def` unasked at the box level.
fn python_default(def: &KeyDef, value: &str) -> bool {
    matches!(def.python_default, Some((pd, Level::Box)) if pd == value)
}

/// Whether setting `key` to `value` in a standalone box's own file would be ignored at
/// launch: a widening setting ([`confine`]), or a share, seed or shared cache (never read
/// from there either). `box config` refuses to store such a value there.
pub fn ignored_in_workspace(key: &KeyRef, value: &str) -> bool {
    match key {
        KeyRef::Known(def) => {
            WIDENING.contains(&def.name) && !narrows(def, value) && !python_default(def, value)
        }
        KeyRef::Share { .. } | KeyRef::Shared(_) | KeyRef::Resource(_) => true,
        _ => false,
    }
}

/// `{scope}.path.{share_ro,share_rw,seeded}.<name>`.
pub fn share_key(k: &str) -> bool {
    keys::SCOPES.iter().any(|s| {
        keys::SHARE_KINDS
            .iter()
            .any(|kind| k.starts_with(&format!("{s}.path.{kind}.")))
    })
}

/// A level's env file, where it has one.
pub fn env_file_for(level: Level, metadata_or_root: &Path) -> PathBuf {
    match level {
        Level::Box | Level::Workset => metadata_or_root.join("env"),
        Level::Crab | Level::System => metadata_or_root.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, text: &str) -> Document {
        Document::parse(Path::new(name), text).unwrap()
    }

    fn stack(b: &str, w: &str, c: &str, s: &str) -> Stack {
        Stack {
            box_in_reach: false,
            sources: vec![
                Source {
                    level: Level::Box,
                    doc: doc("/b/project.yaml", b),
                    env_file: None,
                },
                Source {
                    level: Level::Workset,
                    doc: doc("/d/config.yaml", w),
                    env_file: None,
                },
                Source {
                    level: Level::Crab,
                    doc: doc("/d/crabs/claude.yaml", c),
                    env_file: None,
                },
                Source {
                    level: Level::System,
                    doc: doc("/c/kanibako.yaml", s),
                    env_file: None,
                },
            ],
        }
    }

    fn model(s: &Stack) -> (Option<String>, Option<String>) {
        let r = s.crab_state("model", Some("opus")).unwrap();
        let origin = s
            .resolve_with(&KeyRef::Known(keys::find("model").unwrap()), Some("opus"))
            .unwrap()
            .origin
            .map(|o| o.to_string());
        (r, origin)
    }

    #[test]
    fn precedence_rows_of_spec_7_4() {
        // A: only the (Python-generated) crab file, whose `opus` counts as unset
        let s = stack("", "", "crab:\n  model: opus\n", "");
        assert_eq!(model(&s), (Some("opus".into()), Some("default".into())));
        // B: a value set for all boxes at system level now really applies
        let s = stack(
            "",
            "",
            "crab:\n  model: opus\n",
            "crab:\n  model: sysmodel\n",
        );
        assert_eq!(model(&s).0.as_deref(), Some("sysmodel"));
        // D: the crab file chose haiku; the box suppresses it with ''
        let s = stack(
            "crab:\n  model: ''\n",
            "",
            "crab:\n  model: haiku\n",
            "crab:\n  model: sysmodel\n",
        );
        assert_eq!(model(&s).0.as_deref(), Some(""));
        assert_eq!(model(&s).1.as_deref(), Some("box: /b/project.yaml"));
        // workset beats crab and system, box beats workset
        let s = stack(
            "",
            "crab:\n  model: wsmodel\n",
            "crab:\n  model: haiku\n",
            "",
        );
        assert_eq!(model(&s).0.as_deref(), Some("wsmodel"));
        let s = stack(
            "crab:\n  model: boxmodel\n",
            "crab:\n  model: wsmodel\n",
            "",
            "",
        );
        assert_eq!(model(&s).0.as_deref(), Some("boxmodel"));
    }

    #[test]
    fn a_pinned_default_image_is_read_as_unset() {
        let s = stack(
            &format!("box:\n  image: {}\n", keys::DEFAULT_IMAGE),
            "",
            "",
            "box:\n  image: busybox\n",
        );
        assert_eq!(
            s.image().unwrap(),
            "busybox",
            "the global default moves every box that did not choose"
        );
        let s = stack("box:\n  image: mine\n", "", "", "box:\n  image: busybox\n");
        assert_eq!(s.image().unwrap(), "mine");
    }

    #[test]
    fn keys_only_count_at_their_levels() {
        // box.image is not a crab-level key
        let s = stack("", "", "box:\n  image: fromcrab\n", "");
        assert_eq!(s.image().unwrap(), keys::DEFAULT_IMAGE);
    }

    #[test]
    fn python_string_booleans() {
        let s = stack(
            "box:\n  share_images: 'false'\n",
            "",
            "",
            "box:\n  share_images: true\n",
        );
        assert!(
            !s.bool("box.share_images").unwrap(),
            "the string 'false' means false"
        );
    }

    #[test]
    fn overrides_list_what_a_level_sets() {
        let s = stack(
            "box:\n  image: x\ncrab:\n  model: m\nshared:\n  pip: .cache/pip\nbox2:\n  path:\n    share_ro.docs: a:b\n",
            "",
            "",
            "",
        );
        let o = s.overrides(Level::Box).unwrap();
        assert!(o.contains(&("box.image".into(), "x".into())));
        assert!(o.contains(&("model".into(), "m".into())));
        assert!(o.contains(&("shared.pip".into(), ".cache/pip".into())));
    }

    #[test]
    fn a_workspace_file_cannot_widen_a_box() {
        let d = doc(
            "/p/.kanibako/project.yaml",
            "box:\n  image: attacker.invalid/evil\n  crab: other\n  share_images: true\ncrab:\n  model: m\n",
        );
        let d = confine(d);
        assert_eq!(d.get_scalar(&["box", "image"]).unwrap(), None);
        assert_eq!(d.get_scalar(&["box", "crab"]).unwrap(), None);
        assert_eq!(d.get_scalar(&["box", "share_images"]).unwrap(), None);
        assert_eq!(
            d.get_scalar(&["crab", "model"]).unwrap().as_deref(),
            Some("m"),
            "what does not widen the box stays"
        );
        // seeing less is always allowed
        let d = confine(doc(
            "/p/.kanibako/project.yaml",
            "box:\n  share_images: false\n  image: [1, 2]\n",
        ));
        assert_eq!(
            d.get_scalar(&["box", "share_images"]).unwrap().as_deref(),
            Some("false")
        );
        assert_eq!(d.get_list(&["box", "image"]).unwrap(), None);
    }

    #[test]
    fn a_list_where_one_value_belongs_is_an_error_not_its_items_joined() {
        let s = stack("", "", "", "box:\n  image: [1, 2]\n");
        let err = s.image().unwrap_err().to_string();
        assert_eq!(
            err,
            "/c/kanibako.yaml:2: `box.image` should be a string, found a list"
        );
    }
}
