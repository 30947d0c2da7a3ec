//! Boxes: what a box is (identity, mode, layout, where its files live), how a directory
//! or a name resolves to one, and how one is created, listed and removed.
//!
//! Where a box's home and vault live is derived from its mode, layout, name and
//! project path every time; paths recorded in `project.yaml` are written for the Python
//! tool's sake but never trusted (a standalone box's `project.yaml` sits inside the
//! workspace, where the box itself could rewrite it).

pub mod address;
pub mod create;
pub mod duplicate;
pub mod error;
pub mod fork;
pub mod home;
pub mod intent;
pub mod listing;
pub mod name;
pub mod registry;
pub mod relocation;
pub mod resolve;
pub mod transfer;
pub mod worksets;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::document::{DocError, Document};
use crate::fsutil;

pub use name::BoxName;

pub const PROJECT_FILE: &str = "project.yaml";
pub const LOCK_FILE: &str = ".kanibako.lock";
/// Present while a container of the box may exist (holds its name): lets a launch skip
/// asking the engine when none can.
pub const CONTAINER_MARKER: &str = ".kanibako.container";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// State under `$DATA/boxes/<name>/`, registered in `names.yaml`.
    Default,
    /// State under a workset root.
    Workset,
    /// State inside the project (`<project>/.kanibako/`).
    Standalone,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Workset => "workset",
            Mode::Standalone => "standalone",
        }
    }

    /// Current and legacy spellings.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" | "account_centric" | "local" => Some(Mode::Default),
            "workset" => Some(Mode::Workset),
            "standalone" | "decentralized" => Some(Mode::Standalone),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Simple,
    Default,
    Robust,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Simple => "simple",
            Layout::Default => "default",
            Layout::Robust => "robust",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "simple" => Some(Layout::Simple),
            "default" => Some(Layout::Default),
            "robust" | "tree" => Some(Layout::Robust),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vault {
    pub ro: PathBuf,
    pub rw: PathBuf,
}

impl Vault {
    /// `dir/ro` and `dir/rw`, or no vault when it is disabled.
    fn under(dir: &Path, enabled: bool) -> Option<Self> {
        enabled.then(|| Self {
            ro: dir.join("ro"),
            rw: dir.join("rw"),
        })
    }
}

/// Lowercase hex sha256 of the project path, as upstream computes it.
pub fn project_hash(path: &Path) -> String {
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    crate::hex::encode(&digest)
}

/// Upstream's container name for a standalone box: the path without its leading `/`,
/// `-` as `-.`, `/` as `-`.
pub fn ronin_escape(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.strip_prefix('/')
        .unwrap_or(&s)
        .replace('-', "-.")
        .replace('/', "-")
}

/// A standalone box's metadata directory, held open since it was found without
/// following a link, so that every file kanibako itself reads or writes below it (the
/// settings, the env file, the lock, the container marker) is reached through this
/// very directory, whatever the box or a repository puts at its path afterwards.
/// Equal to any other: it says how the directory is reached, not which box it is.
/// Which version of a file: its device, inode, size and change time. Every write of a
/// settings file replaces it (a new inode), so an equal stamp means the same content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: i64,
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of the file at `path` itself (a link's own, never its target's).
    pub fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size() as i64,
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// The stamp of `name` in the open directory `dir` (not following a link).
    pub fn at(dir: BorrowedFd<'_>, name: &str) -> Option<Self> {
        use nix::fcntl::AtFlags;
        let st = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        Some(Self {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        })
    }
}

/// A box's `project.yaml` as read when the box was found, and the file's stamp
/// before that read (taken first, so a file replaced meanwhile never matches it): a
/// launch reads the file once. Equal to any other, like [`HeldDir`]: it is not part
/// of which box this is.
#[derive(Clone, Debug, Default)]
pub struct ReadProject(Option<Arc<(FileStamp, Document)>>);

impl PartialEq for ReadProject {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ReadProject {}

impl ReadProject {
    /// The kept document, if the file is still the version `now` says.
    fn get(&self, now: Option<FileStamp>) -> Option<Document> {
        let (stamp, doc) = self.0.as_deref()?;
        (now == Some(*stamp)).then(|| doc.clone())
    }
}

#[derive(Clone, Debug, Default)]
pub struct HeldDir(Option<Arc<OwnedFd>>);

impl PartialEq for HeldDir {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeldDir {}

impl HeldDir {
    pub fn new(fd: OwnedFd) -> Self {
        Self(Some(Arc::new(fd)))
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.as_ref().map(|f| f.as_fd())
    }

