//! `start` and `shell`: from a request to a running box (spec: upstream-runtime §3).
//!
//! The order: check the request, find (or create) the box, read its config, decide the
//! agent and the in-box user, look at the box's container once, then plan the run
//! ([`plan`], pure) — which `--dry-run` prints — and only then take the session lock,
//! prepare the home ([`prep`]) and run. Nothing on the way asks the engine more than it
//! must: no `podman info`, no image pre-checks (a missing image is learnt from the run).

#[cfg(test)]
mod argv;
pub mod auth;
pub mod persistent;
pub mod plan;
pub mod prep;
pub mod seeds;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, Result, bail};

use crate::agents::{self, Agent, Install, NO_AGENT, NO_AGENTS_MESSAGE, SessionFlags};
use crate::boxes::create::{self, register_new};
use crate::boxes::error::BoxError;
use crate::boxes::home::SafeDir;
use crate::boxes::registry::Registry;
use crate::boxes::resolve::{self, Resolution};
use crate::boxes::{BoxIdentity, BoxName, Mode, ProjectSettings};
use crate::context::Context;
use crate::envfile;
use crate::error::{Exit, UserError};
use crate::fsutil::{self, FileLock};
use crate::output;
use crate::process::exit_code;
use crate::runtime::Runtime;
use crate::runtime::containers::ExecInput;
use crate::runtime::spec::{BOX_UID, Mount, RunMode, RunSpec, UserMapping};
use crate::settings::keys::Level;
use crate::settings::stack::Stack;
use plan::{EnvLayers, PlanInputs};

/// What kind of session was asked for.
#[derive(Clone, Debug)]
pub enum Session {
    /// `start`: the agent, with its switches and the arguments after `--`.
    Start {
        flags: SessionFlags,
        /// `-C` / `-A` given: explicit choices that config must not override.
        cont: bool,
        autonomous: bool,
        model: Option<String>,
        args: Vec<String>,
    },
    /// `shell`: a shell, or the exact command after `--`.
    Shell { command: Vec<OsString> },
}

#[derive(Clone, Debug)]
pub struct Launch {
    pub project: Option<String>,
    /// `-e KEY=VALUE` items as typed.
    pub env: Vec<String>,
    pub rig: Option<String>,
    pub entrypoint: Option<String>,
    pub dry_run: bool,
    /// `--persistent` (true) or `--ephemeral` (false); `None`: tmux on the host decides.
    pub persistent: Option<bool>,
    /// `--share-images`: the host's image store, read-only, in the box.
    pub share_images: bool,
    pub session: Session,
}

/// `-e` items: `KEY=VALUE`, or a bare `KEY` whose value comes from kanibako's own
/// environment (so a secret need not be typed on any command line). A valid name is
/// required; the value may hold `=`.
pub fn parse_env_items(
    items: &[String],
    own: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, UserError> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, v.to_owned()),
            None if envfile::is_valid_name(item) => match own(item) {
                Some(v) => (item.as_str(), v),
                None => {
                    return Err(UserError::new(format!(
                        "-e {item}: {item} is not set in kanibako's environment"
                    ))
                    .hint("pass -e KEY=VALUE, or export the variable first"));
                }
            },
            None => {
                return Err(
                    UserError::new(format!("-e expects KEY=VALUE, got '{item}'"))
                        .hint("for example: -e DEBUG=1"),
                );
            }
        };
        if !envfile::is_valid_name(k) {
            return Err(UserError::new(format!(
                "invalid environment variable name '{k}' in -e {item}"
            ))
            .hint("names are letters, digits and '_', not starting with a digit"));
        }
        if v.contains('\n') || v.contains('\0') {
            return Err(UserError::new(format!(
                "the value of {k} contains a newline or NUL byte"
            )));
        }
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

/// Names that look like they hold secrets: their values are masked even in `-v` output.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// What the agent side of a launch turned out to be.
enum Target {
    Agent(Box<dyn Agent>, Install),
    /// `box.crab: no_agent`: the rig's own entrypoint.
    NoAgent,
    /// `shell`, or `start --entrypoint`.
    Plain,
}

/// Container state as one `inspect` call reports it.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    Absent,
    /// `rootfs`: the image a rootful-podman container runs on, to unmount after it.
    Running {
        rootfs: Option<String>,
    },
    Stopped {
        ours: bool,
        rootfs: Option<String>,
    },
}

fn existing(rt: &Runtime, b: &BoxIdentity) -> Result<Existing> {
    let Some(state) = rt.container_state(&b.container_name())? else {
        return Ok(Existing::Absent);
    };
    let running = state.running;
    let rootfs = state.rootfs;
    let ours = state.hash.as_deref() == Some(b.hash.as_str());
    let foreign = state.hash.is_some() && !ours;
    if running && foreign {
        // Another box's container under the same name (a workset member `a/b-c` and a
        // box `a-b-c`): never join it.
        return Err(UserError::new(format!(
            "the running container {} belongs to another box",
            b.container_name()
        ))
        .hint("stop that box first (`kanibako stop --all` lists it), or rename one of the two")
        .into());
    }
    Ok(if running {
        Existing::Running { rootfs }
    } else {
        Existing::Stopped { ours, rootfs }
    })
}

