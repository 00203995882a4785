//! `tool publish FILE.wasm [--name ns/name --version V]` (name and version
//! from tool.toml when not given): describe the
//! component in the sandbox (no grants), build its OCI artifact, push it,
//! and sign it when given a key.

use super::Failure;
use super::remote::RegistryArgs;
use super::sandbox_args::SandboxArgs;
use super::tool_toml::ToolToml;
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use toolmesh_host::artifact::ToolMetadata;
use toolmesh_host::grant::request::NetworkEntry;
use toolmesh_host::publish::publish;
use toolmesh_registry::client::CHUNK;
use toolmesh_registry::name::{Repository, Tag};
use toolmesh_registry::signing::SecretKey;

/// Arguments of `tool publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Repository name, such as `acme/text` [default: `name` in tool.toml].
    #[arg(long)]
    name: Option<String>,
    /// Version; also the tag [default: `version` in tool.toml].
    #[arg(long)]
    version: Option<String>,
    /// Sign with this publisher key (from `tool keygen`).
    #[arg(long, value_name = "KEY_FILE")]
    key: Option<PathBuf>,
    /// One-line description [default: from tool.toml].
    #[arg(long)]
    description: Option<String>,
    /// Source URL [default: from tool.toml].
    #[arg(long)]
    source: Option<String>,
    /// Metadata and requested permissions [default: tool.toml beside the component, if any].
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// An HTTP target the tool reaches with GET, `[https://]host[:port]`
    /// (repeatable; adds to tool.toml).
    #[arg(long = "network", value_name = "TARGET")]
    network: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

pub async fn run(args: PublishArgs) -> Result<(), Failure> {
    let mut toml = ToolToml::read(args.manifest.as_deref(), &args.file)?;
    // Each piece from its flag, else from tool.toml, else an error naming both.
    let missing = |what: &str, flag: &str, example: &str| {
        Failure::usage(anyhow::anyhow!(
            "no {what} to publish under: pass {flag}, or set `{what} = \"{example}\"` in tool.toml \
             (beside the component, or given with --manifest FILE)"
        ))
    };
    let name = args.name.clone().or(toml.name.take()).ok_or_else(|| missing("name", "--name NS/NAME", "acme/tool"))?;
    let version =
        args.version.clone().or(toml.version.take()).ok_or_else(|| missing("version", "--version V", "1.0.0"))?;
    let repo: Repository = name.parse().map_err(Failure::usage)?;
    let tag: Tag = version.parse().map_err(Failure::usage)?;
    let key = match &args.key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read key {}", path.display()))
                .and_then(|t| Ok(SecretKey::from_text(&t)?))
                .map_err(Failure::usage)?,
        ),
        None => None,
    };
    toml.permissions.network.extend(args.network.iter().cloned().map(NetworkEntry::Text));
    let permissions = toml.request()?;

    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(Failure::usage)?;
    let sandbox = args.sandbox.one_shot_sandbox(None)?;
    let meta = ToolMetadata {
        description: args.description.or(toml.description),
        source: args.source.or(toml.source),
        permissions,
        ..ToolMetadata::default()
    };
    let client = args.registry.client()?;
    let bar = (std::io::stderr().is_terminal() && bytes.len() > CHUNK).then(|| {
        let bar = ProgressBar::new(bytes.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message("uploading");
        bar
    });
    let progress = |sent: u64| {
        if let Some(bar) = &bar {
            bar.set_position(sent);
        }
    };
    let digest = publish(&sandbox, &client, Bytes::from(bytes), (&repo, &tag), meta, key.as_ref(), &progress)
        .await
        .with_context(|| format!("cannot publish {repo}:{tag} to {}", client.base()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    outln!("{repo}:{tag}@{digest}");
    Ok(())
}
