//! Child processes: an external command as plain data ([`Invocation`]) and the one
//! [`Executor`] that runs it.
//!
//! Every engine call and helper program goes through here, so `-v` shows each one as a
//! copy-pasteable command line and tests can record instead of run.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// A command to run: program, arguments and extra environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set in the child's environment on top of ours. Values never appear on argv.
    pub env: Vec<(OsString, OsString)>,
    /// The child's working directory (ours when `None`).
    pub cwd: Option<PathBuf>,
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Run in `dir`, not in ours (which may be an untrusted project).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    fn command(&self) -> Command {
        #[allow(clippy::disallowed_methods)] // the one place that builds a Command
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd
    }
}

/// Quote `s` for a POSIX shell, only when it needs it.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Invocation {
    /// `program arg …`, shell-quoted; environment values are left out on purpose.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", shell_quote(&self.program.to_string_lossy()))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(&a.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// Runs invocations. The real one spawns processes; tests substitute a recorder.
/// `Send + Sync`: work started on a background thread goes through the same executor
/// (and so is logged, and recorded in tests).
pub trait Executor: Send + Sync {
    /// Run with captured stdout/stderr and no stdin.
    fn output(&self, inv: &Invocation) -> io::Result<Output>;
    /// Run attached to our stdio.
    fn status(&self, inv: &Invocation) -> io::Result<ExitStatus>;
    /// Like [`Executor::output`], but give up after `limit`: `Ok(None)` means the
    /// child ran too long and was killed.
    fn output_within(&self, inv: &Invocation, limit: Duration) -> io::Result<Option<Output>> {
        let _ = limit;
        self.output(inv).map(Some)
    }
    /// Start without waiting (housekeeping nobody needs to wait for); errors are ignored.
    fn spawn_detached(&self, inv: &Invocation) {
        let _ = self.output(inv);
    }
    /// Run attached to our terminal as the foreground job (an interactive container):
    /// Ctrl-C and Ctrl-\ go to the child, not to us, so we live to clean up after it.
    fn foreground(&self, inv: &Invocation) -> io::Result<ExitStatus> {
        self.status(inv)
    }
}

/// The exit code a shell would report: the child's code, or 128 + the signal that
/// killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemExecutor;

impl Executor for SystemExecutor {
    fn output(&self, inv: &Invocation) -> io::Result<Output> {
        tracing::debug!("+ {inv}");
        inv.command().stdin(Stdio::null()).output()
    }

    fn status(&self, inv: &Invocation) -> io::Result<ExitStatus> {
        tracing::debug!("+ {inv}");
        inv.command().status()
    }

    fn output_within(&self, inv: &Invocation, limit: Duration) -> io::Result<Option<Output>> {
        use std::io::Read;
        tracing::debug!("+ {inv} (at most {} s)", limit.as_secs());
        let mut child = inv
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Drained on threads: a child that fills a pipe would otherwise never exit.
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        );
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Some(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }))
    }

    fn spawn_detached(&self, inv: &Invocation) {
        tracing::debug!("+ {inv} &");
        let _ = inv
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    fn foreground(&self, inv: &Invocation) -> io::Result<ExitStatus> {
        tracing::debug!("+ {inv}");
        let mut child = inv.command().spawn()?;
        let _ignored = IgnoreInterrupts::new();
        child.wait()
    }
}

/// SIGINT and SIGQUIT ignored while alive. The terminal sends them to the whole
/// foreground process group; the engine forwards them into the container, and we must
/// survive to release the box's lock and clean up.
struct IgnoreInterrupts {
    previous: Vec<(nix::sys::signal::Signal, nix::sys::signal::SigHandler)>,
}

impl IgnoreInterrupts {
    #[allow(unsafe_code)]
    fn new() -> Self {
        use nix::sys::signal::{SigHandler, Signal, signal};
        let mut previous = Vec::new();
        for sig in [Signal::SIGINT, Signal::SIGQUIT] {
            // SAFETY: SIG_IGN installs no handler code, so nothing can run in signal
            // context; the previous disposition is restored on drop.
            if let Ok(old) = unsafe { signal(sig, SigHandler::SigIgn) } {
                previous.push((sig, old));
            }
        }
        Self { previous }
    }
}

impl Drop for IgnoreInterrupts {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for (sig, old) in self.previous.drain(..) {
            // SAFETY: restores the disposition that was in place before `new`.
            let _ = unsafe { nix::sys::signal::signal(sig, old) };
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! A recording executor with canned answers, for unit tests of engine calls.
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Recorder {
        calls: Mutex<Vec<Invocation>>,
        /// (argument prefix, exit code, stdout) — the first match answers.
        pub answers: Vec<(Vec<String>, i32, String)>,
    }

    impl Recorder {
        pub fn answer(mut self, prefix: &[&str], code: i32, stdout: &str) -> Self {
            self.answers.push((
                prefix.iter().map(|s| (*s).to_owned()).collect(),
                code,
                stdout.into(),
            ));
            self
        }

        /// Every invocation so far, from any thread, in order.
        pub fn calls(&self) -> Vec<Invocation> {
            self.calls.lock().unwrap().clone()
        }

        pub fn lines(&self) -> Vec<String> {
            self.calls().iter().map(ToString::to_string).collect()
        }
    }

    impl Executor for Recorder {
        fn output(&self, inv: &Invocation) -> io::Result<Output> {
            self.calls.lock().unwrap().push(inv.clone());
            let args: Vec<String> = inv
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let (code, stdout) = self
                .answers
                .iter()
                .find(|(p, _, _)| args.starts_with(p))
                .map_or((0, String::new()), |(_, c, s)| (*c, s.clone()));
            Ok(Output {
                status: ExitStatus::from_raw(code << 8),
                stdout: stdout.into_bytes(),
                stderr: Vec::new(),
            })
        }

        fn status(&self, inv: &Invocation) -> io::Result<ExitStatus> {
            self.output(inv).map(|o| o.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_copy_pasteable() {
        let inv = Invocation::new("/usr/bin/podman").args([
            "ps",
            "--format",
            "{{.Names}}",
            "it's",
            "a b",
            "",
        ]);
        assert_eq!(
            inv.to_string(),
            r#"/usr/bin/podman ps --format '{{.Names}}' 'it'\''s' 'a b' ''"#
        );
    }

    #[test]
    fn env_values_stay_out_of_display() {
        let mut inv = Invocation::new("podman").arg("run");
        inv.env.push(("TOKEN".into(), "s3cret".into()));
        assert!(!inv.to_string().contains("s3cret"));
    }
}
