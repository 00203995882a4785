//! What a tool asks for. A node's grants (a later part) are matched against
//! these in one place; everything not asked for and granted is denied.

use crate::config::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};

/// The permissions a tool requests, published with it (from `tool.toml` or
/// flags) so a gateway can place calls only where they are granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    /// Hosts the tool wants to reach (`host` or `host:port`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<String>,
    /// Whether it needs GPU compute.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gpu: bool,
    /// Memory it needs, such as `512MiB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Time a call needs, such as `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Whether it needs a private scratch directory.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub scratch: bool,
}

/// A malformed permission request.
#[derive(Debug, thiserror::Error)]
#[error("invalid permissions: {0}")]
pub struct PermissionsError(String);

impl Permissions {
    /// Checks every field parses: host names, sizes, durations.
    pub fn validate(&self) -> Result<(), PermissionsError> {
        for host in &self.network {
            let name = host
                .rsplit_once(':')
                .map_or(host.as_str(), |(h, port)| if port.parse::<u16>().is_ok() { h } else { host.as_str() });
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                });
            if !ok {
                return Err(PermissionsError(format!("network host {host:?} is not a host name")));
            }
        }
        if let Some(memory) = &self.memory {
            parse_size(memory).map_err(|e| PermissionsError(format!("memory: {e}")))?;
        }
        if let Some(timeout) = &self.timeout {
            parse_duration(timeout).map_err(|e| PermissionsError(format!("timeout: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_hosts_sizes_and_durations() {
        let ok = Permissions {
            network: vec!["api.example.com".into(), "localhost:8080".into()],
            memory: Some("512MiB".into()),
            timeout: Some("30s".into()),
            ..Permissions::default()
        };
        ok.validate().unwrap();
        for bad in ["", "http://x", "a b", "-x.com", "x/y"] {
            let p = Permissions { network: vec![bad.into()], ..Permissions::default() };
            assert!(p.validate().is_err(), "{bad}");
        }
        assert!(Permissions { memory: Some("lots".into()), ..Permissions::default() }.validate().is_err());
    }

    #[test]
    fn empty_request_serialises_to_an_empty_object() {
        assert_eq!(serde_json::to_string(&Permissions::default()).unwrap(), "{}");
    }
}
