//! The gateway side: a live table of nodes from their adverts, and an
//! [`Invoker`] that places each call ([`placement::place`]), sends it to the
//! chosen node, relays its progress, and fails over when the node goes
//! silent: a read-only or idempotent call is tried on another node (with
//! the next attempt number, so a late answer from the lost one is dropped),
//! any other call ends with an error saying the node was lost.

use super::parts::{self, Assembler, MAX_VALUE};
use super::{LOST_AFTER, MeshError, subjects};
use crate::capability::tools::CallError;
use crate::gateway::placement::{self, CallNeeds, NoPlacement, NodeView};
use crate::gateway::{Invocation, InvokeCause, InvokeError, InvokeFuture, Invoker};
use crate::metrics::{Counting, GatewayMetrics, NodeLabels, ReasonLabel};
use crate::node::wire::{
    self, Advert, CallMessage, CancelMessage, NodeMessage, OLDEST_WIRE_VERSION, ToolsAnswer, ToolsOp, ToolsOutcome,
};
use crate::sandbox::{CallOutput, Content, Progress};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a gateway waits for room on a fitting node before "no capacity".
pub const CAPACITY_WAIT: Duration = Duration::from_secs(5);

/// Tries of one call (the first and the retries after lost nodes).
pub const MAX_ATTEMPTS: u32 = 3;

/// How long a node that lost a call is left out of placement.
pub const BREAKER_OPEN: Duration = Duration::from_secs(10);

fn metrics() -> &'static GatewayMetrics {
    &crate::metrics::global().gateway
}

/// What the gateway knows of one node.
struct Known {
    advert: Advert,
    expires: Instant,
    /// Calls this gateway sent it that have not ended.
    sent: u32,
    /// Calls of this gateway it was running at its last advert (which
    /// counts them), and how many of ours ended since.
    ours_at_advert: u32,
    ended_since_advert: u32,
    /// Left out of placement until then.
    broken_until: Option<Instant>,
}

/// The live node table, and a signal of changes to its nodes' bridged
/// servers.
struct Table(Mutex<HashMap<String, Known>>, tokio::sync::watch::Sender<u64>);

impl Default for Table {
    fn default() -> Self {
        Table(Mutex::default(), tokio::sync::watch::Sender::new(0))
    }
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells followers that some node's bridged servers changed.
    fn bridges_changed(&self) {
        self.1.send_modify(|v| *v += 1);
    }

