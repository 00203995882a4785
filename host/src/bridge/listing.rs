//! What a node tells gateways of its bridged servers: their tools as the
//! servers list them, and how each server is contained — in this process
//! for `tool serve`, in the node's advert on a mesh.

use crate::sandbox::Offer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One bridged server as gateways see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerListing {
    /// Its name in the servers file (`[A-Za-z0-9_-]`).
    pub server: String,
    /// Its tools, as MCP `Tool` objects from its `tools/list`.
    pub tools: Vec<Value>,
    /// Its resources, resource templates and prompts.
    #[serde(default, skip_serializing_if = "Offer::is_empty")]
    pub offer: Offer,
    /// How it is contained.
    pub isolation: Isolation,
}

/// How a bridged server is contained, for people and models to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Isolation {
    /// A native process in an OS sandbox (bubblewrap).
    OsSandbox {
        /// Hosts the node's policy grants it, reached through the node's
        /// proxy.
        network: Vec<String>,
        /// Whether it has the node's whole network instead.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        whole_network: bool,
        /// Its data memory, in bytes.
        memory_bytes: u64,
        /// Its processes and threads.
        processes: u64,
        /// Its CPU time before a restart, in seconds.
        cpu_seconds: u64,
        /// Secrets it is given, by name.
        secrets: Vec<String>,
    },
    /// A native process with no sandbox: the node's operator opted out on
    /// a machine that cannot make one.
    Unsandboxed,
    /// A server elsewhere, reached over streamable HTTP by the node.
    Remote {
        /// Its host.
        host: String,
    },
}

impl Isolation {
    /// What a caller should know, in one sentence.
    pub fn describe(&self) -> String {
        match self {
            Isolation::OsSandbox { network, whole_network, memory_bytes, processes, cpu_seconds, secrets } => {
                let network = match (whole_network, network.is_empty()) {
                    (true, _) => "the node's whole network".to_owned(),
                    (false, true) => "no network".to_owned(),
                    (false, false) => format!("network only to {}, through the node's proxy", network.join(", ")),
                };
                let secrets =
                    if secrets.is_empty() { String::new() } else { format!("; secrets {}", secrets.join(", ")) };
                format!(
                    "a native process in an OS sandbox (bubblewrap), not a wasm sandbox: {network}; host files read-only \
                     without home directories or the host's /tmp; {} MiB data memory, {processes} processes, \
                     {cpu_seconds} s CPU{secrets}",
                    memory_bytes >> 20
                )
            }
            Isolation::Unsandboxed => "a native process WITHOUT a sandbox (its node's operator opted out): it can do \
                                       what the node's user can"
                .to_owned(),
            Isolation::Remote { host } => format!("a remote MCP server at {host}, reached over HTTP by its node"),
        }
    }
}
