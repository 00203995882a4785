//! A node operator's policy: what this node grants the tools it runs. Read
//! from TOML (`--policy FILE`); the built-in policy grants nothing beyond
//! log lines and progress reports.
//!
//! ```toml
//! [network]
//! allow = ["api.example.com", "*.example.org", "http://127.0.0.1:8080"]
//! allow_private = false        # loopback, private and link-local targets
//! max_requests = 32            # per call
//! max_response_bytes = "8MiB"  # per call, all responses together
//! connect_timeout = "5s"
//! first_byte_timeout = "10s"
//! between_bytes_timeout = "10s"
//! resolve = { "api.internal" = "10.0.0.7" }  # fixed answers instead of DNS (checked alike)
//!
//! [scratch]
//! allow = true
//! max_size = "64MiB"
//!
//! [files]                     # host directories lent to tools that request them
//! lend = [{ host = "/srv/datasets", guest = "/data" },
//!         { host = "/srv/out", guest = "/out", write = true }]
//!
//! [config]                    # wasi:config/store values, over the tool's own
//! region = "eu-west"
//!
//! [secrets]
//! API_KEY = { env = "NODE_API_KEY" }
//! TOKEN = { file = "/etc/toolmesh/token" }
//!
//! [limits]
//! max_memory = "512MiB"
//! max_timeout = "60s"
//!
//! [gpu]
//! allow = false
//! max_buffer = "256MiB"        # one buffer
//! max_bytes = "1GiB"           # per call, all buffers together
//! max_dispatches = 10000       # per call
//! time_budget = "10s"          # per call, time waiting for the GPU
//! max_loop_iterations = 16777216  # per shader invocation, all loops
//!
//! [publishers]
//! allow_unsigned = true
//! trusted = ["ed25519:…"]
//!
//! [bridges]                    # bridged MCP servers: see crate::bridge::policy
//! ```

use crate::capability::gpu::GpuLimits;
use crate::config::{de_duration, de_size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toolmesh_registry::request::{Target, is_valid_secret_name};
use toolmesh_registry::signing::PublicKey;

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

/// What a node grants.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Outbound HTTP.
    pub network: NetworkPolicy,
    /// Per-call scratch directories.
    pub scratch: ScratchPolicy,
    /// Secrets the node holds, by the name tools ask for.
    pub secrets: BTreeMap<String, SecretValue>,
    /// Host directories lent to tools, at the paths tools see them at.
    pub files: Vec<LentDir>,
    /// `wasi:config/store` values it sets, over those a tool publishes.
    pub config: BTreeMap<String, String>,
    /// The most memory and time it gives one call.
    pub limits: LimitsPolicy,
    /// Whether it grants GPU compute.
    pub gpu: bool,
    /// What one call may use of the GPU, when granted.
    pub gpu_limits: GpuLimits,
    /// Which publishers' tools it runs.
    pub publishers: PublisherPolicy,
    /// What bridged MCP servers get ([`crate::bridge::policy`]).
    pub bridges: crate::bridge::policy::BridgePolicy,
}

/// The network part of a policy.
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    /// Targets tools may reach.
    pub allow: Vec<Target>,
    /// Whether loopback, private, link-local and shared (CGNAT) addresses
    /// may be reached, when a granted name resolves to one.
    pub allow_private: bool,
    /// Requests one call may make.
    pub max_requests: u32,
    /// Response body bytes one call may receive, all responses together.
    pub max_response_bytes: u64,
    /// Longest wait for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest wait for a response's first byte.
    pub first_byte_timeout: Duration,
    /// Longest pause between two chunks of a response body.
    pub between_bytes_timeout: Duration,
    /// Fixed addresses for names, used instead of DNS (and still checked).
    pub resolve: BTreeMap<String, Vec<IpAddr>>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            allow: Vec::new(),
            allow_private: false,
            max_requests: 32,
            max_response_bytes: 8 << 20,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            between_bytes_timeout: Duration::from_secs(10),
            resolve: BTreeMap::new(),
        }
    }
}

/// The scratch part of a policy.
#[derive(Debug, Clone, Default)]
pub struct ScratchPolicy {
    /// Whether calls may have a scratch directory.
    pub allow: bool,
    /// The largest one.
    pub max_size: u64,
    /// Where the per-call directories are made [default: the system's temp dir].
    pub dir: Option<PathBuf>,
}

