//! What a launch does about the box's container, decided purely from what the engine
//! reported ([`Existing`]) and what was asked: run a new one, join the running one,
//! re-attach to its session, or refuse. Every row is a unit test below.

use super::state::{Existing, Owner};
use crate::boxes::BoxIdentity;
use crate::error::UserError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a container. `leftover`: a stopped one of ours under the name, to remove
    /// first (with the image it ran on, if it was mounted).
    Run {
        leftover: Option<Option<String>>,
    },
    /// `exec` into the running container (a shell, or the user's command).
    Join,
    /// Attach to the running persistent session.
    Reattach {
        rootfs: Option<String>,
    },
    Refuse(Refusal),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another box's container runs under this box's name: never joined.
    OtherBoxRunning,
    /// The box's container runs, and an ephemeral agent session cannot share it.
    AlreadyRunning,
    /// A stopped container under the name that kanibako did not start.
    StoppedNotOurs,
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

/// `shell_like`: a shell or the user's own command (joins a running container).
/// `persistent`: an agent session in tmux (re-attaches to a running one).
pub fn decide(existing: &Existing, shell_like: bool, persistent: bool) -> Action {
    match existing {
        Existing::Absent => Action::Run { leftover: None },
        Existing::Running {
            owner: Owner::Other,
            ..
        } => Action::Refuse(Refusal::OtherBoxRunning),
        Existing::Running { .. } if shell_like => Action::Join,
        Existing::Running { rootfs, .. } if persistent => Action::Reattach {
            rootfs: rootfs.clone(),
        },
        Existing::Running { .. } => Action::Refuse(Refusal::AlreadyRunning),
        Existing::Stopped {
            owner: Owner::Ours,
            rootfs,
        } => Action::Run {
            leftover: Some(rootfs.clone()),
        },
        Existing::Stopped { .. } => Action::Refuse(Refusal::StoppedNotOurs),
    }
}

impl Refusal {
    /// What the user is told; `engine` names the engine for a command to run by hand.
    pub fn error(self, b: &BoxIdentity, engine: &str) -> UserError {
        let name = b.container_name();
        match self {
            Refusal::OtherBoxRunning => UserError::new(format!(
                "the running container {name} belongs to another box"
            ))
            .hint("stop that box first (`kanibako stop --all` lists it), or rename one of the two"),
            Refusal::AlreadyRunning => {
                UserError::new("A container already exists for this project.")
                    .hint(format!("it is running as {name}"))
                    .hint(format!(
                        "`kanibako start {}` attaches to it",
                        b.display_name()
                    ))
                    .hint(format!("`kanibako stop {}` stops it", b.display_name()))
            }
            Refusal::StoppedNotOurs => UserError::new(format!(
                "a stopped container named {name} exists and was not started by this kanibako"
            ))
            .hint(format!("remove it with `{engine} rm {name}`")),
        }
    }
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

    fn running(owner: Owner) -> Existing {
        Existing::Running {
            owner,
            rootfs: Some("img".into()),
        }
    }

    fn stopped(owner: Owner) -> Existing {
        Existing::Stopped {
            owner,
            rootfs: Some("img".into()),
        }
    }

    /// (state, shell_like, persistent) → action, for every row.
    #[test]
    fn every_row_of_the_existing_container_decision() {
        use Owner::*;
        let run = Action::Run { leftover: None };
        let rows: Vec<(Existing, bool, bool, Action)> = vec![
            // nothing there: run, whatever was asked
            (Existing::Absent, false, false, run.clone()),
            (Existing::Absent, false, true, run.clone()),
            (Existing::Absent, true, false, run),
            // another box's container is never joined, by anything
            (
                running(Other),
                true,
                false,
                Action::Refuse(Refusal::OtherBoxRunning),
            ),
            (
                running(Other),
                false,
                true,
                Action::Refuse(Refusal::OtherBoxRunning),
            ),
            (
                running(Other),
                false,
                false,
                Action::Refuse(Refusal::OtherBoxRunning),
            ),
            // ours (or the Python tool's, unlabelled) running: a shell joins ...
            (running(Ours), true, false, Action::Join),
            (running(Unlabelled), true, true, Action::Join),
            // ... a persistent agent session re-attaches ...
            (
                running(Ours),
                false,
                true,
                Action::Reattach {
                    rootfs: Some("img".into()),
                },
            ),
            (
                running(Unlabelled),
                false,
                true,
                Action::Reattach {
                    rootfs: Some("img".into()),
                },
            ),
            // ... an ephemeral one is refused
            (
                running(Ours),
                false,
                false,
                Action::Refuse(Refusal::AlreadyRunning),
            ),
            (
                running(Unlabelled),
                false,
                false,
                Action::Refuse(Refusal::AlreadyRunning),
            ),
            // a stopped one of ours is cleared first; anyone else's is refused
            (
                stopped(Ours),
                false,
                true,
                Action::Run {
                    leftover: Some(Some("img".into())),
                },
            ),
            (
                stopped(Ours),
                true,
                false,
                Action::Run {
                    leftover: Some(Some("img".into())),
                },
            ),
            (
                stopped(Unlabelled),
                true,
                false,
                Action::Refuse(Refusal::StoppedNotOurs),
            ),
            (
                stopped(Other),
                false,
                true,
                Action::Refuse(Refusal::StoppedNotOurs),
            ),
        ];
        for (state, shell_like, persistent, want) in rows {
            assert_eq!(
                decide(&state, shell_like, persistent),
                want,
                "{state:?} shell_like={shell_like} persistent={persistent}"
            );
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let b = BoxIdentity::default_mode(
            crate::boxes::BoxName::parse("app").unwrap(),
            "/p/app".into(),
            std::path::Path::new("/d/boxes"),
            crate::boxes::ProjectSettings::default(),
        );
        let e = Refusal::StoppedNotOurs.error(&b, "docker");
        assert_eq!(
            e.message,
            "a stopped container named kanibako-app exists and was not started by this kanibako"
        );
        assert_eq!(e.hints, ["remove it with `docker rm kanibako-app`"]);
        assert_eq!(
            Refusal::AlreadyRunning.error(&b, "podman").hints[0],
            "it is running as kanibako-app"
        );
        assert!(
            Refusal::OtherBoxRunning
                .error(&b, "podman")
                .message
                .contains("belongs to another box")
        );
    }
}
