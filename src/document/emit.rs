//! Block-style YAML output that PyYAML reads back with the same meaning.
//!
//! serde_yaml emits YAML 1.2, where `yes`, `on` or `n` are plain strings; PyYAML (the
//! Python tool's reader) follows YAML 1.1 and turns them into booleans, so a box named
//! `yes` would become `True`. This emitter quotes every string that either version
//! could read as something else, and otherwise writes the shape PyYAML writes
//! (`safe_dump(sort_keys=False)`): nested blocks, sequences level with their key.

use serde_yaml::{Mapping, Value};

/// Whether YAML 1.1 or 1.2 would resolve this plain scalar to a non-string.
fn resolves_to_non_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null" | "~" | ""
    ) {
        return true;
    }
    if matches!(
        lower.trim_start_matches(['+', '-']),
        ".inf" | ".nan" | "inf" | "nan"
    ) || matches!(s, "=" | "<<")
    {
        return true;
    }
    // YAML 1.1 timestamps (`2026-11-26`, `2026-11-26T17:43:01…`) become dates in PyYAML.
    let b = s.as_bytes();
    if b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5].is_ascii_digit()
    {
        return true;
    }
    looks_numeric(s.trim_start_matches(['+', '-']))
}

/// YAML 1.1/1.2 numbers: decimal, `0x`/`0o`/`0b` integers, floats with optional
/// exponent, and 1.1's sexagesimal `1:20`; underscores allowed between digits.
fn looks_numeric(s: &str) -> bool {
    let s = s.replace('_', "");
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("0x") {
        return digits(rest, 16);
    }
    if let Some(rest) = lower.strip_prefix("0o") {
        return digits(rest, 8);
    }
    if let Some(rest) = lower.strip_prefix("0b") {
        return digits(rest, 2);
    }
    if s.contains(':') {
        return s.split(':').all(|p| digits(p, 10));
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e.trim_start_matches(['+', '-']))),
        None => (lower.as_str(), None),
    };
    if exponent.is_some_and(|e| !digits(e, 10)) {
        return false;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    (digits(int, 10) || (int.is_empty() && digits(frac, 10)))
        && (frac.is_empty() || digits(frac, 10))
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || first.is_whitespace() {
        return false;
    }
    if s.ends_with(char::is_whitespace) || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains('\t') {
        return false;
    }
    if s.chars().any(|c| c.is_control()) {
        return false;
    }
    !resolves_to_non_string(s)
}

fn quote(s: &str) -> String {
    if s.chars().any(|c| c.is_control()) {
        // Double quotes are the only style that can carry newlines and control bytes.
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => quote(s),
        // Only reachable for tags and collections used as keys: let serde_yaml spell it.
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
    }
}

fn is_empty_collection(v: &Value) -> Option<&'static str> {
    match v {
        Value::Mapping(m) if m.is_empty() => Some("{}"),
        Value::Sequence(s) if s.is_empty() => Some("[]"),
        _ => None,
    }
}

fn mapping(out: &mut String, m: &Mapping, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        out.push_str(&pad);
        out.push_str(&scalar(k));
        out.push(':');
        value_after_key(out, v, indent);
    }
}

fn value_after_key(out: &mut String, v: &Value, indent: usize) {
    if let Some(empty) = is_empty_collection(v) {
        out.push(' ');
        out.push_str(empty);
        out.push('\n');
        return;
    }
    match v {
        Value::Mapping(m) => {
            out.push('\n');
            mapping(out, m, indent + 2);
        }
        // PyYAML writes a sequence under a key at the key's own indentation.
        Value::Sequence(s) => {
            out.push('\n');
            sequence(out, s, indent);
        }
        Value::Tagged(t) => {
            out.push(' ');
            out.push_str(&t.tag.to_string());
            value_after_key(out, &t.value, indent);
        }
        scalar_value => {
            out.push(' ');
            out.push_str(&scalar(scalar_value));
            out.push('\n');
        }
    }
}

fn sequence(out: &mut String, s: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in s {
        out.push_str(&pad);
        out.push('-');
        if let Some(empty) = is_empty_collection(item) {
            out.push(' ');
            out.push_str(empty);
            out.push('\n');
            continue;
        }
        match item {
            Value::Mapping(m) => {
                // first key on the dash line, the rest aligned under it
                let mut inner = String::new();
                mapping(&mut inner, m, indent + 2);
                out.push(' ');
                out.push_str(inner.trim_start());
            }
            Value::Sequence(inner) => {
                out.push('\n');
                sequence(out, inner, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// The whole document; an empty mapping is `{}`.
pub fn document(root: &Mapping) -> String {
    if root.is_empty() {
        return "{}\n".into();
    }
    let mut out = String::new();
    mapping(&mut out, root, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let v: Value = serde_yaml::from_str(text).unwrap();
        document(v.as_mapping().unwrap())
    }

    #[test]
    fn python_layout_is_reproduced() {
        let text = "system:\n  path:\n    data: $XDG_DATA_HOME/kanibako\n    boxes: '@system.path.data/boxes'\nbox:\n  image: ghcr.io/doctorjei/kanibako-oci:latest\n  crab: ''\n  share_images: false\nshared: {}\ncrab:\n  run_args: []\nprojects:\n- name: myapp\n  source_path: /home/alice/projects/myapp\n- name: web\n  source_path: /p/w\ncreated: '2026-11-26T17:43:01.425430+00:00'\n";
        assert_eq!(roundtrip(text), text);
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "y",
            "true",
            "null",
            "~",
            "1",
            "0o17",
            "0x1F",
            "1:20",
            "1_000",
            ".inf",
            "-1.5e3",
            "2026-11-26",
            "=",
            "<<",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "#x",
            "@x",
            "-x",
            "x:",
        ] {
            let out = scalar(&Value::String(s.into()));
            assert!(
                out.starts_with('\'') || out.starts_with('"'),
                "{s:?} -> {out}"
            );
            let back: Value = serde_yaml::from_str(&out).unwrap();
            assert_eq!(back, Value::String(s.into()), "{s:?}");
        }
        for s in [
            "myapp",
            "My Proj",
            "/home/a b/c",
            "$XDG_DATA_HOME/k",
            "a-b",
            "v1.2",
            "x.y",
        ] {
            assert_eq!(scalar(&Value::String(s.into())), s);
        }
    }

    #[test]
    fn control_characters_use_double_quotes() {
        let out = scalar(&Value::String("a\nb'c".into()));
        assert_eq!(out, "\"a\\nb'c\"");
        let back: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(back, Value::String("a\nb'c".into()));
    }
}