/// The in-box user for this engine and invoking user (see [`UserMapping`]).
fn user_mapping(cx: &Context, rt: &Runtime) -> Result<UserMapping> {
    if rt.engine.cannot_map_root(cx.host.uid) {
        output::warn(format_args!(
            "{} cannot map the box's user to root: the box runs as uid {BOX_UID}, can write only where uid {BOX_UID} may, and what it writes belongs to uid {BOX_UID}",
            rt.engine.kind.name()
        ));
        output::hint("run kanibako as your own user (in the docker group), or use podman");
    }
    Ok(rt.user_mapping(cx.host.uid, cx.host.gid, &cx.paths.cache))
}

/// A box that may not exist yet, and whether this launch makes it.
struct Chosen {
    identity: BoxIdentity,
    new: bool,
}

fn choose_box(cx: &Context, l: &Launch) -> Result<Chosen> {
    match resolve::resolve(&cx.paths, &cx.host.cwd, l.project.as_deref())? {
        Resolution::Found(identity) => Ok(Chosen {
            identity,
            new: false,
        }),
        Resolution::Unregistered(dir) => {
            if create::is_home(&cx.paths, &dir) {
                return Err(BoxError::HomeRefused.into());
            }
            let settings = ProjectSettings::default();
            if l.dry_run {
                // What a real launch would create, without creating it.
                let reg = Registry::load(&cx.paths.names_file())?;
                let name = create::choose_name(&cx.paths, &reg, &dir, None)?;
                let identity = BoxIdentity::default_mode(name, dir, &cx.paths.boxes, settings);
                return Ok(Chosen {
                    identity,
                    new: true,
                });
            }
            let (identity, fresh) = register_new(&cx.paths, &dir, None, settings, None)?;
            if fresh {
                create::announce(&identity);
            }
            Ok(Chosen {
                identity,
                new: true,
            })
        }
    }
}

/// A `-v` source whose path the engine's `-v src:dst` syntax cannot carry.
fn check_mount_paths(spec: &RunSpec) -> Result<()> {
    for m in &spec.mounts {
        if let Mount::Bind { src, .. } = m {
            let s = src.to_string_lossy();
            if s.contains(':') || s.contains(',') {
                bail!(UserError::new(format!(
                    "cannot mount {s}: paths containing ':' or ',' cannot be passed to the engine"
                ))
                .hint("rename the directory, or move the project to a path without them"));
            }
        }
    }
    Ok(())
}

/// An image mounted for [`UserMapping::SplitMap`], unmounted when dropped.
struct MountedImage<'a> {
    rt: &'a Runtime,
    image: String,
    dir: PathBuf,
}

impl<'a> MountedImage<'a> {
    fn mount(rt: &'a Runtime, image: &str) -> Result<Self> {
        let dir = rt.mount_image(image).map_err(|_| missing_rig(rt, image))?;
        Ok(Self {
            rt,
            image: image.to_owned(),
            dir,
        })
    }

    /// Keep the image mounted after we exit (a detached container runs on it); `stop`
    /// unmounts it once the container is gone.
    fn leak(self) -> PathBuf {
        let dir = self.dir.clone();
        std::mem::forget(self);
        dir
    }
}

impl Drop for MountedImage<'_> {
    /// Released in the background: nothing waits on it, and the user's prompt should
    /// not either.
    fn drop(&mut self) {
        self.rt.unmount_image_later(&self.image);
    }
}

fn missing_rig(rt: &Runtime, image: &str) -> UserError {
    UserError::new(format!("rig '{image}' is not available locally")).hint(format!(
        "pull it (`{} pull {image}`), or build one from this host's programs: kanibako rig bootstrap",
        rt.engine.kind.name()
    ))
}

/// The host's image store for `--share-images`, with the storage.conf written for the
/// box; `None` (and a warning) where there is none to share.
fn image_store(rt: &Runtime, state: &Path, dry_run: bool) -> Option<(PathBuf, PathBuf)> {
    let Some(graph) = rt.image_store() else {
        output::warn(
            "--share-images enabled but host image storage could not be detected. Continuing without image sharing.",
        );
        return None;
    };
    // The same content for every box: one copy in kanibako's state, where no box (nor a
    // repository holding a standalone box's metadata) can have put a link.
    let conf = state.join("image-sharing").join("storage.conf");
    if !dry_run
        && let Err(e) = fsutil::atomic_write(
            &conf,
            plan::shared_images_conf().as_bytes(),
            fsutil::MODE_CONFIG,
        )
    {
        output::warn(format_args!(
            "cannot write {}: {e}; continuing without image sharing.",
            conf.display()
        ));
        return None;
    }
    Some((graph, conf))
}