    /// A path to `name` through the held directory (valid in this process only).
    fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.0
            .as_ref()
            .map(|f| PathBuf::from(format!("/proc/self/fd/{}/{name}", f.as_raw_fd())))
    }
}

/// A box's shared-cache directories: `global` (`$DATA/shared/global`, every box's
/// `shared.*` caches and shared resources) and `local` (the crab's caches, under
/// `<crab>/`): `$DATA/shared` for a default-mode box, `<workset root>/shared` for a
/// workset member, as upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedDirs {
    pub global: PathBuf,
    pub local: PathBuf,
}

/// Everything kanibako knows about one box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxIdentity {
    pub mode: Mode,
    pub layout: Layout,
    /// Registered name; standalone boxes have none.
    pub name: Option<BoxName>,
    /// The project directory, mounted at `/home/agent/workspace`.
    pub workspace: PathBuf,
    pub metadata: PathBuf,
    /// The persistent agent home, mounted at `/home/agent`.
    pub shell: PathBuf,
    /// `None` when the vault is disabled.
    pub vault: Option<Vault>,
    pub group_auth: bool,
    pub hash: String,
    /// The workset this box belongs to (name, root), for workset members.
    pub workset: Option<(String, PathBuf)>,
    /// A standalone box's metadata directory as it was found (open, no link followed).
    pub held: HeldDir,
    /// Its `project.yaml` as read when it was found.
    pub project: ReadProject,
}

/// The host-side record that a standalone box was made with distinct auth (its
/// `project.yaml` lies in its own, box-writable workspace).
pub fn distinct_auth_record(paths: &crate::paths::Paths, hash: &str) -> std::path::PathBuf {
    paths.data.join("distinct-auth").join(hash)
}

/// The settings read from a `project.yaml`'s `project:` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectSettings {
    pub mode: Option<Mode>,
    pub layout: Option<Layout>,
    pub enable_vault: bool,
    pub group_auth: bool,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        Self {
            mode: None,
            layout: None,
            enable_vault: true,
            group_auth: true,
        }
    }
}

impl ProjectSettings {
    pub fn read(doc: &Document) -> Result<Self, DocError> {
        Ok(Self {
            mode: doc
                .get_str(&["project", "mode"])?
                .and_then(|m| Mode::parse(&m)),
            layout: doc
                .get_str(&["project", "layout"])?
                .and_then(|l| Layout::parse(&l)),
            enable_vault: doc.get_bool(&["project", "enable_vault"])?.unwrap_or(true),
            group_auth: doc.get_bool(&["project", "group_auth"])?.unwrap_or(true),
        })
    }
}

impl BoxIdentity {
    /// A default-mode box: metadata under `boxes/<name>`, paths from the layout.
    pub fn default_mode(
        name: BoxName,
        workspace: PathBuf,
        boxes_dir: &Path,
        settings: ProjectSettings,
    ) -> Self {
        let metadata = boxes_dir.join(name.as_str());
        let layout = settings.layout.unwrap_or(Layout::Default);
        let shell = match layout {
            Layout::Simple => workspace.join(".shell"),
            Layout::Default | Layout::Robust => metadata.join("shell"),
        };
        let vault_dir = match layout {
            Layout::Robust => metadata.join("vault"),
            Layout::Simple | Layout::Default => workspace.join("vault"),
        };
        Self {
            mode: Mode::Default,
            layout,
            name: Some(name),
            hash: project_hash(&workspace),
            shell,
            vault: Vault::under(&vault_dir, settings.enable_vault),
            group_auth: settings.group_auth,
            metadata,
            workspace,
            workset: None,
            held: HeldDir::default(),
            project: ReadProject::default(),
        }
    }

    /// A member `name` of the workset at `root`: metadata under `boxes/`, workspace under
    /// `workspaces/`, vault under `vault/` of the root.
    pub fn workset_member(
        workset: &str,
        root: &Path,
        name: BoxName,
        settings: ProjectSettings,
    ) -> Self {
        let metadata = root.join("boxes").join(name.as_str());
        let workspace = root.join("workspaces").join(name.as_str());
        let layout = settings.layout.unwrap_or(Layout::Robust);
        let shell = match layout {
            Layout::Simple => workspace.join(".shell"),
            Layout::Default | Layout::Robust => metadata.join("shell"),
        };
        Self {
            mode: Mode::Workset,
            layout,
            name: Some(name.clone()),
            hash: project_hash(&workspace),
            shell,
            vault: Vault::under(
                &root.join("vault").join(name.as_str()),
                settings.enable_vault,
            ),
            group_auth: settings.group_auth,
            metadata,
            workspace,
            workset: Some((workset.to_owned(), root.to_owned())),
            held: HeldDir::default(),
            project: ReadProject::default(),
        }
    }

