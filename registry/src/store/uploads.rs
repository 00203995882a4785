//! Upload sessions: started, appended to in order, finished by digest.
//!
//! A session's bytes live in `uploads/<id>/data` until it is finished: they
//! are then hashed, and renamed into the blob store only if they match.

use super::StoreError;
use super::fs::{FsStore, UploadStatus, hash_file, is_upload_id, random_id};
use crate::digest::{Digest, Hasher};
use crate::name::Repository;
use bytes::Bytes;
use futures_util::Stream;
use std::path::PathBuf;
use std::sync::Arc;

impl FsStore {
    /// Starts an upload session for `repo`; returns its id.
    pub async fn start_upload(&self, repo: &Repository) -> Result<String, StoreError> {
        let id = random_id();
        let dir = self.upload_dir(&id);
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join("repo"), repo.as_str()).await?;
        tokio::fs::write(dir.join("data"), b"").await?;
        Ok(id)
    }

    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.upload_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn forget_upload_lock(&self, id: &str) {
        self.upload_locks.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Checks that upload `id` exists and belongs to `repo`.
    async fn check_upload(&self, repo: &Repository, id: &str) -> Result<PathBuf, StoreError> {
        let unknown = || StoreError::UploadUnknown(id.to_owned());
        if !is_upload_id(id) {
            return Err(unknown());
        }
        let dir = self.upload_dir(id);
        match tokio::fs::read_to_string(dir.join("repo")).await {
            Ok(owner) if owner == repo.as_str() => Ok(dir),
            Ok(_) => Err(unknown()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(unknown()),
            Err(e) => Err(e.into()),
        }
    }

    /// Where upload `id` stands.
    pub async fn upload_status(&self, repo: &Repository, id: &str) -> Result<UploadStatus, StoreError> {
        let dir = self.check_upload(repo, id).await?;
        Ok(UploadStatus { offset: tokio::fs::metadata(dir.join("data")).await?.len() })
    }

    /// Appends a chunk to upload `id`. With `start`, the chunk must begin
    /// exactly where the upload stands.
    pub async fn append_upload<S, E>(
        &self,
        repo: &Repository,
        id: &str,
        start: Option<u64>,
        stream: S,
    ) -> Result<UploadStatus, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let lock = self.upload_lock(id);
        let _guard = lock.lock().await;
        let dir = self.check_upload(repo, id).await?;
        let path = dir.join("data");
        let offset = tokio::fs::metadata(&path).await?.len();
        if let Some(start) = start
            && start != offset
        {
            return Err(StoreError::RangeMismatch { start, offset });
        }
        let mut file = tokio::fs::OpenOptions::new().append(true).open(&path).await?;
        match self.copy_stream(&mut file, stream, offset, Hasher::new()).await {
            Ok((size, _)) => Ok(UploadStatus { offset: size }),
            Err(e) => {
                // Keep the session consistent: drop whatever part of the
                // chunk was written.
                let _ = file.set_len(offset).await;
                Err(e)
            }
        }
    }

    /// Finishes upload `id`: hashes everything received, and if it matches
    /// `expected`, publishes the blob. On a mismatch the session is discarded.
    pub async fn finish_upload(&self, repo: &Repository, id: &str, expected: Digest) -> Result<u64, StoreError> {
        let lock = self.upload_lock(id);
        let _guard = lock.lock().await;
        let dir = self.check_upload(repo, id).await?;
        let data = dir.join("data");
        let path = data.clone();
        let (actual, size) = tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, u64)> {
            let mut file = std::fs::File::open(&path)?;
            let hashed = hash_file(&mut file)?;
            file.sync_all()?;
            Ok(hashed)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        let result = if actual == expected {
            self.publish_blob(&data, &expected).await.map(|()| size)
        } else {
            Err(StoreError::DigestMismatch { expected, actual })
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        self.forget_upload_lock(id);
        result
    }

    /// Cancels upload `id`.
    pub async fn cancel_upload(&self, repo: &Repository, id: &str) -> Result<(), StoreError> {
        let dir = self.check_upload(repo, id).await?;
        tokio::fs::remove_dir_all(&dir).await?;
        self.forget_upload_lock(id);
        Ok(())
    }
}
