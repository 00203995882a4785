//! Small file-system helpers shared by the registry and the host: writing
//! a file so that readers see the old or the new content, never a part,
//! and creating files only their owner can read.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `path` for writing, readable and writable by its owner only;
/// fails if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A temporary file beside `path` (same directory, so a rename is atomic),
/// private to its owner. The name starts with `.tmp-`.
pub fn temp_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let tmp = dir.join(name);
    let file = create_private(&tmp)?;
    Ok((tmp, file))
}

/// Writes `bytes` to `path` only if nothing is there, as a whole private
/// file (written aside, synced, then linked into place); returns whether
/// it did. Of several writers racing for `path`, exactly one succeeds.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let (tmp, mut file) = temp_beside(path)?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` atomically: a private temporary file beside
/// it, synced, then renamed over it. A crash leaves the old file or the
/// new one, never a mix; the file is readable by its owner only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (tmp, mut file) = temp_beside(path)?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(create_private(&path).is_err(), "an existing file is not replaced");
    }

    #[test]
    fn a_new_file_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        assert!(write_new(&path, b"first").unwrap());
        assert!(!write_new(&path, b"second").unwrap(), "an existing file is kept");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
    }
}
