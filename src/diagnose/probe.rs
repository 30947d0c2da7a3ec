//! The effect layer of the checks: gathers the facts [`super::checks`] judges, by
//! reading files, metadata and the engine's answers. It never writes: not the config
//! (a first run's initialisation is skipped), not a stale marker, not a cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::checks::{
    BoxFacts, ConfigState, DataFacts, EngineFacts, Fresh, Packages, RigFacts, RootlessFacts,
    RunFacts,
};
use crate::boxes::BoxIdentity;
use crate::context::Context;
use crate::document::Document;
use crate::host::HostEnv;
use crate::paths::{Bases, Paths};
use crate::process::Executor;
use crate::runtime::{self, Runtime, RuntimeError};

/// How long the one real `run` of the rig may take (a cold start of a big image on a
/// slow disk included).
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A [`Context`] built without the start-up work ([`Context::load`] migrates, writes
/// a first run's config and makes directories): paths resolve from what is there. A
/// config that does not parse is reported and the defaults are used instead.
pub fn context(host: &HostEnv, exec: Arc<dyn Executor>) -> Result<(Context, ConfigState), String> {
    let bases = Bases::from_host(host).map_err(|e| e.to_string())?;
    let file = bases.config_file();
    let (config, state) = match Document::load_following(&file) {
        Ok(doc) if file.exists() => (doc, ConfigState::Parsed),
        Ok(doc) => (doc, ConfigState::Missing),
        Err(e) => (Document::empty(&file), ConfigState::Broken(e.to_string())),
    };
    let values = config
        .get_fields(&["system", "path"])
        .unwrap_or_default()
        .into_iter()
        .collect();
    let (paths, config, state) = match Paths::resolve(host, bases.clone(), &values) {
        Ok(p) => (p, config, state),
        Err(e) => (
            Paths::resolve(host, bases, &Default::default()).map_err(|e| e.to_string())?,
            Document::empty(&file),
            ConfigState::Broken(e.to_string()),
        ),
    };
    Ok((
        Context {
            host: host.clone(),
            paths,
            config,
            exec,
        },
        state,
    ))
}

pub fn package_manager(host: &HostEnv) -> Option<Packages> {
    Packages::PROGRAMS
        .iter()
        .find(|(prog, _)| host.which(prog).is_some())
        .map(|(_, pm)| *pm)
}

pub fn data(paths: &Paths) -> DataFacts {
    let dir = paths.data.clone();
    let existing = dir
        .ancestors()
        .find(|p| std::fs::symlink_metadata(p).is_ok())
        .unwrap_or(Path::new("/"))
        .to_owned();
    let writable = nix::unistd::access(
        &existing,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok();
    let owner = std::fs::metadata(&existing).map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    // The block counts' C types differ between platforms (not always 64-bit).
    #[allow(clippy::unnecessary_cast)]
    let space = nix::sys::statvfs::statvfs(&existing).ok().map(|s| {
        let frag = s.fragment_size() as u64;
        (s.blocks_available() as u64 * frag, s.blocks() as u64 * frag)
    });
    DataFacts {
        dir,
        existing,
        writable,
        owner,
        uid: paths.uid(),
        space,
    }
}

/// Find the engine and ask it its version and storage driver (two calls; the second
/// is the first that needs the engine itself to answer).
pub fn engine(cx: &Context) -> (EngineFacts, Option<Runtime>) {
    engine_asking(cx, true)
}

/// [`engine`]; without `info` the driver is not asked (`info` takes a podman
/// hundreds of milliseconds: `system info` only shows the version).
pub fn engine_asking(cx: &Context, info: bool) -> (EngineFacts, Option<Runtime>) {
    let rt = match cx.runtime() {
        Ok(rt) => rt,
        Err(e) => {
            return (
                EngineFacts::Missing {
                    override_var: matches!(e, RuntimeError::OverrideMissing(_)),
                    error: e.to_string(),
                },
                None,
            );
        }
    };
    let version = rt
        .version()
        .map(|v| format!("{} version {}.{}.{}", rt.engine.kind.name(), v.0, v.1, v.2))
        .map_err(|e| e.to_string());
    let driver = if !info {
        Err("not asked".into())
    } else if version.is_ok() {
        rt.storage_driver().map_err(|e| first_line(&e.to_string()))
    } else {
        Err("the engine does not run".into())
    };
    (
        EngineFacts::Found {
            name: rt.engine.kind.name(),
            program: rt.engine.program.clone(),
            version,
            rootless: rt.engine.rootless,
            driver,
        },
        Some(rt),
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}

/// Whether the engine answered `info` (nothing else is worth asking it then).
pub fn answers(e: &EngineFacts) -> bool {
    matches!(e, EngineFacts::Found { driver: Ok(_), .. })
}

fn user_name(host: &HostEnv) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(host.uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| host.var_str(crate::host::vars::USER).map(str::to_owned))
        .unwrap_or_else(|| host.uid.to_string())
}

/// The sub-id ranges and mapping helpers a rootless engine needs; `None` when the
/// engine is not rootless podman (rootless docker brings its own setup).
pub fn rootless(host: &HostEnv, rt: Option<&Runtime>) -> Option<RootlessFacts> {
    let rt = rt?;
    if !(rt.engine.rootless && rt.engine.kind == runtime::EngineKind::Podman) {
        return None;
    }
    let user = user_name(host);
    let has = |file: &str| {
        std::fs::read_to_string(file).is_ok_and(|t| {
            t.lines().any(|l| {
                let who = l.split(':').next().unwrap_or("");
                who == user || who == host.uid.to_string()
            })
        })
    };
    // The helpers are looked for where distributions install them, not only on PATH.
    let find = |prog: &str| {
        host.which(prog).or_else(|| {
            ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(prog))
                .find(|p| p.is_file())
        })
    };
    Some(RootlessFacts {
        subuid: has("/etc/subuid"),
        subgid: has("/etc/subgid"),
        newuidmap: find("newuidmap"),
        newgidmap: find("newgidmap"),
        user,
    })
}

/// The system's rig (`box.image` at the system level), and whether it is local.
pub fn rig(cx: &Context, rt: Option<&Runtime>, engine_answers: bool) -> Result<RigFacts, String> {
    let rt = match rt {
        Some(rt) if engine_answers => rt,
        _ => return Err("no container runtime".into()),
    };
    let name = cx
        .stack(None, None)
        .and_then(|s| s.image())
        .map_err(|e| e.to_string())?;
    rig_named(cx, rt, &name)
}

/// The rig `name` as a launch would resolve it, and whether it is local.
pub fn rig_named(cx: &Context, rt: &Runtime, name: &str) -> Result<RigFacts, String> {
    let rigs =
        crate::rig::registry::Rigs::load(&cx.paths.rigs_file()).map_err(|e| e.to_string())?;
    let templates = crate::rig::template::names(&cx.paths.rig_templates());
    let configured = cx
        .stack(None, None)
        .and_then(|s| s.image())
        .unwrap_or_else(|_| name.to_owned());
    let r = crate::rig::resolve(name, &rigs, &templates, &configured, &|i| {
        rt.image_exists(i)
    });
    let fresh = if crate::rig::fresh::parse_reference(&r.image).is_none() {
        Fresh::Local
    } else {
        match crate::rig::fresh::load(&crate::rig::fresh::cache_file(&cx.paths.cache)).get(&r.image)
        {
            None => Fresh::NeverChecked,
            Some(e) => match (&e.error, &e.local) {
                (Some(err), _) => Fresh::CheckFailed(err.clone()),
                (None, Some(local)) if !e.digest.is_empty() && *local != e.digest => Fresh::Newer,
                _ => Fresh::Current,
            },
        }
    };
    Ok(RigFacts {
        name: r.name,
        image: r.image,
        kind: r.kind,
        present: r.present,
        fresh,
    })
}

/// One real `run --rm` of the rig, as the box's user and without a network: the
/// programs every box needs must answer within [`RUN_LIMIT`].
pub fn run(rt: Option<&Runtime>, rig: Result<&RigFacts, &str>) -> RunFacts {
    let (rt, rig) = match (rt, rig) {
        (Some(rt), Ok(r)) if r.present => (rt, r),
        (_, Ok(_)) => return RunFacts::NotTried("the rig is not available locally".into()),
        (_, Err(why)) => return RunFacts::NotTried(format!("cannot try ({why})")),
    };
    let spec = crate::rig::bootstrap::check_spec("diagnose", &rig.image);
    match rt.run_captured_within(&spec, RUN_LIMIT) {
        Ok(Some(out)) if out.status.success() => RunFacts::Ran,
        Ok(Some(out)) => RunFacts::Failed {
            code: crate::process::exit_code(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        },
        Ok(None) => RunFacts::TimedOut(RUN_LIMIT.as_secs()),
        Err(RuntimeError::HostLimits { cause, fix }) => RunFacts::Limits { cause, fix },
        Err(e) => RunFacts::Error(e.to_string()),
    }
}

/// Each agent's display name and where it is installed.
pub fn agents(host: &HostEnv) -> Vec<(&'static str, Option<PathBuf>)> {
    crate::agents::all()
        .iter()
        .map(|a| (a.display_name(), a.detect(host).map(|i| i.binary)))
        .collect()
}

/// The login files under `home` (agents that keep one) with their modes; a link is
/// not followed (a box's planted link is reported by the home walk).
pub fn credentials(home: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    crate::agents::all()
        .iter()
        .filter_map(|a| a.credentials())
        .map(|spec| home.join(spec.dir).join(spec.file))
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            m.file_type().is_file().then(|| (p, m.mode()))
        })
        .collect()
}

