//! Command handlers: one function per leaf command, called with the parsed arguments
//! and the [`Context`]. Shortcuts and their `box …` forms meet here.

pub mod archive;
pub mod boxes;
pub mod config;
pub mod crab;
pub mod egress;
pub mod helper;
pub mod lifecycle;
pub mod net;
pub mod rig;
pub mod session;
pub mod setup;
pub mod system;
pub mod system_upgrade;
pub mod target;
pub mod vault;
pub mod workset;

use anyhow::Result;

use crate::cli::{BoxCommand, Command, ListArgs, SystemCommand};
use crate::context::Context;
use crate::error::Exit;

pub fn dispatch(cx: &Context, command: Command) -> Result<Exit> {
    match command {
        Command::Start(a)
        | Command::Box {
            command: Some(BoxCommand::Start(a)),
        } => session::start(cx, *a),
        Command::Shell(a)
        | Command::Box {
            command: Some(BoxCommand::Shell(a)),
        } => session::shell(cx, *a),
        Command::Stop(a)
        | Command::Box {
            command: Some(BoxCommand::Stop(a)),
        } => session::stop(cx, &a),
        Command::Create(a) => boxes::create(cx, a),
        Command::Box {
            command: Some(BoxCommand::Create(a)),
        } => {
            let mut create = a.create;
            create.image = create.image.or(a.rig);
            boxes::create(cx, create)
        }
        Command::List(a) => boxes::list(cx, &a, false),
        Command::Box {
            command: Some(BoxCommand::List(a)),
        } => boxes::list(cx, &a.list, a.orphan),
        Command::Box { command: None } => boxes::list(cx, &ListArgs::default(), false),
        Command::Ps(a)
        | Command::Box {
            command: Some(BoxCommand::Ps(a)),
        } => boxes::ps(cx, &a),
        Command::Rm(a)
        | Command::Box {
            command: Some(BoxCommand::Rm(a)),
        } => boxes::rm(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Info(a)),
        } => boxes::info(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Config(a)),
        } => config::box_config(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Archive(a)),
        } => archive::archive(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Extract(a)),
        } => archive::extract(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Vault(a)),
        } => vault::dispatch(cx, a),
        Command::Box {
            command: Some(BoxCommand::Move(a)),
        } => lifecycle::move_box(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Migrate(a)),
        } => lifecycle::migrate(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Duplicate(a)),
        } => lifecycle::duplicate(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Purge(a)),
        } => lifecycle::purge(cx, &a),
        Command::Crab { command } => crab::dispatch(cx, command),
        Command::System {
            command: Some(SystemCommand::Config(a)),
        } => config::system_config(cx, &a),
        Command::System { command } => system::dispatch(cx, command),
        Command::Setup(a) => setup::setup(&cx.host, cx.exec.clone(), &a),
        Command::Completions(a) => system::completions(&a),
        Command::Man(a) => system::man(&a),
        Command::Box {
            command: Some(BoxCommand::Diagnose(a)),
        } => system::box_diagnose(cx, &a),
        Command::Box {
            command: Some(BoxCommand::Net { command }),
        } => net::dispatch(cx, command),
        Command::Workset { command } => workset::dispatch(cx, command),
        Command::Rig { command } => rig::dispatch(cx, command),
        Command::Egress(c) => egress::run(c),
        Command::Hub(a) => helper::hub(&a),
    }
}

#[cfg(test)]
mod tests;