    /// The bridged servers of the live nodes.
    /// By node id, so which of two nodes of one name keeps its tools'
    /// names does not change from one rebuild to the next.
    fn bridged(&self) -> Vec<crate::gateway::BridgedNode> {
        let now = Instant::now();
        let mut nodes: Vec<_> = self
            .lock()
            .values()
            .filter(|k| k.expires > now && !k.advert.bridges.is_empty())
            .map(|k| crate::gateway::BridgedNode {
                id: k.advert.id.clone(),
                name: k.advert.name.clone(),
                servers: k.advert.bridges.clone(),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    fn update(&self, advert: Advert) {
        if !subjects::is_valid_id(&advert.id) {
            return;
        }
        let expires = Instant::now() + Duration::from_millis(advert.ttl_ms.min(60_000));
        let mut nodes = self.lock();
        let changed = match nodes.get(&advert.id) {
            Some(known) => known.advert.bridges != advert.bridges,
            None => !advert.bridges.is_empty(),
        };
        match nodes.get_mut(&advert.id) {
            Some(known) => {
                known.advert = advert;
                known.expires = expires;
                known.ours_at_advert = known.sent;
                known.ended_since_advert = 0;
            }
            None => {
                tracing::info!(node = %advert.id, name = %advert.name, "node joined");
                nodes.insert(
                    advert.id.clone(),
                    Known { advert, expires, sent: 0, ours_at_advert: 0, ended_since_advert: 0, broken_until: None },
                );
                metrics().nodes.set(nodes.len() as i64);
            }
        }
        drop(nodes);
        if changed {
            self.bridges_changed();
        }
    }

    /// Placement's view of the live nodes for a call of `digest`.
    fn views(&self, digest: &str) -> Vec<NodeView> {
        let now = Instant::now();
        let mut nodes = self.lock();
        self.drop_expired(&mut nodes, now);
        nodes
            .values()
            .map(|k| NodeView {
                id: k.advert.id.clone(),
                grants: k.advert.grants.clone(),
                gpus: k.advert.gpus.len(),
                slots: k.advert.slots,
                // The advert's count is up to a second old: less the calls
                // of ours it counted that ended since, and never below ours
                // running now.
                in_flight: k.advert.in_flight.saturating_sub(k.ended_since_advert.min(k.ours_at_advert)).max(k.sent),
                has_compiled: k.advert.compiled.iter().any(|d| d == digest),
                breaker_open: k.broken_until.is_some_and(|until| until > now),
            })
            .collect()
    }

    /// Forgets the nodes whose adverts expired.
    fn expire(&self) {
        self.drop_expired(&mut self.lock(), Instant::now());
    }

    /// Drops the nodes of `nodes` whose adverts expired before `now`.
    fn drop_expired(&self, nodes: &mut HashMap<String, Known>, now: Instant) {
        let mut bridges_gone = false;
        nodes.retain(|id, known| {
            let alive = known.expires > now;
            if !alive {
                bridges_gone |= !known.advert.bridges.is_empty();
                tracing::info!(node = %id, "node left (advert expired)");
                for outcome in ["ok", "failed", "lost"] {
                    metrics().node_attempts.remove(&NodeLabels { node: id.clone(), outcome: outcome.into() });
                }
            }
            alive
        });
        metrics().nodes.set(nodes.len() as i64);
        if bridges_gone {
            self.bridges_changed();
        }
    }

    fn sent(&self, id: &str, delta: i32) {
        if let Some(known) = self.lock().get_mut(id) {
            known.sent = known.sent.saturating_add_signed(delta);
            if delta < 0 {
                known.ended_since_advert += 1;
            }
        }
    }

    /// Whether node `id` is in the table and its advert current.
    fn is_alive(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|known| known.expires > Instant::now())
    }

    /// The wire version to write to node `id` (the oldest if it is gone).
    fn version_for(&self, id: &str) -> u32 {
        self.lock().get(id).map_or(OLDEST_WIRE_VERSION, |known| wire::version_for(known.advert.v))
    }

    fn broke(&self, id: &str) {
        if let Some(known) = self.lock().get_mut(id) {
            known.broken_until = Some(Instant::now() + BREAKER_OPEN);
        }
    }
}

/// Runs calls on the nodes of a NATS mesh.
#[derive(Clone)]
pub struct MeshInvoker {
    client: async_nats::Client,
    table: Arc<Table>,
}

/// Counts a call against its node in the table until dropped (however
/// the call ends, cancellation included).
struct Sent<'a> {
    table: &'a Table,
    node: String,
}

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        self.table.sent(&self.node, -1);
    }
}

impl MeshInvoker {
    /// Starts following the nodes' adverts on `client`.
    pub async fn start(client: async_nats::Client) -> Result<Self, MeshError> {
        let mut adverts = client.subscribe(subjects::ADVERTS).await.map_err(|e| MeshError(e.to_string()))?;
        let table = Arc::new(Table::default());
        let follower = Arc::downgrade(&table);
        tokio::spawn(async move {
            // Nodes that stopped advertising leave the table (and their
            // bridged tools the catalog) within a second of expiring.
            let mut sweep = tokio::time::interval(Duration::from_secs(1));
            loop {
                let message = tokio::select! {
                    message = adverts.next() => match message {
                        Some(message) => message,
                        None => return,
                    },
                    _ = sweep.tick() => {
                        let Some(table) = follower.upgrade() else { return };
                        table.expire();
                        continue;
                    }
                };
                let Some(table) = follower.upgrade() else { return };
                match wire::decode::<Advert>("advert", &message.payload) {
                    // A node may only speak for itself.
                    Ok(advert) if message.subject.as_str() == subjects::advert(&advert.id) => table.update(advert),
                    Ok(advert) => {
                        tracing::warn!(subject = %message.subject, node = %advert.id, "advert on another node's subject; ignored")
                    }
                    Err(e) => tracing::warn!(subject = %message.subject, error = %e, "unreadable advert; ignored"),
                }
            }
        });
        Ok(MeshInvoker { client, table })
    }

    /// The nodes it knows now, as placement sees them (for listings).
    pub fn nodes(&self) -> Vec<NodeView> {
        self.table.views("")
    }

    /// The bridged MCP servers of the live nodes.
    pub fn bridged(&self) -> Vec<crate::gateway::BridgedNode> {
        self.table.bridged()
    }

