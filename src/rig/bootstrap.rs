//! `rig bootstrap`: a working rig made from the host's own programs and the shared
//! libraries they load, imported as a `FROM scratch`-like image — in seconds, with no
//! registry. For machines (and test machines) that cannot pull the default rig.
//!
//! What goes in is planned first ([`Plan`]: paths and where their content comes from),
//! then written as one tar stream that the engine imports.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::error::UserError;
use crate::host::HostEnv;
use crate::process::{Executor, Invocation};
use crate::runtime::spec::{BOX_GID, BOX_UID, Network, RunMode, RunSpec, UserMapping};

/// Programs a rig needs (the image contract) and that make a box useful; the first
/// four are required.
const REQUIRED: &[&str] = &["bash", "sh", "tmux", "git"];
const USEFUL: &[&str] = &[
    "env", "id", "ls", "cat", "cp", "mv", "rm", "mkdir", "rmdir", "ln", "chmod", "chown", "touch",
    "echo", "printf", "sleep", "head", "tail", "wc", "sort", "uniq", "tr", "cut", "tee", "date",
    "basename", "dirname", "readlink", "realpath", "stat", "du", "df", "uname", "whoami", "seq",
    "true", "false", "test", "[", "mktemp", "nproc", "expr", "yes", "pwd", "grep", "sed", "find",
    "xargs", "tar", "gzip", "gunzip", "diff", "cmp", "less", "ps", "kill", "which", "hostname",
    "timeout", "nice", "awk", "mawk", "patch", "make", "ssh",
];

/// Terminal descriptions tmux and shells look for.
const TERMINFO: &[&str] = &[
    "x/xterm",
    "x/xterm-256color",
    "x/xterm-color",
    "s/screen",
    "s/screen-256color",
    "t/tmux",
    "t/tmux-256color",
    "l/linux",
    "v/vt100",
    "v/vt220",
    "d/dumb",
];

/// One entry of the rootfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Dir {
        mode: u32,
        owner: u32,
    },
    /// A host file's content.
    Copy {
        from: PathBuf,
        mode: u32,
    },
    Text {
        text: String,
        mode: u32,
    },
    Symlink {
        to: PathBuf,
    },
}

/// Rootfs path (relative, no leading `/`) → entry.
#[derive(Debug, Default)]
pub struct Plan {
    pub items: BTreeMap<PathBuf, Item>,
    /// (device, inode) of each copied file → where it went: hard links (git keeps a
    /// hundred names for one binary) become links instead of a hundred copies.
    copied: BTreeMap<(u64, u64), PathBuf>,
}

fn rel(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// A host path with its directory's symlinks resolved (`/lib/x/libc.so.6` →
/// `/usr/lib/x/libc.so.6` on a merged-/usr host) but its last component kept.
fn place(p: &Path) -> PathBuf {
    match (
        p.parent().and_then(|d| d.canonicalize().ok()),
        p.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => p.to_owned(),
    }
}

fn is_elf(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"\x7fELF")
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map_or(0o644, |m| m.permissions().mode() & 0o7777)
}