/// Say what the last freshness check of `image` found, and start today's if due — on
/// a thread of its own, so no launch ever waits on a registry.
fn freshness(cx: &Context, rt: &Runtime, image: &str) {
    use crate::rig::fresh;
    let file = fresh::cache_file(&cx.paths.cache);
    let (note, due) = fresh::look(&file, image);
    if let Some(note) = note {
        output::say(note);
    }
    if !due {
        return;
    }
    fresh::stamp(&file, image);
    let image = image.to_owned();
    let rt = rt.clone();
    std::thread::spawn(move || {
        let local = rt.image_digest(&image);
        fresh::check(&file, &image, local);
    });
}

/// Pull a rig that is not local (the engine's progress on the terminal); if that fails,
/// say so in one line and point at a rig made from this host.
fn obtain(rt: &Runtime, image: &str) -> Result<()> {
    // `localhost/…` and kanibako's own images exist only where they were made: asking a
    // registry for them would only add seconds to the failure.
    let local_only = image.starts_with("localhost/")
        || image.starts_with("kanibako-rig-")
        || image.starts_with("kanibako-template-");
    if !local_only {
        output::say(format_args!("Rig not found locally. Pulling {image}..."));
        if rt.pull(image) {
            return Ok(());
        }
    } else {
        return Err(missing_rig(rt, image).into());
    }
    Err(UserError::new(format!("rig '{image}' is not available locally and could not be pulled"))
        .hint(format!(
            "check the network, or build a rig from this host's programs: kanibako rig bootstrap && kanibako system config box.image=host (then `{} pull {image}` later)",
            rt.engine.kind.name()
        ))
        .into())
}

/// [`image_env`], remembered per mounted image directory (whose path changes whenever
/// the image does), so a launch asks the engine only once per rig version.
fn image_env_cached(
    rt: &Runtime,
    image: &str,
    mounted: &Path,
    cache: &Path,
) -> Result<BTreeMap<String, String>> {
    let key = crate::boxes::project_hash(mounted);
    let file = cache.join("rig-env").join(format!("{}.env", &key[..16]));
    if let Ok(text) = std::fs::read_to_string(&file) {
        return Ok(envfile::parse(&text));
    }
    let env = image_env(rt, image)?;
    // A cache that cannot be written only costs the next launch one call.
    let _ = fsutil::atomic_write(&file, envfile::render(&env).as_bytes(), fsutil::MODE_CONFIG);
    Ok(env)
}

/// The image's own `Env` (PATH, LANG …): a `--rootfs` run does not read the image
/// config, so kanibako passes it on.
fn image_env(rt: &Runtime, image: &str) -> Result<BTreeMap<String, String>> {
    rt.image_env(image)?
        .ok_or_else(|| missing_rig(rt, image).into())
}

fn print_env(env: &BTreeMap<String, String>) {
    for (k, v) in env {
        let shown = if looks_secret(k) { "****" } else { v.as_str() };
        tracing::debug!("  env {k}={shown}");
    }
}

/// Where a dry run says the env file would be.
fn env_placeholder(env: &BTreeMap<String, String>) -> PathBuf {
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    PathBuf::from(format!("<0600 file: {}>", names.join(" ")))
}

