//! Claude Code: the host's `claude` binary mounted read-only into the box, and the
//! argument rules of spec upstream-runtime §3.11.

use std::path::{Path, PathBuf};

use super::credentials::{CredentialSpec, ExpiryFormat};
use super::resources::{Mapping, Scope};
use super::{Agent, Install, LoginAnswer, LoginCommands, SessionFlags};
use crate::host::HostEnv;
use crate::runtime::spec::Mount;

pub struct Claude;

/// What Claude Code keeps under `~/.claude`, as upstream maps it: its state stays in
/// each box; settings and instructions are seeded from the shared copy when present.
const RESOURCES: &[Mapping] = &{
    const fn p(path: &'static str) -> Mapping {
        Mapping {
            path,
            scope: Scope::Project,
        }
    }
    [
        p("cache/"),
        p("stats-cache.json"),
        p("statsig/"),
        p("telemetry/"),
        p("projects/"),
        p("session-env/"),
        p("history.jsonl"),
        p("tasks/"),
        p("todos/"),
        p("plans/"),
        p("file-history/"),
        p("backups/"),
        p("debug/"),
        p("paste-cache/"),
        p("shell-snapshots/"),
        Mapping {
            path: "settings.json",
            scope: Scope::Seeded,
        },
        Mapping {
            path: "CLAUDE.md",
            scope: Scope::Seeded,
        },
    ]
};

/// Claude Code's login: `~/.claude/.credentials.json` with the token under
/// `claudeAiOauth` (`expiresAt` in ms), and the account in `~/.claude.json`.
pub const CREDENTIALS: CredentialSpec = CredentialSpec {
    dir: ".claude",
    file: ".credentials.json",
    oauth_key: "claudeAiOauth",
    expiry_key: "expiresAt",
    expiry_format: ExpiryFormat::Millis,
    access_field: "accessToken",
    refresh_field: "refreshToken",
    max_refresh_lifetime_ms: 24 * 3600 * 1000,
    account_file: Some(".claude.json"),
    account_keys: &["oauthAccount", "installMethod"],
    token_fields: &[
        "accessToken",
        "refreshToken",
        "expiresAt",
        "scopes",
        "subscriptionType",
        "rateLimitTier",
    ],
    account_fields: &["subscriptionType"],
};

/// The install root of a (resolved) `claude` binary, for the known layouts only: the
/// native installer's `…/.local/share/claude/versions/<version>` (the binary, or a file
/// in that directory) gives `…/.local/share/claude`, npm's
/// `…/lib/node_modules/@anthropic-ai/claude-code/<file>` gives the package. Anything
/// else (a binary in `/home/claude/.local/bin`, whose nearest `claude` ancestor is a
/// whole home) has none: the binary is mounted alone.
pub fn install_root(binary: &Path) -> Option<PathBuf> {
    let names: Vec<&std::ffi::OsStr> = binary.iter().collect();
    let n = names.len();
    let at = |i: usize, want: &str| names.get(i).is_some_and(|x| *x == want);
    // …/share/claude/versions/<v>  or  …/share/claude/versions/<v>/<file>
    for depth in [2, 3] {
        if n > depth + 2
            && at(n - depth, "versions")
            && at(n - depth - 1, "claude")
            && at(n - depth - 2, "share")
        {
            return Some(names[..n - depth].iter().collect());
        }
    }
    // …/lib/node_modules/@anthropic-ai/claude-code/<file…>
    (0..n.saturating_sub(1))
        .find(|&i| {
            at(i, "claude-code")
                && at(i.wrapping_sub(1), "@anthropic-ai")
                && at(i.wrapping_sub(2), "node_modules")
        })
        .map(|i| names[..=i].iter().collect())
}

/// `claude auth status --json` answers `{"loggedIn": …}`.
pub fn parse_status(ok: bool, stdout: &[u8]) -> LoginAnswer {
    if !ok {
        return LoginAnswer::Unknown;
    }
    match serde_json::from_slice::<serde_json::Value>(stdout)
        .ok()
        .and_then(|v| v.get("loggedIn").and_then(serde_json::Value::as_bool))
    {
        Some(true) => LoginAnswer::LoggedIn,
        Some(false) => LoginAnswer::LoggedOut,
        None => LoginAnswer::Unknown,
    }
}

