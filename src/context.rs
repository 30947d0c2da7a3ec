//! The per-invocation context every command handler receives: the captured host, the
//! resolved paths, the global config document and the process executor.
//!
//! Building it performs the upstream start-up work in order: legacy config migration,
//! `system.path` resolution, lazy first-run initialisation, base directories.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::boxes::{BoxIdentity, Mode};
use crate::document::Document;
use crate::host::HostEnv;
use crate::init;
use crate::paths::{Bases, Paths};
use crate::process::Executor;
use crate::runtime::{self, Runtime, RuntimeError};
use crate::settings::keys::Level;
use crate::settings::stack::{Source, Stack};

pub struct Context {
    pub host: HostEnv,
    pub paths: Paths,
    /// `$CFG/kanibako.yaml`.
    pub config: Document,
    pub exec: Arc<dyn Executor>,
}

/// `system.path.<leaf>` string values from the global config. Nested tables (such as
/// `share_rw: {name: …}`) are shares, not directories, and are skipped here.
fn system_path_values(config: &Document) -> Result<BTreeMap<String, String>> {
    Ok(config
        .get_fields(&["system", "path"])?
        .into_iter()
        .collect())
}

impl Context {
    pub fn load(host: HostEnv, exec: Arc<dyn Executor>) -> Result<Self> {
        let bases = Bases::from_host(&host)?;
        init::migrate_legacy_config(&bases)?;
        let config_file = bases.config_file();
        let first_run = !config_file.exists();
        let config = Document::load_following(&config_file)?;
        let paths = Paths::resolve(&host, bases, &system_path_values(&config)?)?;
        init::migrate_legacy_data(&paths)?;
        let config = if first_run {
            init::initialize(&paths)?
        } else {
            config
        };
        paths
            .ensure_base_dirs()
            .context("creating kanibako's directories")?;
        // A box move or copy that a crash cut short is put right before anything reads
        // the registry (one stat when there is none).
        match crate::boxes::intent::recover_locked(&paths) {
            Ok(None) => {}
            Ok(Some(crate::boxes::intent::Recovered::Undone)) => crate::output::note(
                "a box move or copy was cut short earlier; it is undone (the box is where it was)",
            ),
            Ok(Some(crate::boxes::intent::Recovered::Finished)) => crate::output::note(
                "a box move or copy was cut short after it took effect; it is finished",
            ),
            Err(e) => crate::output::warn(format_args!(
                "a box move or copy cut short earlier could not be put right: {e}"
            )),
        }
        Ok(Self {
            host,
            paths,
            config,
            exec,
        })
    }

    /// The settings levels of a box (or, without one, of the system; with `crab`, of
    /// that agent's profile too), most specific first.
    pub fn stack(&self, b: Option<&BoxIdentity>, crab: Option<&str>) -> Result<Stack> {
        let mut sources = Vec::new();
        // A standalone box's own file lies in its workspace: it may tighten the box's
        // hardening, never loosen it.
        let box_in_reach = b.is_some_and(|b| {
            b.mode == Mode::Standalone || b.project_file().starts_with(&b.workspace)
        });
        if let Some(b) = b {
            let doc = b.load_project()?;
            sources.push(Source {
                level: Level::Box,
                // A standalone box's file lies in its workspace: nothing there widens it.
                doc: match b.mode {
                    Mode::Standalone => crate::settings::stack::confine(doc),
                    _ => doc,
                },
                env_file: Some(b.env_file()),
            });
            match (&b.workset, b.mode) {
                (Some((_, root)), _) => sources.push(Source {
                    level: Level::Workset,
                    doc: Document::load(&root.join("config.yaml"))?,
                    env_file: Some(root.join("env")),
                }),
                // The default workset: all default-mode boxes. Its env is the system's.
                (None, Mode::Default) => sources.push(Source {
                    level: Level::Workset,
                    doc: Document::load(&self.paths.default_workset_config())?,
                    env_file: None,
                }),
                _ => {}
            }
        }
        if let Some(id) = crab {
            sources.push(self.crab_source(id)?);
        }
        sources.push(Source {
            level: Level::System,
            doc: self.config.clone(),
            env_file: Some(self.paths.system_env_file()),
        });
        Ok(Stack {
            sources,
            box_in_reach,
        })
    }

    fn crab_source(&self, id: &str) -> Result<Source> {
        Ok(Source {
            level: Level::Crab,
            doc: Document::load(&crate::agents::profile::path(&self.paths.crabs, id))?,
            env_file: None,
        })
    }

    /// `stack` with crab `id`'s level added in its place (above the system level),
    /// for a caller that learns which crab only after reading the other levels.
    pub fn add_crab(&self, mut stack: Stack, id: &str) -> Result<Stack> {
        let at = stack
            .sources
            .iter()
            .position(|s| s.level == Level::System)
            .unwrap_or(stack.sources.len());
        stack.sources.insert(at, self.crab_source(id)?);
        Ok(stack)
    }

    /// The container engine. Detection is a `PATH` lookup, so it is done where needed
    /// rather than up front for commands that never touch the engine.
    pub fn runtime(&self) -> Result<Runtime, RuntimeError> {
        let engine = runtime::detect(&self.host, self.exec.as_ref())?;
        let conf = self
            .host
            .var(crate::host::vars::CONTAINERS_CONF)
            .map(Into::into);
        let probe = runtime::limits::Probe::new(conf, self.host.home());
        // Under -v (debug logging) the engine's own output of a build or pull streams.
        let progress =
            crate::progress::wanted(&self.host, false) && !tracing::enabled!(tracing::Level::DEBUG);
        Ok(Runtime::new(engine, self.exec.clone())
            .with_limits(probe)
            .with_progress(progress))
    }
}
