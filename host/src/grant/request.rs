//! The `[permissions]` table of a publisher's `tool.toml`, in the words a
//! person writes (`"https://api.example.com"`, `"64MiB"`, `"30s"`), turned
//! into the typed [`ToolRequest`] that is published with the tool.
//!
//! ```toml
//! [permissions]
//! network = ["https://api.example.com", { host = "*.example.org", methods = ["GET", "POST"] }]
//! scratch = "64MiB"
//! secrets = ["API_KEY"]
//! files = ["/data", { path = "/out", write = true }]   # directories the node lends
//! config = { greeting = "hello" }                        # wasi:config/store values
//! memory = "512MiB"
//! timeout = "30s"
//! gpu = "optional"   # or "required" (also `true`)
//! ```
//!
//! A component that imports the GPU interface needs a GPU unless it says
//! it runs without one: `gpu = "optional"` here, or the `toolmesh:gpu`
//! custom section (see [`settle_gpu`]).

use crate::component_metadata;
use crate::config::{parse_duration, parse_size};
use crate::sandbox::ToolComponent;
use serde::Deserialize;
use std::collections::BTreeMap;
use toolmesh_registry::request::{FileRule, NetworkRule, RequestError, Scheme, Target, ToolRequest};

/// `[permissions]` as written in `tool.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionsToml {
    /// Outbound HTTP: targets as text (`https://host[:port]`, GET only) or tables.
    pub network: Vec<NetworkEntry>,
    /// Size of the per-call scratch directory, such as `64MiB`.
    pub scratch: Option<String>,
    /// Names of the secrets the tool reads from its environment.
    pub secrets: Vec<String>,
    /// Directories of the node it uses, by the path it sees them at:
    /// `"/data"` to read, `{ path = "/out", write = true }` to write too.
    pub files: Vec<FileEntry>,
    /// Values it reads through `wasi:config/store`.
    pub config: BTreeMap<String, String>,
    /// GPU compute: `"required"` (or `true`), `"optional"` (used where a
    /// node grants it, the tool runs without), or absent (`false`): what
    /// the component itself says, if it imports the GPU interface.
    pub gpu: Option<GpuToml>,
    /// Memory a call needs, such as `512MiB`.
    pub memory: Option<String>,
    /// Time a call needs, such as `30s`.
    pub timeout: Option<String>,
}

/// `gpu` in `tool.toml`: `true`, `false`, `"required"` or `"optional"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GpuToml {
    /// `true` (required) or `false` (the component decides).
    Flag(bool),
    /// `"required"` or `"optional"`.
    Word(String),
}

/// One directory in `tool.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FileEntry {
    /// A path it reads.
    Text(String),
    /// A path, and whether it writes there.
    Table {
        /// The path it sees the directory at.
        path: String,
        /// Whether it writes there [default: false].
        #[serde(default)]
        write: bool,
    },
}

/// One outbound HTTP target in `tool.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NetworkEntry {
    /// `[scheme://]host[:port]`; the scheme defaults to https, the method to GET.
    Text(String),
    /// A target with its methods.
    Table {
        /// `[scheme://]host[:port]`.
        host: String,
        /// Methods it uses [default: GET].
        #[serde(default)]
        methods: Vec<String>,
    },
}

