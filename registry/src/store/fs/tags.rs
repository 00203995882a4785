//! Tags of the filesystem store: versions are set once, other tags move,
//! and a version can be yanked (left out of the catalog, still pullable).

use super::FsStore;
use crate::digest::Digest;
use crate::name::{Repository, Tag};
use crate::store::StoreError;
use std::path::Path;

impl FsStore {
    /// Points `tag` of `repo` at `digest`. A version is created only if
    /// absent, so of two pushes racing for it one wins and the other is
    /// refused; pushing the content it already names again is fine.
    pub(super) async fn point_tag(&self, repo: &Repository, tag: &Tag, digest: &Digest) -> Result<(), StoreError> {
        let path = self.repo_dir(repo).join("_tags").join(tag.as_str());
        let text = digest.to_string();
        if !tag.is_version() {
            return self.write_atomic(&path, text.as_bytes()).await;
        }
        if self.create_new(&path, text.as_bytes()).await? {
            return Ok(());
        }
        match self.resolve_tag(repo, tag).await {
            Ok(existing) if existing == *digest => Ok(()),
            Ok(existing) => Err(version_taken(repo, tag, existing)),
            // A tag file that does not name a digest (damaged) is replaced.
            Err(_) => self.write_atomic(&path, text.as_bytes()).await,
        }
    }

    /// Refuses to point version `tag` of `repo` at `digest` when it already
    /// names other content (pushing the same content again is fine).
    pub(super) async fn check_version_free(
        &self,
        repo: &Repository,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        if !tag.is_version() {
            return Ok(());
        }
        match self.resolve_tag(repo, tag).await {
            Ok(existing) if existing != *digest => Err(version_taken(repo, tag, existing)),
            Ok(_) | Err(StoreError::ManifestUnknown(_) | StoreError::NameUnknown(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` to `path` only if nothing is there: returns whether it
    /// did. The file appears whole (written aside, then hard-linked).
    async fn create_new(&self, path: &Path, bytes: &[u8]) -> Result<bool, StoreError> {
        self.write_aside(path, bytes, |tmp, path| async move {
            match tokio::fs::hard_link(tmp, path).await {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Yanks version `tag` of `repo` (hides it from the catalog; pulls by
    /// tag or digest still work), or with `yanked` false restores it.
    pub async fn set_yanked(&self, repo: &Repository, tag: &Tag, yanked: bool) -> Result<(), StoreError> {
        self.resolve_tag(repo, tag).await?;
        let marker = self.repo_dir(repo).join("_yanked").join(tag.as_str());
        if yanked {
            self.write_atomic(&marker, b"").await?;
        } else {
            match tokio::fs::remove_file(&marker).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// When `tag` of `repo` was last pointed somewhere: for a version, when
    /// it was published.
    pub async fn tag_time(&self, repo: &Repository, tag: &Tag) -> Result<std::time::SystemTime, StoreError> {
        let path = self.repo_dir(repo).join("_tags").join(tag.as_str());
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(meta.modified()?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::ManifestUnknown(tag.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether version `tag` of `repo` is yanked.
    pub async fn is_yanked(&self, repo: &Repository, tag: &Tag) -> Result<bool, StoreError> {
        Ok(tokio::fs::try_exists(self.repo_dir(repo).join("_yanked").join(tag.as_str())).await?)
    }
}

/// The refusal to point version `tag` of `repo`, which names `existing`,
/// at other content.
fn version_taken(repo: &Repository, tag: &Tag, existing: Digest) -> StoreError {
    StoreError::VersionExists { repository: repo.to_string(), tag: tag.to_string(), existing }
}
