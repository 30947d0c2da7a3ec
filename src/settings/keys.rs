//! Every setting by name: its type, default, the levels where it may be set and where
//! it is stored. A closed table, so an unknown key is an error with suggestions instead
//! of a file entry nobody reads (upstream stored anything, as a string, or crashed).

use std::fmt;

use super::value;
use crate::document::Item;

/// The levels, most specific first: the order in which a value is looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Box,
    Workset,
    Crab,
    System,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Box, Level::Workset, Level::Crab, Level::System];

    pub fn name(self) -> &'static str {
        match self {
            Level::Box => "box",
            Level::Workset => "workset",
            Level::Crab => "crab",
            Level::System => "system",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    /// An expression (`~`, `$VAR`, `@key`) naming a host path.
    Path,
    Choice(&'static [&'static str]),
    /// A hardening or network value, checked by its [`value::Type`].
    Typed(value::Type),
}

impl Kind {
    pub fn describe(self) -> String {
        match self {
            Kind::Bool => "true or false".into(),
            Kind::Str => "a string".into(),
            Kind::Path => "a path expression".into(),
            Kind::Choice(c) => format!("one of {}", c.join(", ")),
            Kind::Typed(t) => t.describe().into(),
        }
    }
}

const BCS: &[Level] = &[Level::Box, Level::Workset, Level::System];
const ALL: &[Level] = &[Level::Box, Level::Workset, Level::Crab, Level::System];

/// The process limit of a box when no level sets one.
pub const DEFAULT_PIDS_LIMIT: &str = "4096";

/// The egress rules before any level adds or removes one: the agent's own hosts and
/// the package registries (`egress::preset::DEFAULT_ALLOW`).
pub const DEFAULT_ALLOW: &str = "@claude, @npm, @pypi, @crates, @github";

#[derive(Debug, PartialEq, Eq)]
pub struct KeyDef {
    pub name: &'static str,
    pub kind: Kind,
    /// The built-in value below every level (`None`: unset unless a level sets it).
    pub default: Option<&'static str>,
    pub levels: &'static [Level],
    /// Where the value lives inside a level's YAML document.
    pub path: &'static [&'static str],
    /// Shown by `--effective` but not settable (derived from where the box lives).
    pub read_only: bool,
    /// A value the Python tool wrote unasked at `.1`; read there as "not set".
    pub python_default: Option<(&'static str, Level)>,
    pub doc: &'static str,
}

/// The model an agent session passes when no level sets one (Claude Code's).
pub const DEFAULT_MODEL: &str = "opus";

/// The image a box runs on when nobody chose one.
pub const DEFAULT_IMAGE: &str = "ghcr.io/doctorjei/kanibako-oci:latest";

/// The image of the browser sidecar (`start --browser`) when nobody chose one: a local
/// name, built by `scripts/browser-image` from the host's Chromium (no registry).
pub const DEFAULT_BROWSER_IMAGE: &str = "localhost/kanibako-browser:latest";