const LOGIN: LoginCommands = LoginCommands {
    status: &["auth", "status", "--json"],
    login: &["auth", "login"],
    read: parse_status,
};

impl Agent for Claude {
    fn id(&self) -> &'static str {
        "claude"
    }

    fn display_name(&self) -> &'static str {
        "Claude Code"
    }

    /// `claude` on `PATH`, symlinks resolved, with its install root ([`install_root`]).
    fn detect(&self, host: &HostEnv) -> Option<Install> {
        let binary = host.which("claude")?.canonicalize().ok()?;
        let install_dir = install_root(&binary);
        Some(Install {
            binary,
            install_dir,
        })
    }

    fn mounts(&self, install: &Install) -> Vec<Mount> {
        let mut mounts = Vec::new();
        if let Some(dir) = &install.install_dir {
            mounts.push(Mount::Bind {
                src: dir.clone(),
                dst: "/home/agent/.local/share/claude".into(),
                read_only: true,
                relabel: false,
            });
        }
        mounts.push(Mount::Bind {
            src: install.binary.clone(),
            dst: "/home/agent/.local/bin/claude".into(),
            read_only: true,
            relabel: false,
        });
        mounts
    }

    /// The mounted binary by its full path: rigs need not put `~/.local/bin` on `PATH`.
    fn entrypoint(&self, _install: &Install) -> String {
        "/home/agent/.local/bin/claude".to_owned()
    }

    fn args(&self, flags: SessionFlags, extra: &[String], model: Option<&str>) -> Vec<String> {
        let mut args = Vec::new();
        if !flags.secure {
            args.push("--dangerously-skip-permissions".to_owned());
        }
        let user_resumes = extra.iter().any(|a| a == "--resume" || a == "-r");
        if flags.resume {
            args.push("--resume".to_owned());
        } else if !(flags.new_box || flags.new_session || user_resumes) {
            args.push("--continue".to_owned());
        }
        args.extend(extra.iter().cloned());
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            args.push("--model".to_owned());
            args.push(m.to_owned());
        }
        args
    }

    fn env_defaults(&self) -> &'static [(&'static str, &'static str)] {
        &[("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")]
    }

    fn default_model(&self) -> Option<&'static str> {
        Some(crate::settings::keys::DEFAULT_MODEL)
    }

    fn config_dir(&self) -> &'static str {
        ".claude"
    }

    fn instruction_files(&self) -> &'static [&'static str] {
        &["CLAUDE.md"]
    }

    fn resources(&self) -> &'static [Mapping] {
        RESOURCES
    }

    fn credentials(&self) -> Option<&'static CredentialSpec> {
        Some(&CREDENTIALS)
    }

    fn login_commands(&self) -> Option<&'static LoginCommands> {
        Some(&LOGIN)
    }

    fn has_conversation(&self, home: &Path, workdir: &str) -> bool {
        has_conversation(home, workdir)
    }

    fn session_note(&self) -> &'static str {
        "-C: --continue (the default in a box with a conversation); -R: --resume (its picker); -N: neither"
    }
}

