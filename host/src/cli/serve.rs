//! `tool serve` (registry + gateway + an in-process node, one process) and
//! `tool mcp` (the same catalog over stdio, for Claude Desktop).

use super::Failure;
use super::front_args::FrontArgs;
use super::sandbox_args::SandboxArgs;
use super::tool_toml::ToolToml;
use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toolmesh_host::artifact::ToolMetadata;
use toolmesh_host::gateway::http::router as mcp_router;
use toolmesh_host::gateway::sessions::SessionHomes;
use toolmesh_host::gateway::{Gateway, LocalInvoker, front};
use toolmesh_host::grant::{Policy, ToolRequest};
use toolmesh_host::node::Node;
use toolmesh_host::publish::publish;
use toolmesh_host::sandbox::Sandbox;
use toolmesh_host::usage::Metering;
use toolmesh_host::web::{self, Market};
use toolmesh_registry::api::{AccessConfig, router as registry_router};
use toolmesh_registry::client::Client;
use toolmesh_registry::files;
use toolmesh_registry::name::{Repository, Tag};
use toolmesh_registry::signing::SecretKey;
use toolmesh_registry::store::{FsStore, StoreConfig};

/// The bundled examples published on first start, with their descriptions
/// and, for those that request permissions, their `tool.toml`.
const EXAMPLES: &[(&str, &str, Option<&str>)] = &[
    ("hello", "The smallest toolmesh tool: greets someone", None),
    ("text", "Text utilities: counts, regex find and replace, slugs, diffs", None),
    ("markdown", "Markdown to HTML and tables of contents", None),
    ("image", "Image utilities: inspect, resize, grayscale, thumbnails", None),
    (
        "fetch",
        "Fetch a URL on a granted host: text or JSON, redirects followed and checked",
        Some(include_str!("../../../examples/fetch/tool.toml")),
    ),
    (
        "archive",
        "Unpack a tar archive in the call's scratch directory and list what it holds",
        Some(include_str!("../../../examples/archive/tool.toml")),
    ),
    ("matmul", "Matrix product on the GPU through WGSL kernels, with a CPU fallback (needs a GPU grant)", None),
    (
        "model",
        "Sentence embeddings and semantic similarity with all-MiniLM-L6-v2, on the GPU or the CPU (needs a GPU grant)",
        Some(include_str!("../../../examples/model/tool.toml")),
    ),
    ("python", "run_python: Python 3.14 code in a fresh sandbox per call, with a curated standard library", None),
    ("javascript", "run_javascript: JavaScript (QuickJS) in a fresh sandbox per call", None),
    (
        "tables",
        "CSV data for agents: column summaries, filtered and sorted rows, Markdown/HTML/JSON tables (written in Python)",
        None,
    ),
    (
        "cron",
        "Cron schedules for agents: the next times an expression fires and what it means, in UTC (written in TypeScript)",
        None,
    ),
];

/// The version the bundled examples are published under.
const EXAMPLES_VERSION: &str = "0.1.0";

/// Where a node keeps its state.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Data directory (registry store, compile cache, push token)
    /// [default: the user's data directory, e.g. ~/.local/share/toolmesh].
    #[arg(long, env = "TOOLMESH_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn dir(&self) -> Result<PathBuf, Failure> {
        match &self.data {
            Some(dir) => Ok(dir.clone()),
            None => default_data_dir()
                .ok_or_else(|| Failure::usage(anyhow!("no data directory known here; pass --data DIR"))),
        }
    }
}

/// The data directory `tool serve` uses unless given `--data`:
/// `$TOOLMESH_DATA`, else the user's data directory.
pub fn default_data_dir() -> Option<PathBuf> {
    match std::env::var_os("TOOLMESH_DATA") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::data_dir().map(|d| d.join("toolmesh")),
    }
}

/// Arguments of `tool serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address to listen on: the MCP endpoint is /mcp, the registry /v2/.
    #[arg(long, default_value = "127.0.0.1:7600", value_name = "HOST:PORT")]
    addr: SocketAddr,
    #[command(flatten)]
    front: FrontArgs,
    /// Threads that serve HTTP connections, each pinned to one of them
    /// [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    http_threads: Option<u16>,
    /// Directory of example components to publish on first start
    /// [default: the components built beside this binary].
    #[arg(long, env = "TOOLMESH_EXAMPLES", value_name = "DIR")]
    examples: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// Arguments of `tool mcp`.
