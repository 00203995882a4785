//! toolmesh registry: tools travel as OCI artifacts in which every byte is
//! addressed by its sha256.
//!
//! - [`digest`], [`name`], [`oci`]: digests, validated names and references,
//!   manifests and media types (no I/O).
//! - [`store`]: the content-addressed store on disk (atomic, verified).
//! - [`api`]: the OCI distribution HTTP API and toolmesh's catalog.
//! - [`client`]: what `tool publish`, `tool pull` and nodes use to talk to
//!   any OCI registry; [`auth`]: its credentials and the OCI token flow.
//! - [`request`]: what a tool asks of the node that runs it (typed, versioned);
//!   [`target`]: the hosts and targets it and a node's policy name.
//! - [`signing`]: publisher keys and signatures over manifest digests;
//!   [`statement`]: a publisher's signed word for one change (push, yank,
//!   add an owner), by which the registry enforces namespace ownership.
//! - [`files`]: atomic and private file writes.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod client;
pub mod digest;
pub mod files;
pub mod name;
pub mod oci;
pub mod request;
pub mod signing;
pub mod statement;
pub mod store;
pub mod target;
