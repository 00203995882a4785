//! `tool yank NAME:VERSION`: hide a published version from the catalog
//! (search, MCP tool lists) while everything pinned to it still pulls and
//! runs; `--undo` offers it again. In a namespace someone owns, only an
//! owner's key may.

use super::Failure;
use super::identity::publisher_key;
use super::remote::{RegistryArgs, parse_reference};
use anyhow::{Context, anyhow};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `tool yank`.
#[derive(Args, Debug)]
pub struct YankArgs {
    /// `ns/name:version`.
    reference: String,
    /// Offer the version again.
    #[arg(long)]
    undo: bool,
    /// Sign as this publisher key [default: your key, if you have one].
    #[arg(long, value_name = "KEY_FILE")]
    key: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn run(args: YankArgs) -> Result<(), Failure> {
    let reference = parse_reference(&args.reference)?;
    let tag = reference
        .tag
        .as_ref()
        .ok_or_else(|| Failure::usage(anyhow!("name the version to yank: {}:VERSION", reference.repository)))?;
    let mut client = args.registry.client()?;
    if let Some(key) = publisher_key(args.key.as_deref(), false)? {
        client = client.signed_by(Arc::new(key));
    }
    client.set_yanked(&reference.repository, tag, !args.undo).await.with_context(|| {
        format!("cannot {} {}:{tag}", if args.undo { "restore" } else { "yank" }, reference.repository)
    })?;
    let done = if args.undo { "offered again" } else { "yanked: left out of the catalog, still pullable" };
    outln!("{}:{tag} {done}", reference.repository);
    Ok(())
}
