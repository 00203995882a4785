//! Secrets, for calls granted them: each granted secret is one environment
//! variable of the call (`wasi:cli/environment`), under the name the tool
//! requested. Nothing else of the node's environment is visible, values
//! come from the node (never the registry), and they are never logged.

use crate::grant::Grant;
use wasmtime_wasi::WasiCtxBuilder;

/// Puts the call's granted secrets into its environment.
pub(crate) fn set_env(grant: &Grant, wasi: &mut WasiCtxBuilder) {
    for (name, value) in &grant.secrets {
        wasi.env(name, value.expose());
    }
}
