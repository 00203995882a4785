//! Where directories and clients find the gateway without connecting to
//! it: the MCP Registry's generic read API and an MCP server card.
//!
//! - `GET /v0/servers` (and `/v0.1/servers`): `server.json` entries whose
//!   `remotes` point at this gateway's `/mcp`, in name order: one for the
//!   gateway and one per package of the catalog (its tools are the gateway's tools
//!   named after it). `cursor`, `limit`, `search` and `version` as the
//!   API defines them.
//! - `GET /v0/servers/{name}/versions` and `…/versions/{version}`
//!   (`latest` too): the catalog holds one version of each package, so each
//!   entry has one version.
//! - `GET /.well-known/mcp/server-card.json` (and `/.well-known/mcp/server-card`):
//!   the gateway's card: its remote, capabilities, and the tools, prompts
//!   and resources anyone may use without signing in (none when the
//!   gateway requires a key or a token, which the card says).
//!
//! Entries are named `<namespace>/<server>` in reverse-DNS form: the
//! namespace is the public URL's host, reversed (`mesh.example.com` →
//! `com.example.mesh`), or the request's host when no public URL is set.

use super::Gateway;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The `server.json` schema entries declare.
const SERVER_SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// The server card schema the card declares.
const CARD_SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/v1/server-card.schema.json";

/// Entries one page holds when the request says nothing.
const DEFAULT_LIMIT: usize = 30;

/// Entries one page holds at most.
const MAX_LIMIT: usize = 100;

/// The protocol versions the gateway's remote speaks.
const PROTOCOL_VERSIONS: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

/// What the listings need to know of the gateway's front.
pub(crate) struct Listings {
    gateway: Gateway,
    /// `https://host[:port]`, when the operator gave one.
    public: Option<String>,
    /// Whether calls need an API key or a token.
    auth_required: bool,
    /// Whether tokens come from OAuth issuers.
    oauth: bool,
    /// `Host` values answered when there is no public URL.
    hosts: Vec<String>,
}

/// The query of `GET /v0/servers`.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    search: Option<String>,
    version: Option<String>,
}

/// Where the bridged servers are listed.
pub const BRIDGED_PATH: &str = "/toolmesh/v1/bridged";

impl Listings {
    /// The listings of `gateway`, reached at `public` if given.
    pub(crate) fn new(
        gateway: Gateway,
        public: Option<String>,
        (auth_required, oauth): (bool, bool),
        hosts: Vec<String>,
    ) -> Self {
        Listings { gateway, public, auth_required, oauth, hosts }
    }

    /// A `403` for a request naming a host the gateway does not answer to
    /// (its URLs would be the requester's invention), when no public URL
    /// says where the gateway is.
    fn refused(&self, headers: &HeaderMap) -> Option<Response> {
        (self.public.is_none() && !super::origin::host_allowed(headers, &self.hosts))
            .then(|| (StatusCode::FORBIDDEN, "this host is not served").into_response())
    }

    /// The routes, open to anyone (they say only what a directory may).
    pub(crate) fn routes(self) -> Router {
        let listings = Arc::new(self);
        let list = {
            let listings = listings.clone();
            move |headers: HeaderMap, Query(query): Query<ListQuery>| {
                let listings = listings.clone();
                async move { listings.refused(&headers).unwrap_or_else(|| listings.list(&headers, &query)) }
            }
        };
        let versions = {
            let listings = listings.clone();
            move |headers: HeaderMap, Path(name): Path<String>| {
                let listings = listings.clone();
                async move { listings.refused(&headers).unwrap_or_else(|| listings.versions(&headers, &name)) }
            }
        };
        let version = {
            let listings = listings.clone();
            move |headers: HeaderMap, Path((name, version)): Path<(String, String)>| {
                let listings = listings.clone();
                async move { listings.refused(&headers).unwrap_or_else(|| listings.version(&headers, &name, &version)) }
            }
        };
        let bridged = {
            let listings = listings.clone();
            move |headers: HeaderMap, Query(query): Query<ListQuery>| {
                let listings = listings.clone();
                async move { listings.refused(&headers).unwrap_or_else(|| listings.bridged(&query)) }
            }
        };
        let card = move |headers: HeaderMap| {
            let listings = listings.clone();
            async move { listings.refused(&headers).unwrap_or_else(|| listings.card(&headers)) }
        };
        let mut router = Router::new();
        for prefix in ["/v0", "/v0.1"] {
            router = router
                .route(&format!("{prefix}/servers"), axum::routing::get(list.clone()))
                .route(&format!("{prefix}/servers/{{name}}/versions"), axum::routing::get(versions.clone()))
                .route(&format!("{prefix}/servers/{{name}}/versions/{{version}}"), axum::routing::get(version.clone()));
        }
        router
            .route(BRIDGED_PATH, axum::routing::get(bridged))
            .route("/.well-known/mcp/server-card.json", axum::routing::get(card.clone()))
            .route("/.well-known/mcp/server-card", axum::routing::get(card))
    }

