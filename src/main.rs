fn main() -> std::process::ExitCode {
    kanibako::run(std::env::args_os())
}
