//! Host capabilities a tool may import, one unit each: the interfaces it
//! provides, how they are linked into a component linker, and (in its own
//! module) the per-call state behind them. The list of imports the host
//! provides is [`CAPABILITIES`]; nothing else decides it.
//!
//! Today every capability is granted to every call and capped by the host:
//! the deny-by-default WASI base, log lines and progress reports.

pub mod log;
pub mod progress;

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool as toolmesh;
use wasmtime::component::{HasSelf, Linker};

/// One host capability.
pub struct Capability {
    /// The name a grant or an error uses: `wasi`, `log`, `progress`.
    pub name: &'static str,
    /// The interfaces it provides, as import-name prefixes
    /// (`toolmesh:tool/log`), so any version of them matches.
    pub interfaces: &'static [&'static str],
    /// What it gives a tool, in a few words, for messages and listings.
    pub summary: &'static str,
    link: fn(&mut Linker<CallState>) -> wasmtime::Result<()>,
}

impl Capability {
    /// Whether this capability provides import `name`.
    pub fn provides(&self, name: &str) -> bool {
        self.interfaces
            .iter()
            .any(|prefix| name.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(['@', '/'])))
    }
}

/// Every capability the host has, in the order they are linked.
pub static CAPABILITIES: &[Capability] = &[
    Capability {
        name: "wasi",
        interfaces: &["wasi:io", "wasi:clocks", "wasi:random", "wasi:cli", "wasi:filesystem", "wasi:sockets"],
        summary: "WASI with files, environment and network denied: clocks, random, stdout and stderr to the log",
        link: |linker| wasmtime_wasi::p2::add_to_linker_async(linker),
    },
    Capability {
        name: "types",
        interfaces: &["toolmesh:tool/types"],
        summary: "the types of the tool interface",
        link: |linker| toolmesh::types::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
    },
    Capability {
        name: "log",
        interfaces: &["toolmesh:tool/log"],
        summary: "log lines to the host's log, up to the call's log budget",
        link: |linker| toolmesh::log::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
    },
    Capability {
        name: "progress",
        interfaces: &["toolmesh:tool/progress"],
        summary: "progress reports to the caller, coalesced and rate-limited",
        link: |linker| toolmesh::progress::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
    },
];

/// The capability that provides import `name`, if the host has one.
pub fn provider_of(name: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.provides(name))
}

/// Links every capability into `linker`.
pub(crate) fn link_all(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    CAPABILITIES.iter().try_for_each(|c| (c.link)(linker))
}

/// What a tool may import, in words: each capability's interfaces and what
/// it gives.
pub fn provided_text() -> String {
    CAPABILITIES.iter().map(|c| format!("{} ({})", c.interfaces.join(", "), c.summary)).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_find_their_capability_by_interface_not_by_prefix_alone() {
        assert_eq!(provider_of("toolmesh:tool/log@0.1.0").map(|c| c.name), Some("log"));
        assert_eq!(provider_of("wasi:io/streams@0.2.6").map(|c| c.name), Some("wasi"));
        assert_eq!(provider_of("wasi:cli/environment@0.2.6").map(|c| c.name), Some("wasi"));
        assert!(provider_of("wasi:http/outgoing-handler@0.2.6").is_none());
        assert!(provider_of("toolmesh:tool/logger@0.1.0").is_none(), "a longer name is another interface");
        assert!(provider_of("wasi:iox/streams").is_none());
        assert!(provider_of("evil:net/raw-socket").is_none());
    }

    #[test]
    fn every_capability_links() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<CallState>::new(&engine);
        link_all(&mut linker).unwrap();
        let text = provided_text();
        assert!(text.contains("toolmesh:tool/progress") && text.contains("wasi:clocks"), "{text}");
    }
}