/// Whether the agent has a conversation to `--continue` in the box's workspace. Claude
/// Code keeps each as a `.jsonl` file under `~/.claude/projects/<the working directory
/// with every `/` as `-`>/`; a box made by `create` or `shell` has none until the agent
/// first ran, and `--continue` there only says "No conversation found". The home is
/// writable from inside the box, so nothing below it is followed through a link.
pub fn has_conversation(home: &std::path::Path, workdir: &str) -> bool {
    let dir = home
        .join(".claude/projects")
        .join(workdir.replace(['/', '.'], "-"));
    let real_dir = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let chain = [
        home.join(".claude"),
        home.join(".claude/projects"),
        dir.clone(),
    ];
    chain.iter().all(|p| real_dir(p))
        && std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_exists_only_as_a_jsonl_in_the_workspace_s_project_dir() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path();
        let ws = "/home/agent/workspace";
        assert!(!has_conversation(home, ws), "a new home");
        let dir = home.join(".claude/projects/-home-agent-workspace");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!has_conversation(home, ws), "an empty project dir");
        std::fs::write(dir.join("x.json"), "").unwrap();
        assert!(!has_conversation(home, ws));
        std::fs::write(dir.join("0f3a.jsonl"), "{}").unwrap();
        assert!(has_conversation(home, ws));
        assert!(!has_conversation(home, "/home/agent/workspace/sub"));
        // a link planted in the home is not followed
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_dir_all(home.join(".claude")).unwrap();
        let real = other.path().join("projects/-home-agent-workspace");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("a.jsonl"), "{}").unwrap();
        std::fs::create_dir_all(home.join(".claude")).unwrap();
        std::os::unix::fs::symlink(other.path().join("projects"), home.join(".claude/projects"))
            .unwrap();
        assert!(!has_conversation(home, ws));
    }

    fn args(flags: SessionFlags, extra: &[&str], model: Option<&str>) -> String {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        Claude.args(flags, &extra, model).join(" ")
    }

    #[test]
    fn rows_of_the_upstream_table() {
        let existing = SessionFlags::default();
        let new_box = SessionFlags {
            new_box: true,
            ..existing
        };
        assert_eq!(
            args(new_box, &[], Some("opus")),
            "--dangerously-skip-permissions --model opus"
        );
        assert_eq!(
            args(existing, &[], Some("opus")),
            "--dangerously-skip-permissions --continue --model opus"
        );
        let n = SessionFlags {
            new_session: true,
            ..existing
        };
        assert_eq!(
            args(n, &[], Some("opus")),
            "--dangerously-skip-permissions --model opus"
        );
        let r = SessionFlags {
            resume: true,
            ..existing
        };
        assert_eq!(
            args(r, &[], Some("opus")),
            "--dangerously-skip-permissions --resume --model opus"
        );
        let s = SessionFlags {
            secure: true,
            ..existing
        };
        assert_eq!(args(s, &[], Some("opus")), "--continue --model opus");
        assert_eq!(
            args(existing, &[], Some("sonnet")),
            "--dangerously-skip-permissions --continue --model sonnet"
        );
        // -v after `--` belongs to the agent (upstream swallowed it)
        assert_eq!(
            args(n, &["--verbose", "-p", "hello", "-v"], Some("opus")),
            "--dangerously-skip-permissions --verbose -p hello -v --model opus"
        );
        assert_eq!(
            args(existing, &["--resume"], Some("opus")),
            "--dangerously-skip-permissions --resume --model opus"
        );
        // an empty model (suppressed at some level) passes no --model
        assert_eq!(
            args(existing, &[], Some("")),
            "--dangerously-skip-permissions --continue"
        );
    }

    /// Every combination of the session switches, with and without a model.
    #[test]
    fn argv_for_every_switch_combination() {
        insta::assert_snapshot!(crate::agents::every_switch_combination(
            "opus",
            |f, model| { args(f, &[], model) }
        ));
    }

    #[test]
    fn install_root_is_the_nearest_claude_dir() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let bin = root.join("claude/versions/2.0.0/claude");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = root.join("path");
        std::fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::symlink(&bin, path.join("claude")).unwrap();
        let host = HostEnv::for_test(&root, &[("PATH", path.to_str().unwrap())]);
        let i = Claude.detect(&host).unwrap();
        assert_eq!(i.binary, bin);
        assert_eq!(
            i.install_dir, None,
            "not under share/: not the native layout"
        );
    }

    /// Issue 10, item 8: only the known install layouts give an install root; a binary
    /// elsewhere (in a home named `claude`) is mounted alone, never its home.
    #[test]
    fn only_known_install_layouts_are_mounted_whole() {
        let root = |p: &str| install_root(Path::new(p)).map(|d| d.display().to_string());
        assert_eq!(
            root("/home/u/.local/share/claude/versions/2.0.1").as_deref(),
            Some("/home/u/.local/share/claude")
        );
        assert_eq!(
            root("/home/u/.local/share/claude/versions/2.0.1/claude").as_deref(),
            Some("/home/u/.local/share/claude")
        );
        assert_eq!(
            root("/usr/local/lib/node_modules/@anthropic-ai/claude-code/cli.js").as_deref(),
            Some("/usr/local/lib/node_modules/@anthropic-ai/claude-code")
        );
        for alone in [
            "/home/claude/.local/bin/claude",
            "/home/claude/bin/claude",
            "/opt/claude/claude",
            "/home/claude/versions/1/claude",
        ] {
            assert_eq!(root(alone), None, "{alone}");
        }
        let mounts = Claude.mounts(&Install {
            binary: "/home/claude/.local/bin/claude".into(),
            install_dir: None,
        });
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].dst(), "/home/agent/.local/bin/claude");
    }
}
