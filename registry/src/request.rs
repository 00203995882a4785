//! What a tool asks of the node that runs it: outbound HTTP, a scratch
//! directory, directories of the node, configuration values, secrets, GPU,
//! memory and time. Published in the manifest
//! (annotation [`crate::oci::annotation::PERMISSIONS`]) as a typed,
//! versioned document, so gateways place calls and nodes grant them without
//! downloading or running anything, and a reader refuses a format newer
//! than it knows instead of misreading it.

pub use crate::target::{HostPattern, Scheme, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The newest format of [`ToolRequest`] this crate reads. It writes the
/// oldest format that holds what a request asks for (1; 2 for a GPU taken
/// as optional; 3 for directories or configuration; 4 for calls to other
/// tools), so older nodes keep reading what they can run.
pub const REQUEST_FORMAT: u32 = 4;

/// Everything a tool requests. The empty request (the default) asks for
/// nothing beyond log lines and progress reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRequest {
    /// The format version: the oldest one that holds the request when
    /// written by this crate (see [`REQUEST_FORMAT`]).
    pub format: u32,
    /// Outbound HTTP requests it makes, by target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetworkRule>,
    /// Bytes of per-call scratch directory it needs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_bytes: Option<u64>,
    /// Names of secrets it reads from its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Directories of the node it reads or writes, by the path it sees
    /// them at (format 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRule>,
    /// Values it reads through `wasi:config/store`, as published with it;
    /// a node's policy may set others (format 3).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Whether it needs GPU compute: placed only on nodes that grant it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu: bool,
    /// Whether it uses GPU compute where a node grants it and runs without
    /// one elsewhere (format 2): placed on GPU nodes first, on others when
    /// none is free. Ignored when [`ToolRequest::gpu`] requires one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu_optional: bool,
    /// Whether it calls other tools of the catalog, as its caller
    /// (format 4): the gateway grants those calls to it alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools: bool,
    /// Linear memory a call needs, in bytes, when more than a node's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Wall-clock time a call needs, in milliseconds, when more than a node's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Default for ToolRequest {
    fn default() -> Self {
        ToolRequest {
            format: 1,
            network: Vec::new(),
            scratch_bytes: None,
            secrets: Vec::new(),
            files: Vec::new(),
            config: BTreeMap::new(),
            gpu: false,
            gpu_optional: false,
            tools: false,
            memory_bytes: None,
            timeout_ms: None,
        }
    }
}

/// A request that cannot be read or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The document is not a request of a known format.
    #[error("the permission request cannot be read: {0}")]
    Malformed(String),
    /// It was written in a newer format than this reader knows.
    #[error(
        "the permission request is in format {found}, newer than this node reads ({REQUEST_FORMAT}): upgrade the node"
    )]
    NewerFormat {
        /// The format found.
        found: u32,
    },
    /// A field holds a value that is not allowed.
    #[error("invalid permission request: {0}")]
    Invalid(String),
}