    /// `scheme://authority` the gateway is reached at.
    fn base(&self, headers: &HeaderMap) -> String {
        base_url(self.public.as_deref(), headers)
    }

    /// The remote every entry points at.
    fn remote(&self, base: &str) -> Value {
        let mut remote = json!({"type": "streamable-http", "url": format!("{base}/mcp")});
        if self.auth_required {
            let schemes: Vec<&str> = if self.oauth { vec!["bearer", "oauth2"] } else { vec!["bearer"] };
            remote["headers"] = json!([{
                "name": "Authorization",
                "description": "Bearer API key or access token",
                "isRequired": true,
                "isSecret": true,
            }]);
            remote["authentication"] = json!({"required": true, "schemes": schemes});
        }
        remote
    }

    /// Every entry: the gateway's, then the packages'.
    fn entries(&self, headers: &HeaderMap) -> Vec<Value> {
        let base = self.base(headers);
        let namespace = namespace(&base);
        let catalog = self.gateway.catalog();
        let official = || json!({"io.modelcontextprotocol.registry/official": {"status": "active", "isLatest": true}});
        let mut entries = vec![json!({
            "server": {
                "$schema": SERVER_SCHEMA,
                "name": format!("{namespace}/toolmesh"),
                "title": "toolmesh",
                "description": short(&format!(
                    "Sandboxed WebAssembly tools: {} tools from {} packages",
                    catalog.len(),
                    catalog.offers().packages().count()
                )),
                "version": env!("CARGO_PKG_VERSION"),
                "websiteUrl": format!("{base}/"),
                "remotes": [self.remote(&base)],
            },
            "_meta": official(),
        })];
        for package in catalog.offers().packages() {
            let tools: Vec<&str> =
                catalog.tools().filter(|t| t.repository == package.repository).map(|t| t.name.as_str()).collect();
            let description = package
                .description
                .clone()
                .unwrap_or_else(|| format!("{} tools of {}", tools.len(), package.repository));
            let mut server = json!({
                "$schema": SERVER_SCHEMA,
                "name": format!("{namespace}/{}", package.repository.as_str().replace('/', ".")),
                "title": package.repository.as_str(),
                "description": short(&description),
                "version": package.version,
                "websiteUrl": format!("{base}/tools/{}", package.repository),
                "remotes": [self.remote(&base)],
                "_meta": {"io.modelcontextprotocol.registry/publisher-provided": {
                    "dev.toolmesh/digest": package.digest.to_string(),
                    "dev.toolmesh/tools": tools,
                }},
            });
            if let Some(source) = package.source.as_deref().filter(|s| s.starts_with("https://")) {
                server["repository"] = json!({"url": source, "source": forge(source)});
            }
            // `a.b/c` and `a/b.c` read alike here: the first keeps the name.
            if entries.iter().any(|e| name_of(e) == server["name"].as_str().unwrap_or_default()) {
                tracing::debug!(repository = %package.repository, "listing left out: its name is taken");
                continue;
            }
            entries.push(json!({"server": server, "_meta": official()}));
        }
        entries
    }

    /// `GET /v0/servers`.
    fn list(&self, headers: &HeaderMap, query: &ListQuery) -> Response {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let search = query.search.as_deref().map(str::to_lowercase);
        let mut entries = self.entries(headers);
        // In name order, which the cursor (the last name of a page) follows.
        entries.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        let matching: Vec<Value> = entries
            .into_iter()
            .filter(|e| search.as_ref().is_none_or(|s| name_of(e).to_lowercase().contains(s)))
            .filter(|e| match query.version.as_deref() {
                None | Some("latest") => true,
                Some(version) => e["server"]["version"] == version,
            })
            .collect();
        // The cursor is the name of the last entry of the previous page.
        let start = match &query.cursor {
            Some(after) => matching.iter().position(|e| name_of(e) > after.as_str()).unwrap_or(matching.len()),
            None => 0,
        };
        let page: Vec<Value> = matching.iter().skip(start).take(limit).cloned().collect();
        let mut metadata = json!({"count": page.len()});
        if start + page.len() < matching.len()
            && let Some(last) = page.last()
        {
            metadata["nextCursor"] = name_of(last).into();
        }
        answer(json!({"servers": page, "metadata": metadata}))
    }

    /// `GET /v0/servers/{name}/versions`.
    fn versions(&self, headers: &HeaderMap, name: &str) -> Response {
        match self.entries(headers).into_iter().find(|e| name_of(e) == name) {
            Some(entry) => answer(json!({"servers": [entry], "metadata": {"count": 1}})),
            None => not_found("Server not found"),
        }
    }

