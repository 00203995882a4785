//! `unpack`: writes a tar archive's files into the call's scratch directory
//! (`/scratch`, granted per call, deleted after), then walks the directory
//! and reports each file's size and sha256. The files really go to disk:
//! the host caps how much the directory may hold and keeps every path
//! inside it.
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};
use toolmesh_guest::prelude::*;

/// Where the host puts the call's scratch directory.
const SCRATCH: &str = "/scratch";

/// Arguments of `unpack`.
#[derive(Deserialize, JsonSchema)]
struct UnpackArgs {
    /// The archive: an uncompressed tar file, base64-encoded.
    archive: String,
}

/// One file found after unpacking.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Entry {
    /// Its path inside the archive.
    path: String,
    /// Its size in bytes.
    bytes: u64,
    /// The sha256 of its contents, in hex.
    sha256: String,
}

/// What `unpack` returns.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Unpacked {
    /// Every regular file, sorted by path.
    files: Vec<Entry>,
    /// Directories made.
    directories: usize,
    /// Bytes written in all.
    total_bytes: u64,
    /// Entries not unpacked (links, devices) and why.
    skipped: Vec<String>,
}

fn unpack(args: UnpackArgs) -> Result<Json<Unpacked>, ToolError> {
    let tar = base64::engine::general_purpose::STANDARD
        .decode(args.archive.trim())
        .map_err(|e| ToolError::invalid_arguments(format!("archive: not base64: {e}")))?;
    let root = Path::new(SCRATCH);
    if !root.is_dir() {
        return Err(ToolError::failed("no scratch directory was granted to this call"));
    }
    let mut out = Unpacked { files: Vec::new(), directories: 0, total_bytes: 0, skipped: Vec::new() };
    for entry in entries(&tar).map_err(ToolError::invalid_arguments)? {
        let Some(relative) = safe_path(&entry.name) else {
            out.skipped.push(format!("{}: a path outside the archive", entry.name));
            continue;
        };
        let target = root.join(&relative);
        match entry.kind {
            b'0' | 0 => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| ToolError::failed(format!("{}: {e}", entry.name)))?;
                }
                std::fs::write(&target, entry.data).map_err(|e| ToolError::failed(format!("{}: {e}", entry.name)))?;
                out.total_bytes += entry.data.len() as u64;
            }
            b'5' => {
                std::fs::create_dir_all(&target).map_err(|e| ToolError::failed(format!("{}: {e}", entry.name)))?;
            }
            other => out.skipped.push(format!("{}: entry type {:?} is not unpacked", entry.name, other as char)),
        }
    }
    walk(root, root, &mut out).map_err(|e| ToolError::failed(format!("cannot list {SCRATCH}: {e}")))?;
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Json(out))
}

/// Reads back what is on disk: every file's size and digest.
fn walk(root: &Path, dir: &Path, out: &mut Unpacked) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            out.directories += 1;
            walk(root, &path, out)?;
        } else {
            let data = std::fs::read(&path)?;
            let name = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            out.files.push(Entry { path: name, bytes: data.len() as u64, sha256: hex::encode(Sha256::digest(&data)) });
        }
    }
    Ok(())
}

/// `name` as a relative path with no `..`, or `None`.
fn safe_path(name: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for part in Path::new(name).components() {
        match part {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!path.as_os_str().is_empty()).then_some(path)
}

/// One tar entry.
struct TarEntry<'a> {
    name: String,
    kind: u8,
    data: &'a [u8],
}

/// The entries of an uncompressed (ustar or old-style) tar archive.
fn entries(tar: &[u8]) -> Result<Vec<TarEntry<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let text = |range: std::ops::Range<usize>| {
            let field = &header[range];
            let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(&field[..end]).into_owned()
        };
        let size_text = text(124..136);
        let size = u64::from_str_radix(size_text.trim(), 8)
            .map_err(|_| format!("archive: entry at byte {at} has a bad size {size_text:?}"))?;
        let prefix = if &header[257..262] == b"ustar" { text(345..500) } else { String::new() };
        let name = if prefix.is_empty() { text(0..100) } else { format!("{prefix}/{}", text(0..100)) };
        let start = at + 512;
        let end = usize::try_from(size).ok().and_then(|s| start.checked_add(s)).filter(|e| *e <= tar.len());
        let Some(end) = end else { return Err(format!("archive: {name} runs past the end of the archive")) };
        out.push(TarEntry { name, kind: header[156], data: &tar[start..end] });
        at = start + (end - start).div_ceil(512) * 512;
    }
    Ok(out)
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "unpack",
            "Unpacks a base64 tar archive in a private scratch directory and lists its files with sizes and sha256.",
            unpack,
        )
        .idempotent(),
    ]
}

toolmesh_guest::export_tools!(tools);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(safe_path("a/./b"), Some(PathBuf::from("a/b")));
        assert_eq!(safe_path("../etc/passwd"), None);
        assert_eq!(safe_path("/etc/passwd"), None);
        assert_eq!(safe_path("a/../../b"), None);
    }
}
