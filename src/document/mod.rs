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

use std::fs;
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
    #[error("{path}: `{key}` should be {expected}, found {found}")]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}: `{key}` cannot be read as JSON: {message}")]
    NotJson {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Write(#[from] FsError),
}

impl DocError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DocError::Parse { path, .. }
            | DocError::ParseNoLocation { path, .. }
            | DocError::WrongType { path, .. }
            | DocError::NotJson { path, .. } => Some(format!(
                "fix or remove {}; kanibako has not changed it",
                path.display()
            )),
            _ => None,
        }
    }
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
}

impl Document {
    /// An empty document that will be written to `path`.
    pub fn empty(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            root: Mapping::new(),
        }
    }

    /// Load `path`; a missing or empty file is an empty document.
    pub fn load(path: &Path) -> Result<Self, DocError> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::empty(path)),
            Err(source) => Err(DocError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, DocError> {
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
                    key: "(top level)".into(),
                    expected: "a mapping",
                    found: kind(&other),
                });
            }
        };
        Ok(Self {
            path: path.to_owned(),
            root,
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
            "k.yaml: `system` should be a mapping, found a number"
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
}