    /// A standalone box rooted at `workspace`; everything derives from the root, never
    /// from paths recorded in the (box-writable) metadata.
    pub fn standalone(workspace: PathBuf, settings: ProjectSettings) -> Self {
        let layout = settings.layout.unwrap_or(Layout::Simple);
        let (metadata, shell) = match layout {
            Layout::Robust => (workspace.join("kanibako"), workspace.join("shell")),
            Layout::Simple | Layout::Default => {
                let m = workspace.join(".kanibako");
                let s = m.join("shell");
                (m, s)
            }
        };
        let vault_dir = workspace.join("vault");
        Self {
            mode: Mode::Standalone,
            layout,
            name: None,
            hash: project_hash(&workspace),
            shell,
            vault: Vault::under(&vault_dir, settings.enable_vault),
            group_auth: settings.group_auth,
            metadata,
            workspace,
            workset: None,
            held: HeldDir::default(),
            project: ReadProject::default(),
        }
    }

    pub fn short_hash(&self) -> &str {
        &self.hash[..8]
    }

    pub fn display_name(&self) -> &str {
        self.name.as_ref().map_or("(unnamed)", BoxName::as_str)
    }

    /// The name kanibako gives this box's container. Named boxes keep upstream's
    /// `kanibako-<name>`; standalone boxes get a slug plus the short hash, because
    /// upstream's path escaping is not injective (`/a/.b` and `/a-b` collide).
    /// Workset members carry the short hash too: `kanibako-<ws>-<name>` alone would be
    /// the container of a default box called `<ws>-<name>`. Containers started under
    /// the older name are still found, by their `io.kanibako.hash` label.
    pub fn container_name(&self) -> String {
        match (&self.name, &self.workset) {
            (Some(n), Some((ws, _))) => format!("kanibako-{ws}-{n}-{}", self.short_hash()),
            (Some(n), None) => format!("kanibako-{n}"),
            (None, _) => {
                let base = self
                    .workspace
                    .file_name()
                    .map(|b| BoxName::slug(&b.to_string_lossy()))
                    .unwrap_or_else(|| BoxName::slug(""));
                format!("kanibako-ronin-{base}-{}", self.short_hash())
            }
        }
    }

    /// The name the Python tool gives this box's container, to recognise containers it
    /// started (they carry no labels).
    pub fn legacy_container_name(&self) -> String {
        match (&self.name, self.mode) {
            (_, Mode::Standalone) => format!("kanibako-ronin-{}", ronin_escape(&self.workspace)),
            (Some(n), _) => format!("kanibako-{n}"),
            (None, _) => format!("kanibako-{}", self.short_hash()),
        }
    }

    pub fn project_file(&self) -> PathBuf {
        self.metadata.join(PROJECT_FILE)
    }

    /// Where this box's shared caches live (spec upstream-cli-and-data §9.6), with
    /// `shared` the directory name (`paths.shared`): none for a standalone box.
    pub fn shared_dirs(&self, data: &Path, shared: &str) -> Option<SharedDirs> {
        let local = match (&self.mode, &self.workset) {
            (Mode::Standalone, _) => return None,
            (Mode::Workset, Some((_, root))) => root.join(shared),
            _ => data.join(shared),
        };
        Some(SharedDirs {
            global: data.join(shared).join("global"),
            local,
        })
    }

    /// A file in the metadata directory, through the held directory where there is one.
    fn meta_file(&self, name: &str) -> PathBuf {
        self.held
            .path_of(name)
            .unwrap_or_else(|| self.metadata.join(name))
    }

    /// The box's own settings (`project.yaml`), read through the held directory; the
    /// copy read when the box was found, if the file has not changed since.
    pub fn load_project(&self) -> Result<Document, DocError> {
        if let Some(doc) = self.project.get(self.project_stamp()) {
            return Ok(doc);
        }
        match self.held.fd() {
            Some(fd) => Document::load_at(fd, Path::new(PROJECT_FILE), &self.project_file()),
            None => Document::load(&self.project_file()),
        }
    }

    /// What identifies the current version of `project.yaml`, where there is one.
    pub fn project_stamp(&self) -> Option<FileStamp> {
        match self.held.fd() {
            Some(fd) => FileStamp::at(fd, PROJECT_FILE),
            None => FileStamp::of(&self.project_file()),
        }
    }

    /// Keep `doc`, read from `project.yaml` when it was `stamp`, for [`Self::load_project`].
    pub fn with_project(mut self, stamp: Option<FileStamp>, doc: &Document) -> Self {
        self.project = ReadProject(stamp.map(|s| Arc::new((s, doc.clone()))));
        self
    }

    /// The box's env file.
    pub fn env_file(&self) -> PathBuf {
        self.meta_file("env")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.meta_file(LOCK_FILE)
    }

