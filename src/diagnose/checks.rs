//! The checks, planned purely: each turns the facts [`super::probe`] gathered into one
//! [`Check`], with the exact command that fixes what is wrong. Nothing here reads the
//! machine, so every verdict and every fix text is unit-tested.

use std::path::{Path, PathBuf};

use super::Check;
use crate::process::shell_quote;
use crate::runtime::limits::{self, Decision, HostLimits};

/// `upstream`: under 1 GB free at `$DATA` needs attention.
pub const MIN_FREE: u64 = 1 << 30;

fn q(p: &Path) -> String {
    shell_quote(&p.to_string_lossy())
}

/// The host's package manager, for the install commands a fix names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packages {
    Apt,
    Dnf,
    Pacman,
    Apk,
    Zypper,
    Brew,
}

impl Packages {
    /// The first package manager found, in this order.
    pub const PROGRAMS: [(&'static str, Packages); 6] = [
        ("apt-get", Packages::Apt),
        ("dnf", Packages::Dnf),
        ("pacman", Packages::Pacman),
        ("apk", Packages::Apk),
        ("zypper", Packages::Zypper),
        ("brew", Packages::Brew),
    ];

    /// The command that installs `what` (a generic name: `tmux`, `podman`, `uidmap`),
    /// with `sudo` unless we are root.
    pub fn install(pm: Option<Packages>, what: &str, root: bool) -> String {
        let sudo = if root { "" } else { "sudo " };
        let pkg = match (pm, what) {
            (Some(Packages::Dnf | Packages::Zypper), "uidmap") => "shadow-utils",
            (Some(Packages::Pacman), "uidmap") => "shadow",
            (Some(Packages::Apk), "uidmap") => "shadow-uidmap",
            _ => what,
        };
        match pm {
            Some(Packages::Apt) | None => format!("{sudo}apt-get install {pkg}"),
            Some(Packages::Dnf) => format!("{sudo}dnf install {pkg}"),
            Some(Packages::Pacman) => format!("{sudo}pacman -S {pkg}"),
            Some(Packages::Apk) => format!("{sudo}apk add {pkg}"),
            Some(Packages::Zypper) => format!("{sudo}zypper install {pkg}"),
            Some(Packages::Brew) => format!("brew install {pkg}"),
        }
    }
}

/// What reading `kanibako.yaml` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigState {
    /// Not written yet: the first command that needs it writes it.
    Missing,
    Parsed,
    Broken(String),
}

pub fn config(file: &Path, state: &ConfigState) -> Check {
    let label = "Config";
    match state {
        ConfigState::Missing => Check::skipped(
            "config",
            label,
            format!(
                "{} not written yet (the first `kanibako start` or `create` writes it)",
                file.display()
            ),
        ),
        ConfigState::Parsed => Check::ok("config", label, file.display().to_string()),
        ConfigState::Broken(e) => Check::fix(
            "config",
            label,
            e.clone(),
            format!("${{EDITOR:-vi}} {}", q(file)),
        ),
    }
}

/// The data directory: there (or to be made), writable, and with room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFacts {
    pub dir: PathBuf,
    /// The directory itself, or the nearest parent that exists when it does not yet.
    pub existing: PathBuf,
    pub writable: bool,
    /// Who owns `existing`, and who we are.
    pub owner: u32,
    pub uid: u32,
    /// Free and total bytes of its file system, if they could be read.
    pub space: Option<(u64, u64)>,
}

pub fn data_writable(d: &DataFacts) -> Check {
    let label = "Data directory";
    if d.writable {
        let what = if d.existing == d.dir {
            d.dir.display().to_string()
        } else {
            format!("{} (made on first use)", d.dir.display())
        };
        return Check::ok("data", label, what);
    }
    let fix = if d.owner == d.uid {
        format!("chmod u+rwx {}", q(&d.existing))
    } else {
        format!("sudo chown {} {}", d.uid, q(&d.existing))
    };
    Check::fix(
        "data",
        label,
        format!("{} is not writable", d.existing.display()),
        fix,
    )
}