#[derive(Args, Debug)]
pub struct McpArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    node: NodeArgs,
}

/// How a serving node runs and names tools.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Expose this repository's tools under their bare names, without the
    /// `namespace.package.` prefix (repeatable; for fixtures that clients
    /// call by exact name).
    #[arg(long = "bare-names", value_name = "REPOSITORY")]
    bare_names: Vec<String>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    bridges: super::bridge_args::BridgeArgs,
}

/// The store, sandbox, gateway and policy of a data directory, with the
/// MCP servers the node bridges.
fn node(data: &Path, node: &NodeArgs) -> Result<(FsStore, Arc<Sandbox>, Gateway, Arc<Policy>), Failure> {
    let sandbox_args = &node.sandbox;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let store = FsStore::open(data.join("registry"), StoreConfig::default())
        .with_context(|| format!("cannot open the registry in {}", data.display()))?;
    let policy = Arc::new(sandbox_args.policy()?);
    let config = sandbox_args.config_caching_in(Some(&policy), || Some(data.join("compiled")))?;
    let sandbox = Arc::new(Sandbox::new(config)?);
    let bridges = node.bridges.start(&policy, &sandbox, Some(data))?;
    let mut local = Node::new(sandbox.clone(), Arc::new(store.clone()), policy.clone());
    if let Some(bridges) = &bridges {
        local = local.with_bridges(bridges.clone());
    }
    let gateway = Gateway::with_bare_names(Arc::new(LocalInvoker::new(local)), node.bare_names.clone());
    if let Some(bridges) = bridges {
        // The in-process node's servers, named after the node the way a mesh names them.
        gateway.follow_bridges(bridges, "local");
    }
    Ok((store, sandbox, gateway, policy))
}

/// The components built beside this binary (`target/<profile>/tool` →
/// `target/wasm32-wasip2/release`), if there.
fn default_examples() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("wasm32-wasip2/release");
    dir.is_dir().then_some(dir)
}

