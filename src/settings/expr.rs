//! The settings expression language: `~`, `$VAR`/`${VAR}`, `@dotted.key` references and
//! backslash escapes, expanded in one left-to-right pass (substituted text is never
//! re-scanned, so a value cannot smuggle in a second expansion).
//!
//! Pure: variables and references come from the caller through [`Scope`].

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExprError {
    #[error("Unknown variable: ${0}")]
    UnknownVariable(String),
    #[error("Variable ${0} is not set in this context.")]
    VariableNotSet(String),
    #[error("Malformed variable reference at: '{0}'")]
    Malformed(String),
    #[error("Unterminated ${{...}} reference: '{0}'")]
    Unterminated(String),
    #[error("Unknown @-reference: {0}")]
    UnknownReference(String),
    #[error("Cyclic @-reference: {0}")]
    Cycle(String),
    #[error("@-references nest deeper than {MAX_DEPTH} levels: {0}")]
    TooDeep(String),
}

/// How deep `@a` → `@b` → … may go before we call it a runaway.
pub const MAX_DEPTH: usize = 64;

/// What an expression may see.
pub trait Scope {
    /// The value a leading `~` stands for, if `~` expands here.
    fn tilde(&self) -> Option<&str>;
    /// `Ok(Some)` for a known, set variable; `Ok(None)` for a known but unset one;
    /// `Err(UnknownVariable)` for a name this context does not know at all.
    fn variable(&self, name: &str) -> Result<Option<String>, ExprError>;
    /// Fully expanded value of `@key`. `chain` holds the keys being expanded, outermost
    /// first, for cycle reports.
    fn reference(&self, key: &str, chain: &mut Vec<String>) -> Result<String, ExprError>;
}