pub static KEYS: &[KeyDef] = &[
    KeyDef {
        name: "box.image",
        kind: Kind::Str,
        default: Some(DEFAULT_IMAGE),
        levels: BCS,
        path: &["box", "image"],
        read_only: false,
        python_default: Some((DEFAULT_IMAGE, Level::Box)),
        doc: "the rig (container image) boxes run on",
    },
    KeyDef {
        name: "box.browser_image",
        kind: Kind::Str,
        default: Some(DEFAULT_BROWSER_IMAGE),
        levels: BCS,
        path: &["box", "browser_image"],
        read_only: false,
        python_default: None,
        doc: "the image of the headless Chromium sidecar that `--browser` starts",
    },
    KeyDef {
        name: "box.crab",
        kind: Kind::Str,
        default: None,
        levels: BCS,
        path: &["box", "crab"],
        read_only: false,
        python_default: None,
        doc: "the agent that `start` runs (unset: whichever is installed; `no_agent`: the rig's own entrypoint)",
    },
    KeyDef {
        name: "box.share_images",
        kind: Kind::Bool,
        default: Some("false"),
        levels: BCS,
        path: &["box", "share_images"],
        read_only: false,
        python_default: None,
        doc: "mount the host's image store read-only into the box",
    },
    KeyDef {
        name: "box.pids_limit",
        kind: Kind::Typed(value::Type::PidsLimit),
        default: Some(DEFAULT_PIDS_LIMIT),
        levels: ALL,
        path: &["box", "pids_limit"],
        read_only: false,
        python_default: None,
        doc: "the most processes a box may hold (a fork bomb stops there), or unlimited",
    },
    KeyDef {
        name: "box.memory",
        kind: Kind::Typed(value::Type::Size),
        default: None,
        levels: ALL,
        path: &["box", "memory"],
        read_only: false,
        python_default: None,
        doc: "the box's memory limit, as 512m or 4g (unset: none)",
    },
    KeyDef {
        name: "box.cpus",
        kind: Kind::Typed(value::Type::Cpus),
        default: None,
        levels: ALL,
        path: &["box", "cpus"],
        read_only: false,
        python_default: None,
        doc: "how many CPUs the box may use, as 2 or 1.5 (unset: all)",
    },
    KeyDef {
        name: "box.cap_add",
        kind: Kind::Typed(value::Type::Caps),
        default: None,
        levels: ALL,
        path: &["box", "cap_add"],
        read_only: false,
        python_default: None,
        doc: "Linux capabilities the box gets back (every one is dropped otherwise)",
    },
    KeyDef {
        name: "box.remote_path",
        kind: Kind::Str,
        default: None,
        levels: BCS,
        path: &["box", "remote_path"],
        read_only: false,
        python_default: None,
        doc: "where the project directory is on a remote engine's host (unset: the same path as here)",
    },
    KeyDef {
        name: "engine.remote",
        kind: Kind::Choice(&["auto", "yes", "no"]),
        default: Some("auto"),
        levels: &[Level::System],
        path: &["engine", "remote"],
        read_only: false,
        python_default: None,
        doc: "whether the engine runs on another machine (auto: ssh:// or tcp:// CONTAINER_HOST/DOCKER_HOST, CONTAINER_CONNECTION, DOCKER_CONTEXT; yes for a unix socket that is a tunnel)",
    },
    KeyDef {
        name: "box.network",
        kind: Kind::Choice(value::NETWORK_MODES),
        default: Some("full"),
        levels: ALL,
        path: &["box", "network"],
        read_only: false,
        python_default: None,
        doc: "full: the engine's network; allowlist: only box.allow, through kanibako's proxy; none: no network at all (--network=none)",
    },
    KeyDef {
        name: "box.allow",
        kind: Kind::Typed(value::Type::Allow),
        default: Some(DEFAULT_ALLOW),
        levels: ALL,
        path: &["box", "allow"],
        read_only: false,
        python_default: None,
        doc: "egress rules (host, *.domain, host:port, @preset; -entry removes), each level adding to the outer ones",
    },
    KeyDef {
        name: "persistence",
        kind: Kind::Choice(&["auto", "persistent", "ephemeral"]),
        default: Some("auto"),
        levels: BCS,
        path: &["persistence"],
        read_only: false,
        python_default: None,
        doc: "how `start` runs without --persistent/--ephemeral (auto: persistent when tmux is installed)",
    },
    KeyDef {
        name: "allow_helpers",
        kind: Kind::Bool,
        default: Some("true"),
        levels: BCS,
        path: &["allow_helpers"],
        read_only: false,
        python_default: None,
        doc: "allow the helper hub for this box",
    },
    KeyDef {
        name: "model",
        kind: Kind::Str,
        default: Some(DEFAULT_MODEL),
        levels: ALL,
        path: &["crab", "model"],
        read_only: false,
        python_default: Some((DEFAULT_MODEL, Level::Crab)),
        doc: "the agent's model (an empty value passes none)",
    },
    KeyDef {
        name: "access",
        kind: Kind::Choice(&["permissive", "default"]),
        default: Some("permissive"),
        levels: ALL,
        path: &["crab", "access"],
        read_only: false,
        python_default: Some(("permissive", Level::Crab)),
        doc: "permissive: the agent acts without asking; default: it keeps its permission prompts (as -S)",
    },
    KeyDef {
        name: "autonomous",
        kind: Kind::Bool,
        default: Some("true"),
        levels: ALL,
        path: &["crab", "autonomous"],
        read_only: false,
        python_default: None,
        doc: "false: the agent keeps its permission prompts (as -S)",
    },
    KeyDef {
        name: "start_mode",
        kind: Kind::Choice(&["continue", "new", "resume"]),
        default: Some("continue"),
        levels: ALL,
        path: &["crab", "start_mode"],
        read_only: false,
        python_default: None,
        doc: "what `start` does with conversations: continue the last (as -C), start a new one (-N), or pick one (-R)",
    },
    KeyDef {
        name: "group_auth",
        kind: Kind::Bool,
        default: Some("true"),
        levels: &[Level::Box, Level::Workset],
        path: &["project", "group_auth"],
        read_only: false,
        python_default: None,
        doc: "true: the box shares the host's agent login; false: it logs in on its own",
    },
    KeyDef {
        name: "vault.enabled",
        kind: Kind::Bool,
        default: Some("true"),
        levels: &[Level::Box],
        path: &["project", "enable_vault"],
        read_only: false,
        python_default: None,
        doc: "mount the box's vault (share-ro, share-rw)",
    },
    KeyDef {
        name: "mode",
        kind: Kind::Str,
        default: None,
        levels: &[Level::Box],
        path: &["project", "mode"],
        read_only: true,
        python_default: None,
        doc: "where the box keeps its state (default, workset, standalone)",
    },
    KeyDef {
        name: "layout",
        kind: Kind::Str,
        default: None,
        levels: &[Level::Box],
        path: &["project", "layout"],
        read_only: true,
        python_default: None,
        doc: "where the box's home and vault live (simple, default, robust)",
    },
    KeyDef {
        name: "paths.shared",
        kind: Kind::Str,
        default: Some("shared"),
        levels: &[Level::System],
        path: &["paths", "shared"],
        read_only: false,
        python_default: None,
        doc: "directory under the data dir for shared caches",
    },
    KeyDef {
        name: "system.path.data",
        kind: Kind::Path,
        default: Some("$XDG_DATA_HOME/kanibako"),
        levels: &[Level::System],
        path: &["system", "path", "data"],
        read_only: false,
        python_default: None,
        doc: "kanibako's data directory",
    },
    KeyDef {
        name: "system.path.boxes",
        kind: Kind::Path,
        default: Some("@system.path.data/boxes"),
        levels: &[Level::System],
        path: &["system", "path", "boxes"],
        read_only: false,
        python_default: None,
        doc: "where default-mode boxes keep their state",
    },
    KeyDef {
        name: "system.path.crabs",
        kind: Kind::Path,
        default: Some("@system.path.data/crabs"),
        levels: &[Level::System],
        path: &["system", "path", "crabs"],
        read_only: false,
        python_default: None,
        doc: "agent profiles",
    },
    KeyDef {
        name: "system.path.comms",
        kind: Kind::Path,
        default: Some("@system.path.data/comms"),
        levels: &[Level::System],
        path: &["system", "path", "comms"],
        read_only: false,
        python_default: None,
        doc: "mailboxes shared with boxes",
    },
    KeyDef {
        name: "system.path.share_ro",
        kind: Kind::Path,
        default: Some("@system.path.data/share_ro"),
        levels: &[Level::System],
        path: &["system", "path", "share_ro"],
        read_only: false,
        python_default: None,
        doc: "root of relative system-scope read-only shares",
    },
    KeyDef {
        name: "system.path.share_rw",
        kind: Kind::Path,
        default: Some("@system.path.data/share_rw"),
        levels: &[Level::System],
        path: &["system", "path", "share_rw"],
        read_only: false,
        python_default: None,
        doc: "root of relative system-scope read-write shares",
    },
    KeyDef {
        name: "system.path.templates",
        kind: Kind::Path,
        default: Some("@system.path.data/templates"),
        levels: &[Level::System],
        path: &["system", "path", "templates"],
        read_only: false,
        python_default: None,
        doc: "home templates for new boxes",
    },
    KeyDef {
        name: "system.path.ws_hints",
        kind: Kind::Path,
        default: Some("@system.path.data/worksets.yaml"),
        levels: &[Level::System],
        path: &["system", "path", "ws_hints"],
        read_only: false,
        python_default: None,
        doc: "the workset registry file",
    },
];

