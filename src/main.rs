//! `atlas`: the desktop app (default) and the headless pipeline commands; see `cli`.
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