    /// `GET /v0/servers/{name}/versions/{version}`.
    fn version(&self, headers: &HeaderMap, name: &str, version: &str) -> Response {
        match self.entries(headers).into_iter().find(|e| name_of(e) == name) {
            Some(entry) if version == "latest" || entry["server"]["version"] == version => answer(entry),
            Some(_) => not_found("Server version not found"),
            None => not_found("Server not found"),
        }
    }

    /// `GET /toolmesh/v1/bridged[?search=words]`: the bridged MCP servers
    /// and how each is contained (`tool search` shows them); none on a
    /// gateway that needs a key or a token, as on the card.
    fn bridged(&self, query: &ListQuery) -> Response {
        let words = crate::web::search::words(query.search.as_deref().unwrap_or_default());
        let servers: Vec<_> = if self.auth_required {
            Vec::new()
        } else {
            self.gateway.catalog().bridged_servers().into_iter().filter(|s| s.matches(&words)).collect()
        };
        axum::Json(json!({ "servers": servers })).into_response()
    }

    /// `GET /.well-known/mcp/server-card.json`.
    fn card(&self, headers: &HeaderMap) -> Response {
        let base = self.base(headers);
        let mut remote = self.remote(&base);
        remote["supportedProtocolVersions"] = json!(PROTOCOL_VERSIONS);
        let catalog = self.gateway.catalog();
        // What anyone may use without signing in: everything on an open
        // gateway, nothing on one that needs a key or a token.
        let (tools, prompts, resources) = if self.auth_required {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            let tools: Vec<Value> =
                self.gateway.tool_list().tools().map(|t| serde_json::to_value(t).unwrap_or_default()).collect();
            let prompts: Vec<Value> = catalog
                .offers()
                .prompts()
                .map(|(name, _, prompt)| {
                    json!({"name": name, "description": prompt.description, "arguments": prompt.arguments})
                })
                .collect();
            let resources: Vec<Value> = catalog
                .offers()
                .packages()
                .flat_map(|package| {
                    package.offer.resources.iter().map(move |r| {
                        json!({"uri": package.uri(&r.uri), "name": package.name(&r.name), "mimeType": r.mime_type})
                    })
                })
                .collect();
            (tools, prompts, resources)
        };
        answer(json!({
            "$schema": CARD_SCHEMA,
            "name": format!("{}/toolmesh", namespace(&base)),
            "version": env!("CARGO_PKG_VERSION"),
            "title": "toolmesh",
            "description": "Sandboxed WebAssembly tools, shared and run on a mesh of nodes",
            "websiteUrl": format!("{base}/"),
            "remotes": [remote],
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
            },
            "tools": tools,
            "prompts": prompts,
            "resources": resources,
        }))
    }
}

/// `scheme://authority` a gateway is reached at: `public` when the
/// operator gave it, else the host the request named.
pub(super) fn base_url(public: Option<&str>, headers: &HeaderMap) -> String {
    match public {
        Some(public) => public.to_owned(),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}")
        }
    }
}

/// The reverse-DNS namespace of entries of a gateway at `base`.
fn namespace(base: &str) -> String {
    let authority = base.split_once("://").map_or(base, |(_, rest)| rest);
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| if port.bytes().all(|b| b.is_ascii_digit()) { host } else { authority });
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let cleaned: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    if cleaned.parse::<std::net::Ipv4Addr>().is_ok() || !cleaned.contains('.') {
        // An address or a single label: kept as it is.
        return cleaned;
    }
    cleaned.rsplit('.').collect::<Vec<_>>().join(".")
}

/// The `server.name` of a listed entry.
fn name_of(entry: &Value) -> &str {
    entry["server"]["name"].as_str().unwrap_or_default()
}

/// `text` cut to the 100 characters a `server.json` description holds.
fn short(text: &str) -> String {
    if text.chars().count() <= 100 {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(99).collect();
    cut.push('…');
    cut
}

/// The forge a repository URL is on, as `server.json` names it.
fn forge(url: &str) -> &'static str {
    if url.starts_with("https://github.com/") {
        "github"
    } else if url.starts_with("https://gitlab.com/") {
        "gitlab"
    } else {
        "git"
    }
}

/// A JSON answer any origin may read.
fn answer(body: Value) -> Response {
    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], axum::Json(body)).into_response()
}

/// A `404` with the API's error shape.
fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], axum::Json(json!({"error": message})))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_the_host_reversed() {
        assert_eq!(namespace("https://mesh.example.com"), "com.example.mesh");
        assert_eq!(namespace("https://mesh.example.com:8443"), "com.example.mesh");
        assert_eq!(namespace("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(namespace("http://localhost:8080"), "localhost");
        assert_eq!(namespace("http://[::1]:8080"), "--1");
    }

    #[test]
    fn descriptions_fit_the_schema() {
        assert_eq!(short("short"), "short");
        let long = "x".repeat(150);
        assert_eq!(short(&long).chars().count(), 100);
    }
}