/// A host directory a policy lends to tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LentDir {
    /// The directory on the node.
    pub host: PathBuf,
    /// The path tools see it at; a tool may request it or any directory in it.
    pub guest: String,
    /// Whether tools may write there.
    pub write: bool,
}

/// A secret's value, held in memory; it never prints.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// The value, to hand to a call that was granted it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(…)")
    }
}

/// The most one call gets.
#[derive(Debug, Clone)]
pub struct LimitsPolicy {
    /// Memory [default: the sandbox's memory limit].
    pub max_memory: Option<u64>,
    /// Wall-clock time.
    pub max_timeout: Duration,
}

impl Default for LimitsPolicy {
    fn default() -> Self {
        LimitsPolicy { max_memory: None, max_timeout: Duration::from_secs(300) }
    }
}

/// Which tools a node runs, by who signed them.
#[derive(Debug, Clone)]
pub struct PublisherPolicy {
    /// Whether tools nobody signed may run.
    pub allow_unsigned: bool,
    /// Keys whose signatures make a tool trusted. Empty: nothing is checked
    /// (and then unsigned tools must be allowed).
    pub trusted: Vec<PublicKey>,
}

impl Default for PublisherPolicy {
    fn default() -> Self {
        PublisherPolicy { allow_unsigned: true, trusted: Vec::new() }
    }
}

