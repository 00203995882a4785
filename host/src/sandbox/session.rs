//! Sessions: an instance kept alive between calls, so a code tool's
//! interpreter state (variables, imports, functions) and its scratch
//! directory carry over from one run to the next.
//!
//! A session belongs to one caller and one component: its key is (caller,
//! component digest, id), so another caller naming the same id gets a
//! session of its own. It runs one call at a time, under the call's own
//! limits (the memory limit covers everything the session holds), and
//! holds its share of the node's memory budget for as long as it lives.
//! The node keeps at most [`SessionLimits::max`] sessions, each caller at
//! most [`SessionLimits::per_caller`]; a session unused for
//! [`SessionLimits::idle_ttl`] is dropped, and so is one whose call was
//! stopped (time or memory limit, a trap), since its state is then not
//! known to be whole. A call that expects a session the node no longer
//! holds is refused with a "session lost" error, never given a fresh one.

use super::budget::{Reservation, call_cost};
use super::component::{Answer, Exports, Operation};
use super::{CallOptions, CallState, GpuContext, Sandbox, SandboxError, TICK, ToolComponent, meter};
use crate::config::{Limits, SessionLimits};
use crate::grant::Grant;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use toolmesh_registry::digest::Digest;
use wasmtime::Store;
use wasmtime::component::Instance;

/// The session a call runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// Who the session belongs to.
    pub caller: String,
    /// The id the caller gave it.
    pub id: String,
    /// Whether an earlier call opened it (so it must still be there);
    /// otherwise the call opens it.
    pub resume: bool,
}

type Key = (String, Digest, String);

/// A live session: its store and instance, and the memory it holds.
struct Live {
    store: Store<CallState>,
    instance: Instance,
    /// Where the instance's exports are: those of the component it was
    /// made from, which optimised code of the same digest may since have
    /// replaced for fresh calls (its export indices belong to it alone).
    exports: Arc<Exports>,
    _reservation: Reservation,
}

/// One session's place in the table: empty while its first call makes it.
/// The live session is held as `dyn Any + Send` (always a [`Live`]): the
/// compiler then proves a store `Send` once, here, rather than in every
/// crate whose futures hold a [`Sandbox`], where wgpu's deep types take it
/// past the default recursion limit.
struct Slot {
    live: tokio::sync::Mutex<Option<Box<dyn Any + Send>>>,
    used: Mutex<Instant>,
}

/// The sessions one node holds.
#[derive(Default)]
pub(super) struct Sessions {
    table: Mutex<HashMap<Key, Arc<Slot>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Slot>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the sessions idle for `ttl` or more (not those running a call).
    fn sweep(&self, ttl: std::time::Duration) {
        let now = Instant::now();
        self.lock().retain(|_, slot| {
            let idle = now.duration_since(*slot.used.lock().unwrap_or_else(|e| e.into_inner()));
            idle < ttl || slot.live.try_lock().is_err()
        });
    }

    /// The session of `key`: the one held, or a new empty one when the call
    /// may open it and the limits leave room.
    fn slot(&self, key: &Key, resume: bool, limits: &SessionLimits) -> Result<Arc<Slot>, SandboxError> {
        self.sweep(limits.idle_ttl);
        let mut table = self.lock();
        if let Some(slot) = table.get(key) {
            return Ok(slot.clone());
        }
        if resume {
            return Err(SandboxError::Session(format!(
                "session lost: session `{}` is no longer held by this node (idle for {} s or more, closed, stopped \
                 by a limit, or the node restarted); its state is gone: start a new session",
                key.2,
                limits.idle_ttl.as_secs()
            )));
        }
        if table.len() >= limits.max as usize {
            return Err(SandboxError::Session(format!(
                "no room for a new session: this node holds {} sessions, its most; try later or run without a session",
                limits.max
            )));
        }
        let held = table.keys().filter(|(caller, _, _)| *caller == key.0).count();
        if held >= limits.per_caller as usize {
            return Err(SandboxError::Session(format!(
                "you hold {held} sessions on this node, the most one caller may; close one or let it expire"
            )));
        }
        let slot = Arc::new(Slot { live: tokio::sync::Mutex::new(None), used: Mutex::new(Instant::now()) });
        table.insert(key.clone(), slot.clone());
        Ok(slot)
    }

    /// Forgets `key`'s session if `slot` is still it.
    fn drop_slot(&self, key: &Key, slot: &Arc<Slot>) {
        let mut table = self.lock();
        if table.get(key).is_some_and(|held| Arc::ptr_eq(held, slot)) {
            table.remove(key);
        }
    }

    /// Sessions held now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Closes the session `id` of `caller` (of any component); whether there was one.
    pub(super) fn close(&self, caller: &str, id: &str) -> bool {
        let mut table = self.lock();
        let before = table.len();
        table.retain(|(c, _, i), _| !(c == caller && i == id));
        table.len() != before
    }
}