/// Short names the Python tool accepted.
const ALIASES: &[(&str, &str)] = &[
    ("image", "box.image"),
    ("rig", "box.image"),
    ("crab", "box.crab"),
];

/// Share and seed kinds of `{scope}.path.<kind>.<name>`.
pub const SHARE_KINDS: [&str; 3] = ["share_ro", "share_rw", "seeded"];
pub const SCOPES: [&str; 4] = ["system", "crab", "workset", "box"];

/// What a key on the command line refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    Known(&'static KeyDef),
    /// `env.NAME`: the level's env file.
    Env(String),
    /// `shared.NAME`: a shared cache mounted at the value (relative to the home).
    Shared(String),
    /// `{scope}.path.{share_ro,share_rw,seeded}.NAME`: `host:guest`.
    Share {
        scope: &'static str,
        kind: &'static str,
        name: String,
    },
    /// `name`, `shell`, `run_args` of a crab file.
    CrabIdentity(&'static str),
    /// `resource.<path>`: how an agent resource is kept (`shared`, `project`,
    /// `seeded`), in the level's `resource_overrides` as upstream stores it.
    Resource(String),
}

/// The values of `resource.<path>`.
pub const RESOURCE_SCOPES: [&str; 3] = ["shared", "project", "seeded"];

/// The levels a `resource.<path>` may be set at.
pub const RESOURCE_LEVELS: &[Level] = BCS;

