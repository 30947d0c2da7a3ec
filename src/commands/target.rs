//! The box a command acts on: found from the word the user gave, and whether it is
//! running now (box commands that change a box refuse a running one).

use anyhow::Result;

use crate::boxes::BoxIdentity;
use crate::boxes::address;
use crate::boxes::listing::Activity;
use crate::boxes::resolve::Resolution;
use crate::context::Context;
use crate::error::UserError;

/// The box a word names (NAME, WORKSET/NAME or PATH; `None`: here), which must exist.
pub fn the_box(cx: &Context, word: Option<&str>) -> Result<BoxIdentity> {
    match address::resolve(&cx.paths, &cx.host.cwd, word)? {
        Resolution::Found(b) => Ok(b),
        Resolution::Unregistered(p) => Err(UserError::new(format!(
            "No project data found for: {}",
            p.display()
        ))
        .hint("`kanibako create` makes it a box")
        .into()),
    }
}

/// Why the box counts as running, if it does: a session holds its lock, or a container
/// of it runs (a persistent one holds no lock).
pub fn active(cx: &Context, b: &BoxIdentity) -> Option<String> {
    if b.session_active() {
        return Some("a kanibako session holds its lock".into());
    }
    cx.runtime()
        .ok()
        .and_then(|rt| rt.containers().ok())
        .and_then(|list| Activity::new(list, &cx.paths.data_id()).of(b))
        .map(|a| format!("container {} is running", a.container))
}
