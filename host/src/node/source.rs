//! Where a node gets components, by manifest digest: its own store (the
//! embedded default) or any OCI registry. Everything a source returns is
//! checked against its digest (the store and the client both verify).

use std::future::Future;
use std::pin::Pin;
use toolmesh_registry::client::Client;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository};
use toolmesh_registry::oci::{Manifest, SIGNATURE_ARTIFACT_TYPE};
use toolmesh_registry::signing::SignaturePayload;
use toolmesh_registry::store::FsStore;

/// A boxed future of a source's answer; errors are words for the caller.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A place to fetch components from by digest.
pub trait ComponentSource: Send + Sync + 'static {
    /// The bytes of manifest `digest` of `repository`.
    fn manifest<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<u8>>;

    /// The bytes of blob `digest` of `repository`.
    fn blob<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<u8>>;

    /// The manifests of the signatures stored for manifest `digest`, by digest.
    fn signatures<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<Digest>>;
}

impl ComponentSource for FsStore {
    fn manifest<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let (bytes, _, _) =
                self.get_manifest(repository, &ManifestRef::Digest(digest)).await.map_err(|e| e.to_string())?;
            Ok(bytes)
        })
    }

    fn blob<'a>(&'a self, _repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<u8>> {
        Box::pin(async move { self.read_blob(&digest).await.map_err(|e| e.to_string()) })
    }

    fn signatures<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<Digest>> {
        Box::pin(async move {
            let referrers = self.referrers(repository, &digest).await.map_err(|e| e.to_string())?;
            Ok(referrers
                .into_iter()
                .filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE))
                .map(|d| d.digest)
                .collect())
        })
    }
}

impl ComponentSource for Client {
    fn manifest<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let (bytes, _, _) =
                self.pull_manifest(repository, &ManifestRef::Digest(digest)).await.map_err(|e| e.to_string())?;
            Ok(bytes)
        })
    }

    fn blob<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<u8>> {
        Box::pin(async move { Ok(self.pull_blob(repository, &digest).await.map_err(|e| e.to_string())?.to_vec()) })
    }

    fn signatures<'a>(&'a self, repository: &'a Repository, digest: Digest) -> SourceFuture<'a, Vec<Digest>> {
        Box::pin(async move {
            let referrers =
                self.referrers(repository, &digest, Some(SIGNATURE_ARTIFACT_TYPE)).await.map_err(|e| e.to_string())?;
            Ok(referrers.into_iter().map(|d| d.digest).collect())
        })
    }
}

/// The payload of signature manifest `digest` in `source`.
pub async fn signature_payload(
    source: &dyn ComponentSource,
    repository: &Repository,
    digest: Digest,
) -> Result<SignaturePayload, String> {
    let bytes = source.manifest(repository, digest).await.map_err(|e| format!("signature {digest}: {e}"))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("signature {digest}: {e}"))?;
    let layer = manifest.layers.first().ok_or_else(|| format!("signature {digest} has no payload"))?;
    let blob = source.blob(repository, layer.digest).await.map_err(|e| format!("signature {digest}: {e}"))?;
    serde_json::from_slice(&blob).map_err(|e| format!("signature {digest}: {e}"))
}
