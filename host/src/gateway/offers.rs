//! The catalog's resources and prompts: every package's own (read from its
//! manifest, never by running it), and each package's documentation,
//! which the gateway writes itself.
//!
//! Names and URIs cannot collide between packages. A prompt's MCP name is
//! its package's prefix and its name, like a tool's
//! (`examples.notes.review`). A resource's URI is the package's URI under
//! `toolmesh://<repository>/` (`notes://readme` of `examples/notes` is
//! `toolmesh://examples/notes/notes://readme`), and so is a template's; a
//! package's documentation is `toolmesh://<repository>/README.md`. A
//! repository the operator serves under bare names keeps the names and URIs
//! its package wrote.

use super::catalog::{Catalog, is_valid_mcp_name, mcp_name};
use crate::node::BridgeCall;
use crate::sandbox::{Offer, PromptInfo};
use crate::uri_template::UriTemplate;
use std::collections::BTreeMap;
use std::sync::Arc;
use toolmesh_registry::api::CatalogEntry;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Repository;
use toolmesh_registry::request::ToolRequest;

/// Where the URIs of a package's resources live.
pub const SCHEME: &str = "toolmesh://";

/// The name of a package's documentation under its URI.
pub const DOCS: &str = "README.md";

/// One package as the catalog offers its resources and prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogPackage {
    /// The repository it was published to.
    pub repository: Repository,
    /// The published version.
    pub version: String,
    /// The manifest digest reads are pinned to.
    pub digest: Digest,
    /// Its one-line description.
    pub description: Option<String>,
    /// The key id that signed it.
    pub publisher: Option<String>,
    /// Where its source lives.
    pub source: Option<String>,
    /// What it asks of the nodes that run it.
    pub permissions: Arc<ToolRequest>,
    /// Whether its names and URIs are offered as the package wrote them.
    pub bare: bool,
    /// The bridged MCP server it is, if it is one (then reads go there).
    pub bridge: Option<BridgeCall>,
    /// Its resources, templates and prompts, as published.
    pub offer: Offer,
    /// Its templates, parsed, in the order of `offer.templates`.
    templates: Vec<UriTemplate>,
}

impl CatalogPackage {
    /// The URI under which the gateway offers the package's `declared` one.
    pub fn uri(&self, declared: &str) -> String {
        if self.bare { declared.to_owned() } else { format!("{SCHEME}{}/{declared}", self.repository) }
    }

    /// The URI of its documentation.
    pub fn docs_uri(&self) -> String {
        format!("{SCHEME}{}/{DOCS}", self.repository)
    }

    /// The MCP name of its item `name` (a prompt, a resource).
    pub fn name(&self, name: &str) -> String {
        if self.bare { name.to_owned() } else { mcp_name(self.repository.as_str(), name) }
    }

    /// The package's own URI for the offered `uri`, if it is under it.
    fn declared<'a>(&self, uri: &'a str) -> Option<&'a str> {
        if self.bare {
            return Some(uri);
        }
        uri.strip_prefix(SCHEME)?.strip_prefix(self.repository.as_str())?.strip_prefix('/')
    }
}

/// What a URI read from the gateway names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A package's documentation.
    Docs(Arc<CatalogPackage>),
    /// A resource of a package (fixed, or matched by one of its templates).
    Resource {
        /// The package.
        package: Arc<CatalogPackage>,
        /// The URI as the package wrote it.
        declared: String,
        /// The template that matched, with its variables' values.
        template: Option<(String, Vec<(String, String)>)>,
        /// The MCP name of the resource or template, for rights and metering.
        name: String,
    },
}

/// The resources and prompts of a catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offers {
    packages: BTreeMap<String, Arc<CatalogPackage>>,
    prompts: BTreeMap<String, (Arc<CatalogPackage>, usize)>,
}

impl Offers {
    /// Adds the package of `entry`.
    pub(crate) fn add(&mut self, entry: &CatalogEntry, repository: &Repository, digest: Digest, bare: bool) {
        let offer: Offer = match serde_json::from_value(entry.offer.clone()) {
            Ok(offer) => offer,
            Err(_) if entry.offer.is_null() => Offer::default(),
            Err(e) => {
                tracing::warn!(repository = %entry.name, error = %e, "resources and prompts left out: unreadable");
                Offer::default()
            }
        };
        let package = CatalogPackage {
            repository: repository.clone(),
            version: entry.version.clone(),
            digest,
            description: entry.description.clone(),
            publisher: entry.publisher.clone(),
            source: entry.source.clone(),
            permissions: Arc::new(entry.permissions.clone()),
            bare,
            bridge: None,
            offer: Offer::default(),
            templates: Vec::new(),
        };
        self.insert(&entry.name, package, offer);
    }

