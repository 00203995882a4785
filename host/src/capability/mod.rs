//! Host capabilities a tool may use, one unit each: the interfaces it
//! provides, how they are linked into a component linker, whether a call's
//! [`Grant`] lets it use them, and the per-call state it makes from that
//! grant. The list of imports the host provides is [`CAPABILITIES`];
//! nothing else decides it, and adding a capability touches only its own
//! module and its entry here.
//!
//! The WASI base (clocks, random, stdout and stderr to the log; files,
//! environment and sockets denied), log and progress need no grant.
//! Outbound HTTP, a scratch directory, directories of the node and secrets
//! are given only to calls whose grant has them; `wasi:config/store`
//! answers with the values the grant holds (none by default); a component importing `wasi:http` is refused
//! before it runs unless its call was granted network. GPU compute is
//! linked for every tool and answers `no-adapter` to calls not granted it;
//! host linear algebra is linked for every tool and open to every call
//! unless the node's configuration closes it;
//! calls to other tools likewise answer `not-granted` unless the gateway
//! that placed the call gave it a [`tools::ToolCaller`]; questions to the
//! client are refused unless the gateway gave the call an [`ask::Asking`];
//! resource updates are dropped unless whoever placed the call listens.

pub mod ask;
mod config;
mod files;
pub(crate) use config::ConfigValues;
pub mod gpu;
pub mod http;
pub mod linalg;
pub mod log;
pub mod progress;
pub mod resource_updates;
pub mod scratch;
mod secrets;
pub mod tools;

use crate::grant::Grant;
use crate::sandbox::bindings::toolmesh::tool as toolmesh;
use crate::sandbox::{CallState, SandboxError};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;

/// One host capability.
pub struct Capability {
    /// The name a grant or an error uses: `wasi`, `log`, `network`, …
    pub name: &'static str,
    /// The interfaces it provides, as import-name prefixes
    /// (`toolmesh:tool/log`), so any version of them matches. Empty for a
    /// capability given through another's interfaces (a scratch directory
    /// is a WASI preopen).
    pub interfaces: &'static [&'static str],
    /// What it gives a tool, in a few words, for messages and listings.
    pub summary: &'static str,
    link: fn(&mut Linker<CallState>) -> wasmtime::Result<()>,
    /// Why a call under this grant may not use the interfaces; `None` when
    /// it may.
    denied: fn(&Grant) -> Option<&'static str>,
    /// Adds the per-call state made from the grant.
    setup: fn(&Grant, &mut CallSetup) -> Result<(), SandboxError>,
}

impl Capability {
    /// Whether this capability provides import `name`.
    pub fn provides(&self, name: &str) -> bool {
        self.interfaces
            .iter()
            .any(|prefix| name.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(['@', '/'])))
    }

    /// Whether calls under some grants may not use it.
    pub fn is_gated(&self) -> bool {
        (self.denied)(&Grant::default()).is_some()
    }

    /// Refuses a call under `grant` that imports `import` of this capability.
    pub(crate) fn check(&'static self, import: &str, grant: &Grant) -> Result<(), SandboxError> {
        match (self.denied)(grant) {
            None => Ok(()),
            Some(why) => Err(SandboxError::NotGranted { import: import.to_owned(), capability: self.name, why }),
        }
    }
}

/// What a call's store is made from; each capability adds its part.
pub(crate) struct CallSetup {
    /// The WASI context, deny-by-default until a capability opens something.
    pub(crate) wasi: WasiCtxBuilder,
    /// Outbound HTTP: refuses everything unless granted.
    pub(crate) http: http::HttpHooks,
    /// The scratch directory, if granted.
    pub(crate) scratch: Option<scratch::ScratchDir>,
    /// The call's GPU state, with the node's GPU until a grant says no.
    pub(crate) gpu: gpu::call::GpuCall,
    /// The call's host linear algebra.
    pub(crate) linalg: linalg::call::LinalgCall,
    /// The values `wasi:config/store` answers with.
    pub(crate) config: config::ConfigValues,
}

impl CallSetup {
    /// The setup of a call under `grant`: `wasi` as the base, then every
    /// capability's part.
    pub(crate) fn new(
        wasi: WasiCtxBuilder,
        grant: &Grant,
        gpu: gpu::call::GpuCall,
        linalg: linalg::call::LinalgCall,
    ) -> Result<Self, SandboxError> {
        let mut setup = CallSetup {
            wasi,
            http: http::HttpHooks::new(None),
            scratch: None,
            gpu,
            linalg,
            config: Default::default(),
        };
        for capability in CAPABILITIES {
            (capability.setup)(grant, &mut setup)?;
        }
        Ok(setup)
    }
}

fn never(_: &Grant) -> Option<&'static str> {
    None
}

fn nothing(_: &Grant, _: &mut CallSetup) -> Result<(), SandboxError> {
    Ok(())
}

fn no_link(_: &mut Linker<CallState>) -> wasmtime::Result<()> {
    Ok(())
}

