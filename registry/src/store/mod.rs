//! Where blobs, manifests, tags and upload sessions live.
//!
//! [`FsStore`] keeps everything under one data directory:
//!
//! ```text
//! blobs/sha256/ab/abcd…          every blob and manifest, by digest, stored once
//! uploads/<id>/{data,repo}       upload sessions in progress
//! repos/<name>/_tags/<tag>       the digest a tag points to
//! repos/<name>/_manifests/<hex>  marks a manifest as part of a repository
//! repos/<name>/_referrers/<subject>/<hex>  manifests that refer to a subject
//! tmp/                           files being written, renamed into place when complete
//! ```
//!
//! A blob appears under its name only after its bytes were hashed, found to
//! match, and synced: a crash or a wrong digest never leaves a visible
//! partial or mismatched blob. Reads hash again before serving, so a blob
//! changed on disk is refused and reported, never served.

mod fs;
mod uploads;

pub use fs::{FsStore, StoreConfig, UploadStatus};

use crate::digest::Digest;
use crate::name::NameError;

/// What can go wrong storing or fetching content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No blob with this digest.
    #[error("blob {0} is not in the registry")]
    BlobUnknown(Digest),
    /// No manifest under this tag or digest in the repository.
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(String),
    /// The repository has no manifests.
    #[error("repository {0} is not in the registry")]
    NameUnknown(String),
    /// No such upload session (never started, finished, cancelled, or another repository's).
    #[error("upload {0} is not in progress")]
    UploadUnknown(String),
    /// The uploaded bytes do not hash to the digest the client named.
    #[error("content hashes to {actual}, not {expected}")]
    DigestMismatch {
        /// What the client said.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A chunk did not start where the upload stands.
    #[error("chunk starts at byte {start}, but the upload is at byte {offset}")]
    RangeMismatch {
        /// Where the chunk said it starts.
        start: u64,
        /// Where the upload is.
        offset: u64,
    },
    /// Content over the size limit.
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// A stored blob no longer matches its digest: it was changed on disk.
    #[error("stored blob {digest} is corrupt (its bytes hash to {actual}); refusing to serve it")]
    Corrupt {
        /// The blob's name.
        digest: Digest,
        /// What its bytes hash to now.
        actual: Digest,
    },
    /// A version tag already names other content: versions are immutable.
    #[error(
        "version {tag} of {repository} is already published with other content ({existing}); \
         a version is never replaced: publish a new one"
    )]
    VersionExists {
        /// The repository.
        repository: String,
        /// The version tag.
        tag: String,
        /// What it names.
        existing: Digest,
    },
    /// The manifest is malformed or unsupported.
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    /// The manifest references a blob or manifest that was never pushed.
    #[error("manifest references {0}, which is not in the registry")]
    ManifestBlobUnknown(Digest),
    /// A name, tag or digest failed validation.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The disk failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}
