//! What a node keeps between calls.
//!
//! - [`components`]: the loaded components, bounded, each loaded once
//!   however many calls ask for it at the same moment.
//! - [`trust`]: whose tools the node runs, by their signatures.

pub mod components;
pub mod trust;

pub use components::ComponentCache;