impl PermissionsToml {
    /// The typed request, with every field checked.
    pub fn to_request(&self) -> Result<ToolRequest, RequestError> {
        // (required, optional); neither leaves it to the component.
        let (gpu, gpu_optional) = match &self.gpu {
            None | Some(GpuToml::Flag(false)) => (false, false),
            Some(GpuToml::Flag(true)) => (true, false),
            Some(GpuToml::Word(word)) if word == "required" => (true, false),
            Some(GpuToml::Word(word)) if word == "optional" => (false, true),
            Some(GpuToml::Word(word)) => {
                return Err(RequestError::Invalid(format!(
                    "gpu: {word:?} is not one of true, false, \"required\" or \"optional\""
                )));
            }
        };
        let invalid = |what: &str, e: crate::config::ConfigError| RequestError::Invalid(format!("{what}: {e}"));
        let mut network = Vec::new();
        for entry in &self.network {
            let (text, methods) = match entry {
                NetworkEntry::Text(text) => (text, Vec::new()),
                NetworkEntry::Table { host, methods } => (host, methods.clone()),
            };
            let target: Target = text.parse()?;
            let methods = if methods.is_empty() {
                vec!["GET".to_owned()]
            } else {
                methods.iter().map(|m| m.to_ascii_uppercase()).collect()
            };
            network.push(NetworkRule {
                scheme: target.scheme.unwrap_or(Scheme::Https),
                host: target.host,
                port: target.port,
                methods,
            });
        }
        let request = ToolRequest {
            network,
            scratch_bytes: self.scratch.as_deref().map(parse_size).transpose().map_err(|e| invalid("scratch", e))?,
            secrets: self.secrets.clone(),
            files: self
                .files
                .iter()
                .map(|entry| match entry {
                    FileEntry::Text(path) => FileRule { path: path.clone(), write: false },
                    FileEntry::Table { path, write } => FileRule { path: path.clone(), write: *write },
                })
                .collect(),
            config: self.config.clone(),
            gpu,
            gpu_optional,
            memory_bytes: self.memory.as_deref().map(parse_size).transpose().map_err(|e| invalid("memory", e))?,
            timeout_ms: self
                .timeout
                .as_deref()
                .map(|t| parse_duration(t).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                .transpose()
                .map_err(|e| invalid("timeout", e))?,
            ..ToolRequest::default()
        };
        request.validate()?;
        Ok(request)
    }
}

/// Settles the GPU part of `request` for a component: one that imports the
/// GPU interface (`imports_gpu`) requires a GPU unless `tool.toml` says
/// `gpu = "optional"` or the component declares itself optional
/// (`declared_optional`: its `toolmesh:gpu` section says `optional`). A
/// `tool.toml` that says `required` wins over the component. Without the
/// import an optional GPU is dropped: the tool could never use one, and
/// placement need not look for it.
pub fn settle_gpu(request: &mut ToolRequest, imports_gpu: bool, declared_optional: bool) {
    if !imports_gpu {
        request.gpu_optional = false;
        return;
    }
    if request.gpu {
        return;
    }
    if request.gpu_optional || declared_optional {
        request.gpu_optional = true;
    } else {
        request.gpu = true;
    }
}

/// [`settle_gpu`] for a loaded `component` whose bytes are `bytes`: its
/// `toolmesh:gpu` section is read only when it imports the GPU interface.
pub fn settle_gpu_for(request: &mut ToolRequest, component: &ToolComponent, bytes: &[u8]) {
    let imports_gpu = component.uses_gpu();
    settle_gpu(request, imports_gpu, imports_gpu && component_metadata::gpu_optional(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ToolRequest, RequestError> {
        #[derive(Deserialize)]
        struct File {
            permissions: PermissionsToml,
        }
        toml::from_str::<File>(text).map_err(|e| RequestError::Malformed(e.to_string()))?.permissions.to_request()
    }

    #[test]
    fn text_and_table_targets_become_typed_rules() {
        let request = parse(
            r#"[permissions]
network = ["api.example.com", "http://127.0.0.1:8080", { host = "*.example.org", methods = ["get", "POST"] }]
scratch = "1MiB"
secrets = ["API_KEY"]
timeout = "30s"
"#,
        )
        .unwrap();
        let rules: Vec<String> = request.network.iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            ["GET https://api.example.com", "GET http://127.0.0.1:8080", "GET/POST https://*.example.org"]
        );
        assert_eq!((request.scratch_bytes, request.timeout_ms), (Some(1 << 20), Some(30_000)));
        assert_eq!(request.secrets, ["API_KEY"]);
    }

    #[test]
    fn bad_entries_are_refused_with_what_is_wrong() {
        let err = parse("[permissions]\nnetwork = [\"https://x.com/path\"]\n").unwrap_err().to_string();
        assert!(err.contains("not a URL with a path"), "{err}");
        let err = parse("[permissions]\nscratch = \"lots\"\n").unwrap_err().to_string();
        assert!(err.contains("scratch"), "{err}");
        let err = parse("[permissions]\nsecrets = [\"api-key\"]\n").unwrap_err().to_string();
        assert!(err.contains("api-key"), "{err}");
        assert!(parse("[permissions]\nnetwork = [{ host = \"x.com\", methods = [\"G T\"] }]\n").is_err());
        assert!(parse("[permissions]\nteleport = true\n").is_err());
        let err = parse("[permissions]\ngpu = \"sometimes\"\n").unwrap_err().to_string();
        assert!(err.contains("\"sometimes\" is not one of"), "{err}");
    }

    #[test]
    fn gpu_is_required_optional_or_left_to_the_component() {
        let required = parse("[permissions]\ngpu = true\n").unwrap();
        assert!(required.requires_gpu());
        assert_eq!(parse("[permissions]\ngpu = \"required\"\n").unwrap(), required);
        let optional = parse("[permissions]\ngpu = \"optional\"\n").unwrap();
        assert!(optional.uses_gpu() && !optional.requires_gpu());
        let unset = parse("[permissions]\n").unwrap();
        assert_eq!(parse("[permissions]\ngpu = false\n").unwrap(), unset);

        // A GPU import needs a GPU unless the tool.toml or the component says optional.
        let settled = |mut request: ToolRequest, imports: bool, declared: bool| {
            settle_gpu(&mut request, imports, declared);
            (request.gpu, request.gpu_optional)
        };
        assert_eq!(settled(unset.clone(), true, false), (true, false));
        assert_eq!(settled(unset.clone(), true, true), (false, true));
        assert_eq!(settled(optional.clone(), true, false), (false, true));
        assert_eq!(settled(required.clone(), true, true), (true, false));
        assert_eq!(settled(unset, false, true), (false, false), "no import, no GPU");
        assert_eq!(settled(optional, false, false), (false, false), "an optional GPU it cannot use is dropped");
    }
}
