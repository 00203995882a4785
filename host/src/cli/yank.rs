//! `tool yank NAME:VERSION`: hide a published version from the catalog
//! (search, MCP tool lists) while everything pinned to it still pulls and
//! runs; `--undo` offers it again.

use super::Failure;
use super::remote::{RegistryArgs, parse_reference};
use anyhow::{Context, anyhow};
use clap::Args;

/// Arguments of `tool yank`.
#[derive(Args, Debug)]
pub struct YankArgs {
    /// `ns/name:version`.
    reference: String,
    /// Offer the version again.
    #[arg(long)]
    undo: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn run(args: YankArgs) -> Result<(), Failure> {
    let reference = parse_reference(&args.reference)?;
    let tag = reference
        .tag
        .as_ref()
        .ok_or_else(|| Failure::usage(anyhow!("name the version to yank: {}:VERSION", reference.repository)))?;
    let client = args.registry.client()?;
    client.set_yanked(&reference.repository, tag, !args.undo).await.with_context(|| {
        format!("cannot {} {}:{tag}", if args.undo { "restore" } else { "yank" }, reference.repository)
    })?;
    let done = if args.undo { "offered again" } else { "yanked: left out of the catalog, still pullable" };
    outln!("{}:{tag} {done}", reference.repository);
    Ok(())
}