/// Every registered box (default-mode boxes, then workset members); one that cannot be
/// read is left out here (`box list` reports it).
pub fn boxes(paths: &Paths) -> Vec<BoxIdentity> {
    let mut out = Vec::new();
    if let Ok(reg) = crate::boxes::registry::Registry::load(&paths.names_file()) {
        for (name, path) in &reg.projects {
            if let Some(b) = crate::boxes::name::BoxName::from_registry(name)
                .and_then(|n| crate::boxes::resolve::registered(paths, n, path.clone()).ok())
            {
                out.push(b);
            }
        }
    }
    if let Ok(sets) = crate::boxes::worksets::registered(paths) {
        for (name, root) in sets {
            if let Ok(ws) = crate::boxes::worksets::Workset::load(&name, &root) {
                out.extend(ws.identities());
            }
        }
    }
    out
}

/// Where a walk of a box's home stops: homes hold caches, and a check must not take
/// minutes.
const MAX_ENTRIES: usize = 200_000;

/// What one box's files show: a stale container marker (the engine is asked only when
/// a marker names a container and no session holds the box), links in its home that
/// lead out of it, and the modes of its login files.
pub fn one_box(b: &BoxIdentity, rt: Option<&Runtime>) -> BoxFacts {
    let marker = b.container_marker();
    let (stale_marker, engine_asked) =
        if std::fs::symlink_metadata(&marker).is_ok() && !b.session_active() {
            let named = std::fs::read_to_string(&marker)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| b.container_name());
            match rt {
                Some(rt) => match rt.container_state(&named) {
                    Ok(None) => (Some(marker), true),
                    _ => (None, true),
                },
                None => (Some(marker), false),
            }
        } else {
            (None, rt.is_some())
        };
    let (planted, home_walked) = planted(&b.shell);
    BoxFacts {
        name: b.display_name().to_owned(),
        stale_marker,
        engine_asked,
        planted,
        home_walked,
        credentials: credentials(&b.shell),
    }
}

