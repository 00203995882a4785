//! toolmesh host: runs untrusted tool components in a wasmtime sandbox.
//!
//! - [`sandbox`] loads components and runs each call in a fresh, limited
//!   instance: deny-by-default WASI (clocks and random only), a wall-clock
//!   deadline, memory, table, stack and output caps.
//! - [`capability`] is the registry of host capabilities a tool may use
//!   (the WASI base, log, progress, outbound HTTP, scratch, secrets): what
//!   each provides, how it links, what grant it needs, its per-call state.
//! - [`gateway`] is the MCP server whose tools are the catalog.
//! - [`auth`] identifies callers (API keys, OAuth access tokens from a
//!   team's identity provider) and decides which tools each may call.
//! - [`usage`] meters what each caller uses of each tool and enforces
//!   per-caller quotas, across the gateways of a mesh.
//! - [`web`] is the marketplace's pages: search, a page per package, and a
//!   form that tries a tool through the gateway's MCP endpoint.
//! - [`node`] is the node role: fetch, trust, grant, compile, run; and
//!   the versioned wire contract with gateways in other processes.
//! - [`mesh`] joins nodes and gateways over NATS: adverts, calls,
//!   keep-alives, placement and failover.
//! - [`config`] is the typed configuration of the sandbox role.
//! - [`grant`] is what a tool requests, what a node's policy allows, and
//!   what one call gets: the request as covered by the policy.
//! - [`component_metadata`] reads what a component says about itself (name,
//!   version, description) from its standard metadata sections.
//! - [`build`] turns a tool's source directory (Rust, Python) into a
//!   component with the project's pinned toolchains (`tool build`).
//! - [`artifact`] turns a component into a publishable OCI artifact;
//!   [`publish`] describes, pushes and signs it.
//! - [`digest`] (from the registry crate) names content by its sha256.
//!
//! The `tool` binary (`src/main.rs`, `src/cli/`) is a thin layer over these.
#![deny(missing_docs)]

pub mod artifact;
pub mod auth;
pub mod bridge;
pub mod build;
pub mod capability;
pub mod component_metadata;
pub mod config;
pub mod gateway;
pub mod grant;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod publish;
pub mod sandbox;
pub mod uri_template;
pub mod usage;
pub mod web;

pub use toolmesh_registry::digest;
