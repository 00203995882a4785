//! `tool keygen`: a publisher key pair, or a NATS user key for a node or gateway.

use super::Failure;
use anyhow::{Context, anyhow};
use clap::Args;
use std::path::PathBuf;
use toolmesh_registry::files;
use toolmesh_registry::signing::SecretKey;

/// Arguments of `tool keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Secret key file; the public key goes beside it with `.pub` added
    /// [default: ~/.config/toolmesh/publisher.key].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
    /// Make a NATS user nkey instead (for `--nkey` of `tool node` and
    /// `tool gateway`); its public key goes into the NATS server's
    /// configuration [default file: ~/.config/toolmesh/nats.nk].
    #[arg(long)]
    nats: bool,
}

pub fn run(args: KeygenArgs) -> Result<(), Failure> {
    let secret_path = match args.output {
        Some(path) => path,
        None => super::identity::config_dir()
            .ok_or_else(|| Failure::usage(anyhow!("no configuration directory; pass --output")))?
            .join(if args.nats { "nats.nk" } else { "publisher.key" }),
    };
    let public_path = PathBuf::from(format!("{}.pub", secret_path.display()));
    if !args.force && (secret_path.exists() || public_path.exists()) {
        return Err(Failure::usage(anyhow!("{} exists; pass --force to replace it", secret_path.display())));
    }
    if let Some(dir) = secret_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if args.nats {
        let key = nkeys::KeyPair::new_user();
        let seed = key.seed().map_err(|e| anyhow!("cannot encode the nkey: {e}"))?;
        files::write_atomic(&secret_path, format!("{seed}\n").as_bytes())
            .with_context(|| format!("cannot write {}", secret_path.display()))?;
        std::fs::write(&public_path, format!("{}\n", key.public_key()))
            .with_context(|| format!("cannot write {}", public_path.display()))?;
        outln!("{}", key.public_key());
        outln!("secret nkey: {} (pass it with --nkey)", secret_path.display());
        outln!("public nkey: {} (name it as a user in the NATS server's configuration)", public_path.display());
        return Ok(());
    }
    let key = SecretKey::generate();
    files::write_atomic(&secret_path, format!("{}\n", key.to_text()).as_bytes())
        .with_context(|| format!("cannot write {}", secret_path.display()))?;
    std::fs::write(&public_path, format!("{}\n", key.public().to_text()))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    outln!("key id {}", key.public().key_id());
    outln!("secret key: {}", secret_path.display());
    outln!("public key: {} (give this to nodes that should trust you)", public_path.display());
    Ok(())
}