// The file's shape; converted into the types above once checked.

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PolicyFile {
    network: NetworkFile,
    scratch: ScratchFile,
    secrets: BTreeMap<String, SecretSource>,
    files: FilesFile,
    config: BTreeMap<String, String>,
    limits: LimitsFile,
    gpu: GpuFile,
    publishers: PublishersFile,
    bridges: crate::bridge::policy::BridgesFile,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NetworkFile {
    allow: Vec<String>,
    allow_private: bool,
    max_requests: u32,
    #[serde(deserialize_with = "de_size")]
    max_response_bytes: u64,
    #[serde(deserialize_with = "de_duration")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    first_byte_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    between_bytes_timeout: Duration,
    resolve: BTreeMap<String, OneOrMany>,
}

impl Default for NetworkFile {
    fn default() -> Self {
        let d = NetworkPolicy::default();
        NetworkFile {
            allow: Vec::new(),
            allow_private: d.allow_private,
            max_requests: d.max_requests,
            max_response_bytes: d.max_response_bytes,
            connect_timeout: d.connect_timeout,
            first_byte_timeout: d.first_byte_timeout,
            between_bytes_timeout: d.between_bytes_timeout,
            resolve: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ScratchFile {
    allow: bool,
    #[serde(deserialize_with = "de_size")]
    max_size: u64,
    dir: Option<PathBuf>,
}

impl Default for ScratchFile {
    fn default() -> Self {
        ScratchFile { allow: false, max_size: 64 << 20, dir: None }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct FilesFile {
    lend: Vec<LendFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LendFile {
    host: PathBuf,
    guest: String,
    #[serde(default)]
    write: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct LimitsFile {
    max_memory: Option<String>,
    max_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GpuFile {
    allow: bool,
    #[serde(deserialize_with = "de_size")]
    max_buffer: u64,
    #[serde(deserialize_with = "de_size")]
    max_bytes: u64,
    max_dispatches: u32,
    #[serde(deserialize_with = "de_duration")]
    time_budget: Duration,
    max_loop_iterations: u32,
    #[serde(deserialize_with = "de_size")]
    weights_memory: u64,
}

impl Default for GpuFile {
    fn default() -> Self {
        let limits = GpuLimits::default();
        GpuFile {
            allow: false,
            max_buffer: limits.max_buffer_size,
            max_bytes: limits.max_total_bytes,
            max_dispatches: limits.max_dispatches,
            time_budget: limits.time_budget,
            max_loop_iterations: limits.max_loop_iterations,
            weights_memory: limits.weights_memory,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PublishersFile {
    /// [default: true without trusted keys, false with them]
    allow_unsigned: Option<bool>,
    trusted: Vec<String>,
}

impl Policy {
    /// The built-in policy: nothing beyond log lines and progress; unsigned
    /// tools run (the embedded default publishes its own examples).
    pub fn builtin() -> Self {
        Policy::default()
    }

    /// Reads a policy file; secrets are read from the environment or their
    /// files now, so a missing one stops the node at start.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError(format!("cannot read the policy {}: {e}", path.display())))?;
        Policy::from_toml(&text, &|name| std::env::var(name).ok())
            .map_err(|e| PolicyError(format!("in the policy {}: {e}", path.display())))
    }

    /// Parses a policy; `env` looks up environment variables for secrets.
    pub fn from_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError(crate::config::toml_error(text, &e)))?;
        let n = file.network;
        let allow = n
            .allow
            .iter()
            .map(|t| t.parse::<Target>().map_err(|e| PolicyError(format!("[network] allow: {e}"))))
            .collect::<Result<_, _>>()?;
        let mut resolve = BTreeMap::new();
        for (name, addresses) in n.resolve {
            let list = match addresses {
                OneOrMany::One(a) => vec![a],
                OneOrMany::Many(list) => list,
            };
            let ips = list
                .iter()
                .map(|a| {
                    a.parse::<IpAddr>()
                        .map_err(|_| PolicyError(format!("[network] resolve: {a:?} is not an IP address")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            resolve.insert(name.trim_end_matches('.').to_ascii_lowercase(), ips);
        }
        let mut secrets = BTreeMap::new();
        for (name, source) in file.secrets {
            if !is_valid_secret_name(&name) {
                return Err(PolicyError(format!("[secrets] {name:?} is not 1-64 of [A-Z0-9_] starting with a letter")));
            }
            let value = match source {
                SecretSource::Env(var) => env(&var).ok_or_else(|| {
                    PolicyError(format!("[secrets] {name}: the environment variable {var} is not set"))
                })?,
                SecretSource::File(path) => std::fs::read_to_string(&path)
                    .map(|v| v.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|e| PolicyError(format!("[secrets] {name}: cannot read {}: {e}", path.display())))?,
            };
            secrets.insert(name, SecretValue(value));
        }
        let mut files: Vec<LentDir> = Vec::new();
        for lend in file.files.lend {
            toolmesh_registry::request::check_guest_path(&lend.guest)
                .map_err(|e| PolicyError(format!("[files] lend: {e}")))?;
            if files.iter().any(|f| f.guest == lend.guest) {
                return Err(PolicyError(format!("[files] lend: {} is lent twice", lend.guest)));
            }
            // Resolved now: the directory must exist, and a link swapped
            // later cannot move what is lent.
            let host = std::fs::canonicalize(&lend.host)
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| PolicyError(format!("[files] lend: {} is not a directory", lend.host.display())))?;
            files.push(LentDir { host, guest: lend.guest, write: lend.write });
        }
        let parse_opt_size = |v: &Option<String>, what: &str| {
            v.as_deref()
                .map(crate::config::parse_size)
                .transpose()
                .map_err(|e| PolicyError(format!("[limits] {what}: {e}")))
        };
        let max_timeout = match &file.limits.max_timeout {
            Some(t) => {
                crate::config::parse_duration(t).map_err(|e| PolicyError(format!("[limits] max_timeout: {e}")))?
            }
            None => LimitsPolicy::default().max_timeout,
        };
        let trusted: Vec<PublicKey> = file
            .publishers
            .trusted
            .iter()
            .map(|k| PublicKey::from_text(k).map_err(|e| PolicyError(format!("[publishers] trusted: {e}"))))
            .collect::<Result<_, _>>()?;
        let allow_unsigned = file.publishers.allow_unsigned.unwrap_or(trusted.is_empty());
        if !allow_unsigned && trusted.is_empty() {
            return Err(PolicyError(
                "[publishers] allow_unsigned = false needs trusted keys: a signature by a key nobody trusts proves nothing"
                    .into(),
            ));
        }
        let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
        let bridges = file.bridges.check(&names).map_err(PolicyError)?;
        Ok(Policy {
            bridges,
            network: NetworkPolicy {
                allow,
                allow_private: n.allow_private,
                max_requests: n.max_requests,
                max_response_bytes: n.max_response_bytes,
                connect_timeout: n.connect_timeout,
                first_byte_timeout: n.first_byte_timeout,
                between_bytes_timeout: n.between_bytes_timeout,
                resolve,
            },
            scratch: ScratchPolicy {
                allow: file.scratch.allow,
                max_size: file.scratch.max_size,
                dir: file.scratch.dir,
            },
            secrets,
            files,
            config: file.config,
            limits: LimitsPolicy { max_memory: parse_opt_size(&file.limits.max_memory, "max_memory")?, max_timeout },
            gpu: file.gpu.allow,
            gpu_limits: GpuLimits {
                max_buffer_size: file.gpu.max_buffer,
                max_total_bytes: file.gpu.max_bytes,
                max_dispatches: file.gpu.max_dispatches,
                time_budget: file.gpu.time_budget,
                max_loop_iterations: file.gpu.max_loop_iterations.max(1),
                weights_memory: file.gpu.weights_memory,
                ..GpuLimits::default()
            },
            publishers: PublisherPolicy { allow_unsigned, trusted },
        })
    }

    /// What the policy grants, as a node advertises it (no secret values).
    pub fn grants(&self) -> super::Grants {
        super::Grants {
            network: self.network.allow.clone(),
            allow_private: self.network.allow_private,
            scratch_max: self.scratch.allow.then_some(self.scratch.max_size),
            secrets: self.secrets.keys().cloned().collect(),
            files: self
                .files
                .iter()
                .map(|f| super::grants::LentPath { guest: f.guest.clone(), write: f.write })
                .collect(),
            gpu: self.gpu,
            max_memory: self.limits.max_memory,
            max_timeout_ms: u64::try_from(self.limits.max_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// What the policy grants, in short lines for people (`tool serve`'s
    /// banner, `tool node`'s start).
    pub fn summary(&self) -> Vec<String> {
        self.grants().summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_policy_reads_and_secrets_come_from_the_environment() {
        let policy = Policy::from_toml(
            r#"
[network]
allow = ["api.example.com", "*.example.org", "127.0.0.1:8080"]
allow_private = true
max_response_bytes = "1MiB"
resolve = { "Meta.Test" = "169.254.169.254" }
[scratch]
allow = true
max_size = "8MiB"
[secrets]
API_KEY = { env = "NODE_KEY" }
[limits]
max_timeout = "20s"
"#,
            &|var| (var == "NODE_KEY").then(|| "s3cret".to_owned()),
        )
        .unwrap();
        assert_eq!(policy.network.allow.len(), 3);
        assert!(policy.network.allow_private);
        assert_eq!(policy.network.max_response_bytes, 1 << 20);
        assert_eq!(policy.network.resolve["meta.test"], vec![IpAddr::from([169, 254, 169, 254])]);
        assert_eq!((policy.scratch.allow, policy.scratch.max_size), (true, 8 << 20));
        assert_eq!(policy.secrets["API_KEY"].expose(), "s3cret");
        assert!(!format!("{policy:?}").contains("s3cret"), "secrets never print");
        assert_eq!(policy.limits.max_timeout, Duration::from_secs(20));
    }

    #[test]
    fn gpu_budgets_are_read_and_default_where_unset() {
        let no_env = |_: &str| None;
        let text = "[gpu]\nallow = true\nmax_bytes = \"64MiB\"\ntime_budget = \"2s\"\nmax_loop_iterations = 1000";
        let policy = Policy::from_toml(text, &no_env).unwrap();
        assert!(policy.gpu);
        let limits = &policy.gpu_limits;
        assert_eq!((limits.max_total_bytes, limits.time_budget), (64 << 20, Duration::from_secs(2)));
        assert_eq!(limits.max_loop_iterations, 1000);
        assert_eq!(limits.max_dispatches, GpuLimits::default().max_dispatches);
        assert!(!Policy::from_toml("", &no_env).unwrap().gpu);
        let err = Policy::from_toml("[gpu]\nmax_shaders = 3", &no_env).unwrap_err().to_string();
        assert!(err.contains("max_shaders"), "{err}");
    }

    #[test]
    fn mistakes_are_named() {
        let no_env = |_: &str| None;
        let cases = [
            ("[network]\nallow = [\"https://x.com/path\"]\n", "allow"),
            ("[network]\nalow = []\n", "alow"),
            ("[secrets]\nKEY = { env = \"MISSING\" }\n", "MISSING"),
            ("[secrets]\nkey = { env = \"X\" }\n", "\"key\""),
            ("[network]\nresolve = { a = \"nope\" }\n", "nope"),
            ("[publishers]\ntrusted = [\"junk\"]\n", "trusted"),
            ("[publishers]\nallow_unsigned = false\n", "needs trusted keys"),
        ];
        for (text, named) in cases {
            let err = Policy::from_toml(text, &no_env).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn the_builtin_policy_grants_nothing() {
        let policy = Policy::builtin();
        assert!(policy.network.allow.is_empty() && !policy.scratch.allow && policy.secrets.is_empty() && !policy.gpu);
    }
}
