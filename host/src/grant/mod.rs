//! Grants: what a tool requests ([`ToolRequest`], published with it), what a
//! node's operator allows ([`Policy`]), and what one call gets ([`Grant`]):
//! the request, checked against the policy in one place. A request the
//! policy does not cover is refused whole, naming each missing piece;
//! everything not requested and granted is denied.
//!
//! - [`request`]: the `[permissions]` table of `tool.toml`;
//! - [`policy`]: the operator's policy file;
//! - [`grants`]: what a policy grants, as a node advertises it, and the one
//!   check of a request against it;
//! - [`address`]: which resolved addresses outbound HTTP may reach.

pub mod address;
pub mod grants;
pub mod policy;
pub mod request;

pub use grants::Grants;
pub use policy::{LentDir, NetworkPolicy, Policy, PolicyError, SecretValue};
pub use request::{GpuToml, PermissionsToml, settle_gpu, settle_gpu_for};
pub use toolmesh_registry::request::{NetworkRule, ToolRequest};

use crate::config::Limits;
use crate::sandbox::{SandboxError, humanize_bytes};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toolmesh_registry::request::HostPattern;

/// What one call of a tool may use: its request as covered by the node's
/// policy. The default grants nothing (log and progress need no grant).
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Outbound HTTP, if granted.
    pub network: Option<Arc<NetworkGrant>>,
    /// A per-call scratch directory, if granted.
    pub scratch: Option<ScratchGrant>,
    /// Secrets, by name, with their values.
    pub secrets: Vec<(String, SecretValue)>,
    /// Directories of the node, each at the path the tool asked for.
    pub files: Vec<DirGrant>,
    /// `wasi:config/store` values: the tool's own, then the policy's over them.
    pub config: BTreeMap<String, String>,
    /// GPU compute.
    pub gpu: bool,
    /// Memory the tool asked for, above the node's default.
    pub memory: Option<u64>,
    /// Time the tool asked for, above the node's default.
    pub timeout: Option<Duration>,
    /// The most memory the policy gives a call, if it caps it.
    pub max_memory: Option<u64>,
    /// The most time the policy gives a call, if it caps it.
    pub max_timeout: Option<Duration>,
}

/// Outbound HTTP as granted to a call.
#[derive(Debug, Clone)]
pub struct NetworkGrant {
    /// The requests it may make (the tool's rules, each covered by the policy).
    pub rules: Vec<NetworkRule>,
    /// Addresses the policy's allow list names literally: a request to
    /// one of them by that address may reach it whatever its class.
    pub explicit: Vec<IpAddr>,
    /// The policy's network part: private addresses, caps, waits, fixed answers.
    pub policy: NetworkPolicy,
}

/// A directory of the node as granted to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the node.
    pub host: PathBuf,
    /// The path the tool sees it at.
    pub guest: String,
    /// Whether the tool may write there.
    pub write: bool,
}

/// A scratch directory as granted to a call.
#[derive(Debug, Clone)]
pub struct ScratchGrant {
    /// Bytes it may hold.
    pub size: u64,
    /// Where it is made [default: the system's temp dir].
    pub parent: Option<PathBuf>,
}

impl Policy {
    /// What a call of a tool requesting `request` gets on this node, or
    /// every part of the request this node does not grant.
    pub fn grant(&self, request: &ToolRequest) -> Result<Grant, SandboxError> {
        let missing = self.grants().missing(request);
        if !missing.is_empty() {
            return Err(SandboxError::NotCovered { missing });
        }
        let network = (!request.network.is_empty()).then(|| {
            let explicit = self
                .network
                .allow
                .iter()
                .filter_map(|t| match t.host {
                    HostPattern::Ip(ip) => Some(ip),
                    _ => None,
                })
                .collect();
            Arc::new(NetworkGrant { rules: request.network.clone(), explicit, policy: self.network.clone() })
        });
        let scratch = request.scratch_bytes.map(|size| ScratchGrant { size, parent: self.scratch.dir.clone() });
        let secrets =
            request.secrets.iter().filter_map(|name| Some((name.clone(), self.secrets.get(name)?.clone()))).collect();
        let timeout = request.timeout_ms.map(Duration::from_millis);
        let files = request
            .files
            .iter()
            .filter_map(|rule| {
                let lent = self.files.iter().find(|l| grants::lends(&l.guest, l.write, rule))?;
                // Below the lent directory by plain names only (checked
                // when the request was read): no `..` can climb out.
                let below = rule.path[lent.guest.len()..].trim_start_matches('/');
                let host = if below.is_empty() { lent.host.clone() } else { lent.host.join(below) };
                Some(DirGrant { host, guest: rule.path.clone(), write: rule.write })
            })
            .collect();
        let mut config = request.config.clone();
        config.extend(self.config.clone());
        Ok(Grant {
            network,
            scratch,
            secrets,
            files,
            config,
            // An optional GPU is given where the policy grants one.
            gpu: request.requires_gpu() || (request.gpu_optional && self.gpu),
            memory: request.memory_bytes,
            timeout,
            max_memory: self.limits.max_memory,
            max_timeout: Some(self.limits.max_timeout),
        })
    }
}

impl Grant {
    /// Everything `request` asks for, as if a policy granted it all (to
    /// check at publish that a tool requests what its imports need).
    pub fn as_requested(request: &ToolRequest) -> Grant {
        Grant {
            network: (!request.network.is_empty()).then(|| {
                Arc::new(NetworkGrant {
                    rules: request.network.clone(),
                    explicit: Vec::new(),
                    policy: NetworkPolicy::default(),
                })
            }),
            scratch: request.scratch_bytes.map(|size| ScratchGrant { size, parent: None }),
            config: request.config.clone(),
            gpu: request.uses_gpu(),
            memory: request.memory_bytes,
            timeout: request.timeout_ms.map(Duration::from_millis),
            ..Grant::default()
        }
    }