    /// Adds the resources and prompts of a bridged MCP server, offered
    /// under `repository` (`bridged/<node>/<server>`) and read from the
    /// server by `bridge`.
    pub(crate) fn add_bridged(
        &mut self,
        repository: &Repository,
        digest: Digest,
        offer: Offer,
        (bridge, description): (BridgeCall, String),
    ) {
        // Only absolute URIs: a read names the resource by its URI alone.
        let resources =
            offer.resources.into_iter().filter(|r| crate::sandbox::offer::is_absolute_uri(&r.uri)).collect();
        let offer = Offer { resources, ..offer };
        let package = CatalogPackage {
            repository: repository.clone(),
            version: "bridged".into(),
            digest,
            description: Some(description),
            publisher: None,
            source: None,
            permissions: Arc::default(),
            bare: false,
            bridge: Some(bridge),
            offer: Offer::default(),
            templates: Vec::new(),
        };
        self.insert(repository.as_str(), package, offer);
    }

    /// Adds `package` (its offer empty) under `key` with `offer`'s items
    /// whose templates parse and whose names are free.
    fn insert(&mut self, key: &str, package: CatalogPackage, offer: Offer) {
        let mut kept = Offer { resources: offer.resources, templates: Vec::new(), prompts: Vec::new() };
        let mut templates = Vec::new();
        for template in offer.templates {
            match UriTemplate::parse(&template.uri_template) {
                Ok(parsed) => {
                    templates.push(parsed);
                    kept.templates.push(template);
                }
                Err(e) => {
                    tracing::warn!(repository = key, template = %template.uri_template, "template left out: {e}")
                }
            }
        }
        let mut prompts = Vec::new();
        for prompt in offer.prompts {
            let name = package.name(&prompt.name);
            if !is_valid_mcp_name(&name) || self.prompts.contains_key(&name) || prompts.iter().any(|(n, _)| n == &name)
            {
                tracing::warn!(name, repository = key, "prompt left out: its MCP name is invalid or taken");
                continue;
            }
            prompts.push((name, kept.prompts.len()));
            kept.prompts.push(prompt);
        }
        let package = Arc::new(CatalogPackage { offer: kept, templates, ..package });
        for (name, index) in prompts {
            self.prompts.insert(name, (package.clone(), index));
        }
        self.packages.insert(key.to_owned(), package);
    }

    /// Every package, by repository.
    pub fn packages(&self) -> impl Iterator<Item = &Arc<CatalogPackage>> {
        self.packages.values()
    }

    /// The package of `repository`, if it is in the catalog.
    pub fn package(&self, repository: &str) -> Option<&Arc<CatalogPackage>> {
        self.packages.get(repository)
    }

    /// Every prompt, by MCP name.
    pub fn prompts(&self) -> impl Iterator<Item = (&str, &Arc<CatalogPackage>, &PromptInfo)> {
        self.prompts.iter().map(|(name, (package, index))| (name.as_str(), package, &package.offer.prompts[*index]))
    }

    /// The prompt of MCP name `name`, with its package.
    pub fn prompt(&self, name: &str) -> Option<(&Arc<CatalogPackage>, &PromptInfo)> {
        self.prompts.get(name).map(|(package, index)| (package, &package.offer.prompts[*index]))
    }

    /// What `uri` names, if anything: documentation, a package's resource,
    /// or a URI one of its templates matches.
    pub fn resolve(&self, uri: &str) -> Option<Target> {
        for package in self.packages.values() {
            if !package.bare && uri == package.docs_uri() {
                return Some(Target::Docs(package.clone()));
            }
            let Some(declared) = package.declared(uri) else { continue };
            if let Some(resource) = package.offer.resources.iter().find(|r| r.uri == declared) {
                return Some(Target::Resource {
                    package: package.clone(),
                    declared: declared.to_owned(),
                    template: None,
                    name: package.name(&resource.name),
                });
            }
            for (info, template) in package.offer.templates.iter().zip(&package.templates) {
                if let Some(variables) = template.matches(declared) {
                    return Some(Target::Resource {
                        package: package.clone(),
                        declared: declared.to_owned(),
                        template: Some((info.uri_template.clone(), variables)),
                        name: package.name(&info.name),
                    });
                }
            }
        }
        None
    }
}