impl ToolRequest {
    /// Reads a request from its published JSON. An absent annotation is the
    /// empty request.
    pub fn from_annotation(text: Option<&str>) -> Result<Self, RequestError> {
        let Some(text) = text else { return Ok(ToolRequest::default()) };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RequestError::Malformed(e.to_string()))?;
        ToolRequest::from_value(value)
    }

    /// Reads a request from JSON, checking the format first so a newer
    /// document is reported as such rather than as unknown fields.
    pub fn from_value(value: serde_json::Value) -> Result<Self, RequestError> {
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(found) if found > u64::from(REQUEST_FORMAT) => {
                return Err(RequestError::NewerFormat { found: u32::try_from(found).unwrap_or(u32::MAX) });
            }
            Some(_) => {}
            None => return Err(RequestError::Malformed("no `format` field".into())),
        }
        let request: ToolRequest = serde_json::from_value(value).map_err(|e| RequestError::Malformed(e.to_string()))?;
        request.validate()?;
        Ok(request)
    }

    /// The JSON published in the manifest: [`ToolRequest::as_written`].
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(&self.as_written()).expect("a request serialises")
    }

    /// The request as it is published: in the oldest format that holds it,
    /// without an optional GPU where one is required.
    pub fn as_written(&self) -> ToolRequest {
        let optional = self.gpu_optional && !self.gpu;
        let format = if self.tools {
            4
        } else if !self.files.is_empty() || !self.config.is_empty() {
            3
        } else if optional {
            2
        } else {
            1
        };
        ToolRequest { format, gpu_optional: optional, ..self.clone() }
    }

    /// Whether a call may use a GPU where a node grants one (required or optional).
    pub fn uses_gpu(&self) -> bool {
        self.gpu || self.gpu_optional
    }

    /// Whether it runs only where a GPU is granted.
    pub fn requires_gpu(&self) -> bool {
        self.gpu
    }

    /// Checks what serde cannot: secret names, methods, sizes.
    pub fn validate(&self) -> Result<(), RequestError> {
        for secret in &self.secrets {
            if !is_valid_secret_name(secret) {
                return Err(RequestError::Invalid(format!(
                    "secret name {secret:?} is not 1-64 of [A-Z0-9_] starting with a letter"
                )));
            }
        }
        for rule in &self.network {
            if rule.methods.is_empty() {
                return Err(RequestError::Invalid(format!("network rule for {} allows no methods", rule.host)));
            }
            for method in &rule.methods {
                if !is_valid_method(method) {
                    return Err(RequestError::Invalid(format!("{method:?} is not an HTTP method")));
                }
            }
        }
        if self.scratch_bytes == Some(0) {
            return Err(RequestError::Invalid("a scratch directory of 0 bytes".into()));
        }
        for (i, rule) in self.files.iter().enumerate() {
            check_guest_path(&rule.path).map_err(RequestError::Invalid)?;
            if self.files[..i].iter().any(|other| other.path == rule.path) {
                return Err(RequestError::Invalid(format!("directory {} is requested twice", rule.path)));
            }
        }
        for key in self.config.keys() {
            if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
                return Err(RequestError::Invalid(format!(
                    "configuration key {key:?} is not 1-256 printable characters"
                )));
            }
        }
        Ok(())
    }

    /// What it asks for, one short phrase per item, in plain words (for
    /// listings, tool descriptions and the marketplace). Empty when it asks
    /// for nothing.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self.network.iter().map(|rule| format!("network: {rule}")).collect();
        if let Some(bytes) = self.scratch_bytes {
            out.push(format!("scratch directory: {}", size_words(bytes)));
        }
        if !self.secrets.is_empty() {
            out.push(format!("secrets: {}", self.secrets.join(", ")));
        }
        out.extend(self.files.iter().map(|rule| format!("directory: {rule}")));
        if !self.config.is_empty() {
            out.push(format!("configuration: {}", self.config.keys().cloned().collect::<Vec<_>>().join(", ")));
        }
        if self.gpu {
            out.push("GPU compute".into());
        } else if self.gpu_optional {
            out.push("GPU compute where granted (runs without)".into());
        }
        if self.tools {
            out.push("calls to other tools, as its caller".into());
        }
        if let Some(bytes) = self.memory_bytes {
            out.push(format!("memory: {}", size_words(bytes)));
        }
        if let Some(ms) = self.timeout_ms {
            out.push(format!(
                "time: {}",
                if ms.is_multiple_of(1000) { format!("{} s", ms / 1000) } else { format!("{ms} ms") }
            ));
        }
        out
    }

    /// Whether it asks for nothing beyond log lines and progress.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
            && self.scratch_bytes.is_none()
            && self.secrets.is_empty()
            && self.files.is_empty()
            && self.config.is_empty()
            && !self.uses_gpu()
            && !self.tools
            && self.memory_bytes.is_none()
            && self.timeout_ms.is_none()
    }
}

/// A byte count in the largest binary unit that divides it (`1 MiB`,
/// `1536 KiB`, `100 bytes`).
pub fn size_words(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// Whether `name` may name a secret: what an environment variable can be
/// called everywhere.
pub fn is_valid_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `method` is an upper-case HTTP method token, or `*` for any.
fn is_valid_method(method: &str) -> bool {
    method == "*" || ((1..=16).contains(&method.len()) && method.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A directory of the node a tool uses, at the path it sees it at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRule {
    /// The absolute path inside the sandbox: `/data`, `/data/images`.
    pub path: String,
    /// Whether it writes there (else it only reads).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write: bool,
}

impl fmt::Display for FileRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path, if self.write { "read-write" } else { "read-only" })
    }
}

/// Checks a path a tool sees a directory at: absolute, of plain names
/// (no `.`, `..` or empty parts), not `/` itself, at most 1024 bytes.
pub fn check_guest_path(path: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.strip_prefix('/').map(|rest| rest.split('/').collect()).unwrap_or_default();
    let bad = |why: &str| Err(format!("directory path {path:?} {why}"));
    if !path.starts_with('/') {
        return bad("is not absolute");
    }
    if path.len() > 1024 {
        return bad("is longer than 1024 bytes");
    }
    if path == "/" {
        return bad("is the root: name the directories a tool needs");
    }
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains(['\\', '\0'])) {
        return bad("has an empty, `.` or `..` part, a backslash or a NUL");
    }
    Ok(())
}

/// Whether guest path `path` is `dir` or inside it.
pub fn is_within(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One kind of outbound request a tool makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRule {
    /// The scheme.
    pub scheme: Scheme,
    /// The hosts.
    pub host: HostPattern,
    /// The port, when not the scheme's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Methods it uses, upper case; `*` for any.
    pub methods: Vec<String>,
}

impl NetworkRule {
    /// The port its requests go to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// Whether a request with these parts is one this rule allows.
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16, method: &str) -> bool {
        self.scheme == scheme
            && self.effective_port() == port
            && self.host.matches(host)
            && self.methods.iter().any(|m| m == "*" || m == method)
    }
}

