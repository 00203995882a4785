//! Nodes and gateways in separate processes, joined by NATS (a server the
//! operator runs; we use it as the fabric and write no transport or
//! membership of our own).
//!
//! - [`subjects`]: the subject names, one place.
//! - [`agent`]: what `tool node` runs: adverts, calls, keep-alives, drain.
//! - [`invoker`]: what `tool gateway` runs: the live node table, placement
//!   and failover, as an [`crate::gateway::Invoker`].
//! - [`parts`]: values over the NATS payload limit, sent in parts.
//! - `asking`: the node side of calls from a call's code to other tools,
//!   answered by the gateway that sent the call.
//!
//! A call: the gateway places it ([`crate::gateway::placement`]), sends a
//! [`crate::node::wire::CallMessage`] to the node's call subject with a
//! fresh reply inbox, and reads [`crate::node::wire::NodeMessage`]s there:
//! accepted, keep-alives every [`KEEPALIVE_EVERY`], progress, then one
//! result or error. Silence for [`LOST_AFTER`] means the node is lost
//! (NATS itself does not say so: a request to a dead node just waits).

pub mod agent;
mod asking;
pub mod invoker;
pub mod parts;
pub mod subjects;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a node says a call is still running.
pub const KEEPALIVE_EVERY: Duration = Duration::from_millis(500);

/// Silence after which a gateway gives a call's node up for lost.
pub const LOST_AFTER: Duration = Duration::from_secs(2);

/// How long a process waits for the server to confirm what it sent at start.
const CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// How often a node advertises itself; an advert is believed for three times that.
pub const ADVERT_EVERY: Duration = Duration::from_secs(1);

/// How to reach the NATS servers and prove who this process is.
#[derive(Debug, Clone, Default)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`, comma-separated
    /// for several; `nats://user:password@host` for password users).
    pub url: String,
    /// How this process authenticates.
    pub auth: NatsAuth,
    /// TLS beyond the system's roots.
    pub tls: NatsTls,
    /// The client's name as the server shows it.
    pub name: String,
}

/// The server's refusals of this process's publishes and subscriptions
/// (subjects its credentials do not allow), newest last, at most 16.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<Mutex<Vec<String>>>);

impl Refusals {
    fn record(&self, what: String) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == 16 {
            list.remove(0);
        }
        list.push(what);
    }

    /// What was refused so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for the server to have read what `client` sent so far, then
    /// fails if it refused any of it: `who` (such as "node id a") is not
    /// what this process's credentials allow.
    pub async fn confirm(&self, client: &async_nats::Client, who: &str) -> Result<(), MeshError> {
        // The server answers a refused subscription or publish before the
        // flush's PONG; its event may take a moment more to be recorded.
        match tokio::time::timeout(CONFIRM_WAIT, client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(MeshError(format!("cannot reach the server: {e}"))),
            Err(_) => return Err(MeshError(format!("the server did not answer within {CONFIRM_WAIT:?}"))),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        match self.list().first() {
            Some(refused) => Err(MeshError(format!(
                "the server refuses the subjects of {who} ({refused}): the credentials are for someone else, or lack subjects this version uses (docs/mesh.md lists them)"
            ))),
            None => Ok(()),
        }
    }
}

/// How a process proves who it is to the NATS servers; the servers decide
/// what each identity may publish and subscribe to.
#[derive(Clone, Default)]
pub enum NatsAuth {
    /// No credentials beyond any user and password in the URL.
    #[default]
    None,
    /// A shared token.
    Token(String),
    /// A creds file (a user JWT and its nkey seed, as `nsc` writes them).
    Creds(PathBuf),
    /// A file holding a user nkey seed (`SU…`, as `tool keygen --nats` writes it).
    Nkey(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::Token(_) => f.write_str("Token(…)"),
            NatsAuth::Creds(path) => write!(f, "Creds({})", path.display()),
            NatsAuth::Nkey(path) => write!(f, "Nkey({})", path.display()),
        }
    }
}

/// TLS settings for NATS connections.
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    /// A PEM file of CA certificates to trust (a private CA); implies TLS.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key, PEM, for servers that verify clients.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A NATS failure.
#[derive(Debug, thiserror::Error)]
#[error("NATS: {0}")]
pub struct MeshError(pub String);

impl NatsConfig {
    /// Connects; reconnects by itself afterwards. The server's permission
    /// refusals on the connection are kept in the [`Refusals`] returned.
    pub async fn connect(&self) -> Result<(async_nats::Client, Refusals), MeshError> {
        // The first connection must succeed (a wrong URL or credential is
        // an error at start); after it, the client reconnects by itself.
        let mut options = self.options().await?;
        let refusals = Refusals::default();
        let name = self.name.clone();
        let kept = refusals.clone();
        options = options.event_callback(move |event| {
            let (name, refusals) = (name.clone(), kept.clone());
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(client = %name, "NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(client = %name, "NATS disconnected; reconnecting")
                    }
                    async_nats::Event::ServerError(async_nats::ServerError::Other(error))
                        if error.to_ascii_lowercase().contains("permissions violation") =>
                    {
                        tracing::warn!(client = %name, "NATS refused: {error}");
                        refusals.record(error);
                    }
                    other => tracing::warn!(client = %name, "NATS: {other}"),
                }
            }
        });
        let servers: Vec<&str> = self.url.split(',').map(str::trim).collect();
        let connect = options.connect(servers.as_slice());
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(client)) => Ok((client, refusals)),
            Ok(Err(e)) => Err(MeshError(format!("cannot connect to {}: {e}", self.shown_url()))),
            Err(_) => Err(MeshError(format!("cannot connect to {} within 10 s", self.shown_url()))),
        }
    }

    /// The server URLs without any password in them, for messages.
    pub fn shown_url(&self) -> String {
        self.url
            .split(',')
            .map(str::trim)
            .map(|url| match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => format!("{}…@{}", &url[..scheme + 3], &url[at + 1..]),
                _ => url.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn options(&self) -> Result<async_nats::ConnectOptions, MeshError> {
        let mut options = async_nats::ConnectOptions::new().name(&self.name);
        options = match &self.auth {
            NatsAuth::None => options,
            NatsAuth::Token(token) => options.token(token.clone()),
            NatsAuth::Creds(path) => options
                .credentials_file(path)
                .await
                .map_err(|e| MeshError(format!("cannot read the creds file {}: {e}", path.display())))?,
            NatsAuth::Nkey(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| MeshError(format!("cannot read the nkey file {}: {e}", path.display())))?;
                let seed = text.trim();
                if !seed.starts_with("SU") {
                    return Err(MeshError(format!("{} does not hold a user nkey seed (SU…)", path.display())));
                }
                options.nkey(seed.to_owned())
            }
        };
        if let Some(ca) = &self.tls.ca {
            if !ca.is_file() {
                return Err(MeshError(format!("the CA file {} does not exist", ca.display())));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls.client {
            options = options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_hide_passwords() {
        let config = NatsConfig { url: "nats://u:secret@a:4222, tls://b:4222".into(), ..NatsConfig::default() };
        assert_eq!(config.shown_url(), "nats://…@a:4222,tls://b:4222");
    }
}
