//! `system info`, `system diagnose` and `box diagnose`: what kanibako sees of the
//! machine, read without the start-up work (which migrates and writes), so that they
//! work — and change nothing — on a broken machine.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;

use crate::cli::system::{BoxDiagnoseArgs, JsonArgs};
use crate::cli::{BoxCommand, Command, SystemCommand};
use crate::context::Context;
use crate::diagnose::checks::{self, ConfigState, EngineFacts};
use crate::diagnose::style::Styles;
use crate::diagnose::{Check, Report, probe};
use crate::error::{Exit, UserError};
use crate::host::HostEnv;
use crate::process::{Executor, SystemExecutor};

/// The commands that must not run the start-up work, run here; any other is handed
/// back.
pub fn early(host: &HostEnv, command: Command) -> std::result::Result<Result<Exit>, Box<Command>> {
    let exec: Arc<dyn Executor> = Arc::new(SystemExecutor);
    match command {
        Command::System { command: None } => Ok(info(host, exec, &JsonArgs::default())),
        Command::System {
            command: Some(SystemCommand::Info(a)),
        } => Ok(info(host, exec, &a)),
        Command::System {
            command: Some(SystemCommand::Diagnose(a)),
        } => Ok(diagnose(host, exec, &a)),
        Command::Setup(a) => Ok(super::setup::setup(host, exec, &a)),
        Command::Completions(a) => Ok(completions(&a)),
        Command::Man(a) => Ok(man(&a)),
        Command::System {
            command: Some(SystemCommand::Upgrade(a)),
        } => Ok(super::system_upgrade::upgrade(host, exec.as_ref(), &a)),
        Command::Box {
            command: Some(BoxCommand::Diagnose(a)),
        } => Ok(box_diagnose_on(host, exec, &a)),
        other => Err(Box::new(other)),
    }
}

/// The same commands reached with a loaded context (library callers).
pub fn dispatch(cx: &Context, c: Option<SystemCommand>) -> Result<Exit> {
    let Some(c) = c else {
        return info(&cx.host, cx.exec.clone(), &JsonArgs::default());
    };
    match c {
        SystemCommand::Config(a) => super::config::system_config(cx, &a),
        SystemCommand::Info(a) => info(&cx.host, cx.exec.clone(), &a),
        SystemCommand::Diagnose(a) => diagnose(&cx.host, cx.exec.clone(), &a),
        SystemCommand::Upgrade(a) => super::system_upgrade::upgrade(&cx.host, cx.exec.as_ref(), &a),
    }
}

pub fn box_diagnose(cx: &Context, a: &BoxDiagnoseArgs) -> Result<Exit> {
    box_diagnose_on(&cx.host, cx.exec.clone(), a)
}

/// A report on stdout, as text or JSON, and its exit status (every diagnose command's).
pub(crate) fn emit(host: &HostEnv, report: &Report, json: bool) -> Exit {
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text(&Styles::for_stdout(host)));
    }
    match report.exit_code() {
        0 => Exit::Success,
        c => Exit::Code(c),
    }
}

/// The checks of the whole machine, in the order a user fixes things: the config and
/// data directory, the engine and what it needs from the host, the rig and one real
/// run of it, the host's programs, then every box's files.
pub fn system_checks(host: &HostEnv, exec: Arc<dyn Executor>) -> Vec<Check> {
    let pm = probe::package_manager(host);
    let root = host.uid == 0;
    let (cx, state) = match probe::context(host, exec) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fix(
                "home",
                "Home",
                e,
                "export HOME=/path/to/your/home",
            )];
        }
    };
    let mut out = vec![checks::config(&cx.paths.config_file, &state)];
    let data = probe::data(&cx.paths);
    out.push(checks::data_writable(&data));
    let (engine, rt) = probe::engine(&cx);
    let engine_name = match &engine {
        EngineFacts::Found { name, .. } => Some(*name),
        EngineFacts::Missing { .. } => None,
    };
    out.push(checks::disk(&data, engine_name));
    out.push(checks::engine(&engine, pm, root));
    out.push(checks::storage_driver(&engine));
    let answers = probe::answers(&engine);
    out.extend(checks::rootless(
        probe::rootless(host, rt.as_ref()).as_ref(),
        pm,
    ));
    let probe_file = crate::runtime::limits::Probe::new(
        host.var(crate::host::vars::CONTAINERS_CONF).map(Into::into),
        host.home(),
    )
    .conf_file();
    let limits = rt.as_ref().and_then(|rt| {
        let rootful_podman = rt.engine.kind == crate::runtime::EngineKind::Podman
            && !rt.engine.rootless
            && !rt.engine.remote;
        rootful_podman.then(|| rt.limits()).flatten()
    });
    out.push(checks::host_limits(
        limits.map(|(h, d)| (h, d)),
        &probe_file,
    ));
    out.push(checks::tun(rt.as_ref().map(|rt| rt.tun_check()).as_ref()));
    let rig = probe::rig(&cx, rt.as_ref(), answers);
    out.extend(checks::rig(rig.as_ref().map_err(String::as_str)));
    let run = probe::run(rt.as_ref(), rig.as_ref().map_err(String::as_str));
    let image = rig.as_ref().map_or("", |r| r.image.as_str());
    out.push(checks::run(&run, image, engine_name.unwrap_or("podman")));
    out.push(checks::tmux(host.which("tmux").as_deref(), pm, root));
    for (name, found) in probe::agents(host) {
        out.push(checks::agent(name, found.as_deref()));
    }
    if let Some(home) = host.home() {
        out.extend(
            probe::credentials(&home)
                .iter()
                .map(|(p, m)| checks::credential(p, *m)),
        );
    }
    for b in probe::boxes(&cx.paths) {
        out.extend(box_file_checks(&b, rt.as_ref().filter(|_| answers)));
    }
    out
}

