//! What a node's policy grants, without secret values: what a node
//! advertises to gateways and what placement matches a tool's request
//! against. [`Grants::missing`] is the one place that decides whether a
//! policy covers a request; a node's own grant ([`super::Policy::grant`])
//! and a gateway's placement both use it, so they cannot disagree.

use crate::sandbox::humanize_bytes;
use serde::{Deserialize, Serialize};
use toolmesh_registry::request::{FileRule, HostPattern, Scheme, Target, ToolRequest, is_within};

/// A policy's grants, as advertised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Outbound HTTP targets allowed, as `[scheme://]host[:port]`.
    #[serde(default, with = "targets")]
    pub network: Vec<Target>,
    /// Whether granted names may resolve to private addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// The largest scratch directory, if scratch is granted.
    #[serde(default)]
    pub scratch_max: Option<u64>,
    /// Names of the secrets held.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Directories lent, by the path tools see them at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<LentPath>,
    /// Whether GPU compute is granted.
    #[serde(default)]
    pub gpu: bool,
    /// The most memory one call gets, if capped.
    #[serde(default)]
    pub max_memory: Option<u64>,
    /// The most time one call gets, in milliseconds.
    pub max_timeout_ms: u64,
}

/// A directory a policy lends, as advertised (not where it is on the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LentPath {
    /// The path tools see it at.
    pub guest: String,
    /// Whether tools may write there.
    #[serde(default)]
    pub write: bool,
}

impl Grants {
    /// The lent directory that covers `rule`: it holds the path, and lets
    /// tools write if the rule writes.
    pub fn lending(&self, rule: &FileRule) -> Option<&LentPath> {
        self.files.iter().find(|lent| lends(&lent.guest, lent.write, rule))
    }

    /// Each part of `request` these grants do not cover, in words; empty
    /// when they cover all of it.
    pub fn missing(&self, request: &ToolRequest) -> Vec<String> {
        let mut missing = Vec::new();
        for rule in &request.network {
            if covering(&self.network, rule.scheme, &rule.host, rule.effective_port()).is_none() {
                missing.push(format!("network {rule} (not in the policy's [network] allow)"));
            }
        }
        match (request.scratch_bytes, self.scratch_max) {
            (Some(_), None) => missing.push("a scratch directory (the policy's [scratch] allow is false)".into()),
            (Some(size), Some(max)) if size > max => missing.push(format!(
                "a scratch directory of {} (the policy gives at most {})",
                humanize_bytes(size),
                humanize_bytes(max)
            )),
            _ => {}
        }
        for name in request.secrets.iter().filter(|name| !self.secrets.contains(name)) {
            missing.push(format!("secret {name} (the policy's [secrets] holds no such secret)"));
        }
        for rule in request.files.iter().filter(|rule| self.lending(rule).is_none()) {
            let how = if rule.write { " read-write" } else { "" };
            missing.push(format!("directory {rule} (the policy's [files] lends no directory{how} that holds it)"));
        }
        if request.gpu && !self.gpu {
            missing.push("GPU compute (the policy's [gpu] allow is false)".into());
        }
        if let (Some(asked), Some(max)) = (request.memory_bytes, self.max_memory)
            && asked > max
        {
            missing.push(format!(
                "{} of memory (the policy gives at most {})",
                humanize_bytes(asked),
                humanize_bytes(max)
            ));
        }
        if let Some(asked) = request.timeout_ms
            && asked > self.max_timeout_ms
        {
            missing.push(format!(
                "{} s of time (the policy gives at most {} s)",
                asked as f64 / 1000.0,
                self.max_timeout_ms as f64 / 1000.0
            ));
        }
        missing
    }
}

impl Grants {
    /// What these grants give, in short lines for people (banners, `tool nodes`).
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.network.is_empty() {
            out.push("network: none".to_owned());
        } else {
            let hosts: Vec<String> = self.network.iter().map(ToString::to_string).collect();
            let private = if self.allow_private { ", private addresses too" } else { "" };
            out.push(format!("network: {}{private}", hosts.join(", ")));
        }
        out.push(match self.scratch_max {
            Some(max) => format!("scratch: up to {}", humanize_bytes(max)),
            None => "scratch: none".to_owned(),
        });
        if !self.secrets.is_empty() {
            out.push(format!("secrets: {}", self.secrets.join(", ")));
        }
        for lent in &self.files {
            out.push(format!("files: {} ({})", lent.guest, if lent.write { "read-write" } else { "read-only" }));
        }
        if self.gpu {
            out.push("gpu: yes".to_owned());
        }
        out
    }
}

/// Whether a directory lent at `guest` (read-write if `write`) covers
/// `rule`: it holds the path, and lets the tool write if the rule writes.
pub fn lends(guest: &str, write: bool, rule: &FileRule) -> bool {
    is_within(&rule.path, guest) && (write || !rule.write)
}

/// The allowed target that covers requests to hosts `host` on `scheme`
/// and `port`, if any.
pub fn covering<'a>(allow: &'a [Target], scheme: Scheme, host: &HostPattern, port: u16) -> Option<&'a Target> {
    allow.iter().find(|t| {
        t.scheme.is_none_or(|s| s == scheme) && t.port.unwrap_or(scheme.default_port()) == port && t.host.covers(host)
    })
}

/// Targets as their text form on the wire.
mod targets {
    use serde::{Deserialize, Deserializer, Serializer};
    use toolmesh_registry::request::Target;

    pub fn serialize<S: Serializer>(targets: &[Target], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(targets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Target>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|t| t.parse().map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Policy;

    #[test]
    fn grants_travel_as_json_and_cover_what_the_policy_covers() {
        let policy = Policy::from_toml(
            "[network]\nallow = [\"*.example.org\", \"http://127.0.0.1:8080\"]\n[scratch]\nallow = true\nmax_size = \"8MiB\"\n",
            &|_| None,
        )
        .unwrap();
        let grants = policy.grants();
        let json = serde_json::to_value(&grants).unwrap();
        assert_eq!(json["network"], serde_json::json!(["*.example.org", "http://127.0.0.1:8080"]));
        assert_eq!(serde_json::from_value::<Grants>(json).unwrap(), grants);
        let wants = |text: &str| crate::grant::PermissionsToml::to_request(&toml::from_str(text).unwrap()).unwrap();
        assert!(grants.missing(&wants("network = [\"https://a.example.org\"]\nscratch = \"1MiB\"")).is_empty());
        let missing = grants.missing(&wants("network = [\"https://example.org\"]\nscratch = \"16MiB\"\ngpu = true"));
        assert_eq!(missing.len(), 3, "{missing:?}");
    }
}
