//! Running one call in a store: a slot, the store (its limiter, transfer
//! cap and deadline checks), the call under its deadline, and what stopped
//! it. A fresh call ([`Sandbox::run`]) and a session's call
//! ([`super::session`]) share these parts.

use super::classify::{DeadlineReached, classify};
use super::component::Entry;
use super::{
    CallOptions, CallState, GpuContext, Reservation, Sandbox, SandboxError, TICK, ToolComponent, call_cost, capability,
    meter, transfer_cap,
};
use crate::config::Limits;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime::component::Instance;
use wasmtime::{Engine, Store, UpdateDeadline};

impl Sandbox {
    /// Instantiates `component` in a new store under `limits` and runs `f`
    /// on the instance, turning every way it can fail into a
    /// [`SandboxError`]. Returns `f`'s answer with the call's reservation
    /// and what the host refused it, in words (empty if nothing).
    pub(super) async fn run<R, F>(
        &self,
        component: &ToolComponent,
        limits: &Limits,
        options: CallOptions,
        f: F,
    ) -> Result<(R, Reservation, String), SandboxError>
    where
        F: for<'a> FnOnce(
            &'a Instance,
            &'a mut Store<CallState>,
        ) -> std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>,
    {
        // Admission: a slot, then the call's share of the memory budget,
        // both within the queue timeout.
        let admitted_by = tokio::time::Instant::now() + self.config.queue_timeout;
        let _slot = self.take_slot(admitted_by).await?;
        let wait = admitted_by.saturating_duration_since(tokio::time::Instant::now());
        let reservation = self.admit(call_cost(limits, &self.config), wait).await?;
        let call_id = options.call_id.unwrap_or_else(|| format!("c{}", self.next_call.fetch_add(1, Ordering::Relaxed)));
        let engine = component.pre.engine();
        let grant = options.grant.unwrap_or_default();
        let meter = options.meter.unwrap_or_default();
        let gpu = GpuContext {
            service: self.gpu.clone(),
            linalg: self.linalg.clone(),
            component: component.digest,
            meter: meter.clone(),
        };
        let mut state = CallState::new(call_id, limits, options.progress, &grant, gpu, options.tools)?;
        if let Some(ask) = options.ask {
            state.ask = ask;
        }
        state.updates = crate::capability::resource_updates::Reported::new(options.updates);
        let refusals = state.http.refusals.clone();
        let mut store = new_store(engine, state, component, limits);
        let deadline = tokio::time::Instant::from_std(store.data().deadline) + TICK;
        let mut instantiated = false;
        let outcome = tokio::time::timeout_at(
            deadline,
            meter::Metered::new(
                async {
                    super::image::prepare(component.pre.component());
                    let instance = component.pre.instantiate_async(&mut store).await?;
                    instantiated = true;
                    f(&instance, &mut store).await
                },
                &meter,
            ),
        )
        .await;
        flush_guest_output(store.data());
        let value = finish(outcome, &store, limits, instantiated)?;
        Ok((value, reservation, refusals.text()))
    }

    /// A call's share of the node's memory budget, waiting up to `wait`.
    /// When it is not free now, host linear algebra gives back what it
    /// keeps only for speed (spare buffers, weights no call holds) first.
    pub(super) async fn admit(&self, bytes: u64, wait: std::time::Duration) -> Result<Reservation, SandboxError> {
        match self.budget.try_reserve(bytes) {
            Ok(reservation) => Ok(reservation),
            Err(SandboxError::NodeBusy { .. }) => {
                if let Ok(linalg) = &self.linalg {
                    linalg.make_room(bytes);
                }
                self.budget.reserve(bytes, wait).await
            }
            Err(e) => Err(e),
        }
    }

    /// A call slot, waiting for one until `admitted_by`.
    pub(super) async fn take_slot(
        &self,
        admitted_by: tokio::time::Instant,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, SandboxError> {
        match self.slots.try_acquire() {
            Ok(slot) => Ok(slot),
            Err(_) => tokio::time::timeout_at(admitted_by, self.slots.acquire())
                .await
                .map_err(|_| SandboxError::NoSlot { slots: self.config.max_concurrent_calls.max(1) })?
                .map_err(|_| SandboxError::Engine("the sandbox is shutting down".into())),
        }
    }
}

/// A store for one call (or one session) in `state`: its limiter, the cap
/// on what the host copies out of the guest, and its deadline checks.
pub(super) fn new_store(
    engine: &Engine,
    state: CallState,
    component: &ToolComponent,
    limits: &Limits,
) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Err(wasmtime::Error::new(DeadlineReached))
        } else if ctx.data().scratch.as_ref().is_some_and(|s| s.is_over_now()) {
            Err(wasmtime::Error::new(capability::scratch::ScratchFull))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    arm(&mut store, component, limits);
    store
}

/// Readies `store` for its next call: the transfer cap's fuel and the
/// first epoch check.
pub(super) fn arm(store: &mut Store<CallState>, component: &ToolComponent, limits: &Limits) {
    // Cap what the host copies out of the guest in one go (the result,
    // an error message, a log line) before it is copied.
    // A plain component's results are lifted into host values, each
    // far larger than the bytes it came from: they may take as much as
    // the call's memory limit.
    let fuel = match component.entry {
        Entry::Toolmesh(_) => transfer_cap(limits),
        Entry::Plain(_) => transfer_cap(limits).max(limits.memory),
    };
    store.set_hostcall_fuel(usize::try_from(fuel).unwrap_or(usize::MAX));
    store.data_mut().transfer_limit = fuel;
    store.set_epoch_deadline(1);
}

/// What a call that ran in `store` came to: its value, or what stopped it.
pub(super) fn finish<R>(
    outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    store: &Store<CallState>,
    limits: &Limits,
    instantiated: bool,
) -> Result<R, SandboxError> {
    match outcome {
        Err(_elapsed) => Err(SandboxError::Timeout { limit: limits.timeout }),
        Ok(Ok(_)) if let Some(scratch) = store.data().scratch.as_ref().filter(|s| s.is_over()) => {
            Err(SandboxError::ScratchFull { limit: scratch.size() })
        }
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(match classify(error, store.data(), limits) {
            SandboxError::Trap { message } if !instantiated => SandboxError::Instantiate(message),
            other => other,
        }),
    }
}

/// Sends what the guest printed to the host log, tagged with the call.
pub(super) fn flush_guest_output(state: &CallState) {
    for (stream, capture) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
        let (text, dropped) = capture.take_for_log();
        if !text.is_empty() {
            tracing::info!(target: "toolmesh::guest", call = %state.call_id, stream, dropped_bytes = dropped, "{}", text.trim_end());
        }
    }
    if state.log.dropped_lines() > 0 {
        tracing::warn!(target: "toolmesh::guest", call = %state.call_id, dropped_lines = state.log.dropped_lines(), "log budget spent; lines dropped");
    }
}
