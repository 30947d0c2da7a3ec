#[allow(unsafe_code)]
fn main() -> std::process::ExitCode {
    // `kanibako list | head` should end quietly, as other command-line tools do, not
    // panic on the closed pipe: restore the default SIGPIPE that Rust's runtime ignores.
    // SAFETY: done first, before any thread exists; SIG_DFL installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    kanibako::run(std::env::args_os())
}
