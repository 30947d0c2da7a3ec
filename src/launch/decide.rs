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
