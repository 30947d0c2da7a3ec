//! `box config`, `crab config`, `system config` (and `workset config`): one grammar at
//! every level — `KEY` reads, `KEY=VALUE` sets (typed and checked), nothing shows what
//! the level sets, `--effective` everything in force, `--show-origin` where it comes
//! from, `--reset KEY` / `--reset --all` removes.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::agents::{self, profile};
use crate::boxes::BoxIdentity;
use crate::boxes::resolve::Resolution;
use crate::cli::config::{
    BoxConfigArgs, ConfigArgs, NamedConfigArgs, SystemConfigArgs, WorksetConfigArgs,
};
use crate::context::Context;
use crate::document::{Document, Item};
use crate::envfile;
use crate::error::{Exit, UserError};
use crate::output;
use crate::paths::{Bases, Paths};
use crate::prompt;
use crate::settings::keys::{self, KeyError, KeyRef, Kind, Level};
use crate::settings::stack::{Origin, Stack};
use crate::settings::write_lock;

/// One level being configured.
struct Scope {
    level: Level,
    /// What to call it in messages.
    label: String,
    /// The level's own document, edited in place and saved.
    doc: Document,
    /// Its env file; `None` where env lives in the document (crab files).
    env_file: Option<PathBuf>,
    /// What a launch would see from this level down.
    stack: Stack,
    /// The level's file lies in the box's workspace (a standalone box's own): what
    /// widens the box is ignored there at launch, so it is not stored there either.
    in_workspace: bool,
}

/// A `resource.<path>` must name a resource of an agent kanibako knows (upstream
/// stored any name and never read it).
fn known_resource(path: &str) -> Result<()> {
    let all = agents::all();
    if all
        .iter()
        .any(|a| agents::resources::known(a.resources(), path))
    {
        return Ok(());
    }
    let names: Vec<&str> = all
        .iter()
        .flat_map(|a| a.resources().iter().map(|m| m.path))
        .collect();
    bail!(
        UserError::new(format!("unknown resource: resource.{path}"))
            .hint(format!("resources: {}", names.join(" ")))
    )
}

/// `--local` (box and workset config): `resource.<path>` set to `project`, as upstream.
pub(crate) fn local_key(key: Option<&str>) -> Result<String> {
    let bare = key.map(|k| match k.split_once('=') {
        Some((k, v)) if v.trim() == "project" => Ok(k.trim()),
        Some((k, _)) => Err(k.trim()),
        None => Ok(k.trim()),
    });
    match bare {
        Some(Ok(k)) if k.starts_with("resource.") => Ok(format!("{k}=project")),
        Some(Err(k)) if k.starts_with("resource.") => bail!(
            UserError::new(format!(
                "--local sets {k} to project; it takes no other value"
            ))
            .hint(format!("drop --local to set another scope: {k}=shared"))
        ),
        _ => bail!(
            UserError::new("--local only applies to resource.* keys")
                .hint("for example: --local resource.settings.json")
        ),
    }
}

fn key_error(e: KeyError) -> anyhow::Error {
    let hints = e.hints();
    let mut u = UserError::new(e.to_string());
    for h in hints {
        u = u.hint(h);
    }
    u.into()
}

impl Scope {
    fn parse_key(&self, key: &str) -> Result<KeyRef> {
        let k = keys::parse(key, self.level == Level::Crab).map_err(key_error)?;
        if let KeyRef::Resource(path) = &k {
            known_resource(path)?;
        }
        Ok(k)
    }

