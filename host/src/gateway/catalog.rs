//! The gateway's tool list, built from published manifests alone (no
//! component is downloaded or run to list tools).
//!
//! Every repository contributes the tools of its highest version. A tool's
//! MCP name is the repository with `/` turned into `.`, then `.` and the
//! tool's name (`examples/text` + `slugify` → `examples.text.slugify`):
//! unique, stable across versions, and valid for MCP (1–128 of
//! `[A-Za-z0-9_.-]`). A name that would collide or run long is left out,
//! with a warning. The gateway's operator (never a publisher) may expose a
//! repository's tools under their bare names, such as the conformance
//! fixtures the MCP test suite calls by name.

use super::schema::ToolSchemas;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use toolmesh_registry::api::{CatalogEntry, newest_versions};
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Repository;
use toolmesh_registry::request::ToolRequest;

/// One tool the gateway offers.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTool {
    /// The MCP tool name.
    pub name: String,
    /// The tool's name inside its component.
    pub tool: String,
    /// The repository it was published to.
    pub repository: Repository,
    /// The published version.
    pub version: String,
    /// The manifest digest every call is pinned to.
    pub digest: Digest,
    /// The tool's descriptor as published (description, schemas, annotations).
    pub descriptor: Value,
    /// What the tool asks of the nodes that run it.
    pub permissions: Arc<ToolRequest>,
    /// The descriptor's input and output schemas, compiled.
    pub schemas: Arc<ToolSchemas>,
}

impl CatalogTool {
    /// Whether running a call twice is harmless by the tool's annotations
    /// (read-only or idempotent), so a call whose node was lost may be
    /// retried on another.
    pub fn retry_safe(&self) -> bool {
        let hint = |name: &str| self.descriptor["annotations"][name].as_bool() == Some(true);
        hint("readOnlyHint") || hint("idempotentHint")
    }

    /// The argument naming the session a call runs in, if the tool keeps
    /// sessions (its input schema's `x-toolmesh-session`).
    pub fn session_argument(&self) -> Option<&str> {
        self.descriptor["input_schema"][super::sessions::SESSION_KEYWORD].as_str()
    }
}

/// The tools on offer, by MCP name, and the packages' resources and
/// prompts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    tools: BTreeMap<String, Arc<CatalogTool>>,
    offers: super::offers::Offers,
}

/// Whether `name` is a valid MCP tool name.
pub fn is_valid_mcp_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The MCP name of tool `tool` of `repository`.
pub fn mcp_name(repository: &str, tool: &str) -> String {
    format!("{}.{tool}", repository.replace('/', "."))
}

impl Catalog {
    /// Builds the catalog from registry entries (any order); the tools of
    /// repositories in `bare` keep their bare names.
    pub fn build(entries: Vec<CatalogEntry>, bare: &[String]) -> Self {
        let mut tools = BTreeMap::new();
        let mut offers = super::offers::Offers::default();
        for entry in newest_versions(entries) {
            let (Ok(repository), Ok(digest)) = (entry.name.parse::<Repository>(), entry.digest.parse::<Digest>())
            else {
                continue;
            };
            offers.add(&entry, &repository, digest, bare.contains(&entry.name));
            for descriptor in entry.tools.as_array().into_iter().flatten() {
                let Some(tool) = descriptor["name"].as_str() else { continue };
                let name = if bare.contains(&entry.name) { tool.to_owned() } else { mcp_name(&entry.name, tool) };
                if !is_valid_mcp_name(&name) {
                    tracing::warn!(name, "tool left out: its MCP name is not 1-128 of [A-Za-z0-9_.-]");
                    continue;
                }
                if tools.contains_key(&name) {
                    tracing::warn!(name, repository = %entry.name, "tool left out: another tool has the same MCP name");
                    continue;
                }
                let output_schema = descriptor.get("output_schema").filter(|s| !s.is_null());
                let schemas = match ToolSchemas::compile(&descriptor["input_schema"], output_schema) {
                    Ok(schemas) => Arc::new(schemas),
                    Err(reason) => {
                        tracing::warn!(name, repository = %entry.name, "tool left out: {reason}");
                        continue;
                    }
                };
                let item = CatalogTool {
                    schemas,
                    name: name.clone(),
                    tool: tool.to_owned(),
                    repository: repository.clone(),
                    version: entry.version.clone(),
                    digest,
                    descriptor: descriptor.clone(),
                    permissions: Arc::new(entry.permissions.clone()),
                };
                tools.insert(name, Arc::new(item));
            }
        }
        Catalog { tools, offers }
    }

    /// The packages' resources and prompts.
    pub fn offers(&self) -> &super::offers::Offers {
        &self.offers
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<CatalogTool>> {
        self.tools.get(name)
    }

    /// Every tool, sorted by name.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<CatalogTool>> {
        self.tools.values()
    }

    /// How many tools there are.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, version: &str, tools: &[&str]) -> CatalogEntry {
        CatalogEntry {
            name: name.into(),
            version: version.into(),
            digest: Digest::of(format!("{name}:{version}").as_bytes()).to_string(),
            description: None,
            publisher: None,
            source: None,
            tools: Value::Array(
                tools
                    .iter()
                    .map(|t| json!({"name": t, "description": "d", "input_schema": {"type": "object"}}))
                    .collect(),
            ),
            permissions: ToolRequest::default(),
            offer: Value::Null,
        }
    }

    #[test]
    fn newest_version_wins_and_names_are_derived() {
        let catalog = Catalog::build(
            vec![
                entry("examples/text", "1.10.0", &["slugify", "count"]),
                entry("examples/text", "1.9.0", &["slugify", "old"]),
                entry("examples/hello", "0.1", &["greet"]),
            ],
            &[],
        );
        let names: Vec<&str> = catalog.tools().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["examples.hello.greet", "examples.text.count", "examples.text.slugify"]);
        let slugify = catalog.get("examples.text.slugify").unwrap();
        assert_eq!((slugify.version.as_str(), slugify.tool.as_str()), ("1.10.0", "slugify"));
        assert_eq!(slugify.digest, Digest::of(b"examples/text:1.10.0"));
    }

    #[test]
    fn collisions_and_long_names_are_left_out() {
        let catalog = Catalog::build(vec![entry("a.b/c", "1", &["t"]), entry("a/b.c", "1", &["t"])], &[]);
        assert_eq!(catalog.len(), 1);
        let long = "x".repeat(130);
        assert!(Catalog::build(vec![entry("ns/n", "1", &[long.as_str()])], &[]).is_empty());
        assert!(is_valid_mcp_name("examples.text.regex_find"));
        assert!(!is_valid_mcp_name("has space"));
    }

    #[test]
    fn tools_with_unusable_schemas_are_left_out() {
        let mut broken = entry("ns/broken", "1", &["t"]);
        broken.tools[0]["input_schema"] = json!({"type": 12});
        let catalog = Catalog::build(vec![broken, entry("ns/fine", "1", &["t"])], &[]);
        let names: Vec<&str> = catalog.tools().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ns.fine.t"]);
    }

    #[test]
    fn operators_may_expose_bare_names() {
        let catalog = Catalog::build(
            vec![entry("fixtures/mcp", "1", &["test_simple_text"]), entry("a/b", "1", &["t"])],
            &["fixtures/mcp".into()],
        );
        let names: Vec<&str> = catalog.tools().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.b.t", "test_simple_text"]);
    }
}
