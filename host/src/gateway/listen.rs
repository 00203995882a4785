//! Telling clients what changed: `subscriptions/listen` streams
//! (2026-07-28) and legacy sessions (`resources/subscribe`).
//!
//! - The lists (tools, prompts, resources) change when the catalog does:
//!   every stream that asked and every legacy session is told.
//! - A subscribed resource is updated when a call of its package reports
//!   it ([`super::updates`]) or when its package is published again under
//!   another digest (its documentation and contents may differ).
//!
//! Only URIs the catalog serves can be subscribed to, at most
//! [`MAX_SUBSCRIBED`] per stream or session.

use super::Gateway;
use super::offers::{Offers, Target};
use rmcp::model::{ServerCapabilities, SubscriptionFilter};
use rmcp::service::{NotificationContext, Peer, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use toolmesh_registry::digest::Digest;

/// Resources one stream or session may subscribe to.
pub const MAX_SUBSCRIBED: usize = 256;

/// How often a legacy session's watcher checks that its session is still
/// open while nothing happens.
const STILL_OPEN_EVERY: Duration = Duration::from_secs(30);

/// Longest URI a session may subscribe to, in bytes.
const MAX_URI: usize = 4096;

/// What the legacy sessions subscribed to, by session: each URI with the
/// digest of the package serving it when last seen; and which sessions
/// have their watcher.
#[derive(Debug, Default)]
pub(crate) struct LegacySubscriptions(
    Mutex<HashMap<String, HashMap<String, Digest>>>,
    /// Sessions with a watcher running.
    Mutex<std::collections::HashSet<String>>,
);

impl LegacySubscriptions {
    /// Whether session `session` has its watcher.
    fn watching(&self, session: &str) -> bool {
        self.1.lock().unwrap_or_else(|e| e.into_inner()).contains(session)
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, HashMap<String, Digest>>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn contains(&self, session: &str, uri: &str) -> bool {
        self.with(|all| all.get(session).is_some_and(|uris| uris.contains_key(uri)))
    }

    /// The URIs of `session` whose package `offers` now serves under
    /// another digest; their digests are brought up to date.
    fn republished(&self, session: &str, offers: &Offers) -> Vec<String> {
        self.with(|all| {
            let Some(uris) = all.get_mut(session) else { return Vec::new() };
            let now = owners(offers, uris.keys());
            let again = republished(uris, &now);
            for uri in &again {
                uris.insert(uri.clone(), now[uri]);
            }
            again
        })
    }
}

/// The session a request or notification belongs to: its `Mcp-Session-Id`,
/// or the one stdio session.
fn session_of(extensions: &rmcp::model::Extensions) -> String {
    extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-session-id"))
        .and_then(|id| id.to_str().ok())
        .unwrap_or("stdio")
        .to_owned()
}

/// The digest of the package serving each of `uris`, as `offers` has it.
fn owners<'a>(offers: &Offers, uris: impl IntoIterator<Item = &'a String>) -> HashMap<String, Digest> {
    uris.into_iter()
        .filter_map(|uri| match offers.resolve(uri)? {
            Target::Docs(package) | Target::Resource { package, .. } => Some((uri.clone(), package.digest)),
        })
        .collect()
}

/// The URIs among `before`'s whose package now has another digest.
fn republished(before: &HashMap<String, Digest>, now: &HashMap<String, Digest>) -> Vec<String> {
    let mut changed: Vec<String> = now
        .iter()
        .filter(|(uri, digest)| before.get(*uri).is_some_and(|old| old != *digest))
        .map(|(u, _)| u.clone())
        .collect();
    changed.sort();
    changed
}

impl Gateway {
    /// What a `subscriptions/listen` request gets of what it asked: the
    /// notifications the gateway sends, and the URIs it serves (at most
    /// [`MAX_SUBSCRIBED`]).
    pub(crate) fn accepted_filter(
        &self,
        requested: &SubscriptionFilter,
        capabilities: &ServerCapabilities,
    ) -> SubscriptionFilter {
        let mut accepted = requested.supported_by(capabilities);
        let catalog = self.catalog();
        accepted.resource_subscriptions = accepted
            .resource_subscriptions
            .map(|uris| {
                let mut kept = BTreeSet::new();
                // A flood of URIs is looked at only so far.
                for uri in uris.into_iter().take(4 * MAX_SUBSCRIBED) {
                    if kept.len() < MAX_SUBSCRIBED && catalog.offers().resolve(&uri).is_some() {
                        kept.insert(uri);
                    }
                }
                kept.into_iter().collect::<Vec<_>>()
            })
            .filter(|uris| !uris.is_empty());
        accepted
    }

    /// Serves one `subscriptions/listen` stream until the client ends it.
    pub(crate) async fn serve_listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.subscribe();
        let mut updates = self.resource_updates().subscribe();
        let accepted = context.accepted().clone();
        let wants = |flag: Option<bool>| flag == Some(true);
        let (tools, prompts, resources) = (
            wants(accepted.tools_list_changed),
            wants(accepted.prompts_list_changed),
            wants(accepted.resources_list_changed),
        );
        // Told only of what the caller may read (the filter was accepted
        // before the caller was known).
        let caller = super::mcp::caller_of(context.request_context());
        let subscribed: BTreeSet<String> = accepted
            .resource_subscriptions
            .unwrap_or_default()
            .into_iter()
            .filter(|uri| self.may_read(&caller, uri))
            .collect();
        let mut packages = owners(self.catalog().offers(), &subscribed);
        loop {
            let sink = context.sink();
            let sent = tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let now = owners(self.catalog().offers(), &subscribed);
                    let again = republished(&packages, &now);
                    packages = now;
                    async {
                        if tools {
                            sink.notify_tool_list_changed().await?;
                        }
                        if prompts {
                            sink.notify_prompt_list_changed().await?;
                        }
                        if resources {
                            sink.notify_resource_list_changed().await?;
                        }
                        for uri in again {
                            sink.notify_resource_updated(uri).await?;
                        }
                        Ok::<(), rmcp::service::SubscriptionSendError>(())
                    }
                    .await
                }
                update = updates.recv() => match update {
                    Ok(uri) if subscribed.contains(&uri) => sink.notify_resource_updated(uri).await,
                    Ok(_) => Ok(()),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a listen stream fell behind the resource updates");
                        Ok(())
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            };
            if sent.is_err() {
                return Ok(());
            }
        }
    }

    /// Tells a legacy session of list changes and of updates to the
    /// resources it subscribed to, until it goes away.
    pub(crate) fn watch_legacy_session(&self, context: NotificationContext<RoleServer>) {
        let session = session_of(&context.extensions);
        if !self.inner.legacy.watching(&session) {
            self.watch_session(session, context.peer.clone());
        }
    }

    /// Starts the one watcher of legacy session `session`.
    fn watch_session(&self, session: String, peer: Peer<RoleServer>) {
        self.inner.legacy.1.lock().unwrap_or_else(|e| e.into_inner()).insert(session.clone());
        let gateway = self.clone();
        tokio::spawn(async move {
            gateway.legacy_session_loop(&session, &peer).await;
            gateway.inner.legacy.with(|all| all.remove(&session));
            gateway.inner.legacy.1.lock().unwrap_or_else(|e| e.into_inner()).remove(&session);
        });
    }

    async fn legacy_session_loop(&self, session: &str, peer: &Peer<RoleServer>) {
        let mut changes = self.subscribe();
        let mut updates = self.resource_updates().subscribe();
        let mut tick = tokio::time::interval(STILL_OPEN_EVERY);
        loop {
            let sent = tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let again = self.inner.legacy.republished(session, self.catalog().offers());
                    async {
                        peer.notify_tool_list_changed().await?;
                        peer.notify_prompt_list_changed().await?;
                        peer.notify_resource_list_changed().await?;
                        for uri in again {
                            peer.notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri)).await?;
                        }
                        Ok::<(), rmcp::service::ServiceError>(())
                    }
                    .await
                }
                update = updates.recv() => match update {
                    Ok(uri) if self.inner.legacy.contains(session, &uri) => {
                        peer.notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri)).await
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => Ok(()),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if peer.is_transport_closed() {
                        return;
                    }
                    Ok(())
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    /// Whether `caller` may read the resource at `uri` (so hear of it).
    fn may_read(&self, caller: &crate::auth::Caller, uri: &str) -> bool {
        match self.catalog().offers().resolve(uri) {
            Some(Target::Docs(package)) => self.package_visible(caller, &package),
            Some(Target::Resource { name, .. }) => caller.may_call(&name),
            None => false,
        }
    }

    /// `resources/subscribe` of a legacy session, whose watcher starts
    /// here if `initialized` did not start it.
    pub(crate) fn legacy_subscribe(
        &self,
        uri: String,
        context: &rmcp::service::RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = super::mcp::caller_of(context);
        let digest = match self.catalog().offers().resolve(&uri) {
            Some(Target::Docs(package) | Target::Resource { package, .. })
                if uri.len() <= MAX_URI && self.may_read(&caller, &uri) =>
            {
                package.digest
            }
            _ => {
                return Err(McpError::invalid_params(format!("Resource not found: {uri}"), Some(json!({"uri": uri}))));
            }
        };
        let extensions = &context.extensions;
        if !self.inner.legacy.watching(&session_of(extensions)) {
            self.watch_session(session_of(extensions), context.peer.clone());
        }
        let session = session_of(extensions);
        self.inner.legacy.with(|all| {
            let uris = all.entry(session).or_default();
            if uris.len() >= MAX_SUBSCRIBED && !uris.contains_key(&uri) {
                return Err(McpError::invalid_params(
                    format!("a session may subscribe to at most {MAX_SUBSCRIBED} resources"),
                    None,
                ));
            }
            uris.insert(uri, digest);
            Ok(())
        })
    }

    /// `resources/unsubscribe` of a legacy session.
    pub(crate) fn legacy_unsubscribe(&self, uri: &str, extensions: &rmcp::model::Extensions) {
        let session = session_of(extensions);
        self.inner.legacy.with(|all| {
            if let Some(uris) = all.get_mut(&session) {
                uris.remove(uri);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_digest_updates_the_subscribed_uris_of_its_package() {
        let (a, b) = (Digest::of(b"one"), Digest::of(b"two"));
        let before = HashMap::from([("x://1".to_owned(), a), ("y://1".to_owned(), a), ("z://1".to_owned(), b)]);
        let now = HashMap::from([("x://1".to_owned(), b), ("y://1".to_owned(), b), ("z://1".to_owned(), b)]);
        assert_eq!(republished(&before, &now), ["x://1", "y://1"]);
        let gone = HashMap::from([("z://1".to_owned(), b)]);
        assert!(republished(&before, &gone).is_empty(), "a package yanked is a list change, not an update");
    }
}