pub fn disk(d: &DataFacts, engine: Option<&str>) -> Check {
    let label = "Storage";
    let Some((free, total)) = d.space else {
        return Check::skipped("disk", label, format!("cannot check ({})", d.dir.display()));
    };
    let gb = |b: u64| b as f64 / (1u64 << 30) as f64;
    let detail = format!(
        "{:.1} GB free of {:.0} GB in {}",
        gb(free),
        gb(total),
        d.dir.display()
    );
    if free >= MIN_FREE {
        Check::ok("disk", label, detail)
    } else {
        // Unused images are the usual bulk that can go without losing anything.
        Check::fix(
            "disk",
            label,
            detail,
            format!("{} image prune", engine.unwrap_or("podman")),
        )
    }
}

/// What finding the engine and asking it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineFacts {
    Missing {
        error: String,
        /// `KANIBAKO_DOCKER_CMD` names something that is not there.
        override_var: bool,
    },
    Found {
        name: &'static str,
        program: PathBuf,
        /// The `--version` answer, or why there is none.
        version: Result<String, String>,
        rootless: bool,
        /// The storage driver from `info`, or the error: the engine's own answer.
        driver: Result<String, String>,
    },
}

pub fn engine(e: &EngineFacts, pm: Option<Packages>, root: bool) -> Check {
    let label = "Container runtime";
    match e {
        EngineFacts::Missing {
            error,
            override_var: true,
        } => Check::fix(
            "engine",
            label,
            error.clone(),
            format!("unset {}", crate::host::vars::DOCKER_CMD),
        ),
        EngineFacts::Missing { .. } => Check::fix(
            "engine",
            label,
            "not found -- install podman (https://podman.io/) or Docker",
            Packages::install(pm, "podman", root),
        ),
        EngineFacts::Found {
            program,
            version: Ok(v),
            ..
        } => Check::ok("engine", label, format!("{} ({v})", program.display())),
        EngineFacts::Found {
            program,
            version: Err(err),
            ..
        } => Check::fix(
            "engine",
            label,
            format!("{} does not run: {err}", program.display()),
            format!("{} --version", q(program)),
        ),
    }
}

/// Whether the engine answers, and with what storage driver. `vfs` copies every
/// layer whole: it works, but slowly and with many times the disk.
pub fn storage_driver(e: &EngineFacts) -> Check {
    let label = "Storage driver";
    match e {
        EngineFacts::Missing { .. } => Check::skipped("driver", label, "no container runtime"),
        EngineFacts::Found {
            driver: Err(err),
            name,
            rootless,
            ..
        } => {
            let fix = match (*name, *rootless) {
                ("docker", _) => "sudo systemctl start docker".to_owned(),
                (_, true) => "podman system migrate".to_owned(),
                _ => "sudo podman info".to_owned(),
            };
            Check::fix(
                "driver",
                label,
                format!("the engine does not answer: {err}"),
                fix,
            )
        }
        EngineFacts::Found {
            driver: Ok(d),
            name,
            rootless,
            ..
        } if d == "vfs" => {
            let conf = if *rootless {
                "~/.config/containers/storage.conf"
            } else {
                "/etc/containers/storage.conf"
            };
            let fix = if *name == "docker" {
                "set \"storage-driver\": \"overlay2\" in /etc/docker/daemon.json, then sudo systemctl restart docker".to_owned()
            } else {
                format!(
                    "podman system reset --force && printf '[storage]\\ndriver = \"overlay\"\\n' >> {conf}   # removes every image and container"
                )
            };
            Check::fix(
                "driver",
                label,
                "vfs (every image layer is a full copy: slow, and many times the disk)",
                fix,
            )
        }
        EngineFacts::Found { driver: Ok(d), .. } if d.is_empty() => {
            Check::skipped("driver", label, "the engine did not name one")
        }
        EngineFacts::Found { driver: Ok(d), .. } => Check::ok("driver", label, d.clone()),
    }
}

/// What a rootless engine needs from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootlessFacts {
    pub user: String,
    pub subuid: bool,
    pub subgid: bool,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
}

pub fn rootless(r: Option<&RootlessFacts>, pm: Option<Packages>) -> Vec<Check> {
    let Some(r) = r else {
        return vec![Check::skipped(
            "rootless",
            "Rootless",
            "not a rootless engine",
        )];
    };
    let mut out = Vec::new();
    let missing: Vec<&str> = [("/etc/subuid", r.subuid), ("/etc/subgid", r.subgid)]
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(f, _)| *f)
        .collect();
    out.push(if missing.is_empty() {
        Check::ok(
            "subids",
            "Sub-ids",
            format!("{} has ranges in /etc/subuid and /etc/subgid", r.user),
        )
    } else {
        Check::fix(
            "subids",
            "Sub-ids",
            format!("{} has no range in {}", r.user, missing.join(" or ")),
            format!(
                "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {} && podman system migrate",
                shell_quote(&r.user)
            ),
        )
    });
    out.push(match (&r.newuidmap, &r.newgidmap) {
        (Some(u), Some(_)) => Check::ok("uidmap", "newuidmap", u.display().to_string()),
        _ => Check::fix(
            "uidmap",
            "newuidmap",
            "newuidmap/newgidmap not found (a rootless engine maps its sub-ids with them)",
            Packages::install(pm, "uidmap", false),
        ),
    });
    out
}

