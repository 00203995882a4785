//! A per-call scratch directory, for calls granted one: a fresh empty
//! directory preopened at [`GUEST_PATH`], deleted when the call ends.
//!
//! wasmtime-wasi resolves every path beneath the preopen (`..` and
//! symlinks cannot lead out). The size cap counts the directory's files and
//! files the call deleted but still holds open; it is checked every
//! [`CHECK_EVERY`] while the call runs and when it returns. A call whose
//! scratch holds more than its grant is stopped with [`ScratchFull`]; it
//! may overshoot by what it writes between two checks.

use crate::grant::ScratchGrant;
use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Where a tool finds its scratch directory.
pub const GUEST_PATH: &str = "/scratch";

/// Bytes counted for each file or directory besides its blocks, so a call
/// cannot fill the disk's inode table with empty files for free (and the
/// walk stays short: a 64 MiB grant holds at most 16 384 entries).
const ENTRY_COST: u64 = 4096;

/// How often a running call's scratch is measured.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Raised from an epoch tick when the directory is over its size.
#[derive(Debug, thiserror::Error)]
#[error("the scratch directory is over its size")]
pub(crate) struct ScratchFull;

/// One call's scratch directory; dropping it deletes it.
pub(crate) struct ScratchDir {
    dir: tempfile::TempDir,
    size: u64,
    next_check: Cell<Instant>,
}

impl ScratchDir {
    /// Makes the directory and preopens it for the guest.
    pub(crate) fn create(grant: &ScratchGrant, wasi: &mut WasiCtxBuilder) -> std::io::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("toolmesh-scratch-");
        let dir = match &grant.parent {
            Some(parent) => builder.tempdir_in(parent)?,
            None => builder.tempdir()?,
        };
        wasi.preopened_dir(dir.path(), GUEST_PATH, FsPerms::ReadWrite).map_err(std::io::Error::other)?;
        Ok(ScratchDir { dir, size: grant.size, next_check: Cell::new(Instant::now()) })
    }

    /// The size granted.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether the scratch holds more than its size.
    pub(crate) fn is_over(&self) -> bool {
        let used = usage(self.dir.path(), self.size);
        used > self.size || used.saturating_add(open_deleted(self.dir.path())) > self.size
    }

    /// [`ScratchDir::is_over`], measured at most every [`CHECK_EVERY`]
    /// (between measurements: `false`).
    pub(crate) fn is_over_now(&self) -> bool {
        let now = Instant::now();
        if now < self.next_check.get() {
            return false;
        }
        self.next_check.set(now + CHECK_EVERY);
        self.is_over()
    }
}

/// Bytes held by files under `root` that were deleted while this process
/// still has them open (a tool may write on through a descriptor after
/// unlinking the file, where no directory walk sees it).
fn open_deleted(root: &Path) -> u64 {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    let prefix = format!("{}/", root.display());
    let mut total = 0u64;
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else { continue };
        let target = target.to_string_lossy();
        if target.starts_with(&prefix) && target.ends_with(" (deleted)") {
            // Following the fd's link reaches the open file itself.
            if let Ok(meta) = std::fs::metadata(fd.path()) {
                total = total.saturating_add(meta.blocks().saturating_mul(512));
            }
        }
    }
    total
}

/// Disk used under `root` (allocated blocks plus [`ENTRY_COST`] per entry),
/// never following symlinks; stops counting once past `stop_after`.
fn usage(root: &Path, stop_after: u64) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total = total.saturating_add(meta.blocks().saturating_mul(512)).saturating_add(ENTRY_COST);
            if total > stop_after {
                return total;
            }
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_blocks_and_entries_and_skips_symlink_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), vec![7u8; 64 << 10]).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("link")).unwrap();
        let used = usage(dir.path(), u64::MAX);
        assert!((64 << 10) < used && used < (64 << 10) + 6 * ENTRY_COST, "{used}");
        assert!(usage(dir.path(), 1000) > 1000, "stops early once over");
    }

    #[test]
    fn files_deleted_but_open_still_count() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hidden");
        let mut file = std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file.write_all(&vec![1u8; 256 << 10]).unwrap();
        file.sync_all().unwrap();
        assert!(usage(dir.path(), u64::MAX) < 4096, "the walk cannot see it");
        assert!(open_deleted(dir.path()) >= 256 << 10);
        drop(file);
        assert_eq!(open_deleted(dir.path()), 0);
    }
}
