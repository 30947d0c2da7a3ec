//! Ctrl-C during long file work (archives, extracts, snapshots). While a [`Guard`]
//! lives, the first SIGINT or SIGTERM only sets a flag that the work checks between
//! steps ([`check`]), so it can remove its temporary files and leave the source as it
//! was; a second signal ends the process at once. Library code takes the check as a
//! parameter (`&dyn Fn() -> io::Result<()>`), so its tests are not at the mercy of a
//! signal another test raised.
//!
//! It must not be held around a foreground container: there the signal belongs to
//! the engine (see `process::Executor::foreground`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY of the call: _exit is async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            nix::libc::_exit(130)
        }
    }
}

/// The signal handlers installed; the previous ones come back on drop.
pub struct Guard {
    previous: Vec<(Signal, SigAction)>,
}

impl Guard {
    #[allow(unsafe_code)]
    pub fn install() -> Self {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only touches an atomic and may call _exit, both
            // async-signal-safe; the old action is restored on drop.
            if let Ok(old) = unsafe { sigaction(sig, &action) } {
                previous.push((sig, old));
            }
        }
        Self { previous }
    }
}

impl Drop for Guard {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for (sig, old) in self.previous.drain(..) {
            // SAFETY: restores the action that was in place before `install`.
            let _ = unsafe { sigaction(sig, &old) };
        }
    }
}

/// The error [`check`] returns. Not `ErrorKind::Interrupted`: `io::copy` and friends
/// retry on that kind (it means EINTR), and would spin instead of stopping.
#[derive(Debug, thiserror::Error)]
#[error("interrupted; nothing was changed")]
pub struct Interrupted;

/// An error once a signal has arrived (see [`is_interrupt`]).
pub fn check() -> io::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(stop())
    } else {
        Ok(())
    }
}

/// The error that stops work, for checks other than [`check`] (tests).
pub fn stop() -> io::Error {
    io::Error::other(Interrupted)
}

/// Whether `e` is the error [`check`] returns.
pub fn is_interrupt(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Interrupted>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_seen_by_check_and_the_old_handler_returns() {
        let g = Guard::install();
        assert!(check().is_ok());
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        assert!(is_interrupt(&check().unwrap_err()));
        drop(g);
        INTERRUPTED.store(false, Ordering::SeqCst);
    }
}
