//! The one shape of every `--json` document: a JSON object whose first field is
//! `schema_version`, beside the command's own fields (a listing puts its rows under one
//! plural key, `{"schema_version": 1, "boxes": [...]}`). Every command prints through
//! here, so the envelope is spelled once.
//!
//! Why an object and never a bare array: an array has nowhere to carry the version, and
//! adding a field to an object breaks no reader. Upstream's one `--json` (`rig list`) is
//! an object too, so its field names stay where they were.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The version of every `--json` shape; raised when a field changes meaning or goes
/// (a new field does not raise it).
pub const SCHEMA_VERSION: u32 = 1;

/// An info document: `body`'s fields (a struct or a map) after `schema_version`.
pub fn object<T: Serialize + ?Sized>(body: &T) -> String {
    #[derive(Serialize)]
    struct Doc<'a, T: ?Sized> {
        schema_version: u32,
        #[serde(flatten)]
        body: &'a T,
    }
    serde_json::to_string_pretty(&Doc {
        schema_version: SCHEMA_VERSION,
        body,
    })
    .expect("a --json body is an object of plain values")
}

/// A listing: `{"schema_version": 1, "<key>": [rows]}`.
pub fn list<T: Serialize>(key: &'static str, rows: &[T]) -> String {
    struct Rows<'a, T>(&'static str, &'a [T]);
    impl<T: Serialize> Serialize for Rows<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(self.0, self.1)?;
            m.end()
        }
    }
    object(&Rows(key, rows))
}

/// An info document made of labelled text fields, in their order; each label becomes
/// a key in snake case (`Vault RO` → `vault_ro`), so the text and the JSON of a
/// command like `box info` cannot drift apart.
pub fn fields<V: Serialize>(fields: &[(&str, V)]) -> String {
    struct Fields<'a, V>(&'a [(&'a str, V)]);
    impl<V: Serialize> Serialize for Fields<'_, V> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (label, value) in self.0 {
                m.serialize_entry(&key(label), value)?;
            }
            m.end()
        }
    }
    object(&Fields(fields))
}

/// `Vault RO` → `vault_ro`.
fn key(label: &str) -> String {
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("_")
}

/// Print an info document on stdout.
pub fn print_object<T: Serialize + ?Sized>(body: &T) {
    println!("{}", object(body));
}

/// Print a listing on stdout.
pub fn print_list<T: Serialize>(key: &'static str, rows: &[T]) {
    println!("{}", list(key, rows));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_first_and_rows_sit_under_their_key() {
        #[derive(Serialize)]
        struct R {
            name: &'static str,
        }
        assert_eq!(
            list("boxes", &[R { name: "a" }]),
            "{\n  \"schema_version\": 1,\n  \"boxes\": [\n    {\n      \"name\": \"a\"\n    }\n  ]\n}"
        );
        assert_eq!(
            list::<R>("boxes", &[]),
            "{\n  \"schema_version\": 1,\n  \"boxes\": []\n}"
        );
        assert_eq!(
            fields(&[("Vault RO", "/v"), ("Name", "x")]),
            "{\n  \"schema_version\": 1,\n  \"vault_ro\": \"/v\",\n  \"name\": \"x\"\n}"
        );
        let v: serde_json::Value = serde_json::from_str(&object(&R { name: "b" })).unwrap();
        assert_eq!(v, serde_json::json!({"schema_version": 1, "name": "b"}));
    }
}
