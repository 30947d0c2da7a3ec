//! Box names: the strict rule for names a user types, and the slug rule for names
//! derived from a directory.
//!
//! A name becomes a directory under `boxes/`, a container name (`kanibako-<name>`), a
//! socket file and an environment value, so only podman's container-name alphabet is
//! allowed: `[A-Za-z0-9][A-Za-z0-9_.-]*`. That alphabet has no `/`, and a leading `.` is
//! impossible, so no name can escape `boxes/`.

use std::fmt;

/// Longest name we accept; leaves room for prefixes in container and socket names.
pub const MAX_LEN: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoxName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error(
        "invalid box name '{0}': use letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    Invalid(String),
    #[error("invalid box name '{0}': longer than {MAX_LEN} characters")]
    TooLong(String),
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl BoxName {
    /// A name the user typed: refused unless it already follows the rule.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() > MAX_LEN {
            return Err(NameError::TooLong(s.to_owned()));
        }
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(allowed);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Invalid(s.to_owned()))
        }
    }

    /// A name made from a directory basename: anything outside the alphabet becomes `-`,
    /// runs of `-` fold, leading and trailing punctuation goes; `project` if nothing is left.
    pub fn slug(base: &str) -> Self {
        let mut out = String::with_capacity(base.len());
        for c in base.chars() {
            let c = if allowed(c) { c } else { '-' };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c);
            }
        }
        let trimmed = out.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let mut s: String = trimmed.chars().take(MAX_LEN).collect();
        while s.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
            s.pop();
        }
        if s.is_empty() {
            s = "project".into();
        }
        Self(s)
    }

    /// A name read back from `names.yaml` or a `boxes/` directory. Older tools did not
    /// validate names, so anything that is one plain path component is accepted here (a
    /// `/` or `..` could point outside `boxes/` and is not).
    pub fn from_registry(s: &str) -> Option<Self> {
        let plain = !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
        plain.then(|| Self(s.to_owned()))
    }

    /// `base`, `base2`, `base3`, … : the `n`th candidate when `base` is taken.
    pub fn numbered(&self, n: u32) -> Self {
        if n <= 1 {
            return self.clone();
        }
        let suffix = n.to_string();
        let keep = MAX_LEN.saturating_sub(suffix.len()).min(self.0.len());
        Self(format!("{}{suffix}", &self.0[..keep]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BoxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_names() {
        for ok in ["myapp", "My.App_2", "0x", "a-b"] {
            assert!(BoxName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../../escape",
            "bad/name",
            ".hidden",
            "-x",
            "My Proj",
            "a+b",
            "ü",
            "_x",
        ] {
            assert!(
                matches!(BoxName::parse(bad), Err(NameError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            BoxName::parse(&"a".repeat(101)),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn registry_names_stay_inside_boxes() {
        assert!(BoxName::from_registry("My Proj").is_some());
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(BoxName::from_registry(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn slugs_are_always_valid() {
        let cases = [
            ("myapp", "myapp"),
            ("My Proj", "My-Proj"),
            ("a  +  b", "a-b"),
            (".dotfiles", "dotfiles"),
            ("__init__", "init"),
            ("café", "caf"),
            ("---", "project"),
            ("", "project"),
            ("x.y-z_1", "x.y-z_1"),
        ];
        for (input, want) in cases {
            let s = BoxName::slug(input);
            assert_eq!(s.as_str(), want, "{input}");
            assert!(BoxName::parse(s.as_str()).is_ok(), "{input} -> {s}");
        }
        assert!(BoxName::parse(BoxName::slug(&"ab-".repeat(80)).as_str()).is_ok());
    }

    #[test]
    fn numbering_stays_within_length() {
        let n = BoxName::slug("myapp");
        assert_eq!(n.numbered(1).as_str(), "myapp");
        assert_eq!(n.numbered(2).as_str(), "myapp2");
        let long = BoxName::parse(&"a".repeat(MAX_LEN)).unwrap();
        assert_eq!(long.numbered(12).as_str().len(), MAX_LEN);
    }
}
