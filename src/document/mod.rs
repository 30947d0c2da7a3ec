//! YAML documents on disk (`kanibako.yaml`, `project.yaml`, `names.yaml`, crab files,
//! `rigs.yaml`, worksets): the only user of `serde_yaml` (for parsing; `emit` writes).
//! Callers read and write through a small typed API (strings, booleans, lists,
//! string maps, records, a JSON view) and never see a YAML value, so the YAML crate can
//! be replaced here alone.
//!
//! A document is kept as an ordered YAML mapping, so keys this version does not know (or
//! that a newer or older kanibako wrote) survive a read-modify-write. Parse errors name
//! the file and line; type errors name the file and the dotted key. Nothing is ever
//! rewritten after an error.

use std::io;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::fsutil::{self, FsError};

mod emit;

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{path}:{line}:{column}: invalid YAML: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: invalid YAML: {message}")]
    ParseNoLocation { path: PathBuf, message: String },
    #[error("{}{}: `{key}` should be {expected}, found {found}", path.display(), at_line(*line))]
    WrongType {
        path: PathBuf,
        /// Where the key is written, when it can be found in the text.
        line: Option<usize>,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}:{line}: YAML nested deeper than {limit} levels; not read")]
    TooDeep {
        path: PathBuf,
        line: usize,
        limit: usize,
    },
    #[error("{path}: `{key}` cannot be read as JSON: {message}")]
    NotJson {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("reading {}: {}", path.display(), read_reason(source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] FsError),
}

impl DocError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DocError::Parse { path, .. }
            | DocError::ParseNoLocation { path, .. }
            | DocError::WrongType { path, .. }
            | DocError::TooDeep { path, .. }
            | DocError::NotJson { path, .. } => Some(format!(
                "fix or remove {}; kanibako has not changed it",
                path.display()
            )),
            DocError::Read { path, source } if source.kind() == io::ErrorKind::InvalidData => {
                Some(format!(
                    "replace {} with an ordinary YAML file (or remove it)",
                    path.display()
                ))
            }
            _ => None,
        }
    }
}

/// The most kanibako reads of one settings file: far more than any real one.
pub const MAX_SETTINGS: u64 = 1 << 20;

/// The deepest nesting a settings file may have (kanibako's own go four deep); a
/// deeper document is refused before it is parsed, whose cost grows with the depth.
pub const MAX_DEPTH: usize = 64;

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// An I/O error's own words, without the `(os error N)` the OS code adds.
fn read_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The line (1-based) at which the nesting of `text` first exceeds `limit`: block
/// mappings and sequences by indentation and `- ` markers, flow collections by their
/// brackets (outside quotes and comments). A cheap over-estimate, run before parsing.
pub fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - body.len();
        if flow == 0 {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        // `- - - x`: each marker is one more level.
        let mut rest = body;
        while flow == 0 && (rest.starts_with("- ") || rest == "-") {
            indent += 2;
            indents.push(indent);
            rest = rest.get(2..).unwrap_or("").trim_start_matches(' ');
        }
        let (mut quote, mut prev) = (None::<char>, ' ');
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') if flow > 0 || prev == ' ' || prev == ':' => quote = Some(c),
                (None, '#') if prev == ' ' => break,
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            if indents.len() + flow > limit {
                return Some(n + 1);
            }
            prev = c;
        }
        if indents.len() + flow > limit {
            return Some(n + 1);
        }
    }
    None
}

/// The line (1-based) where the block-style key path `keys` is written in `text`, or
/// the line of its deepest written ancestor.
fn line_of(text: &str, keys: &[&str]) -> Option<usize> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut best: Option<(usize, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') {
            continue;
        }
        let indent = line.len() - body.len();
        let Some((key, _)) = body.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(|c| c == '\'' || c == '"');
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        let depth = stack.len();
        if depth <= keys.len()
            && stack.iter().zip(keys).all(|((_, k), want)| k == want)
            && best.is_none_or(|(d, _)| depth > d)
        {
            best = Some((depth, n + 1));
            if depth == keys.len() {
                break;
            }
        }
    }
    best.map(|(_, l)| l)
}

/// A mapping's string entries, in order.
pub type Fields = Vec<(String, String)>;

/// A value to store: the shapes kanibako's files hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Str(String),
    Bool(bool),
    /// A sequence of strings (`run_args`).
    List(Vec<String>),
    /// A mapping of string keys to strings, in this order; empty is `{}`.
    Map(Fields),
    /// A sequence of such mappings (a workset's members).
    Records(Vec<Fields>),
}