pub fn run(cx: &Context, l: Launch) -> Result<Exit> {
    let cli_env = parse_env_items(&l.env, |k| cx.host.var_str(k).map(str::to_owned))?;
    let agent_mode = matches!(l.session, Session::Start { .. }) && l.entrypoint.is_none();
    let detected = if agent_mode {
        match agents::detect_any(&cx.host) {
            Some(found) => Some(found),
            None => {
                println!("{NO_AGENTS_MESSAGE}");
                return Ok(Exit::Success);
            }
        }
    } else {
        None
    };
    let chosen = choose_box(cx, &l)?;
    let b = &chosen.identity;

    // Which agent: the box's `box.crab`, else the one installed.
    let pre = cx.stack(Some(b), None)?;
    let target = if agent_mode {
        match pre.crab_id()? {
            Some(id) if id == NO_AGENT => Target::NoAgent,
            Some(id) => {
                let agent = agents::by_id(&id).ok_or_else(|| {
                    UserError::new(format!(
                        "unknown agent '{id}' (box.crab); available: {}",
                        agents::known_ids().join(", ")
                    ))
                    .hint(
                        "set box.crab to one of those, or remove it to use whichever is installed",
                    )
                })?;
                let install = agent.detect(&cx.host).ok_or_else(|| {
                    UserError::new(format!(
                        "{} is not installed on this host",
                        agent.display_name()
                    ))
                })?;
                Target::Agent(agent, install)
            }
            None => {
                let (agent, install) = detected.expect("agent mode detected one");
                Target::Agent(agent, install)
            }
        }
    } else {
        Target::Plain
    };
    let crab_id = match &target {
        Target::Agent(a, _) => a.id(),
        Target::NoAgent => NO_AGENT,
        Target::Plain => "general",
    };
    if let Target::Agent(a, install) = &target {
        if !l.dry_run {
            crate::agents::profile::ensure(&cx.paths.crabs, a.id(), a.display_name())?;
        }
        output::say(format_args!(
            "Using host {}: {}",
            a.display_name(),
            install.binary.display()
        ));
    }
    // The levels already read, with the crab's added: nothing is read twice.
    let levels = cx.add_crab(pre, crab_id)?;

    let image = match &l.rig {
        Some(r) => r.clone(),
        None => levels.image()?,
    };
    if chosen.new && !l.dry_run && l.rig.is_some() {
        let mut doc = levels.doc(Level::Box).expect("a box level").clone();
        doc.set(&["box", "image"], image.clone().into())?;
        doc.save()?;
    }

    let rt = cx.runtime()?;
    // A rig name (`host`, `oci`, a template, a `rigs.yaml` entry) becomes the image.
    let image = {
        let rigs = crate::rig::registry::Rigs::load(&cx.paths.rigs_file())?;
        // A full reference (`registry/owner/name:tag`) is taken as it is: whether it is
        // local matters only for templates, and a missing one makes the run itself fail
        // at once (`--pull=never`), which `obtain` handles. Asking first would add an
        // engine call to every launch.
        let exists = |i: &str| i.contains('/') || rt.image_exists(i);
        let configured = levels.image()?;
        crate::rig::resolve(
            &image,
            &rigs,
            &crate::rig::template::names(&cx.paths.rig_templates()),
            &configured,
            &exists,
        )
    };
    // A template that is not built yet is built now, its output on the terminal.
    if image.kind == crate::rig::Kind::Template && !image.present && !l.dry_run {
        output::say(format_args!(
            "Rig '{}' isn't prepped — building...",
            image.name
        ));
        let code =
            crate::rig::ops::build(&rt, &cx.paths, &cx.stack(None, None)?.image()?, &image.name)?;
        if code != 0 {
            return Err(UserError::new(format!(
                "failed to build rig '{}' (exit code {code}).",
                image.name
            ))
            .into());
        }
    }
    let image = image.image;
    if !l.dry_run {
        freshness(cx, &rt, &image);
    }
    let user = user_mapping(cx, &rt)?;

    // Persistent (tmux, survives a closed terminal) is the default for `start` where tmux
    // is on the host, as upstream decides; `shell` is always a foreground run.
    let persistent = match &l.session {
        Session::Start { .. } => match l.persistent {
            Some(p) => p,
            None => match levels.known("persistence")?.get() {
                Some("persistent") => true,
                Some("ephemeral") => false,
                _ => cx.host.which("tmux").is_some(),
            },
        },
        Session::Shell { .. } => false,
    };
    let shell_like = matches!(l.session, Session::Shell { .. }) || l.entrypoint.is_some();

    // The command inside the box; re-made for a retry as a new conversation.
    let command_for = |new_session: bool| -> Result<(Option<String>, Vec<OsString>)> {
        Ok(match (&l.session, &target) {
            (
                Session::Start {
                    flags,
                    cont,
                    autonomous,
                    model,
                    args,
                },
                Target::Agent(agent, _),
            ) => {
                let mut extra = levels.run_args()?;
                extra.extend(args.iter().cloned());
                let model = match model {
                    Some(m) => Some(m.clone()),
                    None => levels.crab_state("model", agent.default_model())?,
                };
                // Switches on the command line win; otherwise the settings decide.
                let chose_conversation = *cont || flags.new_session || flags.resume;
                let start_mode = levels.crab_state("start_mode", None)?;
                let secure = if *autonomous || flags.secure {
                    flags.secure
                } else {
                    levels.crab_state("access", None)?.as_deref() == Some("default")
                        || !levels.bool("autonomous")?
                };
                let flags = SessionFlags {
                    secure,
                    new_box: chosen.new,
                    new_session: new_session
                        || flags.new_session
                        || (!chose_conversation && start_mode.as_deref() == Some("new")),
                    resume: flags.resume
                        || (!chose_conversation && start_mode.as_deref() == Some("resume")),
                };
                let args = agent.args(flags, &extra, model.as_deref());
                (
                    Some(agent.entrypoint().to_owned()),
                    args.into_iter().map(OsString::from).collect(),
                )
            }
            (Session::Start { args, .. }, _) => (
                l.entrypoint.clone(),
                args.iter().map(OsString::from).collect(),
            ),
            (Session::Shell { command }, _) => match (&l.entrypoint, command.is_empty()) {
                (Some(e), _) => (Some(e.clone()), command.clone()),
                (None, false) => (Some("/bin/sh".to_owned()), exec_wrapper(command)),
                (None, true) => (Some("/bin/bash".to_owned()), Vec::new()),
            },
        })
    };

    // An agent session holds the box's lock while it starts (an ephemeral one for its
    // whole run); a second one stops here. A shell first looks for a container to join.
    let mut lock = if l.dry_run || shell_like {
        None
    } else {
        Some(session_lock(b)?)
    };

    // One look at the box's container decides: join it, clear a leftover, or run. Only
    // when one may exist (a launch left its marker) is the engine asked.
    let marker = b.container_marker();
    let may_exist = marker.exists() || b.session_active() || fsutil::is_symlink(&marker);
    let state = if may_exist {
        existing(&rt, b)?
    } else {
        Existing::Absent
    };
    if may_exist && state == Existing::Absent && !l.dry_run {
        let _ = std::fs::remove_file(&marker);
    }
    if let Existing::Running { rootfs } = &state {
        if shell_like {
            // `exec` reports a missing command itself: no wrapper needed.
            let (entrypoint, command) = command_for(false)?;
            let direct: Vec<OsString> = match (&l.session, &l.entrypoint) {
                (Session::Shell { command }, None) if !command.is_empty() => command.clone(),
                _ => std::iter::once(entrypoint.unwrap_or_else(|| "/bin/bash".into()).into())
                    .chain(command)
                    .collect(),
            };
            return exec_into(cx, &rt, b, &cli_env, direct, l.dry_run);
        }
        if persistent {
            drop(lock);
            if let Some(ignored) = reattach_ignores(&l) {
                output::warn(format_args!(
                    "the session is already running; {ignored} apply to a new session only (`kanibako stop` first)"
                ));
            }
            return persistent::reattach(cx, &rt, b, rootfs.as_deref(), l.dry_run);
        }
        return Err(
            UserError::new("A container already exists for this project.")
                .hint(format!("it is running as {}", b.container_name()))
                .hint(format!(
                    "`kanibako start {}` attaches to it",
                    b.display_name()
                ))
                .hint(format!("`kanibako stop {}` stops it", b.display_name()))
                .into(),
        );
    }
    let leftover = match &state {
        Existing::Stopped { rootfs, .. } => Some(rootfs.clone()),
        _ => None,
    };
    if let Existing::Stopped { ours: false, .. } = state {
        return Err(UserError::new(format!(
            "a stopped container named {} exists and was not started by this kanibako",
            b.container_name()
        ))
        .hint(format!(
            "remove it with `{} rm {}`",
            rt.engine.kind.name(),
            b.container_name()
        ))
        .into());
    }

    // Environment, lowest layer first.
    let split = matches!(user, UserMapping::SplitMap { .. });
    // Under a split map the rig runs as a mounted rootfs, which carries none of the
    // image's config: its Env comes from the mounted image (mounted now, not in a dry
    // run, which only asks for the Env).
    let mounted = if split && !l.dry_run {
        Some(match MountedImage::mount(&rt, &image) {
            Ok(m) => m,
            Err(_) => {
                obtain(&rt, &image)?;
                MountedImage::mount(&rt, &image)?
            }
        })
    } else {
        None
    };
    let [system, crab, workset, boxed] = levels.env_layers()?;
    let mut layers = EnvLayers {
        image: match (&mounted, split) {
            (Some(m), _) => image_env_cached(&rt, &image, &m.dir, &cx.paths.cache)?,
            // A dry run still shows what would run, even if the rig is missing.
            (None, true) => match image_env(&rt, &image) {
                Ok(env) => env,
                Err(e) if l.dry_run => {
                    output::note(format_args!("{e:#}; the run would fail"));
                    BTreeMap::new()
                }
                Err(e) => return Err(e),
            },
            (None, false) => BTreeMap::new(),
        },
        system,
        crab,
        workset,
        boxed,
        cli: cli_env,
        ..EnvLayers::default()
    };
    if let Target::Agent(a, _) = &target {
        layers.defaults = a
            .env_defaults()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }
    let env = plan::layer_env(&layers, b.name.as_ref().map(BoxName::as_str));

    // Mount facts.
    let real = |d: &Path| crate::boxes::home::real_dir(&b.workspace, d);
    let vault_present = b
        .vault
        .as_ref()
        .map_or((false, false), |v| (real(&v.ro), real(&v.rw)));
    if let Some(v) = &b.vault {
        for (dir, present) in [(&v.ro, vault_present.0), (&v.rw, vault_present.1)] {
            if present {
                continue;
            }
            if crate::fsutil::is_symlink(dir) || dir.is_dir() {
                output::warn(format_args!(
                    "{} is (or lies behind) a symbolic link; not mounted",
                    dir.display()
                ));
            } else if !chosen.new {
                output::warn(format_args!(
                    "mount source does not exist: {}",
                    dir.display()
                ));
            }
        }
    }
    // tweakcc: the agent's binary swapped for its patched copy, held for the session.
    let tweakcc = match &target {
        Target::Agent(_, install) if !l.dry_run => crate::tweakcc::session::for_session(
            &rt,
            levels.doc(Level::Crab),
            &crate::tweakcc::session::Dirs {
                home: cx.paths.home(),
                cache: &cx.paths.cache,
                state: &cx.paths.state,
            },
            &image,
            &install.binary,
            persistent.then_some(b.hash.as_str()),
        ),
        _ => None,
    };
    let patched_install = match (&target, &tweakcc) {
        (Target::Agent(_, install), Some(held)) => Some(Install {
            binary: held.binary.clone(),
            install_dir: install.install_dir.clone(),
        }),
        _ => None,
    };
    let agent_mounts: Vec<Mount> = match &target {
        Target::Agent(a, install) => a
            .mounts(patched_install.as_ref().unwrap_or(install))
            .into_iter()
            .filter(|m| match m {
                Mount::Bind { src, .. } if !src.exists() => {
                    output::warn(format_args!(
                        "mount source does not exist: {}",
                        src.display()
                    ));
                    false
                }
                _ => true,
            })
            .collect(),
        _ => Vec::new(),
    };
    let shared_dir = cx
        .paths
        .data
        .join(levels.known("paths.shared")?.get().unwrap_or("shared"));
    let global_shared = shared_dir.join("global");
    let mut shared: Vec<(PathBuf, String)> = Vec::new();
    if b.mode != Mode::Standalone {
        for (name, rel) in levels.shared()? {
            let src = global_shared.join(&name);
            if src.is_dir() {
                shared.push((src, rel));
            }
        }
        for (name, rel) in levels.crab_shared()? {
            let src = shared_dir.join(crab_id).join(&name);
            if src.is_dir() {
                shared.push((src, rel));
            }
        }
    }
    // Named shares: read-only ones must exist; read-write sources are made, as upstream.
    let mut shares: Vec<(PathBuf, PathBuf, bool)> = Vec::new();
    for (kind, read_only) in [("share_ro", true), ("share_rw", false)] {
        let (found, warnings) = seeds::resolve(
            &levels,
            &cx.paths,
            crab_id,
            kind,
            b.mode != Mode::Standalone,
        );
        for w in warnings {
            output::warn(format_args!("{}", w.replacen("seed ", "share ", 1)));
        }
        for s in found {
            if !read_only && !s.host.exists() && !l.dry_run {
                let _ = std::fs::create_dir_all(&s.host);
            }
            if s.host.exists() {
                shares.push((s.host, s.guest_rel, read_only));
            } else {
                output::warn(format_args!(
                    "mount source does not exist: {}",
                    s.host.display()
                ));
            }
        }
    }
    let (entrypoint, command) = command_for(false)?;
    let mut inputs = PlanInputs {
        identity: b.clone(),
        image: image.clone(),
        mode: if persistent {
            RunMode::Detached
        } else {
            RunMode::Foreground {
                tty: cx.host.stdin_tty,
            }
        },
        user: user.clone(),
        vault_present,
        agent_mounts,
        self_binary: std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok()),
        shared,
        shares,
        image_store: if l.share_images || levels.bool("box.share_images")? {
            image_store(&rt, &cx.paths.state, l.dry_run)
        } else {
            None
        },
        comms: Some(cx.paths.comms.clone()),
        env,
        entrypoint,
        command,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let spec = plan::plan(&inputs);
    check_mount_paths(&spec)?;

    if l.dry_run {
        return dry_run(&rt, &spec, &image, leftover.is_some(), split, persistent);
    }

    // From here on, things change: hold the box's lock.
    let mut lock = match lock.take() {
        Some(l) => l,
        None => session_lock(b)?,
    };
    lock.write_record(&format!("{}\n", spec.name))?;
    fsutil::atomic_write(
        &marker,
        format!("{}\n", spec.name).as_bytes(),
        fsutil::MODE_CONFIG,
    )?;
    if let Some(rootfs) = &leftover {
        persistent::remove(cx, &rt, &spec.name, rootfs.as_deref());
    }
    if let Target::Agent(a, install) = &target
        && auth::shares_login(cx, b)
    {
        auth::check(cx, a.as_ref(), install)?;
    }
    prepare_home(cx, b, &target, chosen.new, &spec, &levels, crab_id)?;

    if persistent {
        let agent_mode = matches!(target, Target::Agent(..));
        let may_retry = agent_mode
            && !matches!(&l.session, Session::Start { flags, .. } if flags.new_session)
            && !chosen.new;
        let replan = |new_session: bool| -> Result<RunSpec> {
            let (entrypoint, command) = command_for(new_session)?;
            inputs.entrypoint = entrypoint;
            inputs.command = command;
            Ok(plan::plan(&inputs))
        };
        return persistent::launch(cx, &rt, b, &spec, &image, mounted, lock, may_retry, replan);
    }

    let env_file = envfile::temporary(&spec.env).context("writing the env file")?;
    let rootfs = mounted.as_ref().map(|m| m.dir.as_path());
    print_env(&spec.env);
    let mut status = rt.run_attached(&spec, rootfs, Some(&env_file))?;
    // The engine refuses at once when the rig is not local (`--pull=never`): get it,
    // then run again — nothing started the first time.
    if exit_code(status) == 125 && !split && !rt.image_exists(&image) {
        obtain(&rt, &image)?;
        status = rt.run_attached(&spec, rootfs, Some(&env_file))?;
    }
    drop(env_file);
    drop(mounted);
    auth::write_back(cx, b);
    let _ = std::fs::remove_file(&marker);
    drop(lock);
    let code = exit_code(status);
    after_run(&rt, &l, &spec, &image, split, code, !may_exist)?;
    Ok(Exit::Code(u8::try_from(code).unwrap_or(1)))
}

