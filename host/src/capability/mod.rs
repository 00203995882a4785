//! Host capabilities a tool may import, one module each. Every capability
//! is granted to every call, and each is capped by the host.

pub mod log;
pub mod progress;
