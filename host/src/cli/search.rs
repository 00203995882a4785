//! `tool search [QUERY]`: published tools from a registry's catalog, and
//! the bridged MCP servers of a gateway that is also the registry
//! (`tool serve`), marked as the native processes they are.

use super::Failure;
use super::remote::RegistryArgs;
use anyhow::Context;
use clap::Args;
use toolmesh_host::gateway::catalog::{BridgedServerView, is_bridged_name};

/// Arguments of `tool search`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words to look for in names, descriptions and tools; all tools if absent.
    query: Option<String>,
    /// Print the catalog entries as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn run(args: SearchArgs) -> Result<(), Failure> {
    let client = args.registry.client()?;
    let entries =
        client.catalog(args.query.as_deref()).await.with_context(|| format!("cannot search {}", client.base()))?;
    // The `bridged` namespace is the bridged servers': a package there is no one's.
    let entries: Vec<_> = entries.into_iter().filter(|e| !is_bridged_name(&e.name)).collect();
    let bridged = bridged_servers(client.base(), args.query.as_deref()).await;
    if args.json {
        // The packages, then the bridged servers (objects with a `server` field).
        let mut all: Vec<serde_json::Value> = entries.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
        all.extend(bridged.iter().filter_map(|s| serde_json::to_value(s).ok()));
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if entries.is_empty() && bridged.is_empty() {
        outln!("no tools found");
    }
    for server in &bridged {
        outln!("{}  (bridged MCP server `{}` on node `{}`)", server.name, server.server, server.node);
        outln!("    runs as {}", server.summary);
        let tools: Vec<&str> = server.tools.iter().map(|t| t.name.as_str()).collect();
        outln!("    tools: {}", tools.join(", "));
    }
    for e in entries {
        let tools: Vec<&str> = e.tools.as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
        let publisher = e.publisher.as_deref().map(|p| format!(" signed by {p}")).unwrap_or_default();
        outln!("{}:{}  {}{publisher}", e.name, e.version, e.digest);
        if let Some(description) = &e.description {
            outln!("    {description}");
        }
        outln!("    tools: {}", tools.join(", "));
        let requests = e.permissions.describe();
        if !requests.is_empty() {
            outln!("    requests: {}", requests.join("; "));
        }
    }
    Ok(())
}

/// The bridged servers `base` lists that match `query`; none where it
/// lists none (a plain registry) or cannot be asked.
async fn bridged_servers(base: &str, query: Option<&str>) -> Vec<BridgedServerView> {
    let Ok(http) = toolmesh_registry::client::http_builder().timeout(std::time::Duration::from_secs(30)).build() else {
        return Vec::new();
    };
    let url = format!("{}{}", base.trim_end_matches('/'), toolmesh_host::gateway::listings::BRIDGED_PATH);
    let request = http.get(url).query(&[("search", query.unwrap_or_default())]);
    let Ok(response) = request.send().await else { return Vec::new() };
    if !response.status().is_success() {
        return Vec::new();
    }
    #[derive(serde::Deserialize)]
    struct Listed {
        servers: Vec<BridgedServerView>,
    }
    response.json::<Listed>().await.map(|l| l.servers).unwrap_or_default()
}
