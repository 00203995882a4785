//! Whose tools a node runs: the publisher part of its policy, checked
//! against the signatures stored beside a manifest before the component is
//! loaded.

use super::source::{ComponentSource, signature_payload};
use crate::grant::policy::PublisherPolicy;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Repository;

/// Checks that manifest `digest` of `repo` may run under `policy`: signed
/// by a trusted key, or unsigned where the policy allows unsigned tools
/// (a policy without trusted keys checks nothing). Returns the key id that
/// signed it, if any; otherwise why it may not run.
pub async fn check_publisher(
    source: &dyn ComponentSource,
    repo: &Repository,
    digest: Digest,
    policy: &PublisherPolicy,
) -> Result<Option<String>, String> {
    if policy.allow_unsigned && policy.trusted.is_empty() {
        return Ok(None);
    }
    let signatures = source.signatures(repo, digest).await.map_err(|e| format!("cannot list its signatures: {e}"))?;
    let mut reasons = Vec::new();
    for signature in signatures {
        match signature_payload(source, repo, signature).await {
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