    /// A receiver that sees every change of [`MeshInvoker::bridged`].
    pub fn subscribe_bridged(&self) -> tokio::sync::watch::Receiver<u64> {
        self.table.1.subscribe()
    }

    /// The node for the next attempt, waiting a bounded time for room.
    async fn place(&self, call: &Invocation, tried: &[String]) -> Result<String, InvokeCause> {
        let digest = call.digest.to_string();
        let until = Instant::now() + CAPACITY_WAIT;
        let mut waiting = None;
        loop {
            let views = self.table.views(&digest);
            match placement::place(&views, CallNeeds { request: &call.request, tried }) {
                Ok(ranked) => return Ok(ranked[0].id.clone()),
                Err(NoPlacement::NoCapacity { .. }) if Instant::now() < until => {
                    waiting.get_or_insert_with(|| Counting::start(&metrics().waiting));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Just started: adverts arrive within a second.
                Err(NoPlacement::NoFit(_)) if views.is_empty() && Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(InvokeCause::Placement(e.to_string())),
            }
        }
    }

    async fn run(&self, call: Invocation) -> Result<CallOutput, InvokeError> {
        let error = |cause| InvokeError::new(call.digest, call.tool.clone(), cause);
        let mut tried = Vec::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let node = match (call.session.as_ref().and_then(|s| s.home.clone()), &call.bridge) {
                // A bridged server's calls go to the node bridging it, or nowhere.
                (_, Some(bridge)) if self.table.is_alive(&bridge.node) && !tried.contains(&bridge.node) => {
                    bridge.node.clone()
                }
                (_, Some(bridge)) => {
                    return Err(error(InvokeCause::Placement(format!(
                        "the node bridging the MCP server `{}` ({}) is not reachable: its adverts stopped or it was lost; no other node runs this server",
                        bridge.server, bridge.node
                    ))));
                }
                // A session's calls go to the node holding it, or nowhere.
                (Some(home), None) if self.table.is_alive(&home) => home,
                (Some(home), None) => {
                    return Err(error(InvokeCause::Lost(format!(
                        "session lost: the node holding it ({home}) is gone, and its state with it; start a new session"
                    ))));
                }
                (None, None) => self.place(&call, &tried).await.map_err(error)?,
            };
            if let Some(session) = &call.session {
                session.ran_on(&node);
            }
            self.table.sent(&node, 1);
            let sent = Sent { table: &self.table, node: node.clone() };
            let outcome = self.attempt(&call, &node, attempt).await;
            drop(sent);
            let ended = match &outcome {
                Ok(_) => "ok",
                Err(Attempt::Lost(_)) => "lost",
                Err(Attempt::Failed(_)) => "failed",
            };
            metrics().node_attempts.get_or_create(&NodeLabels { node: node.clone(), outcome: ended.into() }).inc();
            match outcome {
                Ok(output) => return Ok(output),
                Err(Attempt::Lost(why)) => {
                    tracing::warn!(call = %call.call_id, node = %node, attempt, "node lost: {why}");
                    // Silence while this gateway itself is cut off says nothing of the node.
                    if self.client.connection_state() == async_nats::connection::State::Connected {
                        self.table.broke(&node);
                    }
                    tried.push(node.clone());
                    if call.may_retry() && attempt < MAX_ATTEMPTS {
                        metrics().retries.get_or_create(&ReasonLabel { reason: "lost".into() }).inc();
                    }
                    if call.session.is_some() {
                        return Err(error(InvokeCause::Lost(format!(
                            "session lost: the node holding it ({node}) was lost ({why}), and its state with it; start a new session"
                        ))));
                    }
                    if call.effects.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err(error(InvokeCause::Lost(format!(
                            "the node running the call ({node}) was lost ({why}); not retried, since its code called a tool that is neither read-only nor idempotent"
                        ))));
                    }
                    if !call.retry_safe {
                        return Err(error(InvokeCause::Lost(format!(
                            "the node running the call ({node}) was lost ({why}); not retried, since the tool is neither read-only nor idempotent"
                        ))));
                    }
                }
                Err(Attempt::Failed(cause @ InvokeCause::Remote { retryable: true, .. })) if attempt < MAX_ATTEMPTS => {
                    tracing::info!(call = %call.call_id, node = %node, "refused by the node ({cause}); trying another");
                    metrics().retries.get_or_create(&ReasonLabel { reason: "refused".into() }).inc();
                    tried.push(node.clone());
                }
                Err(Attempt::Failed(cause)) => return Err(error(cause)),
            }
        }
        Err(error(InvokeCause::Lost(format!("the call's node was lost on each of {MAX_ATTEMPTS} attempts"))))
    }

    /// One try of `call` on `node`.
    async fn attempt(&self, call: &Invocation, node: &str, attempt: u32) -> Result<CallOutput, Attempt> {
        let lost = |why: &str| Attempt::Lost(why.to_owned());
        let inbox = self.client.new_inbox();
        let mut answers = self.client.subscribe(inbox.clone()).await.map_err(|e| lost(&e.to_string()))?;
        let call_id = call.call_id.clone();
        // Stops the call on the node if this future is dropped first, or
        // if the node goes silent (it may yet be alive).
        let mut cancel = CancelOnDrop {
            client: self.client.clone(),
            node: node.to_owned(),
            call_id: call_id.clone(),
            attempt,
            armed: true,
        };
        // A node speaking an older version is written to in it, without
        // the fields it would refuse.
        let v = self.table.version_for(node);
        if call.session.is_some() && v < 3 {
            cancel.armed = false;
            return Err(Attempt::Failed(InvokeCause::Remote {
                kind: "not_granted".into(),
                message: format!("node {node} is too old to hold sessions (wire version {v})"),
                tool_failure: false,
                retryable: true,
            }));
        }
        let message = CallMessage {
            v,
            call_id,
            attempt,
            repository: call.repository.to_string(),
            digest: call.digest.to_string(),
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            progress: call.progress.is_some(),
            caller: if v >= 2 { call.caller.clone() } else { None },
            tools: v >= 3 && call.tools.is_some(),
            session: call.session.as_ref().map(|s| wire::WireSession { key: s.key.clone(), resume: s.resume }),
            ask: call
                .ask
                .as_ref()
                .filter(|_| v >= 4)
                .map(|ask| wire::WireAsk { abilities: ask.abilities(), answers: ask.answers().clone() }),
            bridge: call.bridge.as_ref().map(|b| b.server.clone()),
        };
        let bytes = wire::encode(&message);
        if bytes.len() > MAX_VALUE {
            cancel.armed = false;
            return Err(Attempt::Failed(InvokeCause::Remote {
                kind: "too_large".into(),
                message: format!("the call is {} bytes, over the mesh's limit of {MAX_VALUE}", bytes.len()),
                tool_failure: false,
                retryable: false,
            }));
        }
        parts::publish(&self.client, subjects::call(node), Some(inbox.to_string()), bytes)
            .await
            .map_err(|e| lost(&e.to_string()))?;
        let mut assembler = Assembler::new(MAX_VALUE);
        // The answers to the code's calls to other tools: stopped with the attempt.
        let mut asked = tokio::task::JoinSet::new();
        loop {
            let next = tokio::time::timeout(LOST_AFTER, answers.next()).await;
            let Ok(Some(message)) = next else {
                return Err(lost(&format!("no word from it for {} s", LOST_AFTER.as_secs())));
            };
            let payload = match assembler.accept("", &message) {
                Ok(Some(whole)) => whole,
                Ok(None) => continue,
                Err(e) => {
                    return Err(Attempt::Failed(InvokeCause::Remote {
                        kind: "invalid_output".into(),
                        message: format!("the node's answer could not be read: {e}"),
                        tool_failure: false,
                        retryable: false,
                    }));
                }
            };
            let answer = match wire::decode::<NodeMessage>("answer", &payload) {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::warn!(node, error = %e, "unreadable answer; ignored");
                    continue;
                }
            };
            match answer {
                NodeMessage::Accepted { attempt: a, .. } | NodeMessage::KeepAlive { attempt: a, .. }
                    if a == attempt => {}
                NodeMessage::Tools { attempt: a, request, op, v, .. } if a == attempt => {
                    while asked.try_join_next().is_some() {}
                    let (client, subject) =
                        (self.client.clone(), subjects::tools(node, &call.call_id, attempt, request));
                    let (tools, call_id) = (call.tools.clone(), call.call_id.clone());
                    asked.spawn(async move {
                        let outcome = match tools {
                            None => Err(CallError::NotGranted("this call may not call tools".into())),
                            Some(tools) => match op {
                                ToolsOp::Call { name, arguments } => tools.call(name, arguments).await,
                                ToolsOp::Describe { query } => tools.describe(query).await,
                            },
                        };
                        let outcome = match outcome {
                            Ok(text) => ToolsOutcome::Ok(text),
                            Err(e) => ToolsOutcome::Error(e),
                        };
                        let answer = ToolsAnswer { v, call_id, attempt, request, outcome };
                        if let Err(e) = parts::publish(&client, subject, None, wire::encode(&answer)).await {
                            tracing::warn!(error = %e, "cannot answer a call from code");
                        }
                    });
                }
                NodeMessage::Progress { attempt: a, done, total, message, .. } if a == attempt => {
                    if let Some(sink) = &call.progress {
                        sink(Progress { done, total, message });
                    }
                }
                NodeMessage::Updated { attempt: a, uri, .. } if a == attempt => {
                    if let Some(sink) = &call.updates {
                        sink(uri);
                    }
                }
                NodeMessage::Result { attempt: a, content, usage, .. } if a == attempt => {
                    cancel.armed = false;
                    if let Some(usage) = usage {
                        usage.add_to(&call.meter);
                    }
                    let content: Result<Vec<Content>, _> = content.into_iter().map(Content::try_from).collect();
                    return content.map(CallOutput::unreserved).map_err(|e| {
                        Attempt::Failed(InvokeCause::Remote {
                            kind: "invalid_output".into(),
                            message: e.to_string(),
                            tool_failure: false,
                            retryable: false,
                        })
                    });
                }
                // The inbox is this attempt's alone: an error before the
                // node read the call (attempt 0) is this attempt's too.
                NodeMessage::Error { attempt: a, kind, message, tool_failure, retryable, usage, .. }
                    if a == attempt || a == 0 =>
                {
                    cancel.armed = false;
                    if let Some(usage) = usage {
                        usage.add_to(&call.meter);
                    }
                    return Err(Attempt::Failed(InvokeCause::Remote { kind, message, tool_failure, retryable }));
                }
                _ => {} // an answer to another attempt: dropped
            }
        }
    }
}