/// The options of `l` that a re-attach to a running session cannot honour, named as
/// typed (upstream dropped them without a word).
fn reattach_ignores(l: &Launch) -> Option<String> {
    let mut given = Vec::new();
    if !l.env.is_empty() {
        given.push("-e");
    }
    if l.rig.is_some() {
        given.push("--rig");
    }
    if l.entrypoint.is_some() {
        given.push("--entrypoint");
    }
    if let Session::Start {
        flags, model, args, ..
    } = &l.session
    {
        if flags.new_session || flags.resume {
            given.push("-N/-R");
        }
        if model.is_some() {
            given.push("-M");
        }
        if !args.is_empty() {
            given.push("arguments after --");
        }
    }
    (!given.is_empty()).then(|| given.join(", "))
}

/// `sh -c 'exec "$@"' kanibako CMD ARGS…`: runs the command with its arguments exactly as
/// given (they travel as `"$@"`, never re-parsed), while a command that is not there
/// still ends with the shell's 127 (an init process in front of a missing command would
/// report a bare 1).
fn exec_wrapper(command: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-c".into(), "exec \"$@\"".into(), "kanibako".into()];
    args.extend(command.iter().cloned());
    args
}

fn session_lock(b: &BoxIdentity) -> Result<FileLock> {
    match fsutil::try_lock_exclusive(&b.lock_file())
        .with_context(|| format!("locking {}", b.lock_file().display()))?
    {
        Some(lock) => Ok(lock),
        None => Err(UserError::new(
            "Another Kanibako session is already running for this project.",
        )
        .hint("wait for it to end, or open a shell in it: kanibako shell")
        .into()),
    }
}

