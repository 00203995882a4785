//! The flags of an MCP front (`tool serve`, `tool gateway`): who may call,
//! from where, how often, and how much.

use super::Failure;
use super::sandbox_args::parse_size_arg;
use anyhow::anyhow;
use clap::Args;
use std::net::SocketAddr;
use toolmesh_host::gateway::http::McpHttpConfig;

/// Who may reach the MCP endpoint and with how much.
#[derive(Args, Debug)]
pub struct FrontArgs {
    /// An API key MCP clients must present (repeatable; `TOOLMESH_API_KEYS`,
    /// comma-separated). Required unless listening on loopback.
    #[arg(long = "api-key", env = "TOOLMESH_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    api_keys: Vec<String>,
    /// A host name clients use to reach this server (repeatable), beyond the loopback names.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// A browser origin allowed to call /mcp (repeatable), beyond local pages.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// MCP calls per minute per caller (0: unlimited).
    #[arg(long, default_value_t = 600)]
    rate_limit: u32,
    /// Largest MCP request body (a call's arguments) [default: 4MiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    max_body: Option<u64>,
}

impl FrontArgs {
    /// The MCP endpoint's settings for a server listening on `addr`;
    /// refuses a non-loopback address without API keys.
    pub fn config(&self, addr: SocketAddr) -> Result<McpHttpConfig, Failure> {
        if !addr.ip().is_loopback() && self.api_keys.is_empty() {
            return Err(Failure::usage(anyhow!(
                "{addr} is not a loopback address: pass --api-key KEY so only your clients can call tools"
            )));
        }
        let mut mcp = McpHttpConfig {
            api_keys: self.api_keys.clone(),
            rate_per_minute: self.rate_limit,
            ..McpHttpConfig::default()
        };
        if let Some(max) = self.max_body {
            mcp.max_body =
                usize::try_from(max).map_err(|_| Failure::usage(anyhow!("--max-body {max} is too large")))?;
        }
        mcp.allowed_hosts.extend(self.allowed_hosts.iter().cloned());
        mcp.allowed_origins.extend(self.allowed_origins.iter().cloned());
        Ok(mcp)
    }
}