impl KeyRef {
    pub fn display(&self) -> String {
        match self {
            KeyRef::Known(k) => k.name.to_owned(),
            KeyRef::Env(n) => format!("env.{n}"),
            KeyRef::Shared(n) => format!("shared.{n}"),
            KeyRef::Share { scope, kind, name } => format!("{scope}.path.{kind}.{name}"),
            KeyRef::CrabIdentity(f) => (*f).to_owned(),
            KeyRef::Resource(p) => format!("resource.{p}"),
        }
    }

    /// Where the value lives in a level's document.
    pub fn doc_path(&self) -> Vec<String> {
        match self {
            KeyRef::Known(k) => k.path.iter().map(|s| (*s).to_owned()).collect(),
            KeyRef::Env(_) => Vec::new(),
            KeyRef::Shared(n) => vec!["shared".into(), n.clone()],
            // The leaf is written whole (`share_rw.cache`), as the Python tool does, so
            // it never collides with the `system.path.share_rw` root directory setting.
            KeyRef::Share { scope, kind, name } => {
                vec![(*scope).into(), "path".into(), format!("{kind}.{name}")]
            }
            KeyRef::CrabIdentity(f) => vec!["crab".into(), (*f).into()],
            KeyRef::Resource(p) => vec!["resource_overrides".into(), p.clone()],
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("unknown config key: {key}")]
    Unknown {
        key: String,
        close: Vec<&'static str>,
    },
    #[error("{key} cannot be set at the {level} level (only: {allowed})")]
    WrongLevel {
        key: String,
        level: Level,
        allowed: String,
    },
    #[error("invalid value for {key}: '{value}' (expected {expected})")]
    BadValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("{0} is read-only: it follows from where the box lives")]
    ReadOnly(String),
    #[error("invalid environment variable name: {0}")]
    BadEnvName(String),
    #[error("invalid shared cache name: '{0}' (one name: letters, digits, '.', '_', '-')")]
    BadShareName(String),
    #[error(
        "invalid resource name: '{0}' (one name under the agent's config directory, a directory ending in '/')"
    )]
    BadResourceName(String),
}

