//! The in-box entry of a member under `box.network = allowlist` (the director and
//! each helper alike): a shell that starts the forwarder (the mounted kanibako,
//! listening on 127.0.0.1:3128, relaying to `/run/kanibako/egress.sock`), then becomes
//! the member's own command. Pure.
//!
//! Fail closed by construction: a forwarder that does not start leaves the member with
//! loopback only, and says so on stderr.

use std::ffi::OsString;

use super::env::DEFAULT_LISTEN;

/// The mounted kanibako, as every member sees it.
pub const IN_BOX_KANIBAKO: &str = "/home/agent/.local/bin/kanibako";

/// `$0` of the entry's shell, so `ps` in the box says what it is.
const ARGV0: &str = "kanibako-egress";

/// The entry's shell text: start the forwarder (it returns once listening), then
/// become the command.
fn script() -> String {
    format!(
        "{IN_BOX_KANIBAKO} egress-forward --detach {DEFAULT_LISTEN} {} </dev/null >/dev/null 2>&1 || echo 'kanibako: the egress forwarder did not start: this box is offline' >&2; exec \"$@\"",
        super::IN_BOX_SOCKET
    )
}

/// The entrypoint and command that run `entrypoint command…` behind the forwarder.
/// With no entrypoint (the rig's own) the command runs, or `/bin/bash` when there is
/// none.
pub fn wrap(entrypoint: Option<String>, command: Vec<OsString>) -> (String, Vec<OsString>) {
    let mut out: Vec<OsString> = vec!["-c".into(), script().into(), ARGV0.into()];
    match entrypoint {
        Some(e) => out.push(e.into()),
        None if command.is_empty() => out.push("/bin/bash".into()),
        None => {}
    }
    out.extend(command);
    ("/bin/sh".into(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarder_starts_before_the_command() {
        let (e, c) = wrap(Some("claude".into()), vec!["--resume".into()]);
        assert_eq!(e, "/bin/sh");
        assert_eq!(c[0], "-c");
        let s = c[1].to_str().unwrap();
        assert!(
            s.starts_with("/home/agent/.local/bin/kanibako egress-forward --detach 127.0.0.1:3128 /run/kanibako/egress.sock "),
            "{s}"
        );
        assert!(s.ends_with("exec \"$@\""));
        assert_eq!(
            c[2..],
            ["kanibako-egress", "claude", "--resume"].map(OsString::from)
        );
        assert_eq!(wrap(None, Vec::new()).1[3], "/bin/bash");
        assert_eq!(wrap(None, vec!["ls".into()]).1[3..], [OsString::from("ls")]);
    }
}