    fn check_level(&self, key: &KeyRef) -> Result<()> {
        if let KeyRef::Known(k) = key {
            if k.read_only {
                bail!(key_error(KeyError::ReadOnly(k.name.to_owned())));
            }
            if !k.levels.contains(&self.level) {
                bail!(key_error(KeyError::WrongLevel {
                    key: k.name.to_owned(),
                    level: self.level,
                    allowed: k
                        .levels
                        .iter()
                        .map(|l| l.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                }));
            }
        }
        if let KeyRef::Resource(_) = key
            && !keys::RESOURCE_LEVELS.contains(&self.level)
        {
            bail!(key_error(KeyError::WrongLevel {
                key: key.display(),
                level: self.level,
                allowed: keys::RESOURCE_LEVELS
                    .iter()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }));
        }
        if let KeyRef::Env(_) = key
            && self.env_file.is_none()
            && self.level != Level::Crab
        {
            bail!(
                UserError::new(format!("{} has no env file", self.label))
                    .hint("set it for all boxes with `kanibako system config env.NAME=VALUE`")
            );
        }
        Ok(())
    }

    fn path(key: &KeyRef) -> Vec<String> {
        key.doc_path()
    }

    fn write_env(&self, name: &str, value: Option<&str>) -> Result<bool> {
        match &self.env_file {
            Some(file) => {
                let mut vars = envfile::read(file)?;
                let changed = match value {
                    Some(v) => vars.insert(name.to_owned(), v.to_owned()).as_deref() != Some(v),
                    None => vars.remove(name).is_some(),
                };
                if changed {
                    envfile::write(file, &vars)?;
                }
                Ok(changed)
            }
            None => Ok(false),
        }
    }

    fn save(&self) -> Result<()> {
        if self.level == Level::Crab {
            profile::save(&self.doc)?;
        } else {
            self.doc.save()?;
        }
        Ok(())
    }
}

fn print_value(v: &str) -> String {
    if v.is_empty() {
        "''".to_owned()
    } else {
        v.to_owned()
    }
}

/// `system.path.*` values are checked by resolving the whole tier with the new value.
fn check_system_path(cx: &Context, key: &str, value: &str) -> Result<()> {
    let Some(leaf) = key.strip_prefix("system.path.") else {
        return Ok(());
    };
    let mut user: std::collections::BTreeMap<String, String> = cx
        .config
        .get_string_map(&["system", "path"])?
        .into_iter()
        .collect();
    user.insert(leaf.to_owned(), value.to_owned());
    let bases = Bases::from_host(&cx.host)?;
    Paths::resolve(&cx.host, bases, &user)?;
    Ok(())
}

/// Before a change: this level's files locked, and its document read again under the
/// lock, so a change made meanwhile by another command is kept, not overwritten.
fn lock_for_change(cx: &Context, s: &mut Scope) -> Result<write_lock::Held> {
    let doc_path = s.doc.path().to_owned();
    let mut files = vec![doc_path.as_path()];
    if let Some(env) = &s.env_file {
        files.push(env);
    }
    let held = write_lock::hold(&cx.paths.state, &files)
        .map_err(|e| anyhow::anyhow!("locking {}: {e}", doc_path.display()))?;
    // A profile not written yet keeps the skeleton it starts from.
    if doc_path.exists() {
        s.doc = Document::load(&doc_path)?;
    }
    Ok(held)
}

fn run(cx: &Context, mut s: Scope, key: Option<&str>, a: &ConfigArgs) -> Result<Exit> {
    if a.resetting() {
        let key = match (a.reset_key(), key) {
            (Some(k), None) | (None, Some(k)) => Some(k),
            (None, None) => None,
            (Some(k), Some(other)) => bail!(
                UserError::new(format!("two keys to reset: '{k}' and '{other}'"))
                    .hint("reset one key at a time, or every key with --reset --all")
            ),
        };
        return match (key, a.all) {
            (_, true) => reset_all(cx, &mut s, a.force),
            (Some(k), false) => reset(cx, &mut s, k),
            // Upstream's box and workset parsers read a bare `--reset` as `--reset
            // --all` (it asks first, as that does).
            (None, false) if matches!(s.level, Level::Box | Level::Workset) => {
                reset_all(cx, &mut s, a.force)
            }
            (None, false) => {
                Err(UserError::new("--reset requires a key (or use --reset --all).").into())
            }
        };
    }
    if a.effective {
        return effective(&s, a.show_origin);
    }
    match key {
        None => show(&s),
        Some(k) => match k.split_once('=') {
            Some((k, v)) => set(cx, &mut s, k.trim(), v.trim()),
            None => get(&s, k.trim(), a.show_origin),
        },
    }
}

fn get(s: &Scope, key: &str, show_origin: bool) -> Result<Exit> {
    let k = s.parse_key(key)?;
    let r = s.stack.resolve(&k)?;
    match r.value {
        Some(v) if show_origin => println!(
            "{}\t# {}",
            print_value(&v),
            r.origin.map_or_else(String::new, |o| o.to_string())
        ),
        Some(v) => println!("{v}"),
        None => output::say("(not set)"),
    }
    Ok(Exit::Success)
}

fn set(cx: &Context, s: &mut Scope, key: &str, value: &str) -> Result<Exit> {
    let k = s.parse_key(key)?;
    s.check_level(&k)?;
    let typed = keys::typed_value(&k, value).map_err(key_error)?;
    if s.in_workspace
        && (crate::settings::stack::ignored_in_workspace(&k, value)
            || s.stack.would_loosen_from_reach(&k, value)?)
    {
        bail!(
            UserError::new(format!(
                "{} is not stored in {}: a standalone box's own settings file lies in its workspace, where a repository or the box can write, so a launch ignores it there",
                k.display(),
                crate::fsutil::shown(s.doc.path()).display()
            ))
            .hint(if matches!(&k, KeyRef::Known(d) if d.name == "box.image") {
                "pass `--rig NAME` when launching, or set it for all boxes with `kanibako system config`"
            } else {
                "set it for all boxes with `kanibako system config`, or use a default-mode box (`kanibako create`)"
            })
        );
    }
    if let KeyRef::Known(def) = &k
        && def.kind == Kind::Path
    {
        check_system_path(cx, def.name, value)?;
    }
    // Checked: now changed under the lock (nothing is locked, so nothing made, for a
    // change refused above).
    let _held = lock_for_change(cx, s)?;
    match &k {
        KeyRef::Env(name) if s.level != Level::Crab => {
            s.write_env(name, Some(value))?;
        }
        KeyRef::Env(name) => {
            s.doc.set(&["env", name], value.into())?;
            s.save()?;
        }
        _ => {
            let path = Scope::path(&k);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            s.doc.set(&path, typed.clone())?;
            s.save()?;
        }
    }
    let shown = match typed {
        Item::Bool(b) => b.to_string(),
        _ => value.to_owned(),
    };
    println!("Set {}={shown}", k.display());
    Ok(Exit::Success)
}

fn reset(cx: &Context, s: &mut Scope, key: &str) -> Result<Exit> {
    let k = s.parse_key(key)?;
    // What may not be set here may not be reset here either (`mode`, `layout`: a box's
    // identity).
    s.check_level(&k)?;
    let _held = lock_for_change(cx, s)?;
    let removed = match &k {
        KeyRef::Env(name) if s.level != Level::Crab => s.write_env(name, None)?,
        KeyRef::Env(name) => s.doc.remove(&["env", name]),
        _ => {
            let path = Scope::path(&k);
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            s.doc.remove(&path)
        }
    };
    if removed {
        if !matches!(k, KeyRef::Env(_)) || s.level == Level::Crab {
            s.save()?;
        }
        println!("Reset {}", k.display());
    } else {
        println!("No override for {}", k.display());
    }
    Ok(Exit::Success)
}

fn reset_all(cx: &Context, s: &mut Scope, force: bool) -> Result<Exit> {
    let overrides: Vec<(String, String)> = s
        .stack
        .overrides(s.level)?
        .into_iter()
        .filter(|(k, _)| {
            // A box's identity (its mode, layout, vault and auth choices) is not an
            // override: resetting it would re-home the box.
            keys::find(k).is_none_or(|d| d.path.first() != Some(&"project") && !d.read_only)
        })
        .collect();
    if overrides.is_empty() {
        println!("No overrides to reset.");
        return Ok(Exit::Success);
    }
    if !force
        && !prompt::confirm_yes(
            &cx.host,
            &format!(
                "Remove all {} config overrides of {}?",
                overrides.len(),
                s.label
            ),
            "--force",
        )?
    {
        println!("Aborted.");
        return Ok(Exit::Success);
    }
    let _held = lock_for_change(cx, s)?;
    for (k, _) in &overrides {
        let key = keys::parse(k, s.level == Level::Crab).map_err(key_error)?;
        match &key {
            KeyRef::Env(name) if s.level != Level::Crab => {
                s.write_env(name, None)?;
            }
            KeyRef::Env(name) => {
                s.doc.remove(&["env", name]);
            }
            _ => {
                let path = Scope::path(&key);
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                s.doc.remove(&path);
            }
        }
    }
    s.save()?;
    println!("Reset {} override(s).", overrides.len());
    Ok(Exit::Success)
}

fn show(s: &Scope) -> Result<Exit> {
    let overrides = s.stack.overrides(s.level)?;
    if overrides.is_empty() {
        println!("  (no overrides)");
    }
    for (k, v) in overrides {
        println!("  {k} = {}", print_value(&v));
    }
    Ok(Exit::Success)
}

fn effective(s: &Scope, show_origin: bool) -> Result<Exit> {
    let levels: Vec<Level> = s.stack.sources.iter().map(|src| src.level).collect();
    let line = |name: &str, value: &Option<String>, origin: &Option<Origin>| {
        let v = value.as_deref().map_or("(not set)".to_owned(), print_value);
        match (show_origin, origin) {
            (true, Some(o)) => println!("  {name} = {v}\t# {o}"),
            _ => println!("  {name} = {v}"),
        }
    };
    for k in keys::KEYS {
        if !k.levels.iter().any(|l| levels.contains(l)) {
            continue;
        }
        let r = s.stack.resolve(&KeyRef::Known(k))?;
        line(k.name, &r.value, &r.origin);
    }
    // shared caches, shares and seeds in force, then the layered environment
    let mut extra: Vec<(String, Option<String>, Option<Origin>)> = Vec::new();
    for (name, _) in s.stack.shared()? {
        let r = s.stack.resolve(&KeyRef::Shared(name.clone()))?;
        extra.push((format!("shared.{name}"), r.value, r.origin));
    }
    let mut seen = std::collections::BTreeSet::new();
    for src in &s.stack.sources {
        for (k, _) in src.doc.flat_strings() {
            if crate::settings::stack::share_key(&k) && seen.insert(k.clone()) {
                let key = keys::parse(&k, false).map_err(key_error)?;
                let r = s.stack.resolve(&key)?;
                extra.push((k, r.value, r.origin));
            }
        }
    }
    let mut env_names = std::collections::BTreeSet::new();
    for layer in s.stack.env_layers()? {
        env_names.extend(layer.into_keys());
    }
    for name in env_names {
        let r = s.stack.resolve(&KeyRef::Env(name.clone()))?;
        extra.push((format!("env.{name}"), r.value, r.origin));
    }
    if !extra.is_empty() {
        println!();
    }
    for (k, v, o) in extra {
        line(&k, &v, &o);
    }
    Ok(Exit::Success)
}

/// The crab a box's effective view includes: its `box.crab`, else the agent installed.
pub(crate) fn crab_for(cx: &Context, b: &BoxIdentity) -> Result<Option<String>> {
    let stack = cx.stack(Some(b), None)?;
    Ok(match stack.crab_id()? {
        Some(id) => Some(id),
        None => agents::detect_any(&cx.host).map(|(a, _)| a.id().to_owned()),
    })
}

pub fn box_config(cx: &Context, a: &BoxConfigArgs) -> Result<Exit> {
    // One argument is the box when it names one (a registered name or a directory),
    // else the key — so a mistyped key is reported as a key.
    let names_a_box = |s: &str| {
        cx.host.cwd.join(s).is_dir()
            || matches!(
                crate::boxes::address::resolve(&cx.paths, &cx.host.cwd, Some(s)),
                Ok(Resolution::Found(_))
            )
    };
    let (target, key) = match a.args.as_slice() {
        // `--reset KEY` took the key: what is left can only be the box.
        [one] if a.config.reset_key().is_some() => (Some(one.as_str()), None),
        [] => (None, None),
        [one] if one.contains('=') || keys::parse(one, false).is_ok() || !names_a_box(one) => {
            (None, Some(one.as_str()))
        }
        [one] => (Some(one.as_str()), None),
        [t, k] => (Some(t.as_str()), Some(k.as_str())),
        _ => bail!(UserError::new(
            "too many arguments (expected [box] [key[=value]])"
        )),
    };
    let b = crate::boxes::address::resolve(&cx.paths, &cx.host.cwd, target)?.require()?;
    let scope = box_scope(cx, &b)?;
    let local = a.local.then(|| local_key(key)).transpose()?;
    run(cx, scope, local.as_deref().or(key), &a.config)
}

/// Box `b`'s own level.
fn box_scope(cx: &Context, b: &BoxIdentity) -> Result<Scope> {
    let crab = crab_for(cx, b)?;
    let stack = cx.stack(Some(b), crab.as_deref())?;
    Ok(Scope {
        level: Level::Box,
        label: format!("box '{}'", b.display_name()),
        doc: Document::load(&b.project_file())?,
        env_file: Some(b.metadata.join("env")),
        stack,
        // A standalone box keeps its file in its workspace.
        in_workspace: b.project_file().starts_with(&b.workspace),
    })
}

/// The list key `key` at box `b`'s own level, with `entries` added after what that
/// level already has (`box net learn` writing `box.allow`), through the same checks
/// and locked, atomic write as `box config KEY=VALUE`.
pub(crate) fn add_to_box_list(
    cx: &Context,
    b: &BoxIdentity,
    key: &str,
    entries: &[String],
) -> Result<Exit> {
    let mut scope = box_scope(cx, b)?;
    let k = scope.parse_key(key)?;
    let have = scope.stack.at(Level::Box, &k)?.unwrap_or_default();
    let mut items: Vec<String> = crate::settings::value::items(&have)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for e in entries {
        if !items.contains(e) {
            items.push(e.clone());
        }
    }
    set(cx, &mut scope, key, &items.join(", "))
}

pub fn crab_config(cx: &Context, a: &NamedConfigArgs) -> Result<Exit> {
    let id = &a.target;
    let file = profile::path(&cx.paths.crabs, id);
    // A known agent's profile may not be written yet (it is on first use): it starts empty.
    let known_agent = agents::by_id(id).is_some();
    if crate::boxes::BoxName::from_registry(id).is_none() || !(file.is_file() || known_agent) {
        let mut known = profile::ids(&cx.paths.crabs);
        known.extend(agents::known_ids().into_iter().map(str::to_owned));
        known.sort();
        known.dedup();
        bail!(
            UserError::new(format!("crab '{id}' not found ({})", file.display()))
                .hint(format!("known crabs: {}", known.join(", ")))
        );
    }
    // A profile not written yet starts as the one a first launch would write, so a
    // setting lands beside its name and shell (and nothing is written if it fails).
    let doc = match agents::by_id(id) {
        Some(agent) if !file.exists() => profile::skeleton(&file, agent.display_name()),
        _ => Document::load(&file)?,
    };
    let stack = cx.stack(None, Some(id))?;
    let scope = Scope {
        level: Level::Crab,
        label: format!("crab '{id}'"),
        doc,
        env_file: None,
        stack,
        in_workspace: false,
    };
    run(cx, scope, a.key.as_deref(), &a.config)
}

pub fn system_config(cx: &Context, a: &SystemConfigArgs) -> Result<Exit> {
    let stack = cx.stack(None, None)?;
    let scope = Scope {
        level: Level::System,
        label: "the system level".into(),
        doc: cx.config.clone(),
        env_file: Some(cx.paths.system_env_file()),
        stack,
        in_workspace: false,
    };
    run(cx, scope, a.key.as_deref(), &a.config)
}

/// `group_auth` of a named workset lives in its `workset.yaml`; switching it off clears
/// the shared credentials out of every member's home (never following links there).
fn workset_group_auth(
    cx: &Context,
    ws: &mut crate::workset::Workset,
    key: Option<&str>,
    a: &ConfigArgs,
) -> Result<Option<Exit>> {
    let Some(raw) = key.or(a.reset_key()) else {
        return Ok(None);
    };
    let (name, value) = match raw.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (raw.trim(), None),
    };
    if name != "group_auth" {
        return Ok(None);
    }
    if a.resetting() {
        ws.set_group_auth(true)?;
        println!("Reset group_auth (reverts to default: true)");
        return Ok(Some(Exit::Success));
    }
    let Some(value) = value else {
        println!("{}", ws.group_auth);
        return Ok(Some(Exit::Success));
    };
    let Some(v) = crate::document::parse_bool(value) else {
        bail!(UserError::new(format!(
            "group_auth must be 'true' or 'false', got '{value}'"
        )));
    };
    ws.set_group_auth(v)?;
    if v {
        println!("Set group_auth to true (shared) for '{}'.", ws.name);
    } else {
        let mut cleared = 0;
        for b in ws.identities() {
            if b.shell.is_dir() {
                crate::launch::auth::forget(cx, &b);
                cleared += 1;
            }
        }
        println!(
            "Set group_auth to false (distinct) for '{}'. Credentials cleared in {cleared} project(s).",
            ws.name
        );
    }
    Ok(Some(Exit::Success))
}

