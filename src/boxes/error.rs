//! Errors about boxes, each with the advice a user needs to get unstuck.

use std::path::PathBuf;

use super::name::NameError;
use super::registry::Section;
use crate::document::DocError;
use crate::fsutil::FsError;

#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    #[error("'{0}' is not a registered box, and there is no directory of that name here")]
    NoSuchBox(String),
    #[error("'{0}' is a workset, not a box")]
    IsWorkset(String),
    #[error("Project path '{}' does not exist.", .0.display())]
    PathMissing(PathBuf),
    #[error("Project path '{}' is not a directory.", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is not a kanibako box", .0.display())]
    NotABox(PathBuf),
    #[error("Refusing to create a project at $HOME.")]
    HomeRefused,
    #[error("Refusing to use {} as a project: it is {why}.", .path.display())]
    WorkspaceRefused { path: PathBuf, why: &'static str },
    #[error("A standalone box does not take its rig from --image.")]
    StandaloneImage,
    #[error("Project path '{}' is not valid UTF-8; kanibako cannot pass it to the container engine.", .0.display())]
    NotUtf8(PathBuf),
    #[error("Project path is too long ({0} bytes; the system allows at most 4095).")]
    PathTooLong(usize),
    #[error("{} is a symbolic link; a standalone box's metadata must be a real directory in its project.", .0.display())]
    MetadataLink(PathBuf),
    #[error("{} lies inside the standalone box at {}, which has not been used from here before.", .from.display(), .root.display())]
    NotAdopted { root: PathBuf, from: PathBuf },
    #[error("Refusing to create a standalone project at $HOME without --allow-home.")]
    HomeStandalone,
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("Name '{name}' is already registered ({}: {})", .section.key(), .path.display())]
    NameTaken {
        name: String,
        section: Section,
        path: PathBuf,
    },
    #[error("project already initialized in {}", .0.display())]
    AlreadyInitialized(PathBuf),
    #[error("'{0}' is not a registered project or workset.")]
    NotRegistered(String),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("Working set '{0}' is not registered.")]
    NoWorkset(String),
    #[error("Project '{project}' not found in workset '{workset}'.")]
    NoMember { workset: String, project: String },
    #[error("Inside workset '{workset}' but not in a specific project workspace. Change to a project directory under {}/workspaces/.", .root.display())]
    NotInWorkspace { workset: String, root: PathBuf },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<std::io::Error> for BoxError {
    fn from(source: std::io::Error) -> Self {
        BoxError::Io {
            context: "file system".into(),
            source,
        }
    }
}

impl BoxError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BoxError {
        let context = context.into();
        move |source| BoxError::Io { context, source }
    }

    pub fn hints(&self) -> Vec<String> {
        match self {
            BoxError::NoSuchBox(_) | BoxError::NotRegistered(_) => {
                vec!["`kanibako list -a` shows every box kanibako knows".into()]
            }
            BoxError::NotABox(_) => vec!["create one here with `kanibako create`".into()],
            BoxError::HomeRefused => vec![
                "a home-directory project must be standalone and explicit:".into(),
                "  kanibako create --standalone ~ --allow-home".into(),
            ],
            BoxError::HomeStandalone => vec![
                "a box at $HOME mounts your whole home directory into the container; if you mean it:"
                    .into(),
                "  kanibako create --standalone ~ --allow-home".into(),
            ],
            BoxError::WorkspaceRefused { .. } => vec![
                "a box sees (and, for the agent, may change) all of its project directory; give it a directory of its own:".into(),
                "  mkdir -p ~/projects/NAME && cd ~/projects/NAME && kanibako".into(),
            ],
            BoxError::StandaloneImage => vec![
                "its settings file lies in its own workspace, which a repository or the box can rewrite, so kanibako never takes a rig from there; start it with --rig NAME, or set box.image in the system config".into(),
            ],
            BoxError::NotUtf8(_) => {
                vec!["rename the directory (or a parent) to a UTF-8 name".into()]
            }
            BoxError::PathTooLong(_) => vec!["use a shorter path, or a symbolic link to it".into()],
            BoxError::MetadataLink(p) => vec![format!(
                "a link there would let the project pick another box's files; if you did not make it, remove it: rm {}",
                p.display()
            )],
            BoxError::NotAdopted { root, from } => vec![
                format!(
                    "its marker could have been put there by a repository; to use that box (its workspace is all of {}), run kanibako once at a terminal, or from {} itself",
                    root.display(),
                    root.display()
                ),
                format!(
                    "to make a box of {} alone instead: kanibako create {}",
                    from.display(),
                    from.display()
                ),
            ],
            BoxError::Name(_) => vec!["for example: --name my-project".into()],
            BoxError::NameTaken { .. } => vec!["choose another name with --name".into()],
            BoxError::AlreadyInitialized(_) => {
                vec!["`kanibako box info` shows the existing box".into()]
            }
            BoxError::Doc(e) => e.hint().into_iter().collect(),
            BoxError::NoWorkset(_) => {
                vec!["`kanibako workset list` shows the worksets".into()]
            }
            _ => Vec::new(),
        }
    }
}