fn box_file_checks(
    b: &crate::boxes::BoxIdentity,
    rt: Option<&crate::runtime::Runtime>,
) -> Vec<Check> {
    let f = probe::one_box(b, rt);
    let mut out = vec![checks::stale_lock(&f), checks::planted_links(&f)];
    out.extend(f.credentials.iter().map(|(p, m)| checks::credential(p, *m)));
    out
}

fn diagnose(host: &HostEnv, exec: Arc<dyn Executor>, a: &JsonArgs) -> Result<Exit> {
    let report = Report::new("Kanibako System Diagnostics", system_checks(host, exec));
    Ok(emit(host, &report, a.json))
}

fn box_diagnose_on(host: &HostEnv, exec: Arc<dyn Executor>, a: &BoxDiagnoseArgs) -> Result<Exit> {
    let (cx, _) = probe::context(host, exec).map_err(UserError::new)?;
    let b = super::target::the_box(&cx, a.target.as_deref())?;
    let dir = |id, label: &str, p: &Path, fix: String| {
        if p.is_dir() {
            Check::ok(id, label, p.display().to_string())
        } else {
            Check::fix(id, label, format!("{} is missing", p.display()), fix)
        }
    };
    let q = |p: &Path| crate::process::shell_quote(&p.to_string_lossy());
    let name = b.display_name().to_owned();
    let mut checks_out = vec![
        dir(
            "project_dir",
            "Project directory",
            &b.workspace,
            format!(
                "kanibako box migrate {} NEW_PATH",
                crate::process::shell_quote(&name)
            ),
        ),
        dir(
            "shell_dir",
            "Shell directory",
            &b.shell,
            format!("kanibako shell {} -- true", q(&b.workspace)),
        ),
    ];
    let (engine, rt) = probe::engine(&cx);
    checks_out.push(checks::engine(
        &engine,
        probe::package_manager(host),
        host.uid == 0,
    ));
    let rt = rt.filter(|_| probe::answers(&engine));
    checks_out.extend(box_file_checks(&b, rt.as_ref()));
    let report = Report::new(
        format!("Box Diagnostics: {}", b.workspace.display()),
        checks_out,
    );
    Ok(emit(host, &report, a.json.json))
}

/// `system info` in JSON.
#[derive(Serialize)]
struct Info {
    version: &'static str,
    config: String,
    config_state: &'static str,
    data: Option<String>,
    runtime: Option<String>,
    runtime_version: Option<String>,
    install: super::system_upgrade::Install,
    agents: Vec<&'static str>,
}

fn info(host: &HostEnv, exec: Arc<dyn Executor>, a: &JsonArgs) -> Result<Exit> {
    let (cx, state) = probe::context(host, exec).map_err(UserError::new)?;
    let (engine, _) = probe::engine_asking(&cx, false);
    let (runtime, runtime_version) = match &engine {
        EngineFacts::Found {
            program, version, ..
        } => (
            Some(program.display().to_string()),
            Some(version.clone().unwrap_or_else(|e| format!("unknown ({e})"))),
        ),
        EngineFacts::Missing { .. } => (None, None),
    };
    let agents: Vec<&'static str> = probe::agents(host)
        .into_iter()
        .filter(|(_, p)| p.is_some())
        .map(|(n, _)| n)
        .collect();
    let info = Info {
        version: env!("CARGO_PKG_VERSION"),
        config: cx.paths.config_file.display().to_string(),
        config_state: match state {
            ConfigState::Missing => "missing",
            ConfigState::Parsed => "ok",
            ConfigState::Broken(_) => "broken",
        },
        data: Some(cx.paths.data.display().to_string()),
        runtime,
        runtime_version,
        install: super::system_upgrade::Install::of_this_with_cargo(host),
        agents,
    };
    if a.json {
        crate::json_output::print_object(&info);
        return Ok(Exit::Success);
    }
    let s = Styles::for_stdout(host);
    println!("{}", s.header(&format!("Kanibako v{}", info.version)));
    match &state {
        ConfigState::Missing => {
            println!("Config:    (not initialized — run 'kanibako setup' or just 'kanibako start')")
        }
        ConfigState::Parsed => println!("Config:    {}", info.config),
        ConfigState::Broken(e) => println!("Config:    {} (does not parse: {e})", info.config),
    }
    println!("Data:      {}", cx.paths.data.display());
    match (&info.runtime, &info.runtime_version) {
        (Some(p), Some(v)) => println!("Runtime:   {p} ({v})"),
        _ => println!("Runtime:   not found — install podman (https://podman.io/) or Docker"),
    }
    println!("Install:   {}", info.install.describe());
    if info.agents.is_empty() {
        println!("Agents:    none (install Claude Code: `claude` on your PATH)");
    } else {
        println!(
            "Agents:    {} detected ({}; use 'kanibako crab list' for details)",
            info.agents.len(),
            info.agents.join(", ")
        );
    }
    println!();
    println!(
        "{} Run 'kanibako system diagnose' for a full health check.",
        s.hint("Tip:")
    );
    Ok(Exit::Success)
}

pub fn completions(a: &crate::cli::system::CompletionsArgs) -> Result<Exit> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "kanibako".into());
    print!("{}", crate::completion::registration(a.shell, &exe));
    Ok(Exit::Success)
}

pub fn man(a: &crate::cli::system::ManArgs) -> Result<Exit> {
    match &a.dir {
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&crate::manpage::top_page())?;
        }
        Some(dir) => {
            for f in crate::manpage::write_to(dir)? {
                println!("{}", f.display());
            }
        }
    }
    Ok(Exit::Success)
}