pub fn workset_config(cx: &Context, wa: &WorksetConfigArgs) -> Result<Exit> {
    let a = &wa.named;
    let local = wa.local.then(|| local_key(a.key.as_deref())).transpose()?;
    let system = crate::settings::stack::Source {
        level: Level::System,
        doc: cx.config.clone(),
        env_file: Some(cx.paths.system_env_file()),
    };
    let (doc, env_file, label) = if a.target == crate::workset::DEFAULT || a.target == "__default__"
    {
        (
            Document::load(&cx.paths.default_workset_config())?,
            None,
            "the default workset".to_owned(),
        )
    } else {
        let mut ws = crate::workset::Workset::find(&cx.paths, &a.target)?;
        if let Some(exit) = workset_group_auth(cx, &mut ws, a.key.as_deref(), &a.config)? {
            return Ok(exit);
        }
        (
            Document::load(&ws.config_file())?,
            Some(ws.env_file()),
            format!("workset '{}'", ws.name),
        )
    };
    let stack = Stack {
        box_in_reach: false,
        sources: vec![
            crate::settings::stack::Source {
                level: Level::Workset,
                doc: doc.clone(),
                env_file: env_file.clone(),
            },
            system,
        ],
    };
    let scope = Scope {
        level: Level::Workset,
        label,
        doc,
        env_file,
        stack,
        in_workspace: false,
    };
    run(cx, scope, local.as_deref().or(a.key.as_deref()), &a.config)
}
