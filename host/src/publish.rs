//! Publishing a component: describe its tools in the sandbox (no grants),
//! build the OCI artifact, push it, and sign it when given a key (the
//! pushes then carry the key's statements, for namespace ownership). The CLI's
//! `tool publish` and `tool serve`'s bundled examples both go through here.

use crate::artifact::{Artifact, ToolMetadata, signature_artifact};
use crate::grant::{Grant, settle_gpu_for};
use crate::sandbox::{Sandbox, SandboxError};
use bytes::Bytes;
use toolmesh_registry::client::{Client, ClientError};
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository, Tag};
use toolmesh_registry::oci;
use toolmesh_registry::signing::SecretKey;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The component could not be loaded or described.
    #[error("cannot describe the component: {0}")]
    Sandbox(#[from] SandboxError),
    /// The registry refused or could not be reached.
    #[error(transparent)]
    Registry(#[from] ClientError),
    /// The registry stored something other than what was sent.
    #[error("the registry stored manifest {stored}, not the {sent} that was sent")]
    ManifestMismatch {
        /// What was sent.
        sent: Digest,
        /// What the registry says it stored.
        stored: Digest,
    },
}

/// Publishes component `bytes` as `repo:tag`; returns the manifest digest.
/// `progress` sees the component's bytes sent so far.
pub async fn publish(
    sandbox: &Sandbox,
    client: &Client,
    bytes: Bytes,
    (repo, tag): (&Repository, &Tag),
    mut meta: ToolMetadata,
    key: Option<&SecretKey>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Digest, PublishError> {
    // One describe call: the baseline compiler is enough and much quicker.
    let component = sandbox.load_quick(&bytes)?;
    // A tool that imports the GPU interface is a GPU tool: placed only on
    // nodes that grant GPU compute, unless it runs without one (its
    // tool.toml or the component says so), then on GPU nodes first.
    settle_gpu_for(&mut meta.permissions, &component, &bytes);
    // A tool that imports calls to other tools says so, and is shown so:
    // only such tools are given them.
    meta.permissions.tools = component.calls_tools();
    // A tool must request what its imports need (a `wasi:http` import
    // without a network request could never run anywhere).
    component.check_grant(&Grant::as_requested(&meta.permissions))?;
    let tools = sandbox.describe(&component).await?;
    meta.offer = sandbox.offer(&component).await?;
    // A signed publish also signs its pushes, so the registry knows whose
    // namespace they go into.
    let signed;
    let client = match key {
        Some(key) => {
            signed = client.clone().signed_by(std::sync::Arc::new(key.clone()));
            &signed
        }
        None => client,
    };
    meta.version = tag.to_string();
    meta.publisher = key.map(|k| k.public().key_id());
    if meta.file_name.is_none() {
        meta.file_name = Some(format!("{}.wasm", repo.as_str().rsplit('/').next().unwrap_or("component")));
    }
    let artifact = Artifact::new(&bytes, &tools, component.imports(), &meta);
    client.push_blob(repo, bytes, progress).await?;
    client.push_blob(repo, Bytes::from(artifact.config.clone()), &|_| {}).await?;
    let manifest = artifact.manifest.to_bytes();
    let manifest_size = manifest.len() as u64;
    let sent = Digest::of(&manifest);
    let stored = client.push_manifest(repo, &ManifestRef::Tag(tag.clone()), manifest, oci::MANIFEST_MEDIA_TYPE).await?;
    if stored != sent {
        return Err(PublishError::ManifestMismatch { sent, stored });
    }
    if let Some(key) = key {
        let payload = key.sign(&stored);
        let (blob, signature) = signature_artifact(&payload, stored, manifest_size);
        client.push_blob(repo, Bytes::from_static(b"{}"), &|_| {}).await?;
        client.push_blob(repo, Bytes::from(blob), &|_| {}).await?;
        client.push_referrer(repo, signature.to_bytes(), &stored, oci::SIGNATURE_ARTIFACT_TYPE).await?;
        tracing::info!(key = %payload.key_id, manifest = %stored, "signed");
    }
    Ok(stored)
}