/// What one session call returns: the tool's answer and what the host
/// refused it.
type SessionOutcome = (Answer, String);

impl Sandbox {
    /// Runs `operation` of `component` in `session`, opening it if asked.
    pub(super) async fn call_in_session(
        &self,
        component: &ToolComponent,
        exports: &Arc<Exports>,
        operation: &Operation,
        options: CallOptions,
        limits: &Limits,
        session: SessionRequest,
    ) -> Result<SessionOutcome, SandboxError> {
        let config = &self.config.sessions;
        let key = (session.caller, component.digest, session.id);
        let slot = self.sessions.slot(&key, session.resume, config)?;
        // One call at a time: a second waits for the first, within its own time.
        let wait = limits.timeout + self.config.queue_timeout;
        let Ok(mut live) = tokio::time::timeout(wait, slot.live.lock()).await else {
            return Err(SandboxError::Session(format!("session `{}` is busy with another run", key.2)));
        };
        let admitted_by = tokio::time::Instant::now() + self.config.queue_timeout;
        let _turn = self.take_slot(admitted_by).await?;
        let call_id = options.call_id.unwrap_or_else(|| format!("c{}", self.next_call.fetch_add(1, Ordering::Relaxed)));
        let meter = options.meter.unwrap_or_default();
        let opened = live.is_none();
        if let Some(held) = live.as_mut().and_then(|held| held.downcast_mut::<Live>()) {
            held.store.data_mut().resume(call_id, limits, options.progress, options.tools, meter.clone());
            held.store.data_mut().updates = crate::capability::resource_updates::Reported::new(options.updates);
            super::run::arm(&mut held.store, component, limits);
        } else {
            let wait = admitted_by.saturating_duration_since(tokio::time::Instant::now());
            let reservation = match self.admit(call_cost(limits, &self.config), wait).await {
                Ok(reservation) => reservation,
                Err(e) => {
                    self.sessions.drop_slot(&key, &slot);
                    return Err(e);
                }
            };
            let grant = options.grant.unwrap_or_else(|| Arc::new(Grant::default()));
            // A session keeps no GPU work between calls: it has no GPU.
            let gpu = GpuContext {
                service: Err("sessions do not use the GPU".into()),
                linalg: self.linalg.clone(),
                component: component.digest,
                meter: meter.clone(),
            };
            let mut state = CallState::new(call_id, limits, options.progress, &grant, gpu, options.tools)?;
            state.updates = crate::capability::resource_updates::Reported::new(options.updates);
            let mut store = super::run::new_store(component.pre.engine(), state, component, limits);
            super::image::prepare(component.pre.component());
            let deadline = tokio::time::Instant::from_std(store.data().deadline) + TICK;
            let made = tokio::time::timeout_at(
                deadline,
                meter::Metered::new(component.pre.instantiate_async(&mut store), &meter),
            )
            .await;
            let instance = match super::run::finish(made, &store, limits, false) {
                Ok(instance) => instance,
                Err(e) => {
                    self.sessions.drop_slot(&key, &slot);
                    return Err(e);
                }
            };
            *live = Some(Box::new(Live { store, instance, exports: exports.clone(), _reservation: reservation }));
        }
        let Some(held) = live.as_mut().and_then(|held| held.downcast_mut::<Live>()) else {
            return Err(SandboxError::Engine("a session slot holds something other than a session".into()));
        };
        let refusals = held.store.data().http.refusals.clone();
        let deadline = tokio::time::Instant::from_std(held.store.data().deadline) + TICK;
        let Live { store, instance, exports, .. } = held;
        let outcome = tokio::time::timeout_at(
            deadline,
            meter::Metered::new(exports.run(&mut *store, instance, operation), &meter),
        )
        .await;
        super::run::flush_guest_output(store.data());
        // The call's sinks end with it, not with the session: whoever relays
        // its progress and resource updates is done once they are dropped.
        store.data_mut().progress = None;
        store.data_mut().updates = Default::default();
        match super::run::finish(outcome, store, limits, true) {
            Ok(result) => {
                *slot.used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                tracing::debug!(session = %key.2, opened, "session call");
                Ok((result, refusals.text()))
            }
            Err(e) => {
                // Stopped part-way, its state is not known to be whole.
                *live = None;
                self.sessions.drop_slot(&key, &slot);
                Err(e)
            }
        }
    }

    /// Sessions this node holds now.
    pub fn sessions_held(&self) -> usize {
        self.sessions.len()
    }

    /// Closes `caller`'s session `id`; whether it was held.
    pub fn close_session(&self, caller: &str, id: &str) -> bool {
        self.sessions.close(caller, id)
    }
}
