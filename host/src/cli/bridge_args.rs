//! `--mcp-servers FILE`: the MCP servers a node bridges (`tool serve`,
//! `tool mcp`, `tool node`).

use super::Failure;
use anyhow::anyhow;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toolmesh_host::bridge::{Bridges, CallLimits, config};
use toolmesh_host::grant::Policy;
use toolmesh_host::sandbox::Sandbox;

/// Which existing MCP servers the node runs and offers.
#[derive(Args, Debug, Default)]
pub struct BridgeArgs {
    /// Bridge the MCP servers of this file (Claude Desktop's
    /// claude_desktop_config.json format): each runs in an OS sandbox
    /// (bubblewrap) and its tools join the catalog as
    /// bridged.<node>.<server>.<tool>.
    #[arg(long = "mcp-servers", value_name = "FILE")]
    mcp_servers: Option<PathBuf>,
}

impl BridgeArgs {
    /// Starts the file's servers, if one was given: each with a private
    /// directory under the policy's `[bridges] dir` or `data/bridges`.
    pub fn start(
        &self,
        policy: &Policy,
        sandbox: &Sandbox,
        data: Option<&Path>,
    ) -> Result<Option<Arc<Bridges>>, Failure> {
        let Some(file) = &self.mcp_servers else { return Ok(None) };
        let entries = config::load(file).map_err(|e| Failure::usage(anyhow!(e)))?;
        let dir = match (&policy.bridges.dir, data) {
            (Some(dir), _) => dir.clone(),
            (None, Some(data)) => data.join("bridges"),
            (None, None) => super::serve::default_data_dir()
                .ok_or_else(|| {
                    Failure::usage(anyhow!("no data directory known here; set [bridges] dir in the policy"))
                })?
                .join("bridges"),
        };
        let limits = &sandbox.config().limits;
        let limits = CallLimits { timeout: limits.timeout, output: limits.output };
        let count = entries.len();
        // Absolute, so the sandbox hides them wherever the node was started.
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let (dir, data) = (absolute(&dir), data.map(absolute));
        let bridges =
            Bridges::start(entries, policy, (&dir, data.as_deref()), limits).map_err(|e| Failure::usage(anyhow!(e)))?;
        eprintln!("bridging {count} MCP servers from {} (private directories under {})", file.display(), dir.display());
        Ok(Some(Arc::new(bridges)))
    }
}

/// Arguments of `tool bridge-shim` (run by a node inside a sandbox).
#[derive(Args, Debug)]
pub struct ShimArgs {
    /// The node's proxy socket, as bound inside the sandbox.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// The server's program.
    program: String,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs the server behind the forwarder; exits as it does.
pub fn shim(args: &ShimArgs) -> std::process::ExitCode {
    match toolmesh_host::bridge::shim::run(&args.socket, &args.program, &args.args) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(why) => {
            eprintln!("tool bridge-shim: {why}");
            std::process::ExitCode::from(1)
        }
    }
}