impl KeyError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            KeyError::Unknown { close, .. } if !close.is_empty() => {
                vec![format!("did you mean: {}?", close.join(", "))]
            }
            KeyError::Unknown { .. } => vec!["`--effective` lists every key".into()],
            _ => Vec::new(),
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn closest(key: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = KEYS
        .iter()
        .map(|k| k.name)
        .chain(ALIASES.iter().map(|(a, _)| *a))
        .map(|n| {
            (
                distance(key, n).min(distance(key, n.rsplit('.').next().unwrap_or(n))),
                n,
            )
        })
        .filter(|(d, _)| *d <= 3)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

pub fn find(name: &str) -> Option<&'static KeyDef> {
    let name = ALIASES
        .iter()
        .find(|(a, _)| *a == name)
        .map_or(name, |(_, full)| *full);
    KEYS.iter().find(|k| k.name == name)
}

/// One plain path component: not empty, `.` or `..`, and without `/` or NUL.
fn is_plain_component(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\0'])
}

/// Parse a key as typed. Crab identity keys are known only where `crab` is true.
pub fn parse(key: &str, crab: bool) -> Result<KeyRef, KeyError> {
    if let Some(k) = find(key) {
        return Ok(KeyRef::Known(k));
    }
    if let Some(n) = key.strip_prefix("env.") {
        if !crate::envfile::is_valid_name(n) {
            return Err(KeyError::BadEnvName(n.to_owned()));
        }
        return Ok(KeyRef::Env(n.to_owned()));
    }
    if let Some(n) = key.strip_prefix("shared.").filter(|n| !n.is_empty()) {
        // The name becomes a directory under `$DATA/shared/global`: one plain component,
        // never an absolute path or `..` that would mount some other host directory.
        if !is_plain_component(n) {
            return Err(KeyError::BadShareName(n.to_owned()));
        }
        return Ok(KeyRef::Shared(n.to_owned()));
    }
    if let Some(n) = key.strip_prefix("resource.") {
        // One name (`settings.json`, `projects/`), never a path out of the config dir.
        if !is_plain_component(n.strip_suffix('/').unwrap_or(n)) {
            return Err(KeyError::BadResourceName(n.to_owned()));
        }
        return Ok(KeyRef::Resource(n.to_owned()));
    }
    for scope in SCOPES {
        for kind in SHARE_KINDS {
            let prefix = format!("{scope}.path.{kind}.");
            if let Some(n) = key.strip_prefix(&prefix).filter(|n| !n.is_empty()) {
                return Ok(KeyRef::Share {
                    scope,
                    kind,
                    name: n.to_owned(),
                });
            }
        }
    }
    if crab
        && let Some(f) = ["name", "shell", "run_args"]
            .into_iter()
            .find(|f| *f == key)
    {
        return Ok(KeyRef::CrabIdentity(f));
    }
    Err(KeyError::Unknown {
        key: key.to_owned(),
        close: closest(key),
    })
}