/// The token local publishers use, made on first start (private file,
/// written atomically so a crash never leaves an empty token behind).
fn push_token(data: &Path) -> Result<String, Failure> {
    let path = data.join("push-token");
    if let Ok(token) = std::fs::read_to_string(&path)
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no random source: {e}"))?;
    let token = hex::encode(bytes);
    files::write_atomic(&path, format!("{token}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

pub async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let mcp = args.front.config(args.addr)?;
    let quotas = args.front.quotas()?;
    let data = args.data.dir()?;
    let (store, sandbox, gateway, policy) = node(&data, &args.node)?;
    gateway.set_metering(Metering::local(quotas, gateway.id()));
    gateway.set_tool_search(args.front.tool_search());
    gateway.set_session_homes(SessionHomes::local(sandbox.config().sessions.idle_ttl));
    // Tasks outlive a restart: their records are files under the data directory.
    gateway.set_tasks(toolmesh_host::gateway::tasks::Tasks::in_dir(&data.join("tasks")));
    let token = push_token(&data)?;
    let access = AccessConfig { push_tokens: vec![token.clone()], ..AccessConfig::default() };
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr()?;
    let base = format!("http://{local}");
    let needs_key = !mcp.api_keys.is_empty() || mcp.oauth.is_some();
    let mut market = Market::new(store.clone(), gateway.clone(), Some(policy.clone()), needs_key, base.clone());
    if let Some(public) = &args.front.public_url {
        market = market.reached_at(public.base.clone());
    }
    if let Some(sign_in) = args.front.sign_in(&mcp) {
        market = market.signing_in_with(web::signin::SignIn::new(sign_in).map_err(|e| Failure::usage(anyhow!(e)))?);
    }
    let mcp = mcp_router(gateway.clone(), mcp).map_err(|e| Failure::usage(anyhow!(e)))?;
    let app = registry_router(store.clone(), access).merge(mcp).merge(web::router(market));
    let loops = args.http_threads.map_or_else(front::default_loops, usize::from);
    let server = tokio::spawn(front::serve(listener, app, loops));

    // Every start completes what an earlier one left undone (a crash while
    // publishing): examples already in the store are skipped.
    let dir = args.examples.clone().or_else(default_examples);
    // The examples are signed by this server's own key, which so owns their namespace.
    let key = super::identity::key_at(&data.join("publisher.key"))?;
    let client = Client::new(&base, Some(token.clone()))?;
    publish_examples(&store, &sandbox, &client, &key, dir.as_deref()).await?;
    gateway.refresh_from(&store).await.map_err(|e| anyhow!("cannot read the catalog: {e}"))?;
    let _follow = gateway.follow(store);
    let _warm = gateway.warm_catalog();

    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "tool".into());
    // The stdio server grants what this one was told to on the command line.
    let mut mcp_args = vec!["mcp".to_owned(), "--data".to_owned(), data.display().to_string()];
    if args.node.sandbox.gpu() {
        mcp_args.push("--gpu".into());
    }
    let claude = serde_json::json!({"mcpServers": {"toolmesh": {"command": exe, "args": mcp_args}}});
    eprintln!("toolmesh is serving {} tools", gateway.catalog().len());
    eprintln!("this node grants tools: {} (change with --policy FILE)", policy.summary().join("; "));
    if let Some(line) = super::sandbox_args::gpu_status(&sandbox, &policy) {
        eprintln!("{line}");
    }
    eprintln!("tools in a web browser: {base}/");
    eprintln!("MCP endpoint (streamable HTTP): {base}/mcp");
    eprintln!(
        "registry: {base} (`tool publish` on this machine reads the push token from {}; elsewhere pass --token)",
        data.join("push-token").display()
    );
    eprintln!("Claude Desktop (claude_desktop_config.json):\n{}", serde_json::to_string_pretty(&claude)?);
    eprintln!("listening on {base}");
    server.await.map_err(|e| anyhow!("{e}"))?.context("the server failed")?;
    Ok(())
}

/// Publishes each bundled example that the store does not hold yet, signed by `key`.
async fn publish_examples(
    store: &FsStore,
    sandbox: &Sandbox,
    client: &Client,
    key: &SecretKey,
    dir: Option<&Path>,
) -> Result<(), Failure> {
    let tag: Tag = EXAMPLES_VERSION.parse().map_err(Failure::failed)?;
    let mut missing = Vec::new();
    for (name, description, tool_toml) in EXAMPLES {
        let repo: Repository = format!("examples/{name}").parse().map_err(Failure::failed)?;
        if store.resolve_tag(&repo, &tag).await.is_err() {
            missing.push((repo, *name, *description, *tool_toml));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let Some(dir) = dir else {
        tracing::warn!("no example components found (build them with scripts/build-components.sh or pass --examples)");
        return Ok(());
    };
    for (repo, name, description, tool_toml) in missing {
        let path = dir.join(format!("{name}.wasm"));
        let Ok(bytes) = std::fs::read(&path) else {
            tracing::warn!(path = %path.display(), "example not found; skipped");
            continue;
        };
        let permissions = match tool_toml {
            Some(text) => {
                ToolToml::parse(text).map_err(|e| anyhow!("the bundled tool.toml of {name}: {e}"))?.request()?
            }
            None => ToolRequest::default(),
        };
        let meta = ToolMetadata { description: Some(description.to_owned()), permissions, ..ToolMetadata::default() };
        let digest = publish(sandbox, client, Bytes::from(bytes), (&repo, &tag), meta, Some(key), &|_| {})
            .await
            .with_context(|| format!("cannot publish the example {name}"))?;
        tracing::info!(%repo, %digest, "published example");
    }
    Ok(())
}

pub async fn mcp(args: McpArgs) -> Result<(), Failure> {
    use rmcp::ServiceExt;
    let data = args.data.dir()?;
    let (store, _sandbox, gateway, _policy) = node(&data, &args.node)?;
    gateway.refresh_from(&store).await.map_err(|e| anyhow!("cannot read the catalog: {e}"))?;
    let _follow = gateway.follow(store);
    let service =
        gateway.serve(rmcp::transport::stdio()).await.map_err(|e| anyhow!("cannot start the MCP session: {e}"))?;
    service.waiting().await.map_err(|e| anyhow!("the MCP session failed: {e}"))?;
    Ok(())
}
