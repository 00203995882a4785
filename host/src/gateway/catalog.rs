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
//!
//! Tools of bridged MCP servers ([`BridgedNode`]) are named
//! `bridged.<node>.<server>.<tool>`, the node's and server's names in
//! lowercase letters and digits joined by `-` (as the repository
//! `bridged/<node>/<server>` their resources and prompts are offered
//! under); the `bridged` namespace is theirs, so no published package can
//! pass for one.

use super::schema::ToolSchemas;
use crate::bridge::listing::{Isolation, ServerListing};
use crate::node::BridgeCall;
use serde_json::{Value, json};
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
    /// Where the tool is when a bridged MCP server offers it.
    pub bridged: Option<Arc<BridgedTool>>,
}

/// A bridged MCP server's tool: where it runs and how it is contained.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgedTool {
    /// The node and server calls go to.
    pub call: BridgeCall,
    /// The node's name.
    pub node_name: String,
    /// How the server is contained.
    pub isolation: Isolation,
}

/// A node's bridged servers, as its advert (or the in-process node) says.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgedNode {
    /// The node's id (where calls go).
    pub id: String,
    /// Its name (part of the tools' names).
    pub name: String,
    /// Its servers and their tools.
    pub servers: Vec<ServerListing>,
}

/// A bridged server as pages and `tool search` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BridgedServerView {
    /// Its name in the catalog (`bridged/<node>/<server>`).
    pub name: String,
    /// The node bridging it.
    pub node: String,
    /// Its name on that node.
    pub server: String,
    /// How it is contained, in one sentence.
    pub summary: String,
    /// How it is contained.
    pub isolation: Isolation,
    /// Its tools.
    pub tools: Vec<BridgedToolView>,
}

/// One tool of a [`BridgedServerView`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BridgedToolView {
    /// Its MCP name.
    pub name: String,
    /// What it does, as its server says.
    pub description: String,
}

impl BridgedServerView {
    /// Whether every word of `query` (lowercase) is in its names or descriptions.
    pub fn matches(&self, words: &[String]) -> bool {
        let text = std::iter::once(self.name.as_str())
            .chain(self.tools.iter().flat_map(|t| [t.name.as_str(), t.description.as_str()]))
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        words.iter().all(|w| text.contains(w.as_str()))
    }
}

/// The namespace of bridged servers' tools, which no package may use.
pub const BRIDGED_NAMESPACE: &str = "bridged";

/// Whether repository `name` is in [`BRIDGED_NAMESPACE`] (so no package's).
pub fn is_bridged_name(name: &str) -> bool {
    name.split('/').next() == Some(BRIDGED_NAMESPACE)
}

/// `name` as a part of a repository name: lowercase letters and digits
/// joined by single `-`.
fn repository_part(name: &str) -> String {
    let lower: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let joined = lower.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    if joined.is_empty() { "x".into() } else { joined }
}

