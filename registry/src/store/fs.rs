//! The filesystem store (see the module docs of [`crate::store`]).

mod owners;
mod tags;

use super::StoreError;
use crate::digest::{Digest, Hasher};
use crate::name::{ManifestRef, Repository, Tag};
use crate::oci::{self, Descriptor};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Temporary files older than this are leftovers of a crash, removed when the store opens.
pub const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Upload sessions untouched this long are dropped when the store opens.
pub const STALE_UPLOAD: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Size limits of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Largest blob accepted, in bytes.
    pub max_blob: u64,
    /// Largest manifest accepted, in bytes.
    pub max_manifest: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { max_blob: 1 << 30, max_manifest: 4 << 20 }
    }
}

/// Where an upload session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadStatus {
    /// Bytes received so far.
    pub offset: u64,
}

/// A content-addressed store in a directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: Arc<PathBuf>,
    config: StoreConfig,
    pub(super) upload_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    tmp_counter: Arc<AtomicU64>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

pub(super) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom only fails when the OS has no entropy source at all.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

pub(super) fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl FsStore {
    /// Opens (creating if needed) the store in `root`. Leftovers of writes
    /// interrupted by a crash are removed, and so are upload sessions
    /// untouched for [`STALE_UPLOAD`].
    pub fn open(root: impl Into<PathBuf>, config: StoreConfig) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in ["blobs/sha256", "uploads", "repos", "tmp", "owners"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        // Another process may share this directory (`tool mcp` beside
        // `tool serve`): only leftovers too old to be in flight are removed.
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let path = entry?.path();
            let age = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if age.is_none_or(|age| age > STALE_TMP) {
                // Files, and the directories a namespace claim is built in.
                let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
            }
        }
        for entry in std::fs::read_dir(root.join("uploads"))? {
            let dir = entry?.path();
            let age =
                std::fs::metadata(dir.join("data")).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if age.is_none_or(|age| age > STALE_UPLOAD) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        Ok(FsStore {
            root: Arc::new(root),
            config,
            upload_locks: Arc::default(),
            tmp_counter: Arc::default(),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// A receiver that sees a new value whenever this process stores a
    /// manifest (other processes' writes are not seen; poll for those).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The limits of this store.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    fn repo_dir(&self, repo: &Repository) -> PathBuf {
        self.root.join("repos").join(repo.as_str())
    }

    pub(super) fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{}-{n}-{}", std::process::id(), random_id()))
    }

    /// Writes `bytes` to a temp file (fsynced), makes `path`'s directory,
    /// and hands both paths to `place`, which puts the file at `path`; the
    /// temp file is removed unless `place` moved it.
    async fn write_aside<T, F, Fut>(&self, path: &Path, bytes: &[u8], place: F) -> Result<T, StoreError>
    where
        F: FnOnce(PathBuf, PathBuf) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<T>>,
    {
        let tmp = self.tmp_path();
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(bytes).await?;
            file.sync_all().await?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            place(tmp.clone(), path.to_owned()).await
        }
        .await;
        // Gone after a rename; a hard link leaves it behind.
        let _ = tokio::fs::remove_file(&tmp).await;
        Ok(result?)
    }

    /// Writes `bytes` to `path` atomically (temp file, fsync, rename).
    async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_aside(path, bytes, |tmp, path| async move { tokio::fs::rename(tmp, path).await }).await
    }

    /// The size of blob `digest`, if stored.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens blob `digest` after hashing it: the returned file is positioned
    /// at its start and holds exactly the bytes that hash to `digest`.
    pub async fn open_blob(&self, digest: &Digest) -> Result<(std::fs::File, u64), StoreError> {
        let path = self.blob_path(digest);
        let digest = *digest;
        tokio::task::spawn_blocking(move || {
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::BlobUnknown(digest)),
                Err(e) => return Err(e.into()),
            };
            let (actual, size) = hash_file(&mut file)?;
            if actual != digest {
                tracing::error!(%digest, %actual, path = %path.display(), "stored blob is corrupt; refusing to serve it");
                return Err(StoreError::Corrupt { digest, actual });
            }
            file.seek(SeekFrom::Start(0))?;
            Ok((file, size))
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Reads a whole blob, verified (for manifests and configs).
    pub async fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let (mut file, size) = self.open_blob(digest).await?;
        tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)?;
            Ok(bytes)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Stores `bytes`, which must hash to `expected` when given.
    pub async fn put_blob_bytes(&self, expected: Option<Digest>, bytes: &[u8]) -> Result<Digest, StoreError> {
        let actual = Digest::of(bytes);
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(StoreError::DigestMismatch { expected, actual });
        }
        if (bytes.len() as u64) > self.config.max_blob {
            return Err(StoreError::TooLarge { limit: self.config.max_blob });
        }
        // Always rewrite: a copy already on disk may have been damaged.
        self.write_atomic(&self.blob_path(&actual), bytes).await?;
        Ok(actual)
    }

    /// Streams a blob in, hashing as it goes; it becomes visible only if it
    /// hashes to `expected`.
    pub async fn put_blob_stream<S, E>(&self, expected: Digest, stream: S) -> Result<u64, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tmp = self.tmp_path();
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let (size, hasher) = self.copy_stream(&mut file, stream, 0, Hasher::new()).await?;
            let actual = hasher.finish();
            if actual != expected {
                return Err(StoreError::DigestMismatch { expected, actual });
            }
            file.sync_all().await?;
            self.publish_blob(&tmp, &expected).await?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Renames a complete, verified file into the blob store.
    pub(super) async fn publish_blob(&self, from: &Path, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(from, &path).await?;
        Ok(())
    }

    /// Appends `stream` to `file`, enforcing the blob size limit; returns the
    /// new size and the hasher fed with what was written.
    pub(super) async fn copy_stream<S, E>(
        &self,
        file: &mut tokio::fs::File,
        mut stream: S,
        mut size: u64,
        mut hasher: Hasher,
    ) -> Result<(u64, Hasher), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
            size += chunk.len() as u64;
            if size > self.config.max_blob {
                return Err(StoreError::TooLarge { limit: self.config.max_blob });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok((size, hasher))
    }

    /// Stores a manifest under `reference` in `repo`: checks it, checks that
    /// everything it references is stored, then links it to the repository,
    /// points the tag at it and records it as a referrer of its subject.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<(Digest, Option<Digest>), StoreError> {
        if bytes.len() as u64 > self.config.max_manifest {
            return Err(StoreError::TooLarge { limit: self.config.max_manifest });
        }
        let summary = oci::inspect_manifest(bytes, content_type).map_err(StoreError::ManifestInvalid)?;
        let digest = Digest::of(bytes);
        if let ManifestRef::Digest(named) = reference
            && *named != digest
        {
            return Err(StoreError::DigestMismatch { expected: *named, actual: digest });
        }
        if let ManifestRef::Tag(tag) = reference {
            self.check_version_free(repo, tag, &digest).await?;
        }
        for blob in &summary.blobs {
            if self.blob_size(blob).await?.is_none() {
                return Err(StoreError::ManifestBlobUnknown(*blob));
            }
        }
        for manifest in &summary.manifests {
            if !self.has_manifest(repo, manifest).await? {
                return Err(StoreError::ManifestBlobUnknown(*manifest));
            }
        }
        self.put_blob_bytes(Some(digest), bytes).await?;
        let repo_dir = self.repo_dir(repo);
        self.write_atomic(&repo_dir.join("_manifests").join(digest.hex()), summary.media_type.as_bytes()).await?;
        if let Some(subject) = summary.subject {
            let marker = repo_dir.join("_referrers").join(subject.hex()).join(digest.hex());
            self.write_atomic(&marker, b"").await?;
        }
        if let ManifestRef::Tag(tag) = reference {
            self.point_tag(repo, tag, &digest).await?;
        }
        self.changes.send_modify(|n| *n += 1);
        Ok((digest, summary.subject))
    }

    async fn has_manifest(&self, repo: &Repository, digest: &Digest) -> Result<bool, StoreError> {
        Ok(tokio::fs::try_exists(self.repo_dir(repo).join("_manifests").join(digest.hex())).await?)
    }

    /// What `tag` points to in `repo`.
    pub async fn resolve_tag(&self, repo: &Repository, tag: &Tag) -> Result<Digest, StoreError> {
        let path = self.repo_dir(repo).join("_tags").join(tag.as_str());
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => text.trim().parse().map_err(|_| StoreError::ManifestUnknown(tag.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::ManifestUnknown(tag.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The manifest `reference` of `repo`: its bytes (verified), digest and media type.
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<(Vec<u8>, Digest, String), StoreError> {
        let digest = match reference {
            ManifestRef::Digest(d) => *d,
            ManifestRef::Tag(t) => self.resolve_tag(repo, t).await?,
        };
        let marker = self.repo_dir(repo).join("_manifests").join(digest.hex());
        let media_type = match tokio::fs::read_to_string(&marker).await {
            Ok(media_type) => media_type,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::ManifestUnknown(reference.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let bytes = self.read_blob(&digest).await?;
        Ok((bytes, digest, media_type))
    }

    /// The tags of `repo`, sorted.
    pub async fn tags(&self, repo: &Repository) -> Result<Vec<String>, StoreError> {
        let dir = self.repo_dir(repo);
        if !tokio::fs::try_exists(dir.join("_manifests")).await? {
            return Err(StoreError::NameUnknown(repo.to_string()));
        }
        let mut tags = list_names(&dir.join("_tags")).await?;
        tags.sort();
        Ok(tags)
    }

    /// Descriptors of the manifests in `repo` that refer to `subject`.
    pub async fn referrers(&self, repo: &Repository, subject: &Digest) -> Result<Vec<Descriptor>, StoreError> {
        let dir = self.repo_dir(repo).join("_referrers").join(subject.hex());
        let mut out = Vec::new();
        for name in list_names(&dir).await? {
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else { continue };
            let bytes = self.read_blob(&digest).await?;
            let Ok(manifest) = serde_json::from_slice::<oci::Manifest>(&bytes) else { continue };
            out.push(Descriptor {
                media_type: manifest.media_type.clone().unwrap_or_else(|| oci::MANIFEST_MEDIA_TYPE.into()),
                digest,
                size: bytes.len() as u64,
                artifact_type: Some(manifest.effective_artifact_type()),
                annotations: manifest.annotations,
            });
        }
        out.sort_by_key(|d| d.digest);
        Ok(out)
    }

    /// A value that changes whenever a tag is created or moved, in this
    /// process or another: one `stat` per tag, so a follower can skip
    /// re-reading manifests when nothing changed.
    pub async fn tags_stamp(&self) -> Result<u64, StoreError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for repo in self.repositories().await? {
            // Tags, and which of them are yanked.
            for kind in ["_tags", "_yanked"] {
                let mut entries = match tokio::fs::read_dir(self.repo_dir(&repo).join(kind)).await {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                (repo.as_str(), kind).hash(&mut hasher);
                let mut tags = Vec::new();
                while let Some(entry) = entries.next_entry().await? {
                    let meta = entry.metadata().await?;
                    #[cfg(unix)]
                    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
                    #[cfg(not(unix))]
                    let inode = 0u64;
                    tags.push((entry.file_name(), meta.len(), meta.modified().ok(), inode));
                }
                tags.sort();
                tags.hash(&mut hasher);
            }
        }
        Ok(hasher.finish())
    }

    /// Every repository that holds at least one manifest, sorted.
    pub async fn repositories(&self) -> Result<Vec<Repository>, StoreError> {
        let root = self.root.join("repos");
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![(root.clone(), String::new())];
            while let Some((dir, prefix)) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name == "_manifests" {
                        if let Ok(repo) = prefix.parse() {
                            out.push(repo);
                        }
                    } else if !name.starts_with('_') && entry.file_type().is_ok_and(|t| t.is_dir()) {
                        let child = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                        stack.push((entry.path(), child));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }
}

/// Reads `file` to its end, returning the digest and size of what it read.
pub(super) fn hash_file(file: &mut std::fs::File) -> std::io::Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher.finish(), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// The names of the entries of `dir` (none if it does not exist).
async fn list_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
