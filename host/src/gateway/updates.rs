//! Resource updates: which of the catalog's resources changed, as the
//! calls of their packages report it (on this gateway or, on a mesh, any
//! other), handed to the listen streams and legacy sessions subscribed to
//! them.
//!
//! A package reports its own URIs; the gateway turns each into the URI it
//! serves (`toolmesh://<repository>/<uri>`) and passes it on only when the
//! package offers it (a fixed resource, or a match of one of its
//! templates), so no package can announce another's. On a mesh each
//! gateway publishes what its calls report on [`SUBJECT`] and relays what
//! the others publish to its own subscribers.

use super::Gateway;
use crate::capability::resource_updates::UpdateSink;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Where the gateways of a mesh tell each other of changed resources.
pub const SUBJECT: &str = "toolmesh.v1.updated";

/// Updates a subscriber may fall behind by before it misses some.
const BACKLOG: usize = 1024;

/// What one gateway tells the others.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Announcement {
    /// The gateway it comes from (which skips its own).
    gateway: String,
    /// The changed resource, as the gateways serve it.
    uri: String,
}

/// The hub every changed resource passes through.
#[derive(Debug)]
pub struct ResourceUpdates {
    local: broadcast::Sender<String>,
    mesh: Option<(async_nats::Client, String)>,
}

impl ResourceUpdates {
    /// A hub for one gateway alone.
    pub fn local() -> Self {
        ResourceUpdates { local: broadcast::Sender::new(BACKLOG), mesh: None }
    }

    /// A hub shared with the mesh's other gateways through `client`; this
    /// gateway is `gateway` among them. Without permission for [`SUBJECT`]
    /// it stays local and says so.
    pub async fn shared(client: &async_nats::Client, gateway: &str) -> Self {
        let hub = ResourceUpdates { local: broadcast::Sender::new(BACKLOG), mesh: None };
        let mut heard = match client.subscribe(SUBJECT).await {
            Ok(heard) => heard,
            Err(e) => {
                tracing::warn!(error = %e, "resource updates stay on this gateway");
                return hub;
            }
        };
        let (local, me) = (hub.local.clone(), gateway.to_owned());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(message) = heard.next().await {
                match serde_json::from_slice::<Announcement>(&message.payload) {
                    // Served URIs are the package's (≤ 2048 bytes) under a prefix.
                    Ok(told) if told.gateway != me && told.uri.len() <= 4096 => {
                        let _ = local.send(told.uri);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "malformed resource update ignored"),
                }
            }
        });
        ResourceUpdates { mesh: Some((client.clone(), gateway.to_owned())), ..hub }
    }

    /// Tells every subscriber, here and on the mesh, that `uri` (as the
    /// gateway serves it) changed.
    pub fn announce(&self, uri: String) {
        if let Some((client, gateway)) = &self.mesh {
            let told = Announcement { gateway: gateway.clone(), uri: uri.clone() };
            let (client, payload) = (client.clone(), serde_json::to_vec(&told).unwrap_or_default());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = client.publish(SUBJECT, payload.into()).await {
                        tracing::debug!(error = %e, "cannot tell the mesh of a resource update");
                    }
                });
            }
        }
        let _ = self.local.send(uri);
    }

    /// Every URI announced from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.local.subscribe()
    }
}

impl Gateway {
    /// Announces changed resources through `updates` from now on.
    pub fn set_resource_updates(&self, updates: ResourceUpdates) {
        *self.inner.updates.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(updates);
    }

    /// The hub of changed resources.
    pub fn resource_updates(&self) -> Arc<ResourceUpdates> {
        self.inner.updates.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What hears the resources a call of `repository`'s package reports
    /// changed: each one its package offers is announced under the URI
    /// the gateway serves; others are dropped.
    pub(crate) fn update_sink(&self, repository: &str) -> UpdateSink {
        let (gateway, repository) = (self.clone(), repository.to_owned());
        let announce: UpdateSink = Arc::new(move |declared: String| match gateway.served_uri(&repository, &declared) {
            Some(uri) => gateway.resource_updates().announce(uri),
            None => tracing::debug!(%repository, uri = %declared, "update of a resource the package does not offer"),
        });
        // What a node sends is held to the bound a call has: each URI once,
        // at most 32, however many messages come.
        let reported = std::sync::Mutex::new(crate::capability::resource_updates::Reported::new(Some(announce)));
        Arc::new(move |uri: String| {
            reported.lock().unwrap_or_else(|e| e.into_inner()).report(uri);
        })
    }

    /// The URI under which the gateway serves `declared` of `repository`'s
    /// package, if the package offers it.
    fn served_uri(&self, repository: &str, declared: &str) -> Option<String> {
        let catalog = self.catalog();
        let package = catalog.offers().package(repository)?;
        let uri = package.uri(declared);
        match catalog.offers().resolve(&uri)? {
            super::offers::Target::Resource { package: owner, .. } if owner.repository == package.repository => {
                Some(uri)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn announcements_reach_every_subscriber() {
        let hub = ResourceUpdates::local();
        let (mut a, mut b) = (hub.subscribe(), hub.subscribe());
        hub.announce("toolmesh://demo/notes/notes://all".into());
        assert_eq!(a.recv().await.unwrap(), "toolmesh://demo/notes/notes://all");
        assert_eq!(b.recv().await.unwrap(), "toolmesh://demo/notes/notes://all");
    }

    #[test]
    fn announcements_are_small_and_strict() {
        let told = Announcement { gateway: "g1".into(), uri: "test://x".into() };
        let text = serde_json::to_string(&told).unwrap();
        assert_eq!(text, r#"{"gateway":"g1","uri":"test://x"}"#);
        assert!(serde_json::from_str::<Announcement>(r#"{"gateway":"g","uri":"a://b","more":1}"#).is_err());
    }
}
