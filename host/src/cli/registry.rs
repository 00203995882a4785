//! `tool registry serve`: the registry as its own process.

use super::Failure;
use super::front_args::PublicUrl;
use crate::cli::sandbox_args::parse_size_arg;
use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use toolmesh_host::web::{self, Market};
use toolmesh_registry::api::{AccessConfig, router, serve};
use toolmesh_registry::store::{FsStore, StoreConfig};

/// `tool registry …`.
#[derive(Args, Debug)]
pub struct RegistryCommand {
    #[command(subcommand)]
    command: RegistryVerb,
}

#[derive(Subcommand, Debug)]
enum RegistryVerb {
    /// Serve the OCI distribution API over a data directory.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Data directory (blobs, manifests, tags, uploads).
    #[arg(long, env = "TOOLMESH_REGISTRY_DIR", value_name = "DIR")]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7600", value_name = "HOST:PORT")]
    addr: SocketAddr,
    /// A token that may push (repeatable). Comma-separated in the environment.
    #[arg(long = "push-token", env = "TOOLMESH_PUSH_TOKENS", value_delimiter = ',', hide_env_values = true)]
    push_tokens: Vec<String>,
    /// A token that may pull (repeatable); without any, anyone may pull.
    #[arg(long = "pull-token", env = "TOOLMESH_PULL_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pull_tokens: Vec<String>,
    /// Let anyone push (only allowed on a loopback address).
    #[arg(long)]
    anonymous_push: bool,
    /// Largest blob accepted [default: 1GiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    max_blob: Option<u64>,
    /// The URL people reach this registry at, when that is not the address
    /// it listens on (behind a TLS proxy); the web pages' pull commands use it.
    #[arg(long, value_parser = PublicUrl::parse, value_name = "URL")]
    public_url: Option<PublicUrl>,
    /// Largest manifest accepted [default: 4MiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    max_manifest: Option<u64>,
}

pub async fn run(command: RegistryCommand) -> Result<(), Failure> {
    let RegistryVerb::Serve(args) = command.command;
    if args.anonymous_push && !args.addr.ip().is_loopback() {
        return Err(Failure::usage(anyhow!("--anonymous-push is only allowed on a loopback address")));
    }
    if args.push_tokens.is_empty() && !args.anonymous_push {
        return Err(Failure::usage(anyhow!(
            "nobody could push: pass --push-token TOKEN (or --anonymous-push on a loopback address)"
        )));
    }
    let defaults = StoreConfig::default();
    let config = StoreConfig {
        max_blob: args.max_blob.unwrap_or(defaults.max_blob),
        max_manifest: args.max_manifest.unwrap_or(defaults.max_manifest),
    };
    let store = FsStore::open(&args.dir, config).with_context(|| format!("cannot open {}", args.dir.display()))?;
    // The pages show the catalog: only where anyone may read it.
    let pages = args.pull_tokens.is_empty();
    let access = AccessConfig {
        push_tokens: args.push_tokens,
        pull_tokens: args.pull_tokens,
        anonymous_push: args.anonymous_push,
    };
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr()?;
    let mut app = router(store.clone(), access);
    if pages {
        let mut market = Market::registry_only(store, format!("http://{local}"));
        if let Some(public) = &args.public_url {
            market = market.reached_at(public.base.clone());
        }
        app = app.merge(web::router(market));
    }
    tracing::info!(addr = %local, dir = %args.dir.display(), "registry listening");
    if pages {
        eprintln!("tools in a web browser: http://{local}/");
    }
    eprintln!("registry listening on http://{local}");
    serve(listener, app).await.context("the registry server failed")?;
    Ok(())
}
