//! `tool node` and `tool gateway`: the node and gateway roles as separate
//! processes, joined by a NATS server the operator runs.

use super::Failure;
use super::front_args::FrontArgs;
use super::remote::RegistryArgs;
use super::sandbox_args::SandboxArgs;
use anyhow::{Context, anyhow};
use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toolmesh_host::gateway::http::router as mcp_router;
use toolmesh_host::gateway::sessions::SessionHomes;
use toolmesh_host::gateway::{Gateway, front};
use toolmesh_host::mesh::agent::{self, AgentConfig};
use toolmesh_host::mesh::invoker::MeshInvoker;
use toolmesh_host::mesh::{NatsAuth, NatsConfig, NatsTls, subjects};
use toolmesh_host::node::Node;
use toolmesh_host::node::wire::GpuAdapter;
use toolmesh_host::sandbox::Sandbox;
use toolmesh_host::usage::Metering;

/// How to reach NATS and prove who this process is.
#[derive(Args, Debug)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated (`nats://127.0.0.1:4222`, `tls://…`).
    #[arg(long, env = "TOOLMESH_NATS", value_name = "URL")]
    nats: String,
    /// A token for NATS servers that require one.
    #[arg(long = "nats-token", env = "TOOLMESH_NATS_TOKEN", hide_env_values = true, value_name = "TOKEN", conflicts_with_all = ["nats_creds", "nats_nkey"])]
    nats_token: Option<String>,
    /// A NATS creds file (user JWT and seed, as `nsc` writes them).
    #[arg(
        long = "nats-creds",
        alias = "creds",
        env = "TOOLMESH_NATS_CREDS",
        value_name = "FILE",
        conflicts_with = "nats_nkey"
    )]
    nats_creds: Option<PathBuf>,
    /// A file holding a NATS user nkey seed (`tool keygen --nats` writes one).
    #[arg(long = "nats-nkey", alias = "nkey", env = "TOOLMESH_NATS_NKEY", value_name = "FILE")]
    nats_nkey: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for NATS (a private CA); implies TLS.
    #[arg(long = "nats-ca", alias = "tls-ca", env = "TOOLMESH_NATS_CA", value_name = "FILE")]
    nats_ca: Option<PathBuf>,
    /// A client certificate (PEM) for NATS servers that verify clients.
    #[arg(long = "nats-cert", value_name = "FILE", requires = "nats_key")]
    nats_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = "nats-key", value_name = "FILE", requires = "nats_cert")]
    nats_key: Option<PathBuf>,
}

impl NatsArgs {
    fn config(&self, name: String) -> NatsConfig {
        let auth = match (&self.nats_token, &self.nats_creds, &self.nats_nkey) {
            (Some(token), _, _) => NatsAuth::Token(token.clone()),
            (_, Some(creds), _) => NatsAuth::Creds(creds.clone()),
            (_, _, Some(nkey)) => NatsAuth::Nkey(nkey.clone()),
            _ => NatsAuth::None,
        };
        let tls = NatsTls { ca: self.nats_ca.clone(), client: self.nats_cert.clone().zip(self.nats_key.clone()) };
        NatsConfig { url: self.nats.clone(), auth, tls, name }
    }
}

/// Arguments of `tool node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The node's id on the mesh, fixed so NATS permissions can name its
    /// subjects (letters, digits, `-`, `_`) [default: random at each start].
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// A name for this node in listings [default: the id given with `--id`,
    /// else `node-` and the start of the random id].
    #[arg(long)]
    name: Option<String>,
    /// A label for placement and listings, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Calls this node takes at once [default: the sandbox's concurrent calls].
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR/metrics (keep it on loopback
    /// or a private network: it has no API key).
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
    /// How long running calls may finish after SIGTERM (or Ctrl-C) before
    /// the node exits; a second signal exits at once.
    #[arg(
        long = "drain-timeout",
        alias = "drain",
        default_value = "30s",
        value_parser = super::sandbox_args::parse_duration_arg,
        value_name = "DURATION"
    )]
    drain_timeout: Duration,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    bridges: super::bridge_args::BridgeArgs,
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

/// A message for each SIGTERM or Ctrl-C, as they come: the first asks the
/// node to drain, the next to stop at once.
fn stop_requests() -> Result<tokio::sync::mpsc::UnboundedReceiver<()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(()) = term.recv() => {}
                Some(()) = interrupt.recv() => {}
                else => return,
            }
            if sender.send(()).is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}

pub async fn node(args: NodeArgs) -> Result<(), Failure> {
    let id = match &args.id {
        Some(id) => id.clone(),
        None => node_id()?,
    };
    if !subjects::is_valid_id(&id) {
        return Err(Failure::usage(anyhow!("bad node id {id:?}: use 1 to 64 letters, digits, `-` or `_`")));
    }
    let name = match (&args.name, &args.id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => id.clone(),
        (None, None) => format!("node-{}", &id[..6]),
    };
    // Signals are watched from the start: one during start-up is not lost.
    let stops = stop_requests()?;
    let (node, slots) = build_node(&args.sandbox, &args.registry, args.slots)?;
    let node = match args.bridges.start(node.policy(), node.sandbox(), None)? {
        Some(bridges) => node.with_bridges(bridges),
        None => node,
    };
    if let Some(addr) = args.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
        let app = axum::Router::new().route("/metrics", axum::routing::get(toolmesh_host::gateway::http::metrics));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let nats = args.nats.config(format!("toolmesh node {name}"));
    let (client, refusals) = nats.connect().await.map_err(Failure::failed)?;
    eprintln!("node {name} ({id}) grants tools: {}", node.policy().summary().join("; "));
    if let Some(line) = super::sandbox_args::gpu_status(node.sandbox(), node.policy()) {
        eprintln!("{line}");
    }
    eprintln!("node {id} connected to {}", nats.shown_url());
    let config = AgentConfig {
        id,
        name,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        slots,
        gpus: gpus(&node),
        drain_timeout: args.drain_timeout,
    };
    agent::serve(client, refusals, node, config, stops).await.map_err(Failure::failed)?;
    eprintln!("node stopped");
    Ok(())
}

