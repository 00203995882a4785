//! Where sessions live. A tool whose input schema names a session argument
//! (`"x-toolmesh-session": "session"`, as `run_python` and
//! `run_javascript` do) keeps its instance between the calls that give the
//! same session id; the gateway remembers each session's home (the node
//! holding it) so the session's later calls go there, and says "session
//! lost" when that node is gone rather than open a fresh one.
//!
//! Homes are kept per caller, tool and id in a [`Store`]: this process's
//! memory for `tool serve` and a lone gateway, the NATS JetStream bucket
//! [`SESSIONS_BUCKET`] for gateways sharing a mesh, so any gateway routes
//! any session. Nodes drop a session idle for the TTL; its home is kept
//! twice as long, so a call in between hears "session lost" rather than
//! getting a fresh session. A home is forgotten then, when it is closed,
//! and once a call was told its session was lost. Each opening gets a fresh tag that the node keys
//! the instance with, so a session closed and opened again never finds
//! the old instance's state.

use crate::usage::store::{LocalStore, NatsStore, Store, modify};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use toolmesh_registry::digest::Digest;

/// The JetStream key-value bucket that holds session homes on a mesh.
pub const SESSIONS_BUCKET: &str = "toolmesh_sessions";

/// The input schema keyword naming a tool's session argument.
pub const SESSION_KEYWORD: &str = "x-toolmesh-session";

/// Where one session lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Home {
    /// The id the caller gave it.
    pub id: String,
    /// The tool it belongs to.
    pub tool: String,
    /// The node holding it.
    pub node: String,
    /// Keys its instance on the node (new at each opening).
    pub tag: String,
    /// Closed by its caller: forgotten.
    #[serde(default)]
    pub closed: bool,
}

/// The session homes a gateway knows.
pub struct SessionHomes {
    store: Arc<dyn Store>,
}

/// Whether `id` can name a session: 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn hash(text: &str) -> String {
    Digest::of(text.as_bytes()).hex()[..24].to_owned()
}

fn key(caller: &str, tool: &str, id: &str) -> String {
    format!("s.{}.{}", hash(caller), hash(&format!("{tool}\0{id}")))
}

/// A fresh random tag.
pub fn new_tag() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

impl SessionHomes {
    /// Homes in this process, for sessions that nodes drop `ttl` after
    /// their last use.
    pub fn local(ttl: Duration) -> Self {
        SessionHomes { store: Arc::new(LocalStore::new(Some(ttl * 2))) }
    }

    /// Homes in the mesh's [`SESSIONS_BUCKET`] (made with twice `ttl` as
    /// its age limit if missing), or in this process with a warning when
    /// the server has no JetStream or refuses the bucket.
    pub async fn shared(client: &async_nats::Client, ttl: Duration) -> Self {
        match NatsStore::open(client, SESSIONS_BUCKET, ttl * 2).await {
            Ok(store) => SessionHomes { store: Arc::new(store) },
            Err(e) => {
                tracing::warn!(error = %e, "session homes are kept by this gateway alone: {SESSIONS_BUCKET} cannot be used");
                Self::local(ttl)
            }
        }
    }

    /// The open session `id` of `caller` for `tool`, if there is one.
    pub async fn find(&self, caller: &str, tool: &str, id: &str) -> Result<Option<Home>, String> {
        let found = self.store.get(&key(caller, tool, id)).await.map_err(|e| e.to_string())?;
        Ok(found.and_then(|(value, _)| serde_json::from_value::<Home>(value).ok()).filter(|home| !home.closed))
    }

    /// Records (or refreshes) `home` as `caller`'s.
    pub async fn record(&self, caller: &str, home: &Home) -> Result<(), String> {
        let value = serde_json::to_value(home).map_err(|e| e.to_string())?;
        modify(self.store.as_ref(), &key(caller, &home.tool, &home.id), |_| Ok::<_, String>((value.clone(), ())))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Forgets `caller`'s session `id` of `tool`; the home it had, if open.
    pub async fn close(&self, caller: &str, tool: &str, id: &str) -> Result<Option<Home>, String> {
        let Some(mut home) = self.find(caller, tool, id).await? else { return Ok(None) };
        home.closed = true;
        self.record(caller, &home).await?;
        Ok(Some(home))
    }

    /// `caller`'s open sessions.
    pub async fn list(&self, caller: &str) -> Result<Vec<Home>, String> {
        let found = self.store.scan(&format!("s.{}.", hash(caller))).await.map_err(|e| e.to_string())?;
        let mut homes: Vec<Home> = found
            .into_iter()
            .filter_map(|(_, value): (String, Value)| serde_json::from_value::<Home>(value).ok())
            .filter(|home| !home.closed)
            .collect();
        homes.sort_by(|a, b| (&a.tool, &a.id).cmp(&(&b.tool, &b.id)));
        Ok(homes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(id: &str, node: &str) -> Home {
        Home { id: id.into(), tool: "t.run".into(), node: node.into(), tag: new_tag(), closed: false }
    }

    #[tokio::test]
    async fn homes_are_per_caller_listed_and_closed() {
        let homes = SessionHomes::local(Duration::from_secs(60));
        homes.record("ann", &home("a", "n1")).await.unwrap();
        homes.record("ann", &home("b", "n2")).await.unwrap();
        homes.record("bob", &home("a", "n3")).await.unwrap();
        assert_eq!(homes.find("ann", "t.run", "a").await.unwrap().unwrap().node, "n1");
        assert_eq!(homes.find("bob", "t.run", "a").await.unwrap().unwrap().node, "n3");
        assert!(homes.find("ann", "other", "a").await.unwrap().is_none(), "per tool too");
        let listed: Vec<String> = homes.list("ann").await.unwrap().into_iter().map(|h| h.id).collect();
        assert_eq!(listed, ["a", "b"]);
        assert!(homes.close("ann", "t.run", "a").await.unwrap().is_some());
        assert!(homes.find("ann", "t.run", "a").await.unwrap().is_none());
        assert!(homes.close("ann", "t.run", "a").await.unwrap().is_none());
        assert_eq!(homes.list("ann").await.unwrap().len(), 1);
        assert!(is_valid_id("work-1.a_b") && !is_valid_id("") && !is_valid_id("a b") && !is_valid_id(&"x".repeat(65)));
    }
}