/// The libraries `ldd` lists for an ELF file: `name => /path (…)` and a bare
/// `/lib64/ld-linux…` loader line.
pub fn parse_ldd(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

impl Plan {
    fn dir(&mut self, p: &str, mode: u32, owner: u32) {
        self.items
            .insert(PathBuf::from(p), Item::Dir { mode, owner });
    }

    fn text(&mut self, p: &str, text: &str, mode: u32) {
        self.items.insert(
            PathBuf::from(p),
            Item::Text {
                text: text.to_owned(),
                mode,
            },
        );
    }

    /// Add a host file (following links for its content) and the parent directories.
    fn copy(&mut self, at: &Path, from: &Path) {
        use std::os::unix::fs::MetadataExt;
        let at = rel(at);
        if let Ok(m) = std::fs::metadata(from) {
            let id = (m.dev(), m.ino());
            match self.copied.get(&id) {
                Some(first) if *first != at => {
                    let to = Path::new("/").join(first);
                    self.items.insert(at, Item::Symlink { to });
                    return;
                }
                Some(_) => {}
                None => {
                    self.copied.insert(id, at.clone());
                }
            }
        }
        let mut parent = at.parent();
        while let Some(d) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.items.entry(d.to_owned()).or_insert(Item::Dir {
                mode: 0o755,
                owner: 0,
            });
            parent = d.parent();
        }
        self.items.insert(
            at,
            Item::Copy {
                from: from.to_owned(),
                mode: mode_of(from),
            },
        );
    }

    fn link(&mut self, at: &Path, to: &Path) {
        self.items
            .insert(rel(at), Item::Symlink { to: to.to_owned() });
    }

    /// Copy a host directory tree (links kept as links).
    fn tree(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_symlink() => {
                    if let Ok(to) = std::fs::read_link(&p) {
                        self.link(&p, &to);
                    }
                }
                Ok(t) if t.is_dir() => {
                    self.items.insert(
                        rel(&p),
                        Item::Dir {
                            mode: mode_of(&p),
                            owner: 0,
                        },
                    );
                    self.tree(&p);
                }
                Ok(t) if t.is_file() => self.copy(&p, &p),
                _ => {}
            }
        }
    }

    /// Every ELF file the plan copies.
    fn elves(&self) -> Vec<PathBuf> {
        self.items
            .values()
            .filter_map(|i| match i {
                Item::Copy { from, .. } if is_elf(from) => Some(from.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Plan a rig from this host's programs.
pub fn plan(host: &HostEnv, exec: &dyn Executor, name: &str) -> Result<Plan> {
    let mut p = Plan::default();
    // a merged-/usr host: /bin → usr/bin and friends
    for top in ["bin", "sbin", "lib", "lib64"] {
        let host_path = Path::new("/").join(top);
        if let Ok(to) = std::fs::read_link(&host_path) {
            p.link(&host_path, &to);
        }
    }
    for (d, mode, owner) in [
        ("tmp", 0o1777, 0),
        ("var/tmp", 0o1777, 0),
        ("root", 0o700, 0),
        ("proc", 0o755, 0),
        ("sys", 0o755, 0),
        ("dev", 0o755, 0),
        ("run", 0o755, 0),
        ("etc", 0o755, 0),
        ("usr/local/bin", 0o755, 0),
        ("home", 0o755, 0),
        ("home/agent", 0o755, 1000),
        ("home/agent/.local", 0o755, 1000),
        ("home/agent/.local/bin", 0o755, 1000),
        ("home/agent/workspace", 0o755, 1000),
    ] {
        p.dir(d, mode, owner);
    }
    let mut missing = Vec::new();
    for prog in REQUIRED.iter().chain(USEFUL) {
        let Some(found) = host.which(prog) else {
            if REQUIRED.contains(prog) {
                missing.push(*prog);
            }
            continue;
        };
        let Ok(real) = found.canonicalize() else {
            continue;
        };
        p.copy(&real, &real);
        let at = place(&found);
        if at != real {
            p.link(&at, &real);
        }
    }
    if !missing.is_empty() {
        bail!(
            UserError::new(format!(
                "cannot build a rig from this host: {} not found on PATH",
                missing.join(", ")
            ))
            .hint("install them on the host first (Debian: apt-get install bash tmux git)")
        );
    }
    // git's helpers and templates live beside it
    if let Some(git) = host.which("git") {
        let out = exec.output(&Invocation::new(&git).arg("--exec-path"))?;
        let exec_path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if exec_path.is_dir() {
            p.tree(&exec_path);
            if let Some(prefix) = exec_path.parent().and_then(Path::parent) {
                let templates = prefix.join("share/git-core/templates");
                if templates.is_dir() {
                    p.tree(&templates);
                }
            }
        }
    }
    for dir in ["/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"] {
        p.tree(Path::new(dir));
    }
    for base in ["/usr/lib/terminfo", "/usr/share/terminfo", "/lib/terminfo"] {
        for t in TERMINFO {
            let f = place(&Path::new(base).join(t));
            if f.is_file() {
                p.copy(&f, &f);
            }
        }
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certs.is_file() {
        p.copy(certs, certs);
    }
    // shared libraries, to a fixed point (a library's own dependencies are listed by
    // ldd on the program already, but helpers under git's exec path bring their own)
    let ldd = host
        .which("ldd")
        .context("ldd not found on PATH (Debian: libc-bin)")?;
    let mut done = std::collections::BTreeSet::new();
    loop {
        let todo: Vec<PathBuf> = p
            .elves()
            .into_iter()
            .filter(|e| !done.contains(e))
            .collect();
        if todo.is_empty() {
            break;
        }
        for elf in todo {
            let out = exec.output(&Invocation::new(&ldd).arg(&elf))?;
            for lib in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
                if let Ok(real) = lib.canonicalize() {
                    p.copy(&place(&lib), &real);
                }
            }
            done.insert(elf);
        }
    }
    p.text(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nagent:x:1000:1000:agent:/home/agent:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        0o644,
    );
    p.text(
        "etc/group",
        "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n",
        0o644,
    );
    p.text(
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
        0o644,
    );
    p.text("etc/hosts", "127.0.0.1 localhost\n", 0o644);
    p.text("etc/resolv.conf", "", 0o644);
    p.text(
        "etc/kanibako/rig.yaml",
        &format!("name: {name}\nkind: extended\nreproducible: true\nsource: host\n"),
        0o644,
    );
    Ok(p)
}

/// Write the plan as a tar (ownership root except the agent's home, fixed mtimes).
pub fn write_tar(plan: &Plan, out: &Path) -> Result<u64> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut tar = tar::Builder::new(file);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut bytes = 0u64;
    for (path, item) in &plan.items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match item {
            Item::Dir { mode, owner } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_uid(u64::from(*owner));
                h.set_gid(u64::from(*owner));
                h.set_size(0);
                tar.append_data(&mut h, path, std::io::empty())?;
            }
            Item::Copy { from, mode } => {
                let data =
                    std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                bytes += data.len() as u64;
                tar.append_data(&mut h, path, data.as_slice())?;
            }
            Item::Text { text, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(text.len() as u64);
                tar.append_data(&mut h, path, text.as_bytes())?;
            }
            Item::Symlink { to } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, path, to)?;
            }
        }
    }
    tar.finish()?;
    Ok(bytes)
}

