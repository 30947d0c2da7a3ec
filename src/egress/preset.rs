//! Built-in, named rule sets (`@claude`, `@npm`, …) that an allow list can name and a
//! user can list and remove.
//!
//! Each holds exact host names only: no wildcard over a domain that strangers can put
//! content on (shared telemetry intakes, CDNs, `*.githubusercontent.com`), because
//! every allowed host is a way out for data.

/// A named rule set.
#[derive(Debug, PartialEq, Eq)]
pub struct Preset {
    /// Without the `@`.
    pub name: &'static str,
    pub about: &'static str,
    /// Rules in [`super::policy::Rule`] syntax.
    pub rules: &'static [&'static str],
}

/// Every preset, in the order `box net presets` would list them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "claude",
        about: "Claude Code: the API, and the OAuth hosts that sign in and refresh tokens",
        // From the Claude Code 2.1.328 binary's OAuth configuration: BASE_API_URL,
        // TOKEN_URL and the console authorize URL (platform.claude.com), CLAUDE_AI_ORIGIN
        // (claude.ai); console.anthropic.com is where earlier versions refresh tokens.
        // Left out on purpose: its Datadog and Sentry intakes (shared with every other
        // customer of those services) and downloads.claude.ai (the box runs the host's
        // binary and never updates itself).
        rules: &[
            "api.anthropic.com",
            "platform.claude.com",
            "claude.ai",
            "console.anthropic.com",
        ],
    },
    Preset {
        name: "npm",
        about: "the npm registry (metadata and tarballs)",
        rules: &["registry.npmjs.org"],
    },
    Preset {
        name: "pypi",
        about: "PyPI: the index and the file host (not the upload host)",
        rules: &["pypi.org", "files.pythonhosted.org"],
    },
    Preset {
        name: "crates",
        about: "crates.io: the API, the sparse index and the download host",
        rules: &["crates.io", "index.crates.io", "static.crates.io"],
    },
    Preset {
        name: "github",
        about: "GitHub over HTTPS: git, the API, archives, releases and raw files",
        rules: &[
            "github.com",
            "api.github.com",
            "codeload.github.com",
            "objects.githubusercontent.com",
            "release-assets.githubusercontent.com",
            "raw.githubusercontent.com",
        ],
    },
];

/// What `box.allow` holds when nobody has set it: the agent's own hosts and the
/// package registries.
pub const DEFAULT_ALLOW: &[&str] = &["@claude", "@npm", "@pypi", "@crates", "@github"];

/// The preset called `name` (with or without the `@`).
pub fn find(name: &str) -> Option<&'static Preset> {
    let name = name.strip_prefix('@').unwrap_or(name);
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::policy::Rule;

    #[test]
    fn presets_parse_and_hold_no_wildcards_or_ports() {
        for p in PRESETS {
            assert!(!p.rules.is_empty(), "{}", p.name);
            for r in p.rules {
                let rule = Rule::parse(r).unwrap();
                assert_eq!(rule.text(), *r, "{} is normalised already", r);
                assert!(!r.contains('*') && !r.contains(':'), "{r} is narrow");
            }
        }
        for d in DEFAULT_ALLOW {
            assert!(find(d).is_some(), "{d}");
        }
    }

    #[test]
    fn find_by_name_with_or_without_at() {
        assert_eq!(find("@npm").unwrap().name, "npm");
        assert_eq!(find("crates").unwrap().name, "crates");
        assert!(find("@nope").is_none());
    }
}