/// A typed YAML value for `raw`, or why not.
pub fn typed_value(key: &KeyRef, raw: &str) -> Result<Item, KeyError> {
    let bad = |expected: String| KeyError::BadValue {
        key: key.display(),
        value: raw.to_owned(),
        expected,
    };
    match key {
        KeyRef::Known(k) => match k.kind {
            Kind::Bool => crate::document::parse_bool(raw)
                .map(Item::Bool)
                .ok_or_else(|| bad(k.kind.describe())),
            Kind::Choice(c) if !raw.is_empty() && !c.contains(&raw) => Err(bad(k.kind.describe())),
            Kind::Typed(t) => {
                let canonical = t.check(raw).map_err(bad)?;
                Ok(if t.is_list() {
                    Item::List(
                        value::items(&canonical)
                            .into_iter()
                            .map(Into::into)
                            .collect(),
                    )
                } else {
                    canonical.as_str().into()
                })
            }
            _ => Ok(raw.into()),
        },
        KeyRef::Share { .. }
            if !raw.is_empty() && crate::settings::expr::split_bind(raw).is_none() =>
        {
            Err(bad("host_src:guest_dest".into()))
        }
        KeyRef::Resource(_) if !RESOURCE_SCOPES.contains(&raw) => {
            Err(bad(format!("one of {}", RESOURCE_SCOPES.join(", "))))
        }
        KeyRef::CrabIdentity("run_args") => {
            Ok(Item::List(raw.split_whitespace().map(Into::into).collect()))
        }
        _ => Ok(raw.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_prefixes() {
        assert_eq!(
            parse("image", false).unwrap(),
            KeyRef::Known(find("box.image").unwrap())
        );
        assert_eq!(parse("env.FOO", false).unwrap(), KeyRef::Env("FOO".into()));
        assert!(matches!(
            parse("env.1BAD", false),
            Err(KeyError::BadEnvName(_))
        ));
        assert_eq!(
            parse("box.path.share_ro.docs", false).unwrap().doc_path(),
            ["box", "path", "share_ro.docs"]
        );
        assert_eq!(
            parse("shared.pip", false).unwrap(),
            KeyRef::Shared("pip".into())
        );
        assert!(parse("run_args", false).is_err());
        assert_eq!(
            parse("run_args", true).unwrap(),
            KeyRef::CrabIdentity("run_args")
        );
    }

    #[test]
    fn unknown_keys_suggest_close_ones() {
        let e = parse("modle", false).unwrap_err();
        assert_eq!(e.to_string(), "unknown config key: modle");
        assert!(e.hints()[0].contains("model"), "{:?}", e.hints());
        let e = parse("box.imag", false).unwrap_err();
        assert!(e.hints()[0].contains("box.image"), "{:?}", e.hints());
    }

    #[test]
    fn values_are_typed_and_validated() {
        let share = parse("box.share_images", false).unwrap();
        for yes in ["true", "yes", "1", "on", "TRUE"] {
            assert_eq!(typed_value(&share, yes).unwrap(), Item::Bool(true));
        }
        assert_eq!(typed_value(&share, "no").unwrap(), Item::Bool(false));
        assert!(typed_value(&share, "maybe").is_err());
        let access = parse("access", false).unwrap();
        assert!(typed_value(&access, "sometimes").is_err());
        assert!(typed_value(&access, "").is_ok(), "empty suppresses");
        let s = parse("system.path.share_rw.cache", false).unwrap();
        assert!(typed_value(&s, "nocolon").is_err());
        assert!(typed_value(&s, "cache:~/.cache").is_ok());
    }

    #[test]
    fn hardening_values_are_typed_and_stored_canonical() {
        let k = parse("box.cap_add", false).unwrap();
        assert_eq!(
            typed_value(&k, "net_raw,CAP_MKNOD").unwrap(),
            Item::List(vec!["NET_RAW".into(), "MKNOD".into()])
        );
        let e = typed_value(&k, "NET_RAWR").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid value for box.cap_add: 'NET_RAWR'"),
            "{e}"
        );
        let k = parse("box.memory", false).unwrap();
        assert_eq!(typed_value(&k, "4096m").unwrap(), Item::Str("4g".into()));
        assert!(typed_value(&k, "lots").is_err());
        let k = parse("box.pids_limit", false).unwrap();
        assert_eq!(typed_value(&k, "64").unwrap(), Item::Str("64".into()));
        assert!(typed_value(&k, "0").is_err());
        let k = parse("box.network", false).unwrap();
        assert!(typed_value(&k, "allowlist").is_ok());
        assert!(typed_value(&k, "none").is_ok());
        assert!(typed_value(&k, "open").is_err());
        let k = parse("box.allow", false).unwrap();
        assert!(typed_value(&k, "*.com").is_err());
        assert_eq!(
            DEFAULT_ALLOW,
            crate::egress::preset::DEFAULT_ALLOW.join(", ")
        );
    }

    #[test]
    fn every_key_has_a_level_and_a_path() {
        for k in KEYS {
            assert!(!k.levels.is_empty() && !k.path.is_empty(), "{}", k.name);
            if let (Some(d), Kind::Bool) = (k.default, k.kind) {
                assert!(crate::document::parse_bool(d).is_some(), "{}", k.name);
            }
        }
    }
}
