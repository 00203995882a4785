//! Nodes and gateways in separate processes, joined by NATS (a server the
//! operator runs; we use it as the fabric and write no transport or
//! membership of our own).
//!
//! - [`subjects`]: the subject names, one place.
//! - [`agent`]: what `tool node` runs: adverts, calls, keep-alives, drain.
//! - [`invoker`]: what `tool gateway` runs: the live node table, placement
//!   and failover, as an [`crate::gateway::Invoker`].
//!
//! A call: the gateway places it ([`crate::gateway::placement`]), sends a
//! [`crate::node::wire::CallMessage`] to the node's call subject with a
//! fresh reply inbox, and reads [`crate::node::wire::NodeMessage`]s there:
//! accepted, keep-alives every [`KEEPALIVE_EVERY`], progress, then one
//! result or error. Silence for [`LOST_AFTER`] means the node is lost
//! (NATS itself does not say so: a request to a dead node just waits).

pub mod agent;
pub mod invoker;
pub mod subjects;

use std::time::Duration;

/// How often a node says a call is still running.
pub const KEEPALIVE_EVERY: Duration = Duration::from_millis(500);

/// Silence after which a gateway gives a call's node up for lost.
pub const LOST_AFTER: Duration = Duration::from_secs(2);

/// How often a node advertises itself; an advert is believed for three times that.
pub const ADVERT_EVERY: Duration = Duration::from_secs(1);

/// How to reach the NATS servers.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, comma-separated for several).
    pub url: String,
    /// A token, for servers that require one.
    pub token: Option<String>,
    /// The client's name as the server shows it.
    pub name: String,
}

/// A NATS failure.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {0}")]
pub struct MeshError(pub String);

impl NatsConfig {
    /// Connects; reconnects by itself afterwards.
    pub async fn connect(&self) -> Result<async_nats::Client, MeshError> {
        // The first connection must succeed (a wrong URL is an error at
        // start); after it, the client reconnects by itself.
        let mut options = async_nats::ConnectOptions::new().name(&self.name);
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        let servers: Vec<&str> = self.url.split(',').map(str::trim).collect();
        let connect = options.connect(servers.as_slice());
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(MeshError(format!("cannot connect to {}: {e}", self.url))),
            Err(_) => Err(MeshError(format!("cannot connect to {} within 10 s", self.url))),
        }
    }
}
