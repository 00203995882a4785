//! What a node keeps between calls.
//!
//! - [`components`]: the loaded components, bounded, each loaded once
//!   however many calls ask for it at the same moment.

pub mod components;

pub use components::ComponentCache;
