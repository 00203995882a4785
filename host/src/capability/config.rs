//! `wasi:config/store`: configuration values for a call, from the tool's
//! published request with the node's policy over them. Values are not
//! secret (a tool publishes its own); secrets stay environment variables.

use crate::sandbox::CallState;
use wasmtime::component::Linker;
use wasmtime_wasi_config::WasiConfig;

/// Links `wasi:config/store`, answering from the call's values.
pub(super) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi_config::add_to_linker(linker, |state| WasiConfig::from(&state.config))
}
