//! Which symbolic links may be recreated inside a tree: the target must be relative,
//! may climb (`..`) only at its start and no higher than the tree's root, and then
//! only descend. Each such link resolves inside the tree even when it passes through
//! other links that obey the rule, which a purely lexical check of `a/../..` would not
//! ensure (`a` may point at the root, so `a/..` is above it).

use std::path::{Component, Path};

/// Whether a link at `link` (its path relative to the tree root) with `target` stays
/// inside the tree.
pub fn stays_inside(link: &Path, target: &[u8]) -> bool {
    if target.is_empty() || target[0] == b'/' || target.contains(&0) {
        return false;
    }
    // Directories above the link that still lie inside the tree.
    let depth = link
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
        .saturating_sub(1);
    let mut climbed = 0usize;
    let mut descended = false;
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if descended => return false,
            b".." => {
                climbed += 1;
                if climbed > depth {
                    return false;
                }
            }
            _ => descended = true,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let ok = |l: &str, t: &str| stays_inside(Path::new(l), t.as_bytes());
        assert!(ok("a", "b"));
        assert!(ok("a", "./b/c"));
        assert!(ok("d/a", "../b"));
        assert!(ok("d/e/a", "../../x/y"));
        assert!(ok("d/a", ".."), "the root itself");
        assert!(!ok("a", ".."), "above the root");
        assert!(!ok("d/a", "../.."));
        assert!(!ok("a", "/etc/passwd"));
        assert!(!ok("a", ""));
        assert!(!ok("d/a", "b/../c"), "climbing after descending");
        assert!(!ok("d/e/a", "x/../../.."));
        assert!(!ok("a", "b\0c"));
        assert!(ok("a", "b//c/"));
    }
}