/// Variables the language knows by name; anything else is an error, so a typo such as
/// `$XDG_DAT_HOME` is caught instead of silently expanding to nothing.
pub fn is_known_variable(name: &str) -> bool {
    matches!(name, "CRAB" | "WORKSET") || name.starts_with("XDG_")
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub fn expand(expr: &str, scope: &dyn Scope, chain: &mut Vec<String>) -> Result<String, ExprError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len());
    let mut i = 0;
    if chars.first() == Some(&'~')
        && let Some(home) = scope.tilde()
    {
        out.push_str(home);
        i = 1;
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                // `\x` is a literal `x`; a lone trailing backslash stays.
                match chars.get(i + 1) {
                    Some(&next) => {
                        out.push(next);
                        i += 2;
                    }
                    None => {
                        out.push('\\');
                        i += 1;
                    }
                }
            }
            '$' => {
                let rest: String = chars[i..].iter().collect();
                let (name, next) = if chars.get(i + 1) == Some(&'{') {
                    let Some(close) = chars[i + 2..].iter().position(|&c| c == '}') else {
                        return Err(ExprError::Unterminated(rest));
                    };
                    let name: String = chars[i + 2..i + 2 + close].iter().collect();
                    if name.is_empty()
                        || !name.starts_with(is_name_start)
                        || !name.chars().all(is_name_char)
                    {
                        return Err(ExprError::Malformed(rest));
                    }
                    (name, i + 3 + close)
                } else if chars.get(i + 1).is_some_and(|&c| is_name_start(c)) {
                    let len = chars[i + 1..]
                        .iter()
                        .take_while(|&&c| is_name_char(c))
                        .count();
                    (chars[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
                } else {
                    return Err(ExprError::Malformed(rest));
                };
                match scope.variable(&name)? {
                    Some(v) => out.push_str(&v),
                    None => return Err(ExprError::VariableNotSet(name)),
                }
                i = next;
            }
            '@' => {
                let len = reference_len(&chars[i + 1..]);
                if len == 0 {
                    out.push('@');
                    i += 1;
                    continue;
                }
                let key: String = chars[i + 1..i + 1 + len].iter().collect();
                if chain.len() >= MAX_DEPTH {
                    return Err(ExprError::TooDeep(key));
                }
                if chain.contains(&key) {
                    let mut cycle = chain.clone();
                    cycle.push(key);
                    return Err(ExprError::Cycle(cycle.join(" -> ")));
                }
                chain.push(key.clone());
                let value = scope.reference(&key, chain);
                chain.pop();
                out.push_str(&value?);
                i += 1 + len;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Length of `name(.name)*` at the start of `chars`, where `name` is `[A-Za-z0-9_]+`; a
/// trailing dot (as in `@a.b.`) is not part of the reference.
fn reference_len(chars: &[char]) -> usize {
    let mut len = 0;
    loop {
        let seg = chars[len..]
            .iter()
            .take_while(|&&c| is_name_char(c))
            .count();
        if seg == 0 {
            // an empty segment: back off the dot we consumed, if any
            return len.saturating_sub(usize::from(len > 0));
        }
        len += seg;
        if chars.get(len) == Some(&'.') && chars.get(len + 1).is_some_and(|&c| is_name_char(c)) {
            len += 1;
        } else {
            return len;
        }
    }
}

/// Split `host:guest` at the first unescaped colon, resolving escapes in neither half
/// (each half is expanded on its own later). `None` when there is no unescaped colon.
pub fn split_bind(value: &str) -> Option<(&str, &str)> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b':' => return Some((&value[..i], &value[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct TestScope {
        refs: BTreeMap<&'static str, &'static str>,
    }

    impl Scope for TestScope {
        fn tilde(&self) -> Option<&str> {
            Some("/home/alice")
        }
        fn variable(&self, name: &str) -> Result<Option<String>, ExprError> {
            match name {
                "XDG_DATA_HOME" => Ok(Some("/home/alice/.local/share".into())),
                n if is_known_variable(n) => Ok(None),
                n => Err(ExprError::UnknownVariable(n.into())),
            }
        }
        fn reference(&self, key: &str, chain: &mut Vec<String>) -> Result<String, ExprError> {
            let raw = self
                .refs
                .get(key)
                .ok_or_else(|| ExprError::UnknownReference(key.into()))?;
            expand(raw, self, chain)
        }
    }

    fn scope() -> TestScope {
        TestScope {
            refs: BTreeMap::from([
                ("system.path.data", "$XDG_DATA_HOME/kanibako"),
                ("system.path.boxes", "@system.path.boxes/x"),
                ("a", "@b"),
                ("b", "@a"),
            ]),
        }
    }

    fn ex(s: &str) -> Result<String, ExprError> {
        expand(s, &scope(), &mut Vec::new())
    }

    #[test]
    fn rows_of_the_upstream_table() {
        assert_eq!(
            ex("@system.path.data/boxes").unwrap(),
            "/home/alice/.local/share/kanibako/boxes"
        );
        assert_eq!(ex("~/kbdata").unwrap(), "/home/alice/kbdata");
        assert_eq!(
            ex("${XDG_DATA_HOME}/b\\@x").unwrap(),
            "/home/alice/.local/share/b@x"
        );
        assert_eq!(
            ex("@system.path.data/mybox-$CRAB"),
            Err(ExprError::VariableNotSet("CRAB".into()))
        );
        assert_eq!(
            ex("@system.path.boxes/x").unwrap_err().to_string(),
            "Cyclic @-reference: system.path.boxes -> system.path.boxes"
        );
        assert_eq!(
            ex("@system.path.nosuch/x").unwrap_err().to_string(),
            "Unknown @-reference: system.path.nosuch"
        );
        assert_eq!(
            ex("$XDG_CONFIG_HOME/b").unwrap_err().to_string(),
            "Variable $XDG_CONFIG_HOME is not set in this context."
        );
        assert_eq!(ex("/abs/~x").unwrap(), "/abs/~x");
    }

    #[test]
    fn variables_and_escapes() {
        assert_eq!(
            ex("$HOME/x"),
            Err(ExprError::UnknownVariable("HOME".into()))
        );
        assert!(matches!(ex("a$"), Err(ExprError::Malformed(_))));
        assert!(matches!(ex("a$1"), Err(ExprError::Malformed(_))));
        assert!(matches!(
            ex("${XDG_DATA_HOME"),
            Err(ExprError::Unterminated(_))
        ));
        assert_eq!(ex("\\$x\\\\").unwrap(), "$x\\");
        assert_eq!(ex("trailing\\").unwrap(), "trailing\\");
        assert_eq!(ex("mail@").unwrap(), "mail@");
        assert_eq!(ex("\\~/x").unwrap(), "~/x");
    }

    #[test]
    fn two_key_cycle_names_the_whole_chain() {
        assert_eq!(
            ex("@a").unwrap_err().to_string(),
            "Cyclic @-reference: a -> b -> a"
        );
    }

    #[test]
    fn reference_ends_at_trailing_dot() {
        assert_eq!(
            ex("@system.path.data.").unwrap(),
            "/home/alice/.local/share/kanibako."
        );
    }

    #[test]
    fn substituted_text_is_not_rescanned() {
        struct S;
        impl Scope for S {
            fn tilde(&self) -> Option<&str> {
                None
            }
            fn variable(&self, _: &str) -> Result<Option<String>, ExprError> {
                Ok(Some("$CRAB@a".into()))
            }
            fn reference(&self, k: &str, _: &mut Vec<String>) -> Result<String, ExprError> {
                Err(ExprError::UnknownReference(k.into()))
            }
        }
        assert_eq!(expand("$XDG_X", &S, &mut Vec::new()).unwrap(), "$CRAB@a");
        assert_eq!(expand("~/x", &S, &mut Vec::new()).unwrap(), "~/x");
    }

    #[test]
    fn split_bind_honours_escaped_colons() {
        assert_eq!(split_bind("a:b:c"), Some(("a", "b:c")));
        assert_eq!(split_bind("a\\:x:/g"), Some(("a\\:x", "/g")));
        assert_eq!(split_bind("plain"), None);
    }
}
