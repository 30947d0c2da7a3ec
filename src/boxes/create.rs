//! Creating boxes: registering a name, laying out metadata, the agent home skeleton and
//! the vault (spec: upstream-cli-and-data §6.3, §6.6, §5.5, §5.9).
//!
//! Nothing is left half-made: a default-mode box's metadata is built while the registry
//! lock is held and the name is recorded last; if any step fails the new metadata is
//! removed and `names.yaml` is untouched.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::BoxError;
use super::registry::{Registry, same_dir};
use super::resolve::{self, normalize};
// Where a box may not live is decided where boxes are found; creating one asks too.
pub use super::resolve::refused_workspace;
use super::{BoxIdentity, BoxName, Mode, ProjectSettings};
use crate::document::Document;
use crate::fsutil;
use crate::output;
use crate::paths::Paths;

/// What `create` was asked for.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    pub path: Option<String>,
    pub name: Option<String>,
    pub standalone: bool,
    pub image: Option<String>,
    pub no_vault: bool,
    pub distinct_auth: bool,
    pub allow_home: bool,
}

const BASHRC: &str = r#"# kanibako: box shell environment
[ -f /etc/bashrc ] && . /etc/bashrc
export PS1="${KANIBAKO_PS1:-(kanibako) \u@\h:\w\$ }"
# Source user init scripts
for _f in ~/.shell.d/*.sh; do [ -r "$_f" ] && . "$_f"; done
unset _f
"#;

const PROFILE: &str = "# kanibako: login profile\n[ -f ~/.bashrc ] && . ~/.bashrc\n";

/// `rw/` is the agent's writable share; `.versions/` holds its snapshots. Neither belongs
/// in the project's history.
const VAULT_GITIGNORE: &str = "rw/\n.versions/\n";

/// Write `contents` to `path` only if nothing (not even a dangling link) is there.
fn write_new(path: &Path, contents: &str) -> Result<(), BoxError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(mut f) => f
            .write_all(contents.as_bytes())
            .map_err(BoxError::io(format!("writing {}", path.display()))),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(BoxError::io(format!("creating {}", path.display()))(e)),
    }
}

fn mkdir(path: &Path) -> Result<(), BoxError> {
    fs::create_dir_all(path).map_err(BoxError::io(format!("creating {}", path.display())))
}

/// The agent home skeleton: `.bashrc`, `.profile` and `.shell.d/`, never overwriting.
/// Made without following anything at the home's path (a standalone box's home sits
/// in its workspace, where a repository or the box can put a link): the directory is
/// made by a `mkdir` that fails on a link, opened without following, and filled through
/// that open directory.
pub fn shell_skeleton(shell: &Path) -> std::io::Result<()> {
    if let Some(parent) = shell.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::create_dir(shell) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let home = super::home::SafeDir::open(shell).map_err(|e| {
        std::io::Error::other(format!(
            "{} is not a real directory (a symbolic link?): {e}",
            shell.display()
        ))
    })?;
    home.create_dir_all(Path::new(".shell.d"))?;
    home.write_new(std::ffi::OsStr::new(".bashrc"), BASHRC.as_bytes(), 0o644)?;
    home.write_new(std::ffi::OsStr::new(".profile"), PROFILE.as_bytes(), 0o644)?;
    Ok(())
}

/// The vault directories. One inside the workspace is made through the opened
/// workspace, so a `vault` link shipped in a repository is refused, not followed.
fn vault_dirs(b: &BoxIdentity) -> Result<(), BoxError> {
    let Some(v) = &b.vault else { return Ok(()) };
    let (Ok(ro), Ok(rw)) = (
        v.ro.strip_prefix(&b.workspace),
        v.rw.strip_prefix(&b.workspace),
    ) else {
        mkdir(&v.ro)?;
        mkdir(&v.rw)?;
        if let Some(parent) = v.rw.parent() {
            write_new(&parent.join(".gitignore"), VAULT_GITIGNORE)?;
        }
        return Ok(());
    };
    let err = |e: std::io::Error| {
        BoxError::io(format!(
            "creating the vault in {} (is `vault` a symbolic link?)",
            b.workspace.display()
        ))(e)
    };
    let ws = super::home::SafeDir::open(&b.workspace).map_err(err)?;
    ws.create_dir_all(ro).map_err(err)?;
    ws.create_dir_all(rw).map_err(err)?;
    // No file of ours in the project (a `vault/.gitignore` would itself show in `git
    // status`): the box's share-rw and snapshots are kept out of git by the
    // repository's own, local, exclude file instead.
    if let Some(vault) = rw.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(e) = git_exclude(&b.workspace, vault)
    {
        output::warn(format_args!(
            "could not keep the vault out of git status ({}/.git/info/exclude): {e}",
            b.workspace.display()
        ));
    }
    Ok(())
}

/// The lines that keep a vault at `vault` (relative to the workspace) out of git.
fn exclude_lines(vault: &Path) -> String {
    let v = vault.to_string_lossy();
    format!("# kanibako: the box's vault share-rw and its snapshots\n/{v}/rw/\n/{v}/.versions/\n")
}

/// Append [`exclude_lines`] to `<workspace>/.git/info/exclude` when the workspace is a
/// git repository (`.git` a real directory) and they are not there yet. Every step is
/// taken without following a link: the box can write the workspace, `.git` included.
fn git_exclude(workspace: &Path, vault: &Path) -> std::io::Result<()> {
    use crate::fstree::Dir;
    use std::ffi::OsStr;
    let Some(git) = Dir::open(workspace)?.open_dir(OsStr::new(".git"))? else {
        return Ok(());
    };
    let info = git.ensure_dir(OsStr::new("info"), 0o755)?;
    let lines = exclude_lines(vault);
    let present = match info.open_file(OsStr::new("exclude"))? {
        Some(f) => {
            let text = fsutil::read_capped(f, &info.path().join("exclude"), 1 << 20)?;
            String::from_utf8_lossy(&text).contains(lines.as_str())
        }
        None => false,
    };
    if present {
        return Ok(());
    }
    let mut f = info.append_file(OsStr::new("exclude"), 0o644)?;
    f.write_all(lines.as_bytes())
}

/// `project.yaml` in the layout the Python tool reads. The `resolved:` paths are written
/// for it; kanibako itself derives them.
fn project_document(
    paths: &Paths,
    b: &BoxIdentity,
    image: Option<&str>,
) -> Result<Document, BoxError> {
    let mut doc = Document::empty(&b.project_file());
    let s = |p: &Path| p.to_string_lossy().into_owned();
    doc.set(&["project", "mode"], b.mode.as_str().into())?;
    doc.set(&["project", "layout"], b.layout.as_str().into())?;
    doc.set(&["project", "enable_vault"], b.vault.is_some().into())?;
    doc.set(&["project", "group_auth"], b.group_auth.into())?;
    if let Some(n) = &b.name {
        doc.set(&["project", "name"], n.as_str().into())?;
    }
    let vault_dir = match b.layout {
        super::Layout::Robust if b.mode == Mode::Default => b.metadata.join("vault"),
        _ => b.workspace.join("vault"),
    };
    // As upstream records them (the Python tool mounts from the recorded ones).
    let (global, local) = match b.shared_dirs(&paths.data, "shared") {
        None => (String::new(), String::new()),
        Some(d) => (s(&d.global), s(&d.local)),
    };
    for (key, value) in [
        ("workspace", s(&b.workspace)),
        ("shell", s(&b.shell)),
        ("vault_ro", s(&vault_dir.join("ro"))),
        ("vault_rw", s(&vault_dir.join("rw"))),
        ("metadata", s(&b.metadata)),
        ("project_hash", b.hash.clone()),
        ("global_shared", global),
        ("local_shared", local),
    ] {
        doc.set(&["resolved", key], value.into())?;
    }
    if let Some(image) = image {
        doc.set(&["box", "image"], image.into())?;
    }
    Ok(doc)
}

/// The absolute, symlink-free spelling of a directory that may not exist yet.
pub fn target_dir(cwd: &Path, path: Option<&str>) -> Result<PathBuf, BoxError> {
    let raw = normalize(&cwd.join(path.unwrap_or(".")));
    if raw.as_os_str().len() >= nix::libc::PATH_MAX as usize {
        return Err(BoxError::PathTooLong(raw.as_os_str().len()));
    }
    if raw.exists() {
        let dir = raw
            .canonicalize()
            .map_err(BoxError::io(format!("resolving {}", raw.display())))?;
        if !dir.is_dir() {
            return Err(BoxError::NotADirectory(dir));
        }
        return Ok(dir);
    }
    // Canonicalise the part that exists, keep the rest as given.
    let mut existing = raw.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name().unwrap_or_default().to_owned());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let mut dir = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_owned());
    dir.extend(rest.iter().rev());
    Ok(dir)
}

pub fn is_home(paths: &Paths, dir: &Path) -> bool {
    same_dir(dir, paths.home())
}

/// Pick a free name: the explicit one (taken = error), or the slug of the directory's
/// basename with 2, 3, … appended while taken. A `boxes/<name>` directory left behind by
/// an earlier box counts as taken unless it recorded this very directory, in which case
/// registering again brings that box's home back.
pub fn choose_name(
    paths: &Paths,
    reg: &Registry,
    dir: &Path,
    explicit: Option<BoxName>,
) -> Result<BoxName, BoxError> {
    if let Some(name) = explicit {
        if let Some((section, path)) = reg.lookup(name.as_str()) {
            return Err(BoxError::NameTaken {
                name: name.to_string(),
                section,
                path: path.to_owned(),
            });
        }
        return Ok(name);
    }
    let base = BoxName::slug(&dir.file_name().unwrap_or_default().to_string_lossy());
    let mut n = 1;
    loop {
        let candidate = base.numbered(n);
        let free_in_registry = reg.lookup(candidate.as_str()).is_none();
        if free_in_registry && leftover_fits(paths, &candidate, dir) {
            return Ok(candidate);
        }
        n += 1;
    }
}

fn leftover_fits(paths: &Paths, name: &BoxName, dir: &Path) -> bool {
    let meta = paths.boxes.join(name.as_str());
    if !meta.exists() {
        return true;
    }
    let recorded = Document::load(&meta.join(super::PROJECT_FILE))
        .ok()
        .and_then(|d| d.get_str(&["resolved", "workspace"]).ok().flatten());
    recorded.is_some_and(|w| same_dir(Path::new(&w), dir))
}

/// Create a box as `kanibako create` does. Returns the new box and whether its metadata
/// was freshly made (false when an earlier box's data was re-adopted).
pub fn create(
    paths: &Paths,
    cwd: &Path,
    req: &CreateRequest,
) -> Result<(BoxIdentity, bool), BoxError> {
    let dir = target_dir(cwd, req.path.as_deref())?;
    resolve::utf8(&dir)?;
    if let Some(refused) = refused_workspace(paths, &dir) {
        return Err(refused);
    }
    if req.standalone {
        if req.image.is_some() {
            return Err(BoxError::StandaloneImage);
        }
        return create_standalone(paths, &dir, req).map(|b| (b, true));
    }
    if is_home(paths, &dir) {
        return Err(BoxError::HomeRefused);
    }
    let explicit = req.name.as_deref().map(BoxName::parse).transpose()?;
    if dir.exists() {
        let registry = Registry::load(&paths.names_file())?;
        if registry.project_for_path(&dir).is_some() || resolve::standalone_at(&dir)?.is_some() {
            return Err(BoxError::AlreadyInitialized(dir));
        }
    }
    mkdir(&dir)?;
    let settings = ProjectSettings {
        group_auth: !req.distinct_auth,
        enable_vault: !req.no_vault,
        ..ProjectSettings::default()
    };
    register_new(paths, &dir, explicit, settings, req.image.as_deref())
}

/// Register `dir` under a new name and lay out its metadata (the implicit creation of
/// `start`/`shell` uses this too).
pub fn register_new(
    paths: &Paths,
    dir: &Path,
    explicit: Option<BoxName>,
    settings: ProjectSettings,
    image: Option<&str>,
) -> Result<(BoxIdentity, bool), BoxError> {
    Registry::update(paths, |reg| {
        // Checked again under the lock: another process may have registered it meanwhile.
        if reg.project_for_path(dir).is_some() {
            return Err(BoxError::AlreadyInitialized(dir.to_owned()));
        }
        let name = choose_name(paths, reg, dir, explicit)?;
        let identity =
            BoxIdentity::default_mode(name.clone(), dir.to_owned(), &paths.boxes, settings);
        let fresh = !identity.metadata.exists();
        if let Err(e) = lay_out(paths, &identity, image, fresh) {
            if fresh {
                let _ = fs::remove_dir_all(&identity.metadata);
            }
            return Err(e);
        }
        reg.projects.insert(name.to_string(), dir.to_owned());
        Ok(((identity, fresh), true))
    })
}

fn lay_out(
    paths: &Paths,
    b: &BoxIdentity,
    image: Option<&str>,
    fresh: bool,
) -> Result<(), BoxError> {
    mkdir(&b.metadata)?;
    shell_skeleton(&b.shell)?;
    vault_dirs(b)?;
    if fresh || !b.project_file().exists() {
        project_document(paths, b, image)?.save()?;
    }
    Ok(())
}

fn create_standalone(
    paths: &Paths,
    dir: &Path,
    req: &CreateRequest,
) -> Result<BoxIdentity, BoxError> {
    if is_home(paths, dir) && !req.allow_home {
        return Err(BoxError::HomeStandalone);
    }
    if dir.exists() && resolve::standalone_at(dir)?.is_some() {
        return Err(BoxError::AlreadyInitialized(dir.to_owned()));
    }
    mkdir(dir)?;
    let settings = ProjectSettings {
        mode: Some(Mode::Standalone),
        group_auth: !req.distinct_auth,
        enable_vault: !req.no_vault,
        ..ProjectSettings::default()
    };
    let b = BoxIdentity::standalone(dir.to_owned(), settings);
    mkdir(&b.metadata)?;
    shell_skeleton(&b.shell)?;
    vault_dirs(&b)?;
    project_document(paths, &b, req.image.as_deref())?.save()?;
    if req.distinct_auth {
        // Its project.yaml is the box's to rewrite: the choice is also kept where the
        // box cannot reach, so it cannot switch itself to the host's login.
        let record = super::distinct_auth_record(paths, &b.hash);
        fsutil::atomic_write(&record, b"", fsutil::MODE_CONFIG).map_err(|e| {
            BoxError::io(format!("writing {}", record.display()))(std::io::Error::other(e))
        })?;
    }
    ignore_metadata_in_git(dir)?;
    // Made here by the user: usable from its subdirectories without asking.
    resolve::adopt(paths, &b)?;
    Ok(b)
}

/// Append `.kanibako/` to the project's `.gitignore` unless it is listed already. A
/// `.gitignore` that is a symbolic link (a cloned repository can ship one pointing
/// anywhere) is left alone.
pub fn ignore_metadata_in_git(dir: &Path) -> Result<(), BoxError> {
    let file = dir.join(".gitignore");
    if fsutil::is_symlink(&file) {
        output::warn(format_args!(
            "{} is a symbolic link; not adding .kanibako/ to it",
            file.display()
        ));
        return Ok(());
    }
    let mut text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(BoxError::io(format!("reading {}", file.display()))(e)),
    };
    if text
        .lines()
        .any(|l| matches!(l.trim(), ".kanibako/" | ".kanibako" | "/.kanibako/"))
    {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(".kanibako/\n");
    fsutil::atomic_write(&file, text.as_bytes(), fsutil::MODE_CONFIG)?;
    Ok(())
}

/// The one-time-setup lines a new box prints (on stderr: they are chatter, not data).
pub fn announce(b: &BoxIdentity) {
    output::say(format_args!(
        "[One Time Setup] Initializing kanibako in {}... done.",
        b.workspace.display()
    ));
    if let Some(n) = &b.name {
        output::say(format_args!("Project name: {n}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_is_never_made_through_a_link() {
        let t = tempfile::tempdir().unwrap();
        let shell = t.path().join("project/.shell");
        shell_skeleton(&shell).unwrap();
        assert!(shell.join(".shell.d").is_dir() && shell.join(".bashrc").is_file());
        // the box swaps its deleted home for a link to a host directory
        let victim = t.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::remove_dir_all(&shell).unwrap();
        std::os::unix::fs::symlink(&victim, &shell).unwrap();
        assert!(shell_skeleton(&shell).is_err());
        assert_eq!(
            fs::read_dir(&victim).unwrap().count(),
            0,
            "nothing written there"
        );
    }
}
