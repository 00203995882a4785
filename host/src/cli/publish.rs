//! `tool publish FILE.wasm --name ns/name --version V`: describe the
//! component in the sandbox (no grants), build its OCI artifact, push it,
//! and sign it when given a key.

use super::Failure;
use super::remote::RegistryArgs;
use super::sandbox_args::SandboxArgs;
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use toolmesh_host::artifact::ToolMetadata;
use toolmesh_host::policy::Permissions;
use toolmesh_host::publish::publish;
use toolmesh_registry::client::CHUNK;
use toolmesh_registry::name::{Repository, Tag};
use toolmesh_registry::signing::SecretKey;

/// Arguments of `tool publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Repository name, such as `acme/text`.
    #[arg(long)]
    name: String,
    /// Version; also the tag.
    #[arg(long)]
    version: String,
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
    /// A network host the tool needs (repeatable; adds to tool.toml).
    #[arg(long = "network", value_name = "HOST")]
    network: Vec<String>,
    /// The tool needs GPU compute.
    #[arg(long)]
    gpu: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// `tool.toml`: what a tool says about itself besides its code.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ToolToml {
    description: Option<String>,
    source: Option<String>,
    permissions: Permissions,
}

fn read_tool_toml(explicit: Option<&Path>, component: &Path) -> Result<ToolToml, Failure> {
    let beside = component.with_file_name("tool.toml");
    let path = match explicit {
        Some(path) => path.to_owned(),
        None if beside.exists() => beside,
        None => return Ok(ToolToml::default()),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(Failure::usage)?;
    toml::from_str(&text).with_context(|| format!("invalid {}", path.display())).map_err(Failure::usage)
}

pub async fn run(args: PublishArgs) -> Result<(), Failure> {
    let repo: Repository = args.name.parse().map_err(Failure::usage)?;
    let tag: Tag = args.version.parse().map_err(Failure::usage)?;
    let key = match &args.key {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read key {}", path.display()))
                .and_then(|t| Ok(SecretKey::from_text(&t)?))
                .map_err(Failure::usage)?,
        ),
        None => None,
    };
    let toml = read_tool_toml(args.manifest.as_deref(), &args.file)?;
    let mut permissions = toml.permissions;
    permissions.network.extend(args.network.iter().cloned());
    permissions.gpu |= args.gpu;
    permissions.validate().map_err(Failure::usage)?;

    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(Failure::usage)?;
    let sandbox = args.sandbox.one_shot_sandbox()?;
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