    /// `limits` raised to what the tool asked for and clamped to the
    /// policy's maxima.
    pub fn apply_to(&self, limits: &mut Limits) {
        if let Some(memory) = self.memory {
            limits.memory = limits.memory.max(memory);
        }
        if let Some(timeout) = self.timeout {
            limits.timeout = limits.timeout.max(timeout);
        }
        if let Some(max) = self.max_memory {
            limits.memory = limits.memory.min(max);
        }
        if let Some(max) = self.max_timeout {
            limits.timeout = limits.timeout.min(max);
        }
    }

    /// What the grant gives, in short phrases (for logs and listings).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(network) = &self.network {
            out.extend(network.rules.iter().map(|r| format!("network {r}")));
        }
        if let Some(scratch) = &self.scratch {
            out.push(format!("scratch {}", humanize_bytes(scratch.size)));
        }
        out.extend(self.secrets.iter().map(|(name, _)| format!("secret {name}")));
        out.extend(self.files.iter().map(|d| format!("files {} {}", d.guest, if d.write { "rw" } else { "ro" })));
        if self.gpu {
            out.push("gpu".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolmesh_registry::request::Scheme;

    fn policy(text: &str) -> Policy {
        Policy::from_toml(text, &|var| (var == "NODE_KEY").then(|| "v".to_owned())).unwrap()
    }

    fn rule(host: &str, port: Option<u16>) -> NetworkRule {
        NetworkRule { scheme: Scheme::Https, host: host.parse().unwrap(), port, methods: vec!["GET".into()] }
    }

    #[test]
    fn a_covered_request_is_granted_and_limits_are_clamped() {
        let p = policy(
            "[network]\nallow = [\"*.example.org\"]\n[scratch]\nallow = true\n[secrets]\nAPI_KEY = { env = \"NODE_KEY\" }\n[limits]\nmax_timeout = \"20s\"\n",
        );
        let request = ToolRequest {
            network: vec![rule("api.example.org", None)],
            scratch_bytes: Some(1 << 20),
            secrets: vec!["API_KEY".into()],
            timeout_ms: Some(15_000),
            ..ToolRequest::default()
        };
        let grant = p.grant(&request).unwrap();
        assert_eq!(grant.describe(), ["network GET https://api.example.org", "scratch 1 MiB", "secret API_KEY"]);
        let mut limits = Limits { timeout: Duration::from_secs(10), ..Limits::default() };
        grant.apply_to(&mut limits);
        assert_eq!(limits.timeout, Duration::from_secs(15), "raised to what the tool asked");
        let mut limits = Limits { timeout: Duration::from_secs(3600), ..Limits::default() };
        grant.apply_to(&mut limits);
        assert_eq!(limits.timeout, Duration::from_secs(20), "a caller's hour is clamped to the policy");
    }

    #[test]
    fn everything_uncovered_is_named_at_once() {
        let p = policy("[network]\nallow = [\"api.example.com\"]\n");
        let request = ToolRequest {
            network: vec![rule("api.example.com", Some(8443)), rule("other.com", None)],
            scratch_bytes: Some(1),
            secrets: vec!["TOKEN".into()],
            gpu: true,
            timeout_ms: Some(3_600_000),
            ..ToolRequest::default()
        };
        let err = p.grant(&request).unwrap_err().to_string();
        for named in ["https://api.example.com:8443", "other.com", "scratch", "secret TOKEN", "GPU", "3600 s"] {
            assert!(err.contains(named), "{named} missing from: {err}");
        }
    }

    #[test]
    fn an_optional_gpu_is_granted_where_the_policy_allows_one_and_never_missing() {
        let optional = ToolRequest { gpu_optional: true, ..ToolRequest::default() };
        assert!(!Policy::builtin().grant(&optional).unwrap().gpu, "no GPU policy: runs without");
        assert!(policy("[gpu]\nallow = true\n").grant(&optional).unwrap().gpu);
        let required = ToolRequest { gpu: true, ..ToolRequest::default() };
        assert!(Policy::builtin().grant(&required).is_err());
        assert!(Grant::as_requested(&optional).gpu);
    }

    #[test]
    fn lent_directories_must_exist_and_be_named_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let lend = |host: &std::path::Path, guest: &str| {
            Policy::from_toml(&format!("[files]\nlend = [{{ host = {host:?}, guest = {guest:?} }}]\n"), &|_| None)
        };
        let p = lend(dir.path(), "/data").unwrap();
        assert_eq!(p.grants().summary().last().unwrap(), "files: /data (read-only)");
        let missing = lend(&dir.path().join("absent"), "/data").unwrap_err().to_string();
        assert!(missing.contains("is not a directory"), "{missing}");
        for guest in ["data", "/", "/a/../b", "/a//b"] {
            assert!(lend(dir.path(), guest).is_err(), "{guest}");
        }
        let request = ToolRequest {
            files: vec![toolmesh_registry::request::FileRule { path: "/data/x".into(), write: false }],
            ..ToolRequest::default()
        };
        let grant = p.grant(&request).unwrap();
        assert_eq!(grant.files[0].host, std::fs::canonicalize(dir.path()).unwrap().join("x"));
        assert_eq!(grant.describe(), ["files /data/x ro"]);
    }

    #[test]
    fn the_empty_request_needs_nothing() {
        let grant = Policy::builtin().grant(&ToolRequest::default()).unwrap();
        assert!(grant.describe().is_empty());
        assert!(
            Policy::builtin().grant(&ToolRequest { network: vec![rule("x.com", None)], ..Default::default() }).is_err()
        );
    }
}
