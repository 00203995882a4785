//! Directories of the node, for calls granted them: each is a WASI preopen
//! at the path the tool asked for, read-only unless the tool asked to
//! write and the policy lends it read-write. WASI resolves every path
//! inside a preopen (`..` and symbolic links included) without leaving it.

use crate::grant::Grant;
use crate::sandbox::SandboxError;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Preopens the call's granted directories.
pub(crate) fn preopen(grant: &Grant, wasi: &mut WasiCtxBuilder) -> Result<(), SandboxError> {
    for dir in &grant.files {
        let perms = if dir.write { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        wasi.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
            SandboxError::Engine(format!(
                "the node's directory {} for {} cannot be opened: {e}",
                dir.host.display(),
                dir.guest
            ))
        })?;
    }
    Ok(())
}