    pub fn container_marker(&self) -> PathBuf {
        self.meta_file(CONTAINER_MARKER)
    }

    /// Whether a session holds this box's lock right now.
    pub fn session_active(&self) -> bool {
        fsutil::is_locked(&self.lock_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_yaml_read_when_found_is_reused_until_the_file_changes() {
        let t = tempfile::tempdir().unwrap();
        let b = BoxIdentity::default_mode(
            BoxName::parse("app").unwrap(),
            t.path().join("p"),
            t.path(),
            ProjectSettings::default(),
        );
        std::fs::create_dir_all(&b.metadata).unwrap();
        let file = b.project_file();
        fsutil::atomic_write(&file, b"model: opus\n", fsutil::MODE_CONFIG).unwrap();
        // What resolution read (a different text, so its use shows) for this version.
        let seen = Document::parse(&file, "model: kept\n").unwrap();
        let b = b.with_project(FileStamp::of(&file), &seen);
        let model = |b: &BoxIdentity| b.load_project().unwrap().get_str(&["model"]).unwrap();
        assert_eq!(model(&b).as_deref(), Some("kept"));
        // Any write replaces the file: read afresh.
        fsutil::atomic_write(&file, b"model: opus\n", fsutil::MODE_CONFIG).unwrap();
        assert_eq!(model(&b).as_deref(), Some("opus"));
        // Gone: read (and found empty), never the kept copy.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(model(&b), None);
    }

    fn name(s: &str) -> BoxName {
        BoxName::parse(s).unwrap()
    }

    #[test]
    fn hash_matches_upstream() {
        // as the Python tool recorded it in a project.yaml it wrote
        assert_eq!(
            project_hash(Path::new("/tmp/tmp.TI8tahi01F/home/projects/myapp")),
            "6dde1c148505e626ccfb979aa229bdabffbfd38f391d3ab8a30b7dba7b220f38"
        );
    }

    #[test]
    fn ronin_escaping_matches_upstream() {
        assert_eq!(
            ronin_escape(Path::new("/home/alice/projects/solo")),
            "home-alice-projects-solo"
        );
        assert_eq!(
            ronin_escape(Path::new("/home/u/my-project/app")),
            "home-u-my-.project-app"
        );
        // the collision that makes it unusable as our own name
        assert_eq!(
            ronin_escape(Path::new("/a/.b")),
            ronin_escape(Path::new("/a-b"))
        );
    }

    #[test]
    fn default_layouts() {
        let boxes = Path::new("/d/boxes");
        let ws = PathBuf::from("/p/app");
        let mut s = ProjectSettings::default();
        let b = BoxIdentity::default_mode(name("app"), ws.clone(), boxes, s);
        assert_eq!(b.shell, Path::new("/d/boxes/app/shell"));
        assert_eq!(b.vault.as_ref().unwrap().ro, Path::new("/p/app/vault/ro"));
        assert_eq!(b.container_name(), "kanibako-app");
        assert_eq!(b.legacy_container_name(), "kanibako-app");
        s.layout = Some(Layout::Robust);
        let b = BoxIdentity::default_mode(name("app"), ws.clone(), boxes, s);
        assert_eq!(b.vault.unwrap().rw, Path::new("/d/boxes/app/vault/rw"));
        s.layout = Some(Layout::Simple);
        s.enable_vault = false;
        let b = BoxIdentity::default_mode(name("app"), ws, boxes, s);
        assert_eq!(b.shell, Path::new("/p/app/.shell"));
        assert!(b.vault.is_none());
    }

    #[test]
    fn a_workset_member_s_container_is_never_a_default_box_s() {
        let s = ProjectSettings::default();
        let member = BoxIdentity::workset_member("team", Path::new("/w"), name("app"), s);
        let plain = BoxIdentity::default_mode(
            name("team-app"),
            "/p/team-app".into(),
            Path::new("/d/boxes"),
            s,
        );
        assert_ne!(member.container_name(), plain.container_name());
        assert_eq!(
            member.container_name(),
            format!("kanibako-team-app-{}", member.short_hash())
        );
        assert!(BoxName::parse(member.container_name().as_str()).is_ok());
    }

    #[test]
    fn standalone_names_do_not_collide() {
        let s = ProjectSettings::default();
        let a = BoxIdentity::standalone("/a/.b".into(), s);
        let b = BoxIdentity::standalone("/a-b".into(), s);
        assert_eq!(a.legacy_container_name(), b.legacy_container_name());
        assert_ne!(a.container_name(), b.container_name());
        assert!(a.container_name().starts_with("kanibako-ronin-b-"));
        assert_eq!(a.shell, Path::new("/a/.b/.kanibako/shell"));
        assert!(BoxName::parse(a.container_name().as_str()).is_ok());
    }
}