/// The host-limits check of [`limits`]: only rootful local podman is affected; `conf`
/// is where a fix goes when no file set the limits.
pub fn host_limits(seen: Option<(&HostLimits, &Decision)>, conf: &Path) -> Check {
    let label = "Host limits";
    let Some((host, d)) = seen else {
        return Check::skipped("limits", label, "only rootful podman is affected");
    };
    match d {
        Decision::Fits => Check::ok(
            "limits",
            label,
            format!(
                "containers start within the host's (nofile {}, nproc {})",
                host.nofile, host.nproc
            ),
        ),
        Decision::Pass(u) => Check::ok(
            "limits",
            label,
            format!(
                "podman's defaults exceed the host's, so runs get {}",
                u.iter()
                    .map(|u| format!("--ulimit {}", u.arg()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        Decision::Exceeds { .. } => {
            let (cause, fix) = limits::explain(d, *host, conf);
            Check::fix("limits", label, cause, fix)
        }
    }
}

/// The `/dev/net/tun` check of [`crate::runtime::tun`] (rootless podman's user-mode
/// network opens it for every container with a network).
pub fn tun(t: Option<&crate::runtime::tun::TunCheck>) -> Check {
    use crate::runtime::tun::{DEVICE, TunCheck};
    let label = "Network device";
    match t {
        None => Check::skipped("tun", label, "no container runtime"),
        Some(TunCheck::NotNeeded) => Check::skipped(
            "tun",
            label,
            format!("{DEVICE} is not needed (not rootless podman, or no network)"),
        ),
        Some(TunCheck::Usable) => Check::ok(
            "tun",
            label,
            format!("rootless podman can open {DEVICE} for its containers' network"),
        ),
        Some(TunCheck::Unusable { cause, fix }) => {
            Check::fix("tun", label, cause.clone(), fix.clone())
        }
    }
}

/// The rig boxes run on by default (the system's `box.image`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RigFacts {
    pub name: String,
    pub image: String,
    pub kind: crate::rig::Kind,
    pub present: bool,
    pub fresh: Fresh,
}

/// What the last freshness check (`$CACHE/digest-cache.json`) recorded; nothing here
/// asks a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// Not from a registry (a local or host-built rig).
    Local,
    NeverChecked,
    Current,
    Newer,
    CheckFailed(String),
}

pub fn rig(r: Result<&RigFacts, &str>) -> Vec<Check> {
    let label = "Rig";
    let r = match r {
        Ok(r) => r,
        Err(why) => {
            return vec![Check::skipped(
                "rig",
                label,
                format!("cannot check ({why})"),
            )];
        }
    };
    let mut out = Vec::new();
    let shown = if r.name == r.image {
        r.name.clone()
    } else {
        format!("{} ({})", r.name, r.image)
    };
    if r.present {
        out.push(Check::ok(
            "rig",
            label,
            format!("{shown}: available locally"),
        ));
    } else {
        let fix = match r.kind {
            crate::rig::Kind::Extended => "kanibako rig bootstrap".to_owned(),
            _ => format!("kanibako rig prep {}", shell_quote(&r.name)),
        };
        out.push(Check::fix(
            "rig",
            label,
            format!("{shown} is not available locally"),
            fix,
        ));
        return out;
    }
    let label = "Rig freshness";
    out.push(match &r.fresh {
        Fresh::Local => Check::skipped("rig_fresh", label, "a local rig: no registry to ask"),
        Fresh::NeverChecked => Check::skipped(
            "rig_fresh",
            label,
            "not checked yet (a launch checks once a day)",
        ),
        Fresh::Current => Check::ok("rig_fresh", label, "the newest the registry had"),
        Fresh::CheckFailed(e) => Check::skipped(
            "rig_fresh",
            label,
            format!("the last check could not ask the registry ({e})"),
        ),
        Fresh::Newer => Check::fix(
            "rig_fresh",
            label,
            format!("a newer {} is in the registry", r.image),
            format!("kanibako rig prep {} --force", shell_quote(&r.image)),
        ),
    });
    out
}

/// One real `run --rm` of the rig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunFacts {
    NotTried(String),
    Ran,
    Failed {
        code: i32,
        stderr: String,
    },
    /// runc refused the engine's limits ([`limits`]): the cause and the
    /// `containers.conf` line that fixes it.
    Limits {
        cause: String,
        fix: String,
    },
    TimedOut(u64),
    Error(String),
}

pub fn run(r: &RunFacts, image: &str, engine: &str) -> Check {
    let label = "Container run";
    let retry = format!("{engine} run --rm {} true", shell_quote(image));
    match r {
        RunFacts::NotTried(why) => Check::skipped("run", label, why.clone()),
        RunFacts::Ran => Check::ok(
            "run",
            label,
            format!("{image} runs (bash, tmux and git answer)"),
        ),
        RunFacts::Limits { cause, fix } => Check::fix("run", label, cause.clone(), fix.clone()),
        RunFacts::Failed { code, stderr } => {
            let first = stderr.lines().last().unwrap_or("").trim();
            let detail = if first.is_empty() {
                format!("{image} did not run (exit {code})")
            } else {
                format!("{image} did not run (exit {code}): {first}")
            };
            // 127 and friends: the rig lacks a program every box needs.
            let fix = if stderr.contains("not found") || *code == 127 {
                "kanibako rig bootstrap".to_owned()
            } else {
                retry
            };
            Check::fix("run", label, detail, fix)
        }
        RunFacts::TimedOut(secs) => Check::fix(
            "run",
            label,
            format!("{image} did not finish within {secs} s"),
            retry,
        ),
        RunFacts::Error(e) => Check::fix("run", label, e.clone(), retry),
    }
}

pub fn tmux(found: Option<&Path>, pm: Option<Packages>, root: bool) -> Check {
    match found {
        Some(p) => Check::ok("tmux", "tmux", p.display().to_string()),
        None => Check::fix(
            "tmux",
            "tmux",
            "not found: sessions cannot outlive their terminal (`persistence: auto` is ephemeral)",
            Packages::install(pm, "tmux", root),
        ),
    }
}

/// One agent and where it was found. An agent that is not installed needs no fix:
/// `kanibako shell` works without one.
pub fn agent(display: &str, found: Option<&Path>) -> Check {
    let label = format!("Agent: {display}");
    match found {
        Some(p) => Check::ok("agent", label, p.display().to_string()),
        None => Check::skipped(
            "agent",
            label,
            "not found (`kanibako shell` works without one)",
        ),
    }
}

/// A login file and its mode; only its owner may read it.
pub fn credential(path: &Path, mode: u32) -> Check {
    let label = "Credentials";
    if mode & 0o077 == 0 {
        Check::ok(
            "credentials",
            label,
            format!("{} (0{:o})", path.display(), mode & 0o777),
        )
    } else {
        Check::fix(
            "credentials",
            label,
            format!(
                "{} is mode 0{:o}: others can read the login",
                path.display(),
                mode & 0o777
            ),
            format!("chmod 600 {}", q(path)),
        )
    }
}

/// What one box's files showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoxFacts {
    pub name: String,
    /// A container marker no session holds, whose container the engine does not have.
    pub stale_marker: Option<PathBuf>,
    /// Whether the engine could be asked about the marker's container.
    pub engine_asked: bool,
    /// Links in the box's home that lead out of it.
    pub planted: Vec<PathBuf>,
    /// Whether the home could be walked (`None`: no home yet).
    pub home_walked: Option<Result<(), String>>,
    /// The box's login files and their modes.
    pub credentials: Vec<(PathBuf, u32)>,
}

