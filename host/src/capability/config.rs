//! `wasi:config/store`: configuration values for a call, from the tool's
//! published request with the node's policy over them. Values are not
//! secret (a tool publishes its own); secrets stay environment variables.
//!
//! The interface has been published under several versions that toolchains
//! still target (the release candidate, the draft wassette's and jco's
//! examples import, the dated draft Spin imports); each is linked, with the
//! same two functions, from component values.

use crate::sandbox::CallState;
use std::collections::BTreeMap;
use wasmtime::component::{Linker, Val};

/// The versions of `wasi:config/store` linked.
pub(super) const VERSIONS: &[&str] = &["0.2.0-rc.1", "0.2.0-draft", "0.2.0-draft-2024-09-27"];

/// The values `wasi:config/store` answers one call with.
pub(crate) type ConfigValues = BTreeMap<String, String>;

/// Links every version of `wasi:config/store`, answering from the call's values.
pub(super) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    for version in VERSIONS {
        let mut store = linker.instance(&format!("wasi:config/store@{version}"))?;
        // get: func(key: string) -> result<option<string>, error>
        store.func_new("get", |store, _ty, params, results| {
            let [Val::String(key)] = params else { wasmtime::bail!("wasi:config/store#get takes one string") };
            let value = store.data().config.get(key).map(|v| Box::new(Val::String(v.clone())));
            results[0] = Val::Result(Ok(Some(Box::new(Val::Option(value)))));
            Ok(())
        })?;
        // get-all: func() -> result<list<tuple<string, string>>, error>
        store.func_new("get-all", |store, _ty, _params, results| {
            let pairs = store
                .data()
                .config
                .iter()
                .map(|(k, v)| Val::Tuple(vec![Val::String(k.clone()), Val::String(v.clone())]))
                .collect();
            results[0] = Val::Result(Ok(Some(Box::new(Val::List(pairs)))));
            Ok(())
        })?;
    }
    Ok(())
}
