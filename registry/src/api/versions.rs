//! What the registry knows about each version of a package, for the pages
//! where people judge a tool: when it was published, how large it is, who
//! signed it, and whether it is yanked.

use super::catalog::{CatalogEntry, entry};
use crate::digest::Digest;
use crate::name::{ManifestRef, Repository, Tag, version_order};
use crate::oci::{self, Manifest};
use crate::signing::{PAYLOAD_MEDIA_TYPE, PublicKey, SignaturePayload};
use crate::store::{FsStore, StoreError};
use std::time::SystemTime;

/// One version of a package.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// The version (its tag).
    pub version: String,
    /// The manifest digest it names.
    pub digest: Digest,
    /// When it was published.
    pub published: Option<SystemTime>,
    /// The component's size in bytes.
    pub size: u64,
    /// Whether it is yanked (left out of the catalog, still pullable).
    pub yanked: bool,
    /// The keys whose signatures over the digest verify.
    pub signers: Vec<PublicKey>,
    /// Its tools and metadata, when it is a tool this registry can read.
    pub entry: Option<CatalogEntry>,
}

/// Every version of `repo` (tags that name versions), newest first.
pub async fn package_versions(store: &FsStore, repo: &Repository) -> Result<Vec<VersionInfo>, StoreError> {
    let mut out = Vec::new();
    for text in store.tags(repo).await? {
        let Ok(tag) = text.parse::<Tag>() else { continue };
        if !tag.is_version() {
            continue;
        }
        let (bytes, digest, _) = match store.get_manifest(repo, &ManifestRef::Tag(tag.clone())).await {
            Ok(found) => found,
            // Moved or damaged since the listing: leave it out.
            Err(StoreError::ManifestUnknown(_)) => continue,
            Err(e) => return Err(e),
        };
        let size = serde_json::from_slice::<Manifest>(&bytes)
            .ok()
            .and_then(|m| m.wasm_layer().map(|layer| layer.size))
            .unwrap_or(0);
        out.push(VersionInfo {
            published: store.tag_time(repo, &tag).await.ok(),
            yanked: store.is_yanked(repo, &tag).await?,
            signers: signers(store, repo, &digest).await?,
            entry: entry(repo, text.clone(), digest, &bytes),
            version: text,
            digest,
            size,
        });
    }
    out.sort_by_cached_key(|v| std::cmp::Reverse(version_order(&v.version)));
    Ok(out)
}

/// The keys whose signatures stored beside `digest` verify against the key
/// they name, in the order stored. A signature that cannot be read is
/// skipped, not an error: it proves nothing either way.
pub async fn signers(store: &FsStore, repo: &Repository, digest: &Digest) -> Result<Vec<PublicKey>, StoreError> {
    let mut out: Vec<PublicKey> = Vec::new();
    for referrer in store.referrers(repo, digest).await? {
        if referrer.artifact_type.as_deref() != Some(oci::SIGNATURE_ARTIFACT_TYPE) {
            continue;
        }
        let Ok(bytes) = store.read_blob(&referrer.digest).await else { continue };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else { continue };
        for layer in manifest.layers.iter().filter(|l| l.media_type == PAYLOAD_MEDIA_TYPE) {
            let Ok(bytes) = store.read_blob(&layer.digest).await else { continue };
            let Ok(payload) = serde_json::from_slice::<SignaturePayload>(&bytes) else { continue };
            if payload.verify_own_key(digest).is_ok()
                && let Ok(key) = PublicKey::from_text(&payload.public_key)
                && !out.contains(&key)
            {
                out.push(key);
            }
        }
    }
    Ok(out)
}
