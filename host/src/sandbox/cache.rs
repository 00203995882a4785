//! On-disk cache of compiled components.
//!
//! An entry is named by the sha256 of the component's bytes (hashed here,
//! never taken from a caller) and by a hash of the engine's precompile
//! compatibility, so code compiled by another engine build or configuration
//! is never loaded. Entries are written to a temporary file and renamed into
//! place, so a crash never leaves a partial entry under a valid name.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use toolmesh_registry::digest::{self, Digest};
use toolmesh_registry::files;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into sha256, so the key is stable across runs.
struct Sha256Hasher(digest::Hasher);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// Opens (creating, private to this user) the cache directory `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut hasher = Sha256Hasher(digest::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hasher.0.finish().hex()[..16].to_owned();
        Ok(CompileCache { dir: dir.to_owned(), engine_key })
    }

    fn entry(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", digest.hex(), self.engine_key))
    }

    /// The compiled component for `digest`, if this engine cached it before.
    /// A corrupt or incompatible entry is removed and reported as a miss.
    pub fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.entry(digest);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || writable_by_others(&meta) {
            tracing::warn!(path = %path.display(), "ignoring compile cache entry that is not a private regular file");
            return None;
        }
        // SAFETY: the entry was written by `store` below for this engine's
        // compatibility hash, in a directory private to this user; wasmtime
        // still checks the header and refuses an incompatible artifact.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping unusable compile cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compiled `component` for `digest`. Failures are logged,
    /// never fatal: the cache only saves time.
    pub fn store(&self, digest: &Digest, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| files::write_atomic(&self.entry(digest), &bytes));
        if let Err(e) = result {
            tracing::warn!(digest = %digest, error = %e, "cannot write compile cache entry");
        }
    }
}

#[cfg(unix)]
fn writable_by_others(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o022 != 0
}

#[cfg(not(unix))]
fn writable_by_others(_meta: &std::fs::Metadata) -> bool {
    false
}