pub fn stale_lock(b: &BoxFacts) -> Check {
    let label = format!("Lock of {}", b.name);
    match &b.stale_marker {
        Some(m) if b.engine_asked => Check::fix(
            "stale_lock",
            label,
            format!("{} names a container that no longer exists", m.display()),
            format!("rm {}", q(m)),
        ),
        Some(m) => Check::skipped(
            "stale_lock",
            label,
            format!("{} names a container; no engine to ask", m.display()),
        ),
        None => Check::ok("stale_lock", label, "no stale lock"),
    }
}

pub fn planted_links(b: &BoxFacts) -> Check {
    let label = format!("Home of {}", b.name);
    match (&b.home_walked, b.planted.as_slice()) {
        (None, _) => Check::skipped("planted_links", label, "no home yet"),
        (Some(Err(e)), _) => Check::skipped("planted_links", label, format!("cannot read: {e}")),
        (Some(Ok(())), []) => Check::ok("planted_links", label, "no link leads out of it"),
        (Some(Ok(())), links) => Check::fix(
            "planted_links",
            label,
            format!(
                "{} link(s) lead out of the home (a box may plant them to reach host files): {}",
                links.len(),
                links
                    .iter()
                    .map(|l| l.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "rm {}",
                links.iter().map(|l| q(l)).collect::<Vec<_>>().join(" ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Status;

    #[test]
    fn install_commands_follow_the_package_manager() {
        assert_eq!(
            Packages::install(Some(Packages::Apt), "tmux", false),
            "sudo apt-get install tmux"
        );
        assert_eq!(
            Packages::install(None, "tmux", true),
            "apt-get install tmux"
        );
        assert_eq!(
            Packages::install(Some(Packages::Dnf), "uidmap", false),
            "sudo dnf install shadow-utils"
        );
        assert_eq!(
            Packages::install(Some(Packages::Brew), "podman", true),
            "brew install podman"
        );
    }

    fn data(free: u64) -> DataFacts {
        DataFacts {
            dir: "/d/kanibako".into(),
            existing: "/d/kanibako".into(),
            writable: true,
            owner: 1000,
            uid: 1000,
            space: Some((free, 100 << 30)),
        }
    }

    #[test]
    fn under_a_gigabyte_free_needs_fixing() {
        let c = disk(&data(MIN_FREE - 1), Some("docker"));
        assert_eq!(c.status, Status::NeedsFix);
        assert_eq!(c.detail, "1.0 GB free of 100 GB in /d/kanibako");
        assert_eq!(c.fix.as_deref(), Some("docker image prune"));
        assert_eq!(disk(&data(MIN_FREE), None).status, Status::Ok);
        let mut d = data(0);
        d.space = None;
        assert_eq!(disk(&d, None).status, Status::Skipped);
    }

    #[test]
    fn an_unwritable_data_dir_is_chmod_or_chown() {
        let mut d = data(MIN_FREE);
        d.writable = false;
        assert_eq!(
            data_writable(&d).fix.as_deref(),
            Some("chmod u+rwx /d/kanibako")
        );
        d.owner = 0;
        assert_eq!(
            data_writable(&d).fix.as_deref(),
            Some("sudo chown 1000 /d/kanibako")
        );
    }

    #[test]
    fn a_readable_login_is_chmod_600() {
        let c = credential(Path::new("/h/.claude/.credentials.json"), 0o100644);
        assert_eq!(c.status, Status::NeedsFix);
        assert_eq!(
            c.fix.as_deref(),
            Some("chmod 600 /h/.claude/.credentials.json")
        );
        assert!(c.detail.contains("mode 0644"));
        assert_eq!(credential(Path::new("/x"), 0o100600).status, Status::Ok);
    }

    #[test]
    fn the_engine_and_its_driver() {
        let missing = EngineFacts::Missing {
            error: "No container runtime found.".into(),
            override_var: false,
        };
        assert_eq!(
            engine(&missing, Some(Packages::Apt), false).fix.as_deref(),
            Some("sudo apt-get install podman")
        );
        assert_eq!(storage_driver(&missing).status, Status::Skipped);
        let found = |driver: Result<&str, &str>| EngineFacts::Found {
            name: "podman",
            program: "/usr/bin/podman".into(),
            version: Ok("podman version 4.3.1".into()),
            rootless: true,
            driver: driver.map(Into::into).map_err(Into::into),
        };
        assert_eq!(
            engine(&found(Ok("overlay")), None, false).detail,
            "/usr/bin/podman (podman version 4.3.1)"
        );
        assert_eq!(storage_driver(&found(Ok("overlay"))).status, Status::Ok);
        let vfs = storage_driver(&found(Ok("vfs")));
        assert_eq!(vfs.status, Status::NeedsFix);
        assert!(
            vfs.fix
                .unwrap()
                .contains("~/.config/containers/storage.conf")
        );
        assert_eq!(
            storage_driver(&found(Err("cannot connect"))).fix.as_deref(),
            Some("podman system migrate")
        );
    }

    #[test]
    fn rootless_needs_subids_and_newuidmap() {
        let mut r = RootlessFacts {
            user: "kb".into(),
            subuid: true,
            subgid: false,
            newuidmap: None,
            newgidmap: None,
        };
        let c = rootless(Some(&r), Some(Packages::Apt));
        assert_eq!(c[0].detail, "kb has no range in /etc/subgid");
        assert!(
            c[0].fix
                .as_ref()
                .unwrap()
                .starts_with("sudo usermod --add-subuids")
        );
        assert_eq!(c[1].fix.as_deref(), Some("sudo apt-get install uidmap"));
        r.subgid = true;
        r.newuidmap = Some("/usr/bin/newuidmap".into());
        r.newgidmap = Some("/usr/bin/newgidmap".into());
        assert!(
            rootless(Some(&r), None)
                .iter()
                .all(|c| c.status == Status::Ok)
        );
        assert_eq!(rootless(None, None)[0].status, Status::Skipped);
    }

    #[test]
    fn limits_that_exceed_the_host_get_the_containers_conf_line() {
        let host = HostLimits {
            nofile: 524288,
            nproc: 32768,
        };
        let d = Decision::Exceeds {
            file: "/etc/containers/containers.conf".into(),
            name: "nofile".into(),
            hard: 1048576,
            host,
        };
        let c = host_limits(
            Some((&host, &d)),
            Path::new("/etc/containers/containers.conf"),
        );
        assert_eq!(c.status, Status::NeedsFix);
        assert_eq!(
            c.fix.as_deref(),
            Some(
                "put `default_ulimits = [\"nofile=524288:524288\", \"nproc=32768:32768\"]` under `[containers]` in /etc/containers/containers.conf"
            )
        );
        assert_eq!(host_limits(None, Path::new("/x")).status, Status::Skipped);
    }

    #[test]
    fn an_unusable_tun_device_gets_its_fix() {
        use crate::runtime::tun::TunCheck;
        let t = TunCheck::Unusable {
            cause: "cannot open /dev/net/tun".into(),
            fix: "sudo chmod 666 /dev/net/tun".into(),
        };
        let c = tun(Some(&t));
        assert_eq!(c.status, Status::NeedsFix);
        assert_eq!(c.fix.as_deref(), Some("sudo chmod 666 /dev/net/tun"));
        assert_eq!(tun(Some(&TunCheck::Usable)).status, Status::Ok);
        assert_eq!(tun(Some(&TunCheck::NotNeeded)).status, Status::Skipped);
        assert_eq!(tun(None).status, Status::Skipped);
    }

    #[test]
    fn a_missing_rig_is_prepped_and_a_stale_one_refreshed() {
        let mut r = RigFacts {
            name: "oci".into(),
            image: "ghcr.io/doctorjei/kanibako-oci:latest".into(),
            kind: crate::rig::Kind::Prefab,
            present: false,
            fresh: Fresh::Newer,
        };
        let c = rig(Ok(&r));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].fix.as_deref(), Some("kanibako rig prep oci"));
        r.present = true;
        let c = rig(Ok(&r));
        assert_eq!(
            c[1].fix.as_deref(),
            Some("kanibako rig prep ghcr.io/doctorjei/kanibako-oci:latest --force")
        );
        r.kind = crate::rig::Kind::Extended;
        r.present = false;
        assert_eq!(
            rig(Ok(&r))[0].fix.as_deref(),
            Some("kanibako rig bootstrap")
        );
    }

    #[test]
    fn box_files() {
        let mut b = BoxFacts {
            name: "demo".into(),
            stale_marker: Some("/d/boxes/demo/.container".into()),
            engine_asked: true,
            planted: vec!["/d/boxes/demo/shell/.bashrc".into()],
            home_walked: Some(Ok(())),
            credentials: vec![],
        };
        assert_eq!(
            stale_lock(&b).fix.as_deref(),
            Some("rm /d/boxes/demo/.container")
        );
        assert_eq!(
            planted_links(&b).fix.as_deref(),
            Some("rm /d/boxes/demo/shell/.bashrc")
        );
        b.engine_asked = false;
        assert_eq!(stale_lock(&b).status, Status::Skipped);
        b.planted.clear();
        assert_eq!(planted_links(&b).status, Status::Ok);
    }
}