impl fmt::Display for NetworkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = Target { scheme: Some(self.scheme), host: self.host.clone(), port: self.port };
        write!(f, "{} {target}", self.methods.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn requests_round_trip_and_newer_formats_are_named() {
        let request = ToolRequest {
            network: vec![NetworkRule {
                scheme: Scheme::Https,
                host: host("*.example.org"),
                port: Some(8443),
                methods: vec!["GET".into()],
            }],
            scratch_bytes: Some(1 << 20),
            secrets: vec!["API_KEY".into()],
            ..ToolRequest::default()
        };
        assert_eq!(
            request.describe(),
            ["network: GET https://*.example.org:8443", "scratch directory: 1 MiB", "secrets: API_KEY"]
        );
        let text = request.to_annotation();
        assert_eq!(ToolRequest::from_annotation(Some(&text)).unwrap(), request);
        assert_eq!(ToolRequest::from_annotation(None).unwrap(), ToolRequest::default());
        let newer = ToolRequest::from_annotation(Some(r#"{"format": 5, "teleport": true}"#)).unwrap_err();
        assert_eq!(newer, RequestError::NewerFormat { found: 5 });
        let calls = ToolRequest { tools: true, ..ToolRequest::default() };
        assert_eq!(calls.to_annotation(), r#"{"format":4,"tools":true}"#);
        assert_eq!(calls.describe(), ["calls to other tools, as its caller"]);
        assert_eq!(ToolRequest::from_annotation(Some(&calls.to_annotation())).unwrap(), calls.as_written());
        assert!(ToolRequest::from_annotation(Some(r#"{"network": ["x.com"]}"#)).is_err(), "unversioned");
        let bad_secret = r#"{"format": 1, "secrets": ["lower"]}"#;
        assert!(matches!(ToolRequest::from_annotation(Some(bad_secret)), Err(RequestError::Invalid(_))));
    }

    #[test]
    fn directories_and_configuration_are_written_in_format_3() {
        let request = ToolRequest {
            files: vec![
                FileRule { path: "/data".into(), write: false },
                FileRule { path: "/out/x".into(), write: true },
            ],
            config: BTreeMap::from([("greeting".to_owned(), "hello".to_owned())]),
            ..ToolRequest::default()
        };
        let text = request.to_annotation();
        assert!(text.starts_with(r#"{"format":3,"#), "{text}");
        assert_eq!(ToolRequest::from_annotation(Some(&text)).unwrap().files, request.files);
        assert_eq!(
            request.describe(),
            ["directory: /data (read-only)", "directory: /out/x (read-write)", "configuration: greeting"]
        );
        for bad in ["data", "/", "/a/../b", "/a//b", "/a/./b", "/a/", "/a\\b"] {
            let request =
                ToolRequest { files: vec![FileRule { path: bad.into(), write: false }], ..ToolRequest::default() };
            assert!(request.validate().is_err(), "{bad}");
        }
        assert!(is_within("/data/x", "/data") && is_within("/data", "/data") && !is_within("/database", "/data"));
    }

    #[test]
    fn an_optional_gpu_is_written_in_format_2_and_only_then() {
        let optional = ToolRequest { gpu_optional: true, ..ToolRequest::default() };
        let text = optional.to_annotation();
        assert_eq!(text, r#"{"format":2,"gpu_optional":true}"#);
        let read = ToolRequest::from_annotation(Some(&text)).unwrap();
        assert!(read.uses_gpu() && !read.requires_gpu() && !read.is_empty());
        assert_eq!(read.describe(), ["GPU compute where granted (runs without)"]);
        // A required GPU is what format 1 always said; readers of format 1
        // keep reading it.
        let required = ToolRequest { gpu: true, gpu_optional: true, ..ToolRequest::default() };
        assert_eq!(required.to_annotation(), r#"{"format":1,"gpu":true}"#);
        assert!(ToolRequest::from_annotation(Some(r#"{"format":1,"gpu":true}"#)).unwrap().requires_gpu());
    }

    #[test]
    fn rules_allow_only_their_scheme_port_host_and_methods() {
        let rule = NetworkRule {
            scheme: Scheme::Https,
            host: host("api.example.com"),
            port: None,
            methods: vec!["GET".into()],
        };
        assert!(rule.allows(Scheme::Https, "api.example.com", 443, "GET"));
        assert!(!rule.allows(Scheme::Http, "api.example.com", 443, "GET"));
        assert!(!rule.allows(Scheme::Https, "api.example.com", 8443, "GET"));
        assert!(!rule.allows(Scheme::Https, "api.example.com", 443, "POST"));
        assert_eq!(rule.to_string(), "GET https://api.example.com");
    }
}