/// Links below `home` whose target leads out of it ([`crate::fstree::link`]).
fn planted(home: &Path) -> (Vec<PathBuf>, Option<Result<(), String>>) {
    use crate::fstree::walk::{Entry, Step};
    if std::fs::symlink_metadata(home).is_err() {
        return (Vec::new(), None);
    }
    let dir = match crate::fstree::dir::Dir::open(home) {
        Ok(d) => d,
        Err(e) => return (Vec::new(), Some(Err(e.to_string()))),
    };
    let mut found = Vec::new();
    let mut seen = 0usize;
    let walked = crate::fstree::walk::walk(&dir, &mut |e| {
        seen += 1;
        if seen > MAX_ENTRIES {
            return Err(std::io::Error::other(format!(
                "more than {MAX_ENTRIES} entries; looked at the first ones only"
            )));
        }
        if let Entry::Symlink { rel, target, .. } = e {
            use std::os::unix::ffi::OsStrExt;
            if !crate::fstree::link::stays_inside(rel, target.as_bytes()) {
                found.push(home.join(rel));
            }
        }
        Ok(Step::Continue)
    });
    let walked = match walked {
        Ok(()) => Ok(()),
        Err(e) if !found.is_empty() => {
            let _ = e;
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    };
    (found, Some(walked))
}
