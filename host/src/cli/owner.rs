//! `tool owner list NAMESPACE` and `tool owner add NAMESPACE KEY.pub`: who
//! owns a namespace (may publish, yank and add owners in it). The first
//! signed publish into a namespace makes its key the owner.

use super::Failure;
use super::identity::publisher_key;
use super::remote::{RegistryArgs, read_trusted};
use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// `tool owner`.
#[derive(Subcommand, Debug)]
pub enum OwnerCommand {
    /// List the keys that own a namespace.
    List {
        /// The namespace (`acme` of `acme/tool`).
        namespace: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Add a publisher's public key to a namespace's owners (you must be one).
    Add(AddArgs),
}

/// Arguments of `tool owner add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The namespace.
    namespace: String,
    /// The new owner's public key file (`.pub`, from `tool keygen`).
    public_key: PathBuf,
    /// Sign as this owner key [default: your key].
    #[arg(long, value_name = "KEY_FILE")]
    key: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn run(command: OwnerCommand) -> Result<(), Failure> {
    match command {
        OwnerCommand::List { namespace, registry } => {
            let client = registry.client()?;
            let owners =
                client.owners(&namespace).await.with_context(|| format!("cannot list the owners of {namespace}"))?;
            if owners.is_empty() {
                outln!("nobody owns {namespace} yet: the first signed publish into it claims it");
            }
            for key in owners {
                outln!("{} {}", key.key_id(), key.to_text());
            }
            Ok(())
        }
        OwnerCommand::Add(args) => {
            let new = read_trusted(std::slice::from_ref(&args.public_key))?.remove(0);
            let key = publisher_key(args.key.as_deref(), false)?
                .ok_or_else(|| Failure::usage(anyhow!("no publisher key to sign with: pass --key FILE")))?;
            let client = args.registry.client()?.signed_by(Arc::new(key));
            client
                .add_owner(&args.namespace, &new)
                .await
                .with_context(|| format!("cannot add {} to the owners of {}", new.key_id(), args.namespace))?;
            outln!("{} now owns {}", new.key_id(), args.namespace);
            Ok(())
        }
    }
}