/// The check a freshly imported rig must pass: the programs every box needs run, as the
/// box's user, without a network.
pub fn check_spec(name: &str, image: &str) -> RunSpec {
    let mut spec = RunSpec::job(
        "rig-check",
        format!("kanibako-check-{name}-{}", std::process::id()),
        image,
        RunMode::Batch,
        UserMapping::User {
            uid: BOX_UID,
            gid: BOX_GID,
        },
    );
    spec.network = Network::None;
    spec.command = ["/bin/sh", "-c", "bash -c true && tmux -V && git --version"]
        .map(Into::into)
        .to_vec();
    spec
}

/// The image config a bootstrapped rig gets on import.
pub fn changes(name: &str) -> Vec<String> {
    vec![
        "ENV LANG=C.UTF-8".into(),
        "ENV PATH=/home/agent/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "WORKDIR /home/agent/workspace".into(),
        "CMD [\"/bin/bash\"]".into(),
        format!("LABEL io.kanibako.rig={name}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_runs_offline_as_the_box_user() {
        let args: Vec<String> = check_spec("host", "localhost/kanibako-rig-host:latest")
            .to_args(crate::runtime::EngineKind::Docker, None, None)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(
            line.starts_with("run --pull=never --rm --init --network=none --user 1000:1000 --label io.kanibako.role=rig-check "),
            "{line}"
        );
        assert!(
            line.ends_with(" localhost/kanibako-rig-host:latest /bin/sh -c bash -c true && tmux -V && git --version"),
            "{line}"
        );
    }

    #[test]
    fn ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x7f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibgone.so => not found\n";
        assert_eq!(
            parse_ldd(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn a_plan_from_this_host_has_the_contract() {
        let host = HostEnv::for_test(Path::new("/"), &[("PATH", "/usr/local/bin:/usr/bin:/bin")]);
        let Ok(p) = plan(&host, &crate::process::SystemExecutor, "host") else {
            return; // a host without bash/tmux/git cannot be planned from
        };
        for want in ["etc/passwd", "home/agent", "tmp"] {
            assert!(p.items.contains_key(Path::new(want)), "{want}");
        }
        assert!(matches!(
            p.items[Path::new("home/agent")],
            Item::Dir { owner: 1000, .. }
        ));
        let has = |name: &str| {
            p.items
                .keys()
                .any(|k| k.file_name().is_some_and(|f| f == name))
        };
        for prog in ["bash", "tmux", "git", "libc.so.6"] {
            assert!(has(prog), "{prog}");
        }
        let t = tempfile::tempdir().unwrap();
        let bytes = write_tar(&p, &t.path().join("rootfs.tar")).unwrap();
        assert!(bytes > 1_000_000);
    }
}