/// The documentation of `package`, in Markdown: what it is, who published
/// it, what it asks of nodes, its tools with their schemas, its resources
/// and prompts.
pub fn docs(catalog: &Catalog, package: &CatalogPackage) -> String {
    use std::fmt::Write as _;
    let mut out = format!("# {} {}\n\n", package.repository, package.version);
    if let Some(description) = &package.description {
        let _ = writeln!(out, "{description}\n");
    }
    if package.bridge.is_none() {
        // A bridged server has no manifest, signature or request: its
        // description says what it is and how it is contained.
        let _ = writeln!(out, "- Manifest: `{}`", package.digest);
        if let Some(publisher) = &package.publisher {
            let _ = writeln!(out, "- Signed by: `{publisher}`");
        }
        if let Some(source) = &package.source {
            let _ = writeln!(out, "- Source: {source}");
        }
        let requests = package.permissions.describe();
        let asks = if requests.is_empty() { "nothing beyond the sandbox".to_owned() } else { requests.join("; ") };
        let _ = writeln!(out, "- Asks of nodes: {asks}");
    }
    let tools: Vec<_> = catalog.tools().filter(|t| t.repository == package.repository).collect();
    if !tools.is_empty() {
        out.push_str("\n## Tools\n");
        for tool in tools {
            let _ = writeln!(out, "\n### `{}`\n", tool.name);
            if let Some(description) = tool.descriptor["description"].as_str() {
                let _ = writeln!(out, "{description}\n");
            }
            let _ = writeln!(out, "Signature: `{}`", super::search::signature(tool));
        }
    }
    if !package.offer.resources.is_empty() || !package.offer.templates.is_empty() {
        out.push_str("\n## Resources\n\n");
        for r in &package.offer.resources {
            let _ = writeln!(out, "- `{}`{}", package.uri(&r.uri), dash(r.description.as_deref()));
        }
        for t in &package.offer.templates {
            let _ = writeln!(out, "- `{}` (template){}", package.uri(&t.uri_template), dash(t.description.as_deref()));
        }
    }
    if !package.offer.prompts.is_empty() {
        out.push_str("\n## Prompts\n\n");
        for p in &package.offer.prompts {
            let arguments: Vec<String> =
                p.arguments.iter().map(|a| if a.required { a.name.clone() } else { format!("{}?", a.name) }).collect();
            let _ = writeln!(
                out,
                "- `{}({})`{}",
                package.name(&p.name),
                arguments.join(", "),
                dash(p.description.as_deref())
            );
        }
    }
    out
}

fn dash(text: Option<&str>) -> String {
    text.map(|t| format!(" — {t}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, offer: serde_json::Value) -> CatalogEntry {
        CatalogEntry {
            name: name.into(),
            version: "1.0.0".into(),
            digest: Digest::of(name.as_bytes()).to_string(),
            description: Some("notes".into()),
            publisher: None,
            source: None,
            tools: json!([]),
            permissions: ToolRequest::default(),
            offer,
        }
    }

    fn offers(bare: bool) -> Offers {
        let offer = json!({
            "resources": [{"uri": "notes://readme", "name": "readme", "mimeType": "text/markdown"}],
            "templates": [{"uriTemplate": "notes://pages/{slug}", "name": "page"}],
            "prompts": [{"name": "review", "arguments": [{"name": "slug", "required": true}]}],
        });
        let mut offers = Offers::default();
        for name in ["acme/notes", "other/notes"] {
            let e = entry(name, offer.clone());
            offers.add(&e, &name.parse().unwrap(), Digest::of(name.as_bytes()), bare && name == "acme/notes");
        }
        offers
    }

    #[test]
    fn names_and_uris_do_not_collide_between_packages() {
        let offers = offers(false);
        let names: Vec<&str> = offers.prompts().map(|(name, _, _)| name).collect();
        assert_eq!(names, ["acme.notes.review", "other.notes.review"]);
        let Some(Target::Resource { package, declared, template: None, name }) =
            offers.resolve("toolmesh://other/notes/notes://readme")
        else {
            panic!()
        };
        assert_eq!(
            (package.repository.as_str(), declared.as_str(), name.as_str()),
            ("other/notes", "notes://readme", "other.notes.readme")
        );
        let Some(Target::Resource { package, template: Some((template, variables)), .. }) =
            offers.resolve("toolmesh://acme/notes/notes://pages/intro")
        else {
            panic!()
        };
        assert_eq!(package.repository.as_str(), "acme/notes");
        assert_eq!((template.as_str(), variables), ("notes://pages/{slug}", vec![("slug".into(), "intro".into())]));
        assert!(
            matches!(offers.resolve("toolmesh://acme/notes/README.md"), Some(Target::Docs(p)) if p.repository.as_str() == "acme/notes")
        );
        assert_eq!(offers.resolve("notes://readme"), None);
        assert_eq!(offers.resolve("toolmesh://acme/notes/notes://nothing"), None);
        assert_eq!(offers.resolve("toolmesh://acme/no/notes://readme"), None);
    }

    #[test]
    fn bare_packages_keep_their_names() {
        let offers = offers(true);
        assert!(offers.prompt("review").is_some());
        assert!(offers.prompt("other.notes.review").is_some());
        assert!(matches!(offers.resolve("notes://readme"), Some(Target::Resource { name, .. }) if name == "readme"));
    }

    #[test]
    fn unreadable_offers_and_templates_are_left_out() {
        let mut offers = Offers::default();
        let e = entry("acme/bad", json!({"templates": [{"uriTemplate": "x://{a", "name": "t"}], "prompts": "no"}));
        offers.add(&e, &"acme/bad".parse().unwrap(), Digest::of(b"x"), false);
        let package = offers.packages().next().unwrap();
        assert!(package.offer.is_empty());
        let e = entry("acme/worse", json!({"templates": [{"uriTemplate": "x://{a", "name": "t"}]}));
        offers.add(&e, &"acme/worse".parse().unwrap(), Digest::of(b"y"), false);
        assert!(offers.packages().all(|p| p.offer.templates.is_empty()));
    }
}
