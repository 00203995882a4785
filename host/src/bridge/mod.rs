//! Existing MCP servers brought into the mesh. A bridged server is a
//! native process, not a wasm component, so it runs in an OS sandbox
//! ([`sandbox`]): bubblewrap namespaces, a read-only host file system
//! without home directories or the host's `/tmp`, no network unless
//! granted, an unprivileged user, and memory and process limits.

pub mod sandbox;
