//! The node side: what `tool node` runs on a NATS connection. It
//! advertises itself every [`ADVERT_EVERY`], takes calls on its own call
//! subject, answers each on the call's reply inbox (accepted, keep-alives,
//! progress, one result or error), stops calls it is told to cancel, and on
//! shutdown stops taking calls and lets running ones finish.
//!
//! Stopping is bounded whatever the state of NATS: running calls get up to
//! the drain timeout (less when NATS is gone: past [`LOST_AFTER`] their
//! gateways have given them up), a second stop request ends the drain at
//! once, and no send waits more than [`SEND_WAIT`] on a connection that
//! may be gone.

use super::asking::Asking;
use super::parts::{self, Assembler, MAX_VALUE, PartError};
use super::subjects;
use super::{ADVERT_EVERY, KEEPALIVE_EVERY, LOST_AFTER, MeshError, Refusals};
use crate::node::wire::{
    self, Advert, CallMessage, CancelMessage, GpuAdapter, NodeMessage, OLDEST_WIRE_VERSION, WIRE_VERSION, WireContent,
    WireUsage,
};
use crate::node::{Invocation, Node};
use crate::sandbox::{Progress, SandboxError};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tracing::Instrument;

/// Progress updates of one call waiting to be sent.
const PROGRESS_QUEUE: usize = 64;

/// The longest the node waits to hand NATS an advert or a refusal, or for
/// the server to confirm the last advert when it stops.
pub const SEND_WAIT: Duration = Duration::from_secs(1);

/// Who the node says it is.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// A unique id (a subject token).
    pub id: String,
    /// A name people chose.
    pub name: String,
    /// Labels for placement and listings.
    pub labels: BTreeMap<String, String>,
    /// Calls it takes at once.
    pub slots: u32,
    /// GPU adapters it offers.
    pub gpus: Vec<GpuAdapter>,
    /// How long it waits for running calls when told to stop.
    pub drain_timeout: Duration,
}

/// Running calls, by (call id, attempt), so a cancel can stop one.
type Running = Arc<Mutex<HashMap<(String, u32), AbortHandle>>>;

