//! Who owns each namespace: the publisher keys that may push, yank and add
//! owners in it. Kept as `owners/<namespace>/<key id>`, each file holding
//! the public key. The first owner claims a namespace by moving a directory
//! into place, which succeeds for exactly one of several racing claims.
//! A directory that exists always means "owned", even if unreadable.

use super::FsStore;
use crate::signing::PublicKey;
use crate::store::StoreError;
use std::path::PathBuf;

impl FsStore {
    fn owners_dir(&self, namespace: &str) -> PathBuf {
        self.root.join("owners").join(namespace)
    }

    /// The keys that own `namespace` (none when it is unclaimed), by key id.
    pub async fn owners(&self, namespace: &str) -> Result<Vec<PublicKey>, StoreError> {
        let mut entries = match tokio::fs::read_dir(self.owners_dir(namespace)).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut keys = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let text = tokio::fs::read_to_string(entry.path()).await?;
            match PublicKey::from_text(&text) {
                Ok(key) => keys.push(key),
                Err(e) => tracing::warn!(namespace, file = ?entry.file_name(), "an owner file is unreadable: {e}"),
            }
        }
        if keys.is_empty() {
            // Claimed, but no owner can be read: never treat it as unowned.
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the owners of namespace `{namespace}` cannot be read"),
            )));
        }
        keys.sort_by_key(PublicKey::key_id);
        Ok(keys)
    }

    /// Makes `key` the owner of `namespace` if nobody owns it yet; returns
    /// whether it did (false: another claim came first).
    pub async fn claim_namespace(&self, namespace: &str, key: &PublicKey) -> Result<bool, StoreError> {
        let staging = self.tmp_path();
        let target = self.owners_dir(namespace);
        let result = async {
            tokio::fs::create_dir_all(&staging).await?;
            tokio::fs::write(staging.join(key.key_id()), key.to_text()).await?;
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            // Renaming a directory onto one that exists and has owners fails.
            match tokio::fs::rename(&staging, &target).await {
                Ok(()) => Ok(true),
                Err(_) if tokio::fs::try_exists(&target).await? => Ok(false),
                Err(e) => Err(e),
            }
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        Ok(result?)
    }

    /// Undoes this request's own claim of `namespace` (the push that
    /// claimed it failed), unless owners were added since.
    pub async fn release_claim(&self, namespace: &str, key: &PublicKey) -> Result<(), StoreError> {
        let dir = self.owners_dir(namespace);
        let owners = self.owners(namespace).await?;
        if owners == [key.clone()] {
            tokio::fs::remove_dir_all(&dir).await?;
        }
        Ok(())
    }

    /// Whether no repository of `namespace` holds a manifest yet.
    pub async fn namespace_is_empty(&self, namespace: &str) -> Result<bool, StoreError> {
        Ok(!self.repositories().await?.iter().any(|repo| repo.namespace() == namespace))
    }

    /// Adds `key` to the owners of `namespace` (which must be claimed).
    pub async fn add_owner(&self, namespace: &str, key: &PublicKey) -> Result<(), StoreError> {
        let path = self.owners_dir(namespace).join(key.key_id());
        self.write_atomic(&path, key.to_text().as_bytes()).await
    }
}