/// How one attempt ended without a result.
enum Attempt {
    /// The node went silent.
    Lost(String),
    /// The node answered with an error.
    Failed(InvokeCause),
}

/// Tells the node to stop a call whose caller went away.
struct CancelOnDrop {
    client: async_nats::Client,
    node: String,
    call_id: String,
    attempt: u32,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Every version reads a cancel of the oldest.
        let message =
            CancelMessage { v: OLDEST_WIRE_VERSION, call_id: std::mem::take(&mut self.call_id), attempt: self.attempt };
        let (client, subject) = (self.client.clone(), subjects::cancel(&self.node));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.publish(subject, Bytes::from(wire::encode(&message))).await;
            });
        }
    }
}

impl Invoker for MeshInvoker {
    fn invoke(&self, call: Invocation) -> InvokeFuture<'_> {
        Box::pin(self.run(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Policy;
    use crate::node::wire::WIRE_VERSION;

    fn advert(in_flight: u32) -> Advert {
        Advert {
            v: WIRE_VERSION,
            id: "n1".into(),
            name: "n1".into(),
            labels: Default::default(),
            cores: 2,
            memory_bytes: 1 << 30,
            slots: 2,
            in_flight,
            gpus: Vec::new(),
            grants: Policy::builtin().grants(),
            compiled: Vec::new(),
            bridges: Vec::new(),
            ttl_ms: 3000,
        }
    }

    #[test]
    fn load_counts_calls_that_ended_since_the_last_advert() {
        let table = Table::default();
        table.update(advert(0));
        table.sent("n1", 1);
        table.sent("n1", 1);
        table.update(advert(2));
        assert_eq!(table.views("")[0].in_flight, 2);
        // Both were ours, and they end: the node is free before it says so.
        table.sent("n1", -1);
        assert_eq!(table.views("")[0].in_flight, 1, "one of ours still runs");
        table.sent("n1", -1);
        assert_eq!(table.views("")[0].in_flight, 0);
        // The next advert is believed again.
        table.update(advert(1));
        assert_eq!(table.views("")[0].in_flight, 1);
        // A call of ours that starts and ends between adverts takes nothing
        // off other gateways' calls the advert counted.
        table.sent("n1", 1);
        table.sent("n1", -1);
        assert_eq!(table.views("")[0].in_flight, 1);
    }
}