impl From<&str> for Item {
    fn from(s: &str) -> Self {
        Item::Str(s.to_owned())
    }
}

impl From<String> for Item {
    fn from(s: String) -> Self {
        Item::Str(s)
    }
}

impl From<bool> for Item {
    fn from(b: bool) -> Self {
        Item::Bool(b)
    }
}

fn mapping(fields: Fields) -> Mapping {
    fields
        .into_iter()
        .map(|(k, v)| (Value::from(k), Value::from(v)))
        .collect()
}

impl Item {
    fn into_value(self) -> Value {
        match self {
            Item::Str(s) => Value::String(s),
            Item::Bool(b) => Value::Bool(b),
            Item::List(l) => Value::Sequence(l.into_iter().map(Value::String).collect()),
            Item::Map(m) => Value::Mapping(mapping(m)),
            Item::Records(r) => {
                Value::Sequence(r.into_iter().map(|m| Value::Mapping(mapping(m))).collect())
            }
        }
    }
}

/// A scalar as text (booleans and numbers in their YAML spelling); `None` for
/// anything else.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The entries of a mapping whose key and value are strings.
fn string_fields(m: &Mapping) -> Fields {
    m.iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[derive(Clone, Debug)]
pub struct Document {
    path: PathBuf,
    root: Mapping,
    /// The text it was read from, to say on which line a wrongly typed key is.
    text: std::sync::Arc<str>,
}

impl Document {
    /// An empty document that will be written to `path`.
    pub fn empty(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            root: Mapping::new(),
            text: "".into(),
        }
    }

    /// Load `path`; a missing or empty file is an empty document. A link at `path` is
    /// refused, not followed, and so is anything but a regular file of at most
    /// [`MAX_SETTINGS`] bytes (a FIFO cannot make a command hang).
    pub fn load(path: &Path) -> Result<Self, DocError> {
        Self::from_bytes(path, fsutil::read_settings(path, MAX_SETTINGS, false))
    }

    /// [`Document::load`] for the user's own config file, which may be a link (kept in
    /// a dotfiles repository, say): followed, with the same other limits.
    pub fn load_following(path: &Path) -> Result<Self, DocError> {
        Self::from_bytes(path, fsutil::read_settings(path, MAX_SETTINGS, true))
    }

    /// Load `name` from the open directory `dir` (never following a link there);
    /// messages name it `shown`.
    pub fn load_at(
        dir: std::os::fd::BorrowedFd<'_>,
        name: &Path,
        shown: &Path,
    ) -> Result<Self, DocError> {
        Self::from_bytes(
            shown,
            fsutil::read_settings_at(dir, name, shown, MAX_SETTINGS),
        )
    }

    fn from_bytes(path: &Path, read: io::Result<Option<Vec<u8>>>) -> Result<Self, DocError> {
        let read_err = |source| DocError::Read {
            path: path.to_owned(),
            source,
        };
        match read.map_err(read_err)? {
            None => Ok(Self::empty(path)),
            Some(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    read_err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "it is not UTF-8 text",
                    ))
                })?;
                Self::parse(path, &text)
            }
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, DocError> {
        if let Some(line) = too_deep(text, MAX_DEPTH) {
            return Err(DocError::TooDeep {
                path: path.to_owned(),
                line,
                limit: MAX_DEPTH,
            });
        }
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_yaml::from_str(text).map_err(|e| match e.location() {
                Some(loc) => DocError::Parse {
                    path: path.to_owned(),
                    line: loc.line(),
                    column: loc.column(),
                    message: strip_location(&e.to_string()),
                },
                None => DocError::ParseNoLocation {
                    path: path.to_owned(),
                    message: e.to_string(),
                },
            })?
        };
        let root = match value {
            Value::Null => Mapping::new(),
            Value::Mapping(m) => m,
            other => {
                return Err(DocError::WrongType {
                    path: path.to_owned(),
                    line: Some(1),
                    key: "(top level)".into(),
                    expected: "a mapping",
                    found: kind(&other),
                });
            }
        };
        Ok(Self {
            path: path.to_owned(),
            root,
            text: text.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    fn wrong(&self, keys: &[&str], expected: &'static str, found: &Value) -> DocError {
        DocError::WrongType {
            path: self.path.clone(),
            line: line_of(&self.text, keys),
            key: keys.join("."),
            expected,
            found: kind(found),
        }
    }

    /// The value at a nested key path, or `None` if any step is absent. An intermediate
    /// step that is not a mapping is a type error (upstream crashes on these).
    fn get(&self, keys: &[&str]) -> Result<Option<&Value>, DocError> {
        let mut map = &self.root;
        for (i, key) in keys.iter().enumerate() {
            let Some(v) = map.get(*key) else {
                return Ok(None);
            };
            if i + 1 == keys.len() {
                return Ok(Some(v));
            }
            match v {
                Value::Mapping(m) => map = m,
                Value::Null => return Ok(None),
                other => return Err(self.wrong(&keys[..=i], "a mapping", other)),
            }
        }
        Ok(None)
    }

    /// A scalar read as a string (numbers and booleans as their YAML spelling, since the
    /// Python tool writes most values as strings and users hand-edit the rest).
    pub fn get_str(&self, keys: &[&str]) -> Result<Option<String>, DocError> {
        match self.get(keys)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(self.wrong(keys, "a string", other)),
        }
    }

    /// A scalar as text, like [`Document::get_str`], but anything that is not a scalar
    /// (a list, a mapping) reads as unset instead of an error.
    pub fn get_scalar(&self, keys: &[&str]) -> Result<Option<String>, DocError> {
        Ok(self.get(keys)?.and_then(scalar))
    }

    /// A list: its scalar items as text (others skipped); `None` if the value is not a
    /// list.
    pub fn get_list(&self, keys: &[&str]) -> Result<Option<Vec<String>>, DocError> {
        Ok(match self.get(keys)? {
            Some(Value::Sequence(items)) => Some(items.iter().filter_map(scalar).collect()),
            _ => None,
        })
    }

    /// The string-valued entries of a mapping, in order (others skipped); empty if the
    /// value is not a mapping.
    pub fn get_fields(&self, keys: &[&str]) -> Result<Fields, DocError> {
        Ok(match self.get(keys)? {
            Some(Value::Mapping(m)) => string_fields(m),
            _ => Vec::new(),
        })
    }

    /// A mapping of records (`rigs:`): each entry whose value is a mapping, as its
    /// string-valued fields, in order.
    pub fn get_records(&self, keys: &[&str]) -> Result<Vec<(String, Fields)>, DocError> {
        Ok(match self.get(keys)? {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), string_fields(v.as_mapping()?))))
                .collect(),
            _ => Vec::new(),
        })
    }

    /// A list of records (a workset's `projects:`): each item that is a mapping, as its
    /// string-valued fields.
    pub fn get_record_list(&self, keys: &[&str]) -> Result<Vec<Fields>, DocError> {
        Ok(match self.get(keys)? {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|v| Some(string_fields(v.as_mapping()?)))
                .collect(),
            _ => Vec::new(),
        })
    }

    /// The value at `keys` as JSON (for settings handed on whole, such as tweakcc's).
    pub fn get_json(&self, keys: &[&str]) -> Result<Option<serde_json::Value>, DocError> {
        let Some(v) = self.get(keys)? else {
            return Ok(None);
        };
        serde_json::to_value(v)
            .map(Some)
            .map_err(|e| DocError::NotJson {
                path: self.path.clone(),
                key: keys.join("."),
                message: e.to_string(),
            })
    }

    /// A boolean; the strings the Python CLI wrote (`"false"`, `"yes"` …) count as the
    /// boolean they spell.
    pub fn get_bool(&self, keys: &[&str]) -> Result<Option<bool>, DocError> {
        match self.get(keys)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v @ Value::String(s)) => match parse_bool(s) {
                Some(b) => Ok(Some(b)),
                None => Err(self.wrong(keys, "a boolean", v)),
            },
            Some(other) => Err(self.wrong(keys, "a boolean", other)),
        }
    }

    /// A mapping of string keys to string values (numbers and booleans rendered).
    pub fn get_string_map(&self, keys: &[&str]) -> Result<Vec<(String, String)>, DocError> {
        match self.get(keys)? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Mapping(m)) => Ok(m
                .iter()
                .filter_map(|(k, v)| {
                    let k = k.as_str()?.to_owned();
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((k, v))
                })
                .collect()),
            Some(other) => Err(self.wrong(keys, "a mapping", other)),
        }
    }

    /// Every scalar leaf as a dotted key (`a: {b: {c: v}}` → `a.b.c`; a key that already
    /// holds dots, such as `share_rw.foo`, joins the same way).
    pub fn flat_strings(&self) -> Vec<(String, String)> {
        fn walk(prefix: &str, m: &Mapping, out: &mut Vec<(String, String)>) {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                let key = if prefix.is_empty() {
                    k.to_owned()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    Value::Mapping(inner) => walk(&key, inner, out),
                    Value::String(s) => out.push((key, s.clone())),
                    Value::Bool(b) => out.push((key, b.to_string())),
                    Value::Number(n) => out.push((key, n.to_string())),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk("", &self.root, &mut out);
        out
    }

    /// Set a nested key, creating intermediate mappings; existing sibling keys stay in
    /// place and keep their order.
    pub fn set(&mut self, keys: &[&str], value: Item) -> Result<(), DocError> {
        let value = value.into_value();
        let path = self.path.clone();
        let mut map = &mut self.root;
        for (i, key) in keys.iter().enumerate() {
            if i + 1 == keys.len() {
                map.insert(Value::from(*key), value);
                return Ok(());
            }
            let entry = map
                .entry(Value::from(*key))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if entry.is_null() {
                *entry = Value::Mapping(Mapping::new());
            }
            map = match entry {
                Value::Mapping(m) => m,
                other => {
                    return Err(DocError::WrongType {
                        path,
                        line: None,
                        key: keys[..=i].join("."),
                        expected: "a mapping",
                        found: kind(other),
                    });
                }
            };
        }
        Ok(())
    }

    /// Remove a nested key; returns whether it was there. Tables it leaves empty go too.
    pub fn remove(&mut self, keys: &[&str]) -> bool {
        fn go(map: &mut Mapping, keys: &[&str]) -> bool {
            match keys {
                [] => false,
                // shift, not swap: the user's file keeps its order
                [last] => map.shift_remove(*last).is_some(),
                [first, rest @ ..] => {
                    let removed = match map.get_mut(*first) {
                        Some(Value::Mapping(m)) => go(m, rest),
                        _ => false,
                    };
                    if removed && matches!(map.get(*first), Some(Value::Mapping(m)) if m.is_empty())
                    {
                        map.shift_remove(*first);
                    }
                    removed
                }
            }
        }
        go(&mut self.root, keys)
    }

    pub fn to_yaml(&self) -> String {
        emit::document(&self.root)
    }

    /// Write atomically with ordinary config permissions.
    pub fn save(&self) -> Result<(), DocError> {
        fsutil::atomic_write(&self.path, self.to_yaml().as_bytes(), fsutil::MODE_CONFIG)?;
        Ok(())
    }
}

/// The spellings a boolean setting accepts.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// serde_yaml appends " at line L column C" to its messages; we print the location first.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let err = Document::parse(Path::new("/x/kanibako.yaml"), "a: 1\nb: [unclosed\nc: 2\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/x/kanibako.yaml:"), "{msg}");
        match err {
            DocError::Parse { line, .. } => assert!(line >= 2, "line {line}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_types_name_the_key() {
        let d = Document::parse(Path::new("k.yaml"), "system: 5\n").unwrap();
        let err = d.get_str(&["system", "path", "data"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml:1: `system` should be a mapping, found a number"
        );
        let top = Document::parse(Path::new("k.yaml"), "- a\n").unwrap_err();
        assert!(top.to_string().contains("(top level)"));
    }

    #[test]
    fn unknown_keys_survive_a_rewrite_in_order() {
        let text = "zeta: 1\nproject:\n  mode: default\n  custom: keep\nalpha: [1, 2]\n";
        let mut d = Document::parse(Path::new("p.yaml"), text).unwrap();
        d.set(&["project", "name"], "x".into()).unwrap();
        let out = d.to_yaml();
        assert_eq!(
            out,
            "zeta: 1\nproject:\n  mode: default\n  custom: keep\n  name: x\nalpha:\n- 1\n- 2\n"
        );
    }

    #[test]
    fn typed_reads_are_lenient_where_the_python_tool_was() {
        let d = Document::parse(
            Path::new("r.yaml"),
            "rigs:\n  a:\n    kind: extended\n    image: x\n    n: 5\n  b: scalar\n  c: {}\nlist: [a, 1, true, {x: 1}]\nprojects:\n- name: p\n  source_path: /s\n- junk\nt: {enabled: true, n: 1}\n",
        )
        .unwrap();
        assert_eq!(
            d.get_records(&["rigs"]).unwrap(),
            [
                (
                    "a".to_owned(),
                    vec![
                        ("kind".into(), "extended".into()),
                        ("image".into(), "x".into())
                    ]
                ),
                ("c".to_owned(), vec![])
            ]
        );
        assert_eq!(d.get_list(&["list"]).unwrap().unwrap(), ["a", "1", "true"]);
        assert_eq!(d.get_list(&["rigs"]).unwrap(), None);
        assert_eq!(d.get_scalar(&["rigs"]).unwrap(), None);
        assert_eq!(
            d.get_record_list(&["projects"]).unwrap(),
            [vec![
                ("name".into(), "p".into()),
                ("source_path".into(), "/s".into())
            ]]
        );
        assert_eq!(
            d.get_json(&["t"]).unwrap().unwrap(),
            serde_json::json!({"enabled": true, "n": 1})
        );
        assert_eq!(d.get_fields(&["list"]).unwrap(), vec![]);
    }

    #[test]
    fn items_write_the_shapes_pyyaml_reads() {
        let mut d = Document::empty(Path::new("w.yaml"));
        d.set(&["crab", "run_args"], Item::List(vec![])).unwrap();
        d.set(&["env"], Item::Map(vec![])).unwrap();
        d.set(
            &["projects"],
            Item::Records(vec![vec![("name".into(), "p".into())]]),
        )
        .unwrap();
        d.set(&["ok"], true.into()).unwrap();
        assert_eq!(
            d.to_yaml(),
            "crab:\n  run_args: []\nenv: {}\nprojects:\n- name: p\nok: true\n"
        );
    }

    #[test]
    fn python_string_booleans_read_as_booleans() {
        let d = Document::parse(Path::new("p.yaml"), "box:\n  share_images: 'false'\n").unwrap();
        assert_eq!(d.get_bool(&["box", "share_images"]).unwrap(), Some(false));
    }

    #[test]
    fn yaml_11_words_are_quoted_for_pyyaml() {
        // PyYAML reads a bare `yes`/`on` as a boolean; a box named `yes` must stay a string.
        let mut d = Document::empty(Path::new("n.yaml"));
        for word in [
            "yes", "no", "on", "off", "y", "n", "true", "null", "~", "1", "@x",
        ] {
            d.set(&["projects", word], "/p".into()).unwrap();
            d.set(&["values", "k"], word.into()).unwrap();
            let text = d.to_yaml();
            let back: Value = serde_yaml::from_str(&text).unwrap();
            assert!(back["values"]["k"].is_string(), "{word}: {text}");
        }
        let text = d.to_yaml();
        for word in ["yes", "no", "on", "off", "y", "n"] {
            assert!(
                text.contains(&format!("'{word}':")) || text.contains(&format!("\"{word}\":")),
                "{word} must be quoted as a key: {text}"
            );
        }
    }

    #[test]
    fn a_fifo_at_a_settings_path_does_not_hang() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kanibako.yaml");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = Document::load(&p).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(Document::load_following(&p).is_err());
    }

    #[test]
    fn a_linked_settings_file_is_refused_and_a_huge_one_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.yaml");
        fs::write(&real, "box:\n  image: x\n").unwrap();
        let link = d.path().join("project.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = Document::load(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // the user's own config may be a dotfile link
        let doc = Document::load_following(&link).unwrap();
        assert_eq!(
            doc.get_str(&["box", "image"]).unwrap().as_deref(),
            Some("x")
        );
        let big = d.path().join("big.yaml");
        let f = fs::File::create(&big).unwrap();
        f.set_len(MAX_SETTINGS + 1).unwrap();
        let err = Document::load(&big).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert!(err.hint().is_some());
        // a directory: said once, plainly
        let err = Document::load(d.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn deeply_nested_yaml_is_refused_before_it_is_parsed() {
        // 120 KB of nesting took serde_yaml 14 s; it must not be handed over at all
        let flow = format!("a: {}{}\n", "[".repeat(60_000), "]".repeat(60_000));
        let err = Document::parse(Path::new("f.yaml"), &flow).unwrap_err();
        assert!(matches!(err, DocError::TooDeep { line: 1, .. }), "{err}");
        let mut block = String::new();
        for i in 0..400 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        let err = Document::parse(Path::new("b.yaml"), &block).unwrap_err();
        assert!(matches!(err, DocError::TooDeep { line: 65, .. }), "{err}");
        let seq = format!("{}x\n", "- ".repeat(100));
        assert!(Document::parse(Path::new("s.yaml"), &seq).is_err());
        // ordinary files pass, brackets in quotes and comments do not count
        let ok = "a:\n  b:\n    c: '[[[['\n    d: [1, [2, 3]] # [[[[\n  e:\n  - x\n  - - y\n";
        assert!(too_deep(ok, 5).is_none());
        assert!(Document::parse(Path::new("o.yaml"), ok).is_ok());
    }

    #[test]
    fn a_list_where_a_string_belongs_names_file_and_line() {
        let d = Document::parse(
            Path::new("c.yaml"),
            "shared: {}\nbox:\n  crab: x\n  image: [1, 2]\n",
        )
        .unwrap();
        let err = d.get_str(&["box", "image"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.yaml:4: `box.image` should be a string, found a list"
        );
    }
}