/// Messages after the container ended: name the missing image or the container in the
/// way, hint at `sh -c`.
/// `Err` when the run failed because the rig is missing: that is our error (exit 1),
/// not the engine's status.
fn after_run(
    rt: &Runtime,
    l: &Launch,
    spec: &RunSpec,
    image: &str,
    split: bool,
    code: i32,
    unchecked: bool,
) -> Result<()> {
    if code == 125 && unchecked {
        // The engine was not asked beforehand (no marker): a container nobody told us
        // about may hold the name.
        if rt.container_exists(&spec.name) {
            output::hint(format_args!(
                "a container named {} already exists (started outside this kanibako?); `kanibako stop` removes it",
                spec.name
            ));
            return Ok(());
        }
    }
    if code == 125 && !split && !rt.image_exists(image) {
        return Err(missing_rig(rt, image).into());
    }
    match &l.session {
        Session::Shell { command }
            if code == 127 && l.entrypoint.is_none() && !command.is_empty() =>
        {
            output::hint(format_args!(
                "`{}` was not found in the box; arguments after -- are one command and its arguments, to run a shell line use: kanibako shell -- sh -c '…'",
                command[0].to_string_lossy()
            ));
        }
        Session::Start { flags, .. }
            if code != 0
                && code != 125
                && !flags.new_session
                && spec.entrypoint.is_some()
                && l.entrypoint.is_none() =>
        {
            output::hint(
                "if the agent exited because there was no conversation to continue, use 'kanibako start -N' to start fresh.",
            );
        }
        _ => {}
    }
    Ok(())
}

