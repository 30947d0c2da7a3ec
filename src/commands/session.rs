//! `start` and `shell`: turn the parsed switches into a [`Launch`].

use anyhow::Result;

use crate::agents::SessionFlags;
use crate::cli::{ShellArgs, StartArgs};
use crate::context::Context;
use crate::error::Exit;
use crate::launch::{self, Launch, Session};

pub fn start(cx: &Context, a: StartArgs) -> Result<Exit> {
    launch::run(
        cx,
        Launch {
            project: a.project,
            env: a.launch.env,
            rig: a.launch.rig,
            entrypoint: a.launch.entrypoint,
            dry_run: a.launch.dry_run,
            session: Session::Start {
                flags: SessionFlags {
                    secure: a.secure,
                    resume: a.resume,
                    new_session: a.new,
                    new_box: false,
                },
                model: a.model,
                args: a.args,
            },
        },
    )
}

pub fn shell(cx: &Context, a: ShellArgs) -> Result<Exit> {
    launch::run(
        cx,
        Launch {
            project: a.project,
            env: a.launch.env,
            rig: a.launch.rig,
            entrypoint: a.launch.entrypoint,
            dry_run: a.launch.dry_run,
            session: Session::Shell { command: a.command },
        },
    )
}
