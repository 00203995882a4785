//! What a node's policy lets bridged MCP servers have: the `[bridges]`
//! part of the policy file.
//!
//! ```toml
//! [bridges]
//! unsandboxed = false          # run servers without an OS sandbox where none can be made (explicit opt-out)
//! dir = "/var/lib/toolmesh/bridges"  # where each server's private directory is made
//! memory = "1GiB"              # data memory of each server
//! processes = 128              # processes and threads of each server
//! cpu_time = "1h"              # CPU time of each server process (it is restarted when spent)
//! tmp = "64MiB"                # each server's private /tmp
//! read_only = ["/root/.cache/toolmesh/node"]  # directories under /home, /root, /tmp servers need
//!
//! [bridges.servers.time]       # one server, by its name in the servers file
//! network = ["api.example.com", "*.example.org", "10.0.0.7:8443"]  # hosts it may reach, through the node's proxy
//! whole_network = false        # the node's whole network instead (for servers that ignore HTTP_PROXY)
//! secrets = ["API_KEY"]        # the node's [secrets] passed as environment variables
//! ```

use super::sandbox::SandboxSpec;
use crate::config::{de_duration, de_size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use toolmesh_registry::request::Target;

/// What bridged servers get on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePolicy {
    /// Whether servers run without an OS sandbox where none can be made.
    pub unsandboxed: bool,
    /// Where each server's private directory is made (`<dir>/<server>`);
    /// the user's data directory when absent.
    pub dir: Option<PathBuf>,
    /// Data memory of each server, in bytes.
    pub memory_bytes: u64,
    /// Processes and threads of each server.
    pub processes: u64,
    /// CPU time of one server process; it is restarted once spent.
    pub cpu_time: Duration,
    /// Bytes of each server's private `/tmp`.
    pub tmp_bytes: u64,
    /// Directories under hidden places that servers see, read-only.
    pub read_only: Vec<PathBuf>,
    /// Grants of single servers, by name.
    pub servers: BTreeMap<String, ServerGrant>,
}

/// What one bridged server is granted beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerGrant {
    /// Hosts it may reach (`host`, `*.domain`, `host:port`; without a
    /// port, ports 80 and 443), through the node's proxy
    /// ([`super::proxy`]): the server itself still has no network.
    pub network: Vec<String>,
    /// The node's whole network instead of none (for servers whose
    /// clients ignore `HTTP_PROXY`): said plainly wherever it is shown.
    pub whole_network: bool,
    /// Secrets of the node's policy passed as environment variables of
    /// the same name.
    pub secrets: Vec<String>,
}

impl Default for BridgePolicy {
    fn default() -> Self {
        let spec = SandboxSpec::new("/");
        BridgePolicy {
            unsandboxed: false,
            dir: None,
            memory_bytes: spec.memory_bytes,
            processes: spec.processes,
            cpu_time: spec.cpu_time,
            tmp_bytes: spec.tmp_bytes,
            read_only: Vec::new(),
            servers: BTreeMap::new(),
        }
    }
}

/// The `[bridges]` table as written.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct BridgesFile {
    unsandboxed: bool,
    dir: Option<PathBuf>,
    #[serde(deserialize_with = "de_size")]
    memory: u64,
    processes: u64,
    #[serde(deserialize_with = "de_duration")]
    cpu_time: Duration,
    #[serde(deserialize_with = "de_size")]
    tmp: u64,
    read_only: Vec<PathBuf>,
    servers: BTreeMap<String, ServerGrant>,
}

impl Default for BridgesFile {
    fn default() -> Self {
        let d = BridgePolicy::default();
        BridgesFile {
            unsandboxed: d.unsandboxed,
            dir: d.dir,
            memory: d.memory_bytes,
            processes: d.processes,
            cpu_time: d.cpu_time,
            tmp: d.tmp_bytes,
            read_only: d.read_only,
            servers: d.servers,
        }
    }
}

impl BridgesFile {
    /// The policy it writes, checked: `secrets` are the names the node's
    /// policy holds.
    pub(crate) fn check(self, secrets: &[&str]) -> Result<BridgePolicy, String> {
        for (name, grant) in &self.servers {
            if let Some(missing) = grant.secrets.iter().find(|s| !secrets.contains(&s.as_str())) {
                return Err(format!("[bridges.servers.{name}] secrets: {missing} is not in [secrets]"));
            }
            for host in &grant.network {
                host.parse::<Target>().map_err(|e| format!("[bridges.servers.{name}] network: {e}"))?;
            }
        }
        if let Some(relative) = self.read_only.iter().find(|p| !p.is_absolute()) {
            return Err(format!("[bridges] read_only: {} is not an absolute path", relative.display()));
        }
        if self.memory < 16 << 20 || self.processes == 0 || self.cpu_time.is_zero() {
            return Err("[bridges] memory must be at least 16MiB, processes and cpu_time above zero".into());
        }
        Ok(BridgePolicy {
            unsandboxed: self.unsandboxed,
            dir: self.dir,
            memory_bytes: self.memory,
            processes: self.processes,
            cpu_time: self.cpu_time,
            tmp_bytes: self.tmp,
            read_only: self.read_only,
            servers: self.servers,
        })
    }
}

impl BridgePolicy {
    /// What server `name` is granted (nothing beyond the defaults if unnamed).
    pub fn grant(&self, name: &str) -> ServerGrant {
        self.servers.get(name).cloned().unwrap_or_default()
    }
}

impl ServerGrant {
    /// The hosts it may reach, as targets (checked when the policy was read).
    pub fn targets(&self) -> Vec<Target> {
        self.network.iter().filter_map(|host| host.parse().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::grant::Policy;
    use std::time::Duration;

    #[test]
    fn bridges_grants_read_and_mistakes_are_named() {
        let policy = Policy::from_toml(
            r#"
[secrets]
API_KEY = { env = "K" }
[bridges]
memory = "256MiB"
cpu_time = "10m"
read_only = ["/root/.cache/toolmesh/node"]
[bridges.servers.docs]
network = ["api.example.com"]
secrets = ["API_KEY"]
"#,
            &|_| Some("v".into()),
        )
        .unwrap();
        let bridges = &policy.bridges;
        assert_eq!((bridges.memory_bytes, bridges.cpu_time), (256 << 20, Duration::from_secs(600)));
        assert!(!bridges.unsandboxed && bridges.processes == 128);
        assert_eq!(bridges.grant("docs").network, ["api.example.com"]);
        assert!(bridges.grant("other").network.is_empty());
        for (text, says) in [
            ("[bridges.servers.x]\nsecrets = [\"NOPE\"]", "NOPE is not in [secrets]"),
            ("[bridges]\nread_only = [\"relative\"]", "not an absolute path"),
            ("[bridges]\nmemory = \"1MiB\"", "at least 16MiB"),
            ("[bridges]\nnetwork = true", "unknown field"),
            ("[bridges.servers.x]\nnetwork = [\"http://a/b\"]", "[bridges.servers.x] network"),
        ] {
            let error = Policy::from_toml(text, &|_| None).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