fn dry_run(
    rt: &Runtime,
    spec: &RunSpec,
    image: &str,
    leftover: bool,
    split: bool,
    persistent: bool,
) -> Result<Exit> {
    if leftover {
        println!("{}", rt.remove_container_invocation(&spec.name));
    }
    let rootfs = PathBuf::from(format!("<{image} mounted>"));
    if split {
        println!("{}", rt.mount_image_command(image));
    }
    println!(
        "{}",
        rt.run_command(
            spec,
            split.then_some(rootfs.as_path()),
            Some(&env_placeholder(&spec.env))
        )
    );
    if persistent {
        println!("{}", persistent::attach_invocation(rt, &spec.name, true));
    } else if split {
        println!("{}", rt.unmount_image_command(image));
    }
    print_env(&spec.env);
    Ok(Exit::Success)
}

fn exec_into(
    cx: &Context,
    rt: &Runtime,
    b: &BoxIdentity,
    env: &BTreeMap<String, String>,
    command: Vec<OsString>,
    dry_run: bool,
) -> Result<Exit> {
    let input = if cx.host.stdin_tty {
        ExecInput::Terminal
    } else {
        ExecInput::Stdin
    };
    let file = if dry_run || env.is_empty() {
        None
    } else {
        Some(envfile::temporary(env).context("writing the env file")?)
    };
    let env_file = match &file {
        Some(f) => Some(f.to_path_buf()),
        None if !env.is_empty() => Some(env_placeholder(env)),
        None => None,
    };
    let name = b.container_name();
    if dry_run {
        println!(
            "{}",
            rt.exec_command(&name, input, env_file.as_deref(), &command)
        );
        print_env(env);
        return Ok(Exit::Success);
    }
    let status = rt.exec_attached(&name, input, env_file.as_deref(), &command)?;
    drop(file);
    Ok(Exit::Code(u8::try_from(exit_code(status)).unwrap_or(1)))
}

