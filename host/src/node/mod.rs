//! The node role: what a node keeps between calls and how it talks to
//! gateways in other processes.
//!
//! - [`runner`]: the [`Node`] itself: fetch, trust, grant, compile, run.
//! - [`source`]: where components come from (the local store, or any OCI
//!   registry), by digest.
//! - [`components`]: the loaded components, bounded, each loaded once
//!   however many calls ask for it at the same moment.
//! - [`trust`]: whose tools the node runs, by their signatures.
//! - [`wire`]: the versioned messages between gateways and nodes (call,
//!   answers, advert).

pub mod components;
pub mod runner;
pub mod source;
pub mod trust;
pub mod wire;

pub use components::ComponentCache;
pub use runner::{BridgeCall, Invocation, InvokeCause, InvokeError, Node};
pub use source::ComponentSource;
