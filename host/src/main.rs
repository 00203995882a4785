//! The `tool` command: inspect and run toolmesh tool components.
mod cli;

/// mimalloc: a busy node allocates and frees per call (requests, stores,
/// results) from several threads, where it beats the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