/// Every capability the host has, in the order they are linked and set up.
pub static CAPABILITIES: &[Capability] = &[
    Capability {
        name: "wasi",
        interfaces: &["wasi:io", "wasi:clocks", "wasi:random", "wasi:cli", "wasi:filesystem", "wasi:sockets"],
        summary: "WASI with files, environment and network denied: clocks, random, stdout and stderr to the log",
        link: |linker| wasmtime_wasi::p2::add_to_linker_async(linker),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "types",
        // `mcp-types` holds types only: nothing to link.
        interfaces: &["toolmesh:tool/types", "toolmesh:tool/mcp-types"],
        summary: "the types of the tool interface and of MCP",
        link: |linker| toolmesh::types::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "log",
        interfaces: &["toolmesh:tool/log"],
        summary: "log lines to the host's log, up to the call's log budget",
        link: |linker| toolmesh::log::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "progress",
        interfaces: &["toolmesh:tool/progress"],
        summary: "progress reports to the caller, coalesced and rate-limited",
        link: |linker| toolmesh::progress::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "gpu",
        interfaces: &["toolmesh:tool/gpu"],
        summary: "GPU compute: buffers and validated WGSL compute kernels, under per-call byte, dispatch and time budgets; `no-adapter` unless granted",
        link: |linker| toolmesh::gpu::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: |grant, setup| {
            if !grant.gpu {
                setup.gpu.deny(
                    "this call is not granted GPU compute (the tool requests none, or the node's policy has [gpu] allow = false)",
                );
            }
            Ok(())
        },
    },
    Capability {
        name: "linalg",
        interfaces: &["toolmesh:tool/linalg"],
        summary: "host linear algebra: matrices and weights held by the host, products with bias, GELU and residual add, attention and layer norms run natively, under per-call byte and work budgets and the call's deadline; `unavailable` where the node turns it off",
        link: |linker| toolmesh::linalg::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "tools",
        interfaces: &["toolmesh:tool/tools"],
        summary: "calls to the catalog's tools as the outer call's caller, within its limits; `not-granted` unless the gateway placing the call grants it",
        link: |linker| toolmesh::tools::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "ask",
        interfaces: &["toolmesh:tool/ask"],
        summary: "questions to the client that made the call (a form for the user, its model, its roots), answered by running the call again",
        link: |linker| toolmesh::ask::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "resource-updates",
        interfaces: &["toolmesh:tool/resource-updates"],
        summary: "telling clients subscribed to one of the package's resources that it changed (32 URIs a call)",
        link: |linker| toolmesh::resource_updates::add_to_linker::<_, HasSelf<CallState>>(linker, |state| state),
        denied: never,
        setup: nothing,
    },
    Capability {
        name: "network",
        interfaces: &["wasi:http"],
        summary: "outbound HTTP to the granted hosts, checked after DNS, with byte, request and time caps",
        link: |linker| wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker),
        denied: |grant| {
            grant.network.is_none().then_some(
                "the tool requests no network access (list its targets under [permissions] network in tool.toml)",
            )
        },
        setup: |grant, setup| {
            setup.http = http::HttpHooks::new(grant.network.clone());
            Ok(())
        },
    },
    Capability {
        name: "scratch",
        interfaces: &[],
        summary: "a fresh directory at /scratch for the call, size-capped, deleted after",
        link: no_link,
        denied: never,
        setup: |grant, setup| {
            if let Some(scratch) = &grant.scratch {
                let dir = scratch::ScratchDir::create(scratch, &mut setup.wasi)
                    .map_err(|e| SandboxError::Engine(format!("cannot make the scratch directory: {e}")))?;
                setup.scratch = Some(dir);
            }
            Ok(())
        },
    },
    Capability {
        name: "files",
        interfaces: &[],
        summary: "directories the node's policy lends, at the paths the tool requested, read-only unless lent read-write",
        link: no_link,
        denied: never,
        setup: |grant, setup| files::preopen(grant, &mut setup.wasi),
    },
    Capability {
        name: "config",
        interfaces: &["wasi:config"],
        summary: "configuration values: the tool's own, then the node's policy over them",
        link: config::link,
        denied: never,
        setup: |grant, setup| {
            setup.config = grant.config.clone();
            Ok(())
        },
    },
    Capability {
        name: "secrets",
        interfaces: &[],
        summary: "the granted secrets as environment variables",
        link: no_link,
        denied: never,
        setup: |grant, setup| {
            secrets::set_env(grant, &mut setup.wasi);
            Ok(())
        },
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
    CAPABILITIES
        .iter()
        .filter(|c| !c.interfaces.is_empty())
        .map(|c| format!("{} ({})", c.interfaces.join(", "), c.summary))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_find_their_capability_by_interface_not_by_prefix_alone() {
        assert_eq!(provider_of("toolmesh:tool/log@0.1.0").map(|c| c.name), Some("log"));
        assert_eq!(provider_of("wasi:io/streams@0.2.6").map(|c| c.name), Some("wasi"));
        assert_eq!(provider_of("wasi:cli/environment@0.2.6").map(|c| c.name), Some("wasi"));
        assert_eq!(provider_of("wasi:http/outgoing-handler@0.2.6").map(|c| c.name), Some("network"));
        assert!(provider_of("wasi:httpx/outgoing-handler").is_none());
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

    #[test]
    fn network_is_refused_without_a_grant_and_named() {
        let network = provider_of("wasi:http/types@0.2.6").unwrap();
        assert!(network.is_gated());
        let err = network.check("wasi:http/types@0.2.6", &Grant::default()).unwrap_err().to_string();
        assert!(err.contains("wasi:http/types@0.2.6") && err.contains("network grant"), "{err}");
        assert!(!provider_of("toolmesh:tool/log").unwrap().is_gated());
    }
}
