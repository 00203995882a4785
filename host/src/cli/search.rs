//! `tool search [QUERY]`: published tools from a registry's catalog.

use super::Failure;
use super::remote::RegistryArgs;
use anyhow::Context;
use clap::Args;

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
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        outln!("no tools found");
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