/// A bridged server's MCP tool (from its `tools/list`) as a catalog
/// descriptor: its schemas without the keywords the gateway acts on.
fn bridged_descriptor(tool: &Value) -> Option<Value> {
    let name = tool["name"].as_str()?;
    let mut input = match &tool["inputSchema"] {
        Value::Object(schema) => schema.clone(),
        _ => serde_json::Map::from_iter([("type".to_owned(), json!("object"))]),
    };
    input.retain(|key, _| !key.starts_with("x-toolmesh"));
    let mut annotations = tool["annotations"].as_object().cloned().unwrap_or_default();
    if let Some(title) = tool["title"].as_str() {
        annotations.entry("title").or_insert_with(|| json!(title));
    }
    let mut descriptor = json!({
        "name": name,
        "description": tool["description"].as_str().unwrap_or_default(),
        "input_schema": input,
        "annotations": annotations,
    });
    if tool["outputSchema"].is_object() {
        descriptor["output_schema"] = tool["outputSchema"].clone();
    }
    Some(descriptor)
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
        Self::build_with(entries, bare, &[])
    }

    /// Like [`Catalog::build`], with the tools of bridged MCP servers.
    pub fn build_with(entries: Vec<CatalogEntry>, bare: &[String], bridged: &[BridgedNode]) -> Self {
        let mut tools = BTreeMap::new();
        let mut offers = super::offers::Offers::default();
        let mut taken = std::collections::BTreeSet::new();
        for node in bridged {
            for server in &node.servers {
                add_bridged(&mut tools, &mut offers, (node, server), &mut taken);
            }
        }
        for entry in newest_versions(entries) {
            let (Ok(repository), Ok(digest)) = (entry.name.parse::<Repository>(), entry.digest.parse::<Digest>())
            else {
                continue;
            };
            if is_bridged_name(repository.as_str()) {
                tracing::warn!(repository = %entry.name, "package left out: the `bridged` namespace is for bridged servers");
                continue;
            }
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
                    bridged: None,
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

    /// The bridged MCP servers whose tools it holds, by repository name.
    pub fn bridged_servers(&self) -> Vec<BridgedServerView> {
        let mut servers: BTreeMap<String, BridgedServerView> = BTreeMap::new();
        for tool in self.tools.values() {
            let Some(bridged) = &tool.bridged else { continue };
            let view = servers.entry(tool.repository.to_string()).or_insert_with(|| BridgedServerView {
                name: tool.repository.to_string(),
                node: bridged.node_name.clone(),
                server: bridged.call.server.clone(),
                summary: bridged.isolation.describe(),
                isolation: bridged.isolation.clone(),
                tools: Vec::new(),
            });
            let description = tool.descriptor["description"].as_str().unwrap_or_default().to_owned();
            view.tools.push(BridgedToolView { name: tool.name.clone(), description });
        }
        servers.into_values().collect()
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

/// Adds the tools, resources and prompts of bridged `server` of `node`.
fn add_bridged(
    tools: &mut BTreeMap<String, Arc<CatalogTool>>,
    offers: &mut super::offers::Offers,
    (node, server): (&BridgedNode, &ServerListing),
    taken: &mut std::collections::BTreeSet<String>,
) {
    let path = format!("{BRIDGED_NAMESPACE}/{}/{}", repository_part(&node.name), repository_part(&server.server));
    let Ok(repository) = path.parse::<Repository>() else {
        tracing::warn!(server = %server.server, node = %node.name, "bridged server left out: no name for it");
        return;
    };
    // Two nodes whose names read alike: the first (by id) keeps the name.
    if !taken.insert(path.clone()) {
        tracing::warn!(server = %server.server, node = %node.id, name = %path, "bridged server left out: another node's server has its name");
        return;
    }
    let bridged = Arc::new(BridgedTool {
        call: BridgeCall { node: node.id.clone(), server: server.server.clone() },
        node_name: node.name.clone(),
        isolation: server.isolation.clone(),
    });
    let digest = Digest::of(format!("bridged\0{}\0{}", node.id, server.server).as_bytes());
    if !server.offer.is_empty() {
        let description = format!(
            "Bridged MCP server `{}` on node `{}`: runs as {}",
            server.server,
            node.name,
            server.isolation.describe()
        );
        offers.add_bridged(&repository, digest, server.offer.clone(), (bridged.call.clone(), description));
    }
    for tool in &server.tools {
        let Some(descriptor) = bridged_descriptor(tool) else { continue };
        let Some(tool_name) = descriptor["name"].as_str().map(str::to_owned) else { continue };
        let name = mcp_name(repository.as_str(), &tool_name);
        if !is_valid_mcp_name(&name) || tools.contains_key(&name) {
            tracing::warn!(name, "bridged tool left out: its name is not a valid MCP name, or taken");
            continue;
        }
        let output = descriptor.get("output_schema").filter(|s| !s.is_null());
        let schemas = match ToolSchemas::compile(&descriptor["input_schema"], output) {
            Ok(schemas) => Arc::new(schemas),
            Err(reason) => {
                tracing::warn!(name, "bridged tool left out: {reason}");
                continue;
            }
        };
        let item = CatalogTool {
            name: name.clone(),
            tool: tool_name,
            repository: repository.clone(),
            version: "bridged".into(),
            digest,
            descriptor,
            permissions: Arc::default(),
            schemas,
            bridged: Some(bridged.clone()),
        };
        tools.insert(name, Arc::new(item));
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

    #[test]
    fn bridged_servers_tools_are_named_for_their_node_and_server_and_keep_their_namespace() {
        let listing = ServerListing {
            server: "time".into(),
            tools: vec![
                json!({"name": "now", "title": "Now", "description": "d",
                       "inputSchema": {"type": "object", "x-toolmesh-session": "id", "x-toolmesh-task": "required"},
                       "annotations": {"readOnlyHint": true}}),
                json!({"name": "has space", "inputSchema": {"type": "object"}}),
                json!({"name": "broken", "inputSchema": {"type": 12}}),
            ],
            isolation: Isolation::Unsandboxed,
            offer: serde_json::from_value(json!({
                "resources": [{"uri": "file:///a", "name": "a"}, {"uri": "relative", "name": "r"}],
                "prompts": [{"name": "review", "arguments": [{"name": "code", "required": true}]}]
            }))
            .unwrap(),
        };
        let twin = BridgedNode {
            id: "n-2".into(),
            name: "lap-top".into(),
            servers: vec![ServerListing { tools: vec![json!({"name": "other"})], ..listing.clone() }],
        };
        let node = BridgedNode { id: "n-1".into(), name: "Lap top".into(), servers: vec![listing] };
        let impostor = entry("bridged/lap-top/time", "1", &["now"]);
        let catalog = Catalog::build_with(vec![impostor, entry("a/b", "1", &["t"])], &[], &[node, twin]);
        let names: Vec<&str> = catalog.tools().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.b.t", "bridged.lap-top.time.now"], "the package in `bridged` is left out");
        let now = catalog.get("bridged.lap-top.time.now").unwrap();
        let bridged = now.bridged.as_ref().unwrap();
        assert_eq!(bridged.call, BridgeCall { node: "n-1".into(), server: "time".into() });
        assert_eq!(now.repository.as_str(), "bridged/lap-top/time");
        assert_eq!(now.descriptor["annotations"]["title"], "Now");
        assert!(now.retry_safe());
        // The gateway's own keywords are the gateway's, not a server's.
        assert_eq!(now.descriptor["input_schema"], json!({"type": "object"}));
        assert_eq!(now.session_argument(), None);
        let views = catalog.bridged_servers();
        assert_eq!((views.len(), views[0].tools.len()), (1, 1));
        assert!(views[0].matches(&["now".into()]) && !views[0].matches(&["weather".into()]));
        // Its resources and prompts, read from the server on its node.
        let (package, prompt) = catalog.offers().prompt("bridged.lap-top.time.review").unwrap();
        assert_eq!((package.bridge.as_ref(), prompt.arguments.len()), (Some(&bridged.call), 1));
        assert!(catalog.offers().resolve("toolmesh://bridged/lap-top/time/file:///a").is_some());
        assert_eq!(package.offer.resources.len(), 1, "a relative URI is left out");
    }
}
