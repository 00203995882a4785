//! `tool publish FILE.wasm`: describe the component in the sandbox (no
//! grants), build its OCI artifact, push it, and sign it with the
//! publisher's key (made on first use). Each piece of metadata comes from
//! its flag, else tool.toml, else the component's own metadata sections,
//! else a default (the file's name in the login's namespace, or `local` on
//! this machine's registry; version 0.1.0).

use super::Failure;
use super::identity::{LOCAL_NAMESPACE, Login, publisher_key};
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
use toolmesh_host::component_metadata;
use toolmesh_host::grant::request::NetworkEntry;
use toolmesh_host::publish::publish;
use toolmesh_registry::client::CHUNK;
use toolmesh_registry::name::{Repository, Tag};

/// Arguments of `tool publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Repository name, such as `acme/text` [default: `name` in tool.toml,
    /// else the component's name, else the file's, in your namespace].
    #[arg(long)]
    name: Option<String>,
    /// Version; also the tag [default: `version` in tool.toml, else the
    /// component's version, else 0.1.0].
    #[arg(long)]
    version: Option<String>,
    /// Sign with this publisher key [default: your key, made on first use:
    /// ~/.config/toolmesh/publisher.key].
    #[arg(long, value_name = "KEY_FILE", conflicts_with = "unsigned")]
    key: Option<PathBuf>,
    /// Publish without a signature (refused in a namespace someone owns).
    #[arg(long)]
    unsigned: bool,
    /// One-line description [default: from tool.toml, else the component's].
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
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(Failure::usage)?;
    // A file that is not a component is refused with a clear error when it
    // is described; here it simply has no metadata.
    let own = component_metadata::read(&bytes).unwrap_or_default();
    let name = match args.name.clone().or(toml.name.take()) {
        Some(name) => name,
        None => default_name(&args, own.name.as_deref())?,
    };
    let version = args.version.clone().or(toml.version.take()).or(own.version).unwrap_or_else(|| {
        eprintln!(
            "no version given (--version, `version` in tool.toml, or the component's metadata): publishing 0.1.0"
        );
        "0.1.0".into()
    });
    let repo: Repository = name.parse().map_err(Failure::usage)?;
    let tag: Tag = version.parse().map_err(Failure::usage)?;
    let key = if args.unsigned { None } else { publisher_key(args.key.as_deref(), true)? };
    toml.permissions.network.extend(args.network.iter().cloned().map(NetworkEntry::Text));
    let permissions = toml.request()?;
    let sandbox = args.sandbox.one_shot_sandbox(None)?;
    let meta = ToolMetadata {
        description: args.description.or(toml.description).or(own.description),
        source: args.source.or(toml.source).or(own.source),
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

/// The name to publish under when neither the flag nor tool.toml gives one:
/// the component's own name, else the file's, in the login's namespace,
/// else the namespace of the component's name (`acme:tool`), else `local`
/// for a registry on this machine. Says on stderr what it chose and why.
fn default_name(args: &PublishArgs, own: Option<&str>) -> Result<String, Failure> {
    let stem = args.file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let (own_namespace, base) = match own.and_then(|n| n.split_once([':', '/'])) {
        Some((namespace, base)) => (Some(namespace.to_owned()), base),
        None => (None, own.unwrap_or(stem)),
    };
    let url = args.registry.url()?;
    // Your own namespace wins: a component built by someone else names theirs.
    let (namespace, why) = match (Login::load()?.namespace, own_namespace) {
        (Some(namespace), _) => (namespace, "your login's namespace"),
        (None, Some(namespace)) => (namespace, "the component's namespace"),
        (None, None) if toolmesh_registry::client::is_loopback(&url) => {
            (LOCAL_NAMESPACE.to_owned(), "the namespace for this machine's registry")
        }
        (None, None) => {
            return Err(Failure::usage(anyhow::anyhow!(
                "no namespace to publish {base} under at {url}: pass --name NS/NAME, set `name = \"acme/{base}\"` \
                 in tool.toml, or save one with `tool login --registry {url} --namespace NS`"
            )));
        }
    };
    let from = if own.is_some() { "component's metadata" } else { "file's name" };
    let name = format!("{namespace}/{base}").to_lowercase();
    name.parse::<Repository>().map_err(|_| {
        Failure::usage(anyhow::anyhow!(
            "`{name}` (from the {from}) is not a valid name: pass --name NS/NAME or set `name` in tool.toml"
        ))
    })?;
    eprintln!("publishing as {name}: the name from the {from}, in {why}");
    Ok(name)
}