/// The GPU adapter a node offers tools: the one its sandbox opened, when
/// its policy grants GPU compute.
fn gpus(node: &Node) -> Vec<GpuAdapter> {
    let Some(adapter) = node.sandbox().gpu().filter(|_| node.policy().gpu) else {
        return Vec::new();
    };
    vec![GpuAdapter { name: adapter.name.clone(), backend: adapter.backend.clone(), device_type: adapter.kind.into() }]
}

/// A node with the sandbox and policy of `sandbox` that fetches from
/// `registry`, and the calls it takes at once.
fn build_node(sandbox: &SandboxArgs, registry: &RegistryArgs, slots: Option<u32>) -> Result<(Node, u32), Failure> {
    let policy = Arc::new(sandbox.policy()?);
    let config = sandbox.config(Some(&policy))?;
    let slots = slots.unwrap_or(config.max_concurrent_calls).max(1);
    let node = Node::new(Arc::new(Sandbox::new(config)?), Arc::new(registry.client()?), policy);
    Ok((node, slots))
}

/// Arguments of `tool gateway`.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Address to listen on; the MCP endpoint is /mcp.
    #[arg(long, default_value = "127.0.0.1:7700", value_name = "HOST:PORT")]
    addr: SocketAddr,
    #[command(flatten)]
    front: FrontArgs,
    /// How often the tool list is read again from the registry.
    #[arg(long, default_value = "2s", value_parser = super::sandbox_args::parse_duration_arg, value_name = "DURATION")]
    refresh: Duration,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Also run calls in this process: a node on the mesh like any other
    /// (placed by the same rules), with the sandbox and policy flags below.
    #[arg(long)]
    local_node: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

pub async fn gateway(args: GatewayArgs) -> Result<(), Failure> {
    let mcp = args.front.config(args.addr)?;
    let nats = args.nats.config("toolmesh gateway".into());
    let (client, refusals) = nats.connect().await.map_err(Failure::failed)?;
    let invoker = MeshInvoker::start(client.clone()).await.map_err(Failure::failed)?;
    refusals.confirm(&client, "a gateway").await.map_err(Failure::failed)?;
    if args.local_node {
        let (node, slots) = build_node(&args.sandbox, &args.registry, None)?;
        let id = node_id()?;
        eprintln!("local node {id} grants tools: {}", node.policy().summary().join("; "));
        let config = AgentConfig {
            name: format!("gateway-{}", &id[..6]),
            id,
            labels: BTreeMap::from([("role".to_owned(), "gateway".to_owned())]),
            slots,
            gpus: gpus(&node),
            drain_timeout: Duration::ZERO,
        };
        let client = client.clone();
        // The local node serves as long as the gateway: nothing asks it to stop.
        let (_, stops) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Err(e) = agent::serve(client, refusals, node, config, stops).await {
                tracing::error!("the gateway's local node stopped: {e}");
            }
        });
    }
    let bridged = invoker.clone();
    let gateway = Gateway::new(Arc::new(invoker));
    // The nodes' bridged servers join the catalog as their adverts come and go.
    let (follower, mut changes) = (gateway.clone(), bridged.subscribe_bridged());
    tokio::spawn(async move {
        loop {
            follower.set_bridged(bridged.bridged());
            if changes.changed().await.is_err() {
                return;
            }
        }
    });
    gateway.set_metering(Metering::shared(&client, args.front.quotas()?, gateway.id()).await);
    gateway.set_tool_search(args.front.tool_search());
    gateway.set_session_homes(SessionHomes::shared(&client, args.sandbox.session_ttl()).await);
    gateway.set_request_states(toolmesh_host::gateway::questions::RequestStates::shared(&client).await);
    gateway.set_tasks(toolmesh_host::gateway::tasks::Tasks::shared(&client).await);
    gateway.set_resource_updates(toolmesh_host::gateway::updates::ResourceUpdates::shared(&client, gateway.id()).await);
    let registry = args.registry.client()?;
    let entries =
        registry.catalog(None).await.with_context(|| format!("cannot read the catalog of {}", registry.base()))?;
    gateway.set_entries(entries);
    let (follower, every) = (gateway.clone(), args.refresh);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match registry.catalog(None).await {
                Ok(entries) => {
                    follower.set_entries(entries);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the catalog"),
            }
        }
    });
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = mcp_router(gateway.clone(), mcp).map_err(|e| Failure::usage(anyhow!(e)))?;
    let server = tokio::spawn(front::serve(listener, app, front::default_loops()));
    eprintln!(
        "gateway on {} serving {} tools from {}",
        nats.shown_url(),
        gateway.catalog().len(),
        args.registry.url()?
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
    let (client, _) = args.nats.config("toolmesh nodes".into()).connect().await.map_err(Failure::failed)?;
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
