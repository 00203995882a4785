//! The `tool` command: inspect and run toolmesh tool components.
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
