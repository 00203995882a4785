//! `tool node` and `tool gateway`: the node and gateway roles as separate
//! processes, joined by a NATS server the operator runs.

use super::Failure;
use super::remote::RegistryArgs;
use super::sandbox_args::SandboxArgs;
use anyhow::{Context, anyhow};
use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use toolmesh_host::gateway::catalog::Catalog;
use toolmesh_host::gateway::http::{McpHttpConfig, router as mcp_router};
use toolmesh_host::gateway::{Gateway, front};
use toolmesh_host::mesh::agent::{self, AgentConfig};
use toolmesh_host::mesh::invoker::MeshInvoker;
use toolmesh_host::mesh::{NatsConfig, subjects};
use toolmesh_host::node::Node;
use toolmesh_host::sandbox::Sandbox;

/// How to reach NATS.
#[derive(Args, Debug)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    #[arg(long, env = "TOOLMESH_NATS", value_name = "URL")]
    nats: String,
    /// A token for NATS servers that require one.
    #[arg(long, env = "TOOLMESH_NATS_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    nats_token: Option<String>,
}

impl NatsArgs {
    fn config(&self, name: String) -> NatsConfig {
        NatsConfig { url: self.nats.clone(), token: self.nats_token.clone(), name }
    }
}

/// Arguments of `tool node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// A name for this node in listings [default: the host name and a random suffix].
    #[arg(long)]
    name: Option<String>,
    /// A label for placement and listings, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Calls this node takes at once [default: the sandbox's concurrent calls].
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
    /// How long running calls may finish after SIGTERM before the node exits.
    #[arg(long, default_value = "30s", value_parser = super::sandbox_args::parse_duration_arg, value_name = "DURATION")]
    drain: Duration,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not key=value"))?;
    Ok((key.to_owned(), value.to_owned()))
}

/// A random id for this run of a node.
fn node_id() -> Result<String, Failure> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no random source: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

pub async fn node(args: NodeArgs) -> Result<(), Failure> {
    let id = node_id()?;
    let name = args.name.clone().unwrap_or_else(|| format!("node-{}", &id[..6]));
    if !subjects::is_valid_id(&id) {
        return Err(Failure::failed(anyhow!("bad node id {id}")));
    }
    let config = args.sandbox.config()?;
    let slots = args.slots.unwrap_or(config.max_concurrent_calls).max(1);
    let sandbox = Arc::new(Sandbox::new(config)?);
    let policy = Arc::new(args.sandbox.policy()?);
    let source = Arc::new(args.registry.client()?);
    let node = Node::new(sandbox, source, policy.clone());
    let client = args.nats.config(format!("toolmesh node {name}")).connect().await.map_err(Failure::failed)?;
    eprintln!("node {name} ({id}) grants tools: {}", policy.summary().join("; "));
    eprintln!("node {id} connected to {}", args.nats.nats);
    let config = AgentConfig {
        id,
        name,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        slots,
        gpus: Vec::new(),
        drain_timeout: args.drain,
    };
    agent::serve(client, node, config, stop_signal()).await.map_err(Failure::failed)?;
    eprintln!("node stopped");
    Ok(())
}

/// Arguments of `tool gateway`.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Address to listen on; the MCP endpoint is /mcp.
    #[arg(long, default_value = "127.0.0.1:7700", value_name = "HOST:PORT")]
    addr: SocketAddr,
    /// An API key MCP clients must present (repeatable). Required unless listening on loopback.
    #[arg(long = "api-key", env = "TOOLMESH_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    api_keys: Vec<String>,
    /// A host name clients use to reach this gateway (repeatable), beyond the loopback names.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// How often the tool list is read again from the registry.
    #[arg(long, default_value = "2s", value_parser = super::sandbox_args::parse_duration_arg, value_name = "DURATION")]
    refresh: Duration,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn gateway(args: GatewayArgs) -> Result<(), Failure> {
    if !args.addr.ip().is_loopback() && args.api_keys.is_empty() {
        return Err(Failure::usage(anyhow!("{} is not a loopback address: pass --api-key KEY", args.addr)));
    }
    let client = args.nats.config("toolmesh gateway".into()).connect().await.map_err(Failure::failed)?;
    let invoker = MeshInvoker::start(client).await.map_err(Failure::failed)?;
    let gateway = Gateway::new(Arc::new(invoker));
    let registry = args.registry.client()?;
    let entries =
        registry.catalog(None).await.with_context(|| format!("cannot read the catalog of {}", registry.base()))?;
    gateway.set_catalog(Catalog::build(entries, &[]));
    let (follower, every) = (gateway.clone(), args.refresh);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match registry.catalog(None).await {
                Ok(entries) => {
                    follower.set_catalog(Catalog::build(entries, &[]));
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the catalog"),
            }
        }
    });
    let mut mcp = McpHttpConfig { api_keys: args.api_keys.clone(), ..McpHttpConfig::default() };
    mcp.allowed_hosts.extend(args.allowed_hosts.iter().cloned());
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(front::serve(listener, mcp_router(gateway.clone(), mcp), front::default_loops()));
    eprintln!(
        "gateway on {} serving {} tools from {}",
        args.nats.nats,
        gateway.catalog().len(),
        args.registry.registry
    );
    eprintln!("MCP endpoint (streamable HTTP): {base}/mcp");
    eprintln!("listening on {base}");
    server.await.map_err(|e| anyhow!("{e}"))?.context("the server failed")?;
    Ok(())
}

/// Arguments of `tool nodes`.
#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// How long to listen for adverts (nodes advertise every second).
    #[arg(long, default_value = "1500ms", value_parser = super::sandbox_args::parse_duration_arg, value_name = "DURATION")]
    wait: Duration,
    /// Print the adverts as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn nodes(args: NodesArgs) -> Result<(), Failure> {
    use futures_util::StreamExt;
    use toolmesh_host::node::wire::{self, Advert};
    let client = args.nats.config("toolmesh nodes".into()).connect().await.map_err(Failure::failed)?;
    let mut adverts = client.subscribe(subjects::ADVERTS).await.map_err(|e| anyhow!("{e}"))?;
    let mut seen: BTreeMap<String, Advert> = BTreeMap::new();
    let until = tokio::time::Instant::now() + args.wait;
    while let Ok(Some(message)) = tokio::time::timeout_at(until, adverts.next()).await {
        if let Ok(advert) = wire::decode::<Advert>("advert", &message.payload)
            && message.subject.as_str() == subjects::advert(&advert.id)
        {
            seen.insert(advert.id.clone(), advert);
        }
    }
    let mut list: Vec<Advert> = seen.into_values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        outln!("no node advertised within {:?}", args.wait);
    }
    for n in list {
        let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        outln!(
            "{} ({})  {}/{} busy  {} cores  {} compiled  {}",
            n.name,
            n.id,
            n.in_flight,
            n.slots,
            n.cores,
            n.compiled.len(),
            labels.join(" ")
        );
        outln!("    grants: {}", n.grants.summary().join("; "));
    }
    Ok(())
}
