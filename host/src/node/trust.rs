//! Whose tools a node runs: the publisher part of its policy, checked
//! against the signatures stored beside a manifest before the component is
//! loaded.

use crate::grant::policy::PublisherPolicy;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository};
use toolmesh_registry::oci::{Manifest, SIGNATURE_ARTIFACT_TYPE};
use toolmesh_registry::signing::SignaturePayload;
use toolmesh_registry::store::FsStore;

/// Checks that manifest `digest` of `repo` may run under `policy`: signed
/// by a trusted key, or unsigned where the policy allows unsigned tools
/// (a policy without trusted keys checks nothing).
/// Returns the key id that signed it, if any; otherwise why it may not run.
pub async fn check_publisher(
    store: &FsStore,
    repo: &Repository,
    digest: Digest,
    policy: &PublisherPolicy,
) -> Result<Option<String>, String> {
    if policy.allow_unsigned && policy.trusted.is_empty() {
        return Ok(None);
    }
    let signatures = store.referrers(repo, &digest).await.map_err(|e| format!("cannot list its signatures: {e}"))?;
    let mut reasons = Vec::new();
    for descriptor in signatures.iter().filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT_TYPE)) {
        match signature(store, repo, descriptor.digest).await {
            Ok(payload) => match payload.verify(&digest, &policy.trusted) {
                Ok(key_id) => return Ok(Some(key_id)),
                Err(e) => reasons.push(e.to_string()),
            },
            Err(e) => reasons.push(e),
        }
    }
    if reasons.is_empty() && policy.allow_unsigned {
        return Ok(None);
    }
    if reasons.is_empty() {
        return Err("it is not signed, and this node's policy runs only signed tools".into());
    }
    Err(format!("no signature this node's policy trusts ({})", reasons.join("; ")))
}

/// The payload of signature manifest `digest`.
async fn signature(store: &FsStore, repo: &Repository, digest: Digest) -> Result<SignaturePayload, String> {
    let (bytes, _, _) =
        store.get_manifest(repo, &ManifestRef::Digest(digest)).await.map_err(|e| format!("signature {digest}: {e}"))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("signature {digest}: {e}"))?;
    let layer = manifest.layers.first().ok_or_else(|| format!("signature {digest} has no payload"))?;
    let blob = store.read_blob(&layer.digest).await.map_err(|e| format!("signature {digest}: {e}"))?;
    serde_json::from_slice(&blob).map_err(|e| format!("signature {digest}: {e}"))
}