/// Host-side preparation of the home, under the session lock.
fn prepare_home(
    cx: &Context,
    b: &BoxIdentity,
    target: &Target,
    new: bool,
    spec: &RunSpec,
    levels: &Stack,
    crab_id: &str,
) -> Result<()> {
    if std::fs::symlink_metadata(&b.shell).is_err() {
        // Recovery: a box whose home was deleted gets a fresh skeleton.
        create::shell_skeleton(&b.shell)
            .with_context(|| format!("re-making the box home {}", b.shell.display()))?;
    }
    let home = SafeDir::open(&b.shell).with_context(|| {
        format!(
            "opening the box home {} (it must be a real directory)",
            b.shell.display()
        )
    })?;
    prep::upgrade_shell(&home)?;
    for action in prep::hygiene(&home, SystemTime::now())? {
        tracing::debug!("hygiene: {action}");
    }
    if new && let Target::Agent(agent, _) = target {
        apply_templates(cx, &home, agent.as_ref())?;
    }
    if new {
        let (seeds, warnings) = seeds::resolve(
            levels,
            &cx.paths,
            crab_id,
            "seeded",
            b.mode != Mode::Standalone,
        );
        for w in warnings {
            output::warn(format_args!("{w}"));
        }
        seeds::apply(&home, &seeds)?;
    }
    // Not only for a new box: one made by `create` meets its agent on the first start.
    auth::before_launch(cx, b);
    let stubs: Vec<(String, bool)> = spec
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind { src, dst, .. } => dst
                .strip_prefix("/home/agent/")
                .filter(|_| !dst.starts_with("/home/agent/workspace/"))
                .map(|rel| (rel.to_owned(), !src.is_file())),
            Mount::Mask { .. } => None,
        })
        .collect();
    prep::mount_stubs(&home, &stubs)?;
    // Shared with every box: what is wrong there is theirs to fix, not a reason to stop.
    if let Err(e) = prep::comms(&cx.paths.comms, b.name.as_ref().map(BoxName::as_str)) {
        output::warn(format_args!("{}: {e}", cx.paths.comms.display()));
    }
    Ok(())
}

/// A new box's home: `templates/general/base`, then the agent's (or the general)
/// variant, then the layered instruction files.
fn apply_templates(cx: &Context, home: &SafeDir, agent: &dyn Agent) -> Result<()> {
    let t = &cx.paths.templates;
    let variant = "standard";
    let chosen = [
        t.join(agent.id()).join(variant),
        t.join("general").join(variant),
    ]
    .into_iter()
    .find(|d| d.is_dir());
    let Some(template) = chosen else {
        return Ok(());
    };
    let base = t.join("general/base");
    prep::copy_template(&base, home, Path::new(""))?;
    prep::copy_template(&template, home, Path::new(""))?;
    let config = Path::new(agent.config_dir());
    for file in agent.instruction_files() {
        let read_host = |dir: &Path| std::fs::read_to_string(dir.join(config).join(file)).ok();
        let dir = home.create_dir_all(config)?;
        let current = dir
            .read(OsStr::new(file))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let tmpl = read_host(&template);
        if let Some(merged) = prep::merge_instructions(
            read_host(&base).as_deref(),
            tmpl.as_deref().map(|t| (variant, t)),
            current.as_deref(),
        ) {
            dir.replace(OsStr::new(file), merged.as_bytes(), 0o644)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reattach_names_what_it_cannot_honour() {
        let start = |model: Option<&str>, new_session: bool| Launch {
            project: None,
            env: Vec::new(),
            rig: None,
            entrypoint: None,
            dry_run: false,
            persistent: None,
            share_images: false,
            session: Session::Start {
                flags: SessionFlags {
                    new_session,
                    ..SessionFlags::default()
                },
                cont: false,
                autonomous: false,
                model: model.map(str::to_owned),
                args: Vec::new(),
            },
        };
        assert_eq!(reattach_ignores(&start(None, false)), None);
        assert_eq!(
            reattach_ignores(&start(Some("sonnet"), true)).as_deref(),
            Some("-N/-R, -M")
        );
        let mut l = start(None, false);
        l.env.push("A=1".into());
        assert_eq!(reattach_ignores(&l).as_deref(), Some("-e"));
    }

    #[test]
    fn env_items_must_be_key_value() {
        let none = |_: &str| None;
        let ok = parse_env_items(&["A=1".into(), "B=x=y".into(), "C=".into()], none).unwrap();
        assert_eq!(ok["B"], "x=y");
        assert_eq!(ok["C"], "");
        assert!(parse_env_items(&["NOEQ".into()], none).is_err());
        assert!(parse_env_items(&["1BAD=x".into()], none).is_err());
        assert!(parse_env_items(&["bad name".into()], |_| Some("x".into())).is_err());
        assert!(parse_env_items(&["A=line\nbreak".into()], none).is_err());
        let from_env =
            parse_env_items(&["TOKEN".into()], |k| (k == "TOKEN").then(|| "s3".into())).unwrap();
        assert_eq!(from_env["TOKEN"], "s3");
    }

    #[test]
    fn secret_names_are_masked() {
        assert!(looks_secret("GITHUB_TOKEN"));
        assert!(looks_secret("api_key"));
        assert!(!looks_secret("COLORTERM"));
    }
}
