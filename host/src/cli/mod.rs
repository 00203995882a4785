//! Command-line glue: parse arguments into typed options, build the
//! sandbox, dispatch to one verb. Errors are printed once, on stderr.
//!
//! Exit codes: 0 success; 1 the call or command failed (the reason is on
//! stderr); 2 bad usage or arguments.

/// `println!` for a command's results: an error writing them (most often
/// a reader that went away, as in `tool … | head`) ends the command through
/// [`Failure::output`] instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::cli::Failure::output)?
    }};
}

mod bridge_args;
mod build;
mod front_args;
mod identity;
mod inspect;
mod keys;
mod log_writer;
mod mesh;
mod new;
mod owner;
mod publish;
mod pull;
mod registry;
mod remote;
mod run;
mod sandbox_args;
mod search;
mod serve;
mod tool_toml;
mod usage;
mod yank;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// toolmesh: share and run untrusted tools for AI agents, each a
/// WebAssembly component in a sandbox.
#[derive(Parser)]
#[command(name = "tool", version, about)]
struct Cli {
    /// Log verbosity: -v for info (guest output, call records), -vv for debug.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new tool project: one example tool, its tool.toml, a test and a README.
    New(new::NewArgs),
    /// Build the tool in a directory into a component beside its tool.toml, and list its tools.
    Build(build::BuildArgs),
    /// Show a component's tools, their schemas, and its imports.
    Inspect(inspect::InspectArgs),
    /// Run one tool of a component (a file or a registry reference) and print its result.
    Run(run::RunArgs),
    /// Push a component to a registry, with its tools' metadata, signed by your publisher key.
    Publish(publish::PublishArgs),
    /// Save the registry, namespace and token to publish with.
    Login(identity::LoginArgs),
    /// List or add the owners of a namespace.
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
    /// Fetch a component from a registry by tag or digest, verified.
    Pull(pull::PullArgs),
    /// Check a published component's signature against trusted keys.
    Verify(pull::VerifyArgs),
    /// Make a publisher key pair.
    Keygen(keys::KeygenArgs),
    /// Search a registry's catalog of tools.
    Search(search::SearchArgs),
    /// Hide a published version from the catalog (pins keep working), or offer it again with --undo.
    Yank(yank::YankArgs),
    /// Run the registry.
    Registry(registry::RegistryCommand),
    /// Serve MCP with the registry and a local node in one process (publishes the examples on first start).
    Serve(serve::ServeArgs),
    /// Serve the data directory's tools over MCP on stdin/stdout (for Claude Desktop).
    Mcp(serve::McpArgs),
    /// Run calls for gateways on a NATS mesh, with components from a registry.
    Node(mesh::NodeArgs),
    /// Serve MCP and place each call on a node of a NATS mesh.
    Gateway(Box<mesh::GatewayArgs>),
    /// List the nodes of a NATS mesh: load, grants, labels.
    Nodes(mesh::NodesArgs),
    /// Show what each caller used of each tool: calls, CPU and GPU time, bytes.
    Usage(usage::UsageArgs),
    /// Run a bridged server inside its sandbox with its network proxy
    /// forwarder (started by the node; not for people).
    #[command(hide = true)]
    BridgeShim(bridge_args::ShimArgs),
}

/// An error with the exit code it should produce.
pub struct Failure {
    code: u8,
    error: anyhow::Error,
    /// Ends the command without a message (the reader of stdout is gone).
    quiet: bool,
}

impl Failure {
    /// The command failed (exit 1).
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: 1, error: error.into(), quiet: false }
    }

    /// The user asked for something malformed (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: 2, error: error.into(), quiet: false }
    }

    /// Results could not be written to stdout. A closed pipe means the
    /// reader has all it wanted: the command ends quietly, successfully.
    pub fn output(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure { code: 0, error: error.into(), quiet: true }
        } else {
            Failure::failed(anyhow::Error::new(error).context("cannot write the results"))
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::failed(error)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Inside a sandbox, beside its server: no runtime, no logging of its own.
    if let Command::BridgeShim(args) = &cli.command {
        return bridge_args::shim(args);
    }
    // Servers log their requests by default; one-shot commands only warnings.
    let serving =
        matches!(cli.command, Command::Registry(_) | Command::Serve(_) | Command::Node(_) | Command::Gateway(_));
    let _log = init_logging(cli.verbose + u8::from(serving));
    let result =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Failure::failed).and_then(|runtime| {
            let result = runtime.block_on(async {
                match cli.command {
                    Command::New(args) => new::run(args),
                    Command::Build(args) => build::run(args).await,
                    Command::Inspect(args) => inspect::run(args).await,
                    Command::Run(args) => run::run(args).await,
                    Command::Publish(args) => publish::run(args).await,
                    Command::Pull(args) => pull::pull(args).await,
                    Command::Verify(args) => pull::verify_cmd(args).await,
                    Command::Keygen(args) => keys::run(args),
                    Command::Search(args) => search::run(args).await,
                    Command::Yank(args) => yank::run(args).await,
                    Command::Login(args) => identity::login(args),
                    Command::Owner(command) => owner::run(command).await,
                    Command::Node(args) => mesh::node(args).await,
                    Command::Gateway(args) => mesh::gateway(*args).await,
                    Command::Nodes(args) => mesh::nodes(args).await,
                    Command::Usage(args) => usage::run(args).await,
                    Command::Registry(args) => registry::run(args).await,
                    Command::Serve(args) => serve::serve(args).await,
                    Command::Mcp(args) => serve::mcp(args).await,
                    Command::BridgeShim(_) => Ok(()),
                }
            });
            // What a stopped server leaves running (a call past its drain
            // time, GPU work on a blocking thread) does not hold the process.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            result
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.quiet {
                eprintln!("error: {:#}", failure.error);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Logs go to stderr, so stdout carries only results. Dependencies log
/// warnings only unless `TOOLMESH_LOG` asks for more; a server's own lines
/// at info are one audit line per call plus start-up and changes.
///
/// Lines are written in batches by a background thread
/// ([`log_writer`]); the returned flusher writes what is left when dropped.
fn init_logging(verbose: u8) -> log_writer::Flusher {
    let default = match verbose {
        0 => "warn",
        1 => "warn,toolmesh=info,toolmesh_host=info,toolmesh_registry=info,tool=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOOLMESH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let (writer, flusher) = log_writer::BatchedStderr::start();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    flusher
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