/// Serves calls for `node` on `client` until the first message on `stops`,
/// then drains: no new calls, running ones finish, up to the drain timeout
/// (or [`LOST_AFTER`] while NATS is unreachable), or until a second
/// message on `stops`. A closed `stops` never stops the node. Fails at once
/// if the server refuses the node its own subjects (its credentials are
/// for another id), as recorded in `refusals`.
pub async fn serve(
    client: async_nats::Client,
    refusals: Refusals,
    node: Node,
    config: AgentConfig,
    mut stops: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> Result<(), MeshError> {
    let nats = |e: async_nats::SubscribeError| MeshError(e.to_string());
    let mut calls = client.subscribe(subjects::call(&config.id)).await.map_err(nats)?;
    let mut cancels = client.subscribe(subjects::cancel(&config.id)).await.map_err(nats)?;
    let mut tool_answers = client.subscribe(subjects::tools_answers(&config.id)).await.map_err(nats)?;
    // Asked to stop while starting: never offer to take calls.
    if stops.try_recv().is_ok() {
        return Ok(());
    }
    advertise(&client, &node, &config, 0, config.slots).await;
    let who = format!("node id {}", config.id);
    tokio::select! {
        confirmed = refusals.confirm(&client, &who) => confirmed?,
        Some(()) = stops.recv() => {
            advertise(&client, &node, &config, 0, 0).await;
            return Ok(());
        }
    }
    let in_flight = Arc::new(AtomicU32::new(0));
    let running: Running = Arc::default();
    let asking = Asking::default();
    let mut assembler = Assembler::new(MAX_VALUE);
    let mut answers_assembler = Assembler::new(MAX_VALUE);
    // The first advert went out above; the next after the usual interval.
    let mut adverts = tokio::time::interval_at(tokio::time::Instant::now() + ADVERT_EVERY, ADVERT_EVERY);
    tracing::info!(node = %config.id, name = %config.name, "serving calls");
    loop {
        tokio::select! {
            // In this order: adverts never starve under a flood of calls,
            // and a call is taken before a cancel that arrived after it.
            biased;
            Some(()) = stops.recv() => break,
            _ = adverts.tick() => advertise(&client, &node, &config, in_flight.load(Ordering::Relaxed), config.slots).await,
            message = calls.next() => match message {
                Some(message) => {
                    if let Some((reply, payload)) = whole(&client, &mut assembler, message) {
                        take(&client, &node, &config, reply, payload, &in_flight, (&running, &asking));
                    }
                }
                None => return Err(MeshError("the call subscription ended".into())),
            },
            Some(message) = cancels.next() => cancel(&message, &running),
            Some(message) = tool_answers.next() => asking.deliver(&mut answers_assembler, message),
        }
    }
    // Drain: no new calls (each is refused as retryable, so the gateway
    // places it elsewhere at once), adverts with no room, cancels still
    // honoured, until what runs has finished or the drain time is up.
    let started = tokio::time::Instant::now();
    let mut disconnected_since = None;
    tracing::info!(running = in_flight.load(Ordering::Relaxed), timeout = ?config.drain_timeout, "draining");
    let drained_by = tokio::time::sleep(config.drain_timeout);
    tokio::pin!(drained_by);
    let mut check = tokio::time::interval(Duration::from_millis(50));
    while in_flight.load(Ordering::Relaxed) > 0 {
        tokio::select! {
            biased;
            _ = &mut drained_by => {
                tracing::warn!(running = in_flight.load(Ordering::Relaxed), "the drain time is up: stopping the calls still running");
                break;
            }
            Some(()) = stops.recv() => {
                tracing::warn!(running = in_flight.load(Ordering::Relaxed), "asked again: stopping at once");
                break;
            }
            _ = adverts.tick() => advertise(&client, &node, &config, in_flight.load(Ordering::Relaxed), 0).await,
            Some(message) = calls.next() => refuse_draining(&client, &mut assembler, &message).await,
            Some(message) = cancels.next() => cancel(&message, &running),
            Some(message) = tool_answers.next() => asking.deliver(&mut answers_assembler, message),
            _ = check.tick() => {
                // Without NATS no result reaches a gateway, and after
                // LOST_AFTER without it the gateways have given these
                // calls up (a reconnect in between loses nothing: the
                // client keeps what is sent meanwhile).
                if client.connection_state() == async_nats::connection::State::Connected {
                    disconnected_since = None;
                } else if disconnected_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= LOST_AFTER {
                    tracing::warn!(running = in_flight.load(Ordering::Relaxed), "NATS is unreachable: stopping the calls still running");
                    break;
                }
            }
        }
    }
    // The last advert says the node takes nothing, and the flush sends the
    // results queued before it: given the rest of the drain time while
    // connected, SEND_WAIT when the server is gone (it cannot confirm).
    let last = async {
        advertise(&client, &node, &config, 0, 0).await;
        client.flush().await
    };
    let wait = match client.connection_state() {
        async_nats::connection::State::Connected => {
            config.drain_timeout.saturating_sub(started.elapsed()).max(SEND_WAIT)
        }
        _ => SEND_WAIT,
    };
    if !matches!(tokio::time::timeout(wait, last).await, Ok(Ok(()))) {
        tracing::warn!("NATS did not confirm the last advert: the gateways will forget this node within 3 s");
    }
    for (_, task) in running.lock().unwrap_or_else(|e| e.into_inner()).drain() {
        task.abort();
    }
    Ok(())
}

/// Stops the call a cancel message names, if it runs here.
fn cancel(message: &async_nats::Message, running: &Running) {
    if let Ok(cancel) = wire::decode::<CancelMessage>("cancel", &message.payload)
        && let Some(handle) =
            running.lock().unwrap_or_else(|e| e.into_inner()).remove(&(cancel.call_id.clone(), cancel.attempt))
    {
        tracing::info!(call = %cancel.call_id, attempt = cancel.attempt, "cancelled by the gateway");
        handle.abort();
    }
}

/// A call message's reply inbox and whole payload, once all its parts
/// came; a broken sequence of parts is answered with an error.
fn whole(
    client: &async_nats::Client,
    assembler: &mut Assembler,
    message: async_nats::Message,
) -> Option<(async_nats::Subject, Bytes)> {
    let reply = message.reply.clone()?;
    let error = match assembler.accept(reply.as_str(), &message) {
        Ok(Some(payload)) => return Some((reply, payload)),
        Ok(None) => return None,
        // The rest of a sequence already refused: refused once is enough.
        Err(PartError::OutOfOrder { expected: 0, .. }) => return None,
        Err(e) => e,
    };
    let (kind, retryable) = match error {
        PartError::TooLarge { .. } => ("too_large", false),
        PartError::Busy => ("node_busy", true),
        _ => ("bad_request", false),
    };
    let refusal = admission_error(kind, format!("the call could not be read: {error}"), retryable);
    let client = client.clone();
    tokio::spawn(async move { client.publish(reply, Bytes::from(wire::encode(&refusal))).await });
    None
}

/// An error for a call the node did not start (attempt 0: before its id was read).
/// Written in the oldest version, which every gateway reads (the call's
/// own version is not known yet).
fn admission_error(kind: &str, message: String, retryable: bool) -> NodeMessage {
    NodeMessage::Error {
        v: OLDEST_WIRE_VERSION,
        call_id: String::new(),
        attempt: 0,
        kind: kind.into(),
        phase: "admission".into(),
        message,
        tool_failure: false,
        retryable,
        usage: None,
    }
}

/// Answers a call that arrived while draining: busy, try another node.
async fn refuse_draining(client: &async_nats::Client, assembler: &mut Assembler, message: &async_nats::Message) {
    let Some(reply) = &message.reply else { return };
    // A call in parts is refused once: at its first part, or at the next
    // one if it began before the drain.
    if matches!(parts::part_of(message), Some(Ok((index, _))) if index > 0) {
        if !assembler.is_pending(reply.as_str()) {
            return;
        }
        assembler.forget(reply.as_str());
    }
    let error = admission_error("node_busy", "the node is shutting down".into(), true);
    let _ = tokio::time::timeout(SEND_WAIT, client.publish(reply.clone(), Bytes::from(wire::encode(&error)))).await;
}

/// Publishes the node's advert, with `slots` free for calls (0 while draining).
async fn advertise(client: &async_nats::Client, node: &Node, config: &AgentConfig, in_flight: u32, slots: u32) {
    let budget = node.sandbox().budget().total();
    let advert = Advert {
        v: WIRE_VERSION,
        id: config.id.clone(),
        name: config.name.clone(),
        labels: config.labels.clone(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes: budget,
        slots,
        in_flight,
        gpus: config.gpus.clone(),
        grants: node.policy().grants(),
        compiled: node.compiled().iter().map(ToString::to_string).collect(),
        bridges: node.bridges().map(|b| advertised(b.listings())).unwrap_or_default(),
        ttl_ms: 3 * ADVERT_EVERY.as_millis() as u64,
    };
    match tokio::time::timeout(
        SEND_WAIT,
        client.publish(subjects::advert(&config.id), Bytes::from(wire::encode(&advert))),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot publish the advert"),
        Err(_) => tracing::warn!("cannot publish the advert: NATS is not taking messages"),
    }
}

/// Bytes of bridged servers' listings an advert carries; servers past
/// them are left out (with a warning) so adverts stay small.
const MAX_BRIDGES_BYTES: usize = 256 << 10;

/// The bridged servers an advert carries: in order, while they fit.
fn advertised(listings: Vec<crate::bridge::listing::ServerListing>) -> Vec<crate::bridge::listing::ServerListing> {
    let mut bytes = 0;
    let mut kept = Vec::new();
    for listing in listings {
        let size = serde_json::to_vec(&listing).map_or(usize::MAX / 2, |v| v.len());
        if bytes + size > MAX_BRIDGES_BYTES {
            tracing::warn!(server = %listing.server, "bridged server left out of the advert: the servers' tools are over 256 KiB");
            continue;
        }
        bytes += size;
        kept.push(listing);
    }
    kept
}

/// Starts running one call message, answering on its reply inbox.
fn take(
    client: &async_nats::Client,
    node: &Node,
    config: &AgentConfig,
    reply: async_nats::Subject,
    payload: Bytes,
    in_flight: &Arc<AtomicU32>,
    (running, asking): (&Running, &Asking),
) {
    let (client, node, node_id) = (client.clone(), node.clone(), config.id.clone());
    let call = match wire::decode::<CallMessage>("call", &payload) {
        Ok(call) => call,
        Err(e) => {
            let error = admission_error("bad_request", e.to_string(), false);
            tokio::spawn(async move { client.publish(reply, Bytes::from(wire::encode(&error))).await });
            return;
        }
    };
    let key = (call.call_id.clone(), call.attempt);
    in_flight.fetch_add(1, Ordering::Relaxed);
    let (in_flight, registry, asking) = (in_flight.clone(), running.clone(), asking.clone());
    let asker = asking.clone();
    let caller = call.caller.as_deref().unwrap_or("-");
    let span = tracing::info_span!("call", id = %call.call_id, attempt = call.attempt, caller = %caller);
    let task = tokio::spawn(
        async move {
            let answer = Answer {
                client: client.clone(),
                reply: reply.to_string(),
                call_id: call.call_id.clone(),
                attempt: call.attempt,
                v: call.v,
            };
            answer
                .send(NodeMessage::Accepted {
                    v: answer.v,
                    call_id: answer.call_id.clone(),
                    attempt: answer.attempt,
                    node: node_id,
                })
                .await;
            // Stopped however the call ends: returned, cancelled or panicked.
            let _keepalive = AbortOnDrop({
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(KEEPALIVE_EVERY);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        answer
                            .send(NodeMessage::KeepAlive {
                                v: answer.v,
                                call_id: answer.call_id.clone(),
                                attempt: answer.attempt,
                            })
                            .await;
                    }
                })
            });
            // A gateway of version 3 or later answers the code's calls to tools.
            let tools = (call.v >= 3 && call.tools).then(|| asker.caller_for(answer.clone()));
            let outcome = run(&node, call, &answer, tools).await;
            answer.send(outcome).await;
        }
        .instrument(span),
    );
    registry.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), task.abort_handle());
    // Count the call out however it ends (finished or aborted).
    tokio::spawn(async move {
        let _ = task.await;
        registry.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        asking.forget(&key.0, key.1);
        in_flight.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a call's answers go.
#[derive(Clone)]
pub(super) struct Answer {
    client: async_nats::Client,
    reply: String,
    pub(super) call_id: String,
    pub(super) attempt: u32,
    /// The call's wire version, which its answers are written in.
    pub(super) v: u32,
}

impl Answer {
    /// Sends `message` on the call's answer stream.
    pub(super) async fn send(&self, message: NodeMessage) {
        let mut bytes = wire::encode(&message);
        if bytes.len() > MAX_VALUE {
            let usage = match message {
                NodeMessage::Result { usage, .. } | NodeMessage::Error { usage, .. } => usage,
                _ => None,
            };
            bytes = wire::encode(&NodeMessage::Error {
                v: self.v,
                call_id: self.call_id.clone(),
                attempt: self.attempt,
                kind: "output_too_large".into(),
                phase: "output check".into(),
                message: format!("the answer is {} bytes, over the mesh's limit of {MAX_VALUE}", bytes.len()),
                tool_failure: true,
                retryable: false,
                usage,
            });
        }
        if let Err(e) = parts::publish(&self.client, self.reply.clone(), None, bytes).await {
            tracing::warn!(call = %self.call_id, error = %e, "cannot answer");
        }
    }
}

/// Sends what arrives on `queue` on the call's answer stream, in order, as
/// `message` writes it, until every sender is gone.
fn relay<T: Send + 'static>(
    answer: &Answer,
    mut queue: tokio::sync::mpsc::Receiver<T>,
    message: fn(&Answer, T) -> NodeMessage,
) -> tokio::task::JoinHandle<()> {
    let answer = answer.clone();
    tokio::spawn(async move {
        while let Some(item) = queue.recv().await {
            answer.send(message(&answer, item)).await;
        }
    })
}

/// Runs `call` on `node`; the result or error as the message to send.
async fn run(
    node: &Node,
    call: CallMessage,
    answer: &Answer,
    tools: Option<Arc<dyn crate::capability::tools::ToolCaller>>,
) -> NodeMessage {
    let failed = |kind: &str, message: String| NodeMessage::Error {
        v: answer.v,
        call_id: answer.call_id.clone(),
        attempt: answer.attempt,
        kind: kind.into(),
        phase: "admission".into(),
        message,
        tool_failure: false,
        retryable: false,
        usage: None,
    };
    let (Ok(repository), Ok(digest)) = (call.repository.parse(), call.digest.parse()) else {
        return failed("bad_request", format!("bad repository or digest: {} {}", call.repository, call.digest));
    };
    // Progress and resource updates go out in order, before the result,
    // through one task each (at most PROGRESS_QUEUE progress reports
    // waiting; past that, they are dropped: a later one says more; a call
    // reports at most 32 updates).
    let (progress, progress_relay) = if call.progress {
        let (sender, queue) = tokio::sync::mpsc::channel::<Progress>(PROGRESS_QUEUE);
        let relay = relay(answer, queue, |answer, p| NodeMessage::Progress {
            v: answer.v,
            call_id: answer.call_id.clone(),
            attempt: answer.attempt,
            done: p.done,
            total: p.total,
            message: p.message,
        });
        let sink = Arc::new(move |p: Progress| {
            let _ = sender.try_send(p);
        }) as crate::sandbox::ProgressSink;
        (Some(sink), Some(relay))
    } else {
        (None, None)
    };
    // A gateway of version 5 or later hears of changed resources.
    let (updates, updates_relay) = if answer.v >= 5 {
        let (sender, queue) = tokio::sync::mpsc::channel::<String>(crate::capability::resource_updates::MAX_URIS);
        let relay = relay(answer, queue, |answer, uri| NodeMessage::Updated {
            v: answer.v,
            call_id: answer.call_id.clone(),
            attempt: answer.attempt,
            uri,
        });
        let sink = Arc::new(move |uri: String| {
            let _ = sender.try_send(uri);
        }) as crate::capability::resource_updates::UpdateSink;
        (Some(sink), Some(relay))
    } else {
        (None, None)
    };
    let invocation = Invocation {
        repository,
        digest,
        tool: call.tool,
        arguments: call.arguments,
        progress,
        call_id: call.call_id.clone(),
        request: Arc::default(),
        retry_safe: false,
        effects: Arc::default(),
        caller: call.caller,
        meter: Arc::default(),
        tools,
        session: call.session.map(|s| crate::node::runner::SessionRoute {
            key: s.key,
            resume: s.resume,
            ..Default::default()
        }),
        ask: match call.ask.map(|ask| crate::capability::ask::Asking::new(ask.abilities, ask.answers)).transpose() {
            Ok(ask) => ask.map(Arc::new),
            Err(e) => {
                return NodeMessage::Error {
                    v: answer.v,
                    call_id: answer.call_id.clone(),
                    attempt: answer.attempt,
                    kind: "invalid_arguments".into(),
                    phase: "admission".into(),
                    message: e.to_string(),
                    tool_failure: false,
                    retryable: false,
                    usage: None,
                };
            }
        },
        updates,
        bridge: call.bridge.map(|server| crate::node::BridgeCall { node: String::new(), server }),
    };
    let meter = invocation.meter.clone();
    tracing::info!(call = %call.call_id, attempt = call.attempt, tool = %invocation.tool, "call");
    let outcome = node.run(invocation).await;
    // A version-1 gateway would refuse the field.
    let usage = (answer.v >= 2).then(|| WireUsage::of(&meter));
    // The sandbox has dropped its sinks: what is queued goes out first.
    for relay in [progress_relay, updates_relay].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(1), relay).await;
    }
    match outcome {
        Ok(output) => NodeMessage::Result {
            v: answer.v,
            call_id: answer.call_id.clone(),
            attempt: answer.attempt,
            content: output.into_content().into_iter().map(|c| WireContent::for_version(c, answer.v)).collect(),
            usage,
        },
        Err(e) => NodeMessage::Error {
            v: answer.v,
            call_id: answer.call_id.clone(),
            attempt: answer.attempt,
            kind: e.kind().to_owned(),
            phase: e.phase.to_string(),
            // The questions themselves, for the gateway to ask.
            message: match e.sandbox() {
                Some(SandboxError::InputRequired(questions)) => {
                    serde_json::to_string(questions).unwrap_or_else(|_| e.cause.to_string())
                }
                Some(SandboxError::MissingCapability(missing)) => {
                    serde_json::to_string(missing).unwrap_or_else(|_| e.cause.to_string())
                }
                _ => e.cause.to_string(),
            },
            tool_failure: e.is_tool_visible(),
            retryable: e.is_retryable() || e.kind() == "not_granted",
            usage,
        },
    }
}
