//! `tool pull REF` and `tool verify REF`: fetch a component by tag or
//! digest, verified against its digests and, when asked, its signature.

use super::Failure;
use super::remote::{RegistryArgs, fetch, parse_reference, read_trusted, verify};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `tool pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// `ns/name:version`, `ns/name@sha256:…` or both.
    reference: String,
    /// Where to write the component [default: NAME-VERSION.wasm here].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Require a signature by one of these public keys (repeatable).
    #[arg(long, value_name = "KEY_FILE")]
    trust: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Arguments of `tool verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// `ns/name:version`, `ns/name@sha256:…` or both.
    reference: String,
    /// Trusted publisher public keys (at least one).
    #[arg(long, value_name = "KEY_FILE", required = true)]
    trust: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn pull(args: PullArgs) -> Result<(), Failure> {
    let reference = parse_reference(&args.reference)?;
    let trusted = read_trusted(&args.trust)?;
    let client = args.registry.client()?;
    let fetched = fetch(&client, &reference).await?;
    if !trusted.is_empty() {
        let key = verify(&client, &reference, &fetched.manifest_digest, &trusted).await?;
        tracing::info!(key, "signature verified");
    }
    let output = args.output.unwrap_or_else(|| {
        let name = reference.repository.as_str().rsplit('/').next().unwrap_or("tool");
        let version =
            reference.tag.as_ref().map_or_else(|| fetched.manifest_digest.hex()[..12].to_owned(), |t| t.to_string());
        PathBuf::from(format!("{name}-{version}.wasm"))
    });
    // A device or pipe (`-o /dev/null`, `-o /dev/stdout`) is written to, never
    // replaced: writing a file beside it and renaming it over the path would
    // put a regular file where the device was.
    // A symbolic link (`/dev/stdout`) is written through too.
    let special = std::fs::symlink_metadata(&output).is_ok_and(|m| !m.is_file() && !m.is_dir());
    let written = if special {
        std::fs::write(&output, &fetched.bytes)
    } else {
        toolmesh_registry::files::write_atomic(&output, &fetched.bytes)
    };
    written.with_context(|| format!("cannot write {}", output.display()))?;
    if special {
        // The component may be going to standard output: the summary stays off it.
        eprintln!("{} {}", output.display(), fetched.manifest_digest);
    } else {
        outln!("{} {}", output.display(), fetched.manifest_digest);
    }
    Ok(())
}

pub async fn verify_cmd(args: VerifyArgs) -> Result<(), Failure> {
    let reference = parse_reference(&args.reference)?;
    let trusted = read_trusted(&args.trust)?;
    let client = args.registry.client()?;
    let (_, digest, _) = client
        .pull_manifest(&reference.repository, &reference.manifest_ref())
        .await
        .with_context(|| format!("cannot fetch {reference}"))?;
    let key = verify(&client, &reference, &digest, &trusted).await?;
    outln!("{reference}@{digest} is signed by key {key}");
    Ok(())
}
