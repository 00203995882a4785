//! What went wrong in a call: an error out of wasmtime, mapped to the
//! [`SandboxError`] that says what actually happened (which limit, which
//! trap, the guest's panic message and backtrace).

use super::error::SandboxError;
use super::state::{CallState, LimitHit, LimitReached};
use crate::config::Limits;
use wasmtime::{Trap, WasmBacktrace};

/// The raised error when an epoch tick finds the call past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline reached")]
pub(crate) struct DeadlineReached;

/// Maps an error out of wasmtime to what actually happened.
pub(crate) fn classify(error: wasmtime::Error, state: &CallState, limits: &Limits) -> SandboxError {
    // What names its own cause comes first: a guest may have survived a
    // refused allocation and run on until something else ended it.
    if error.is::<DeadlineReached>() {
        return SandboxError::Timeout { limit: limits.timeout };
    }
    if error.is::<crate::capability::scratch::ScratchFull>() {
        let limit = state.scratch.as_ref().map_or(0, |s| s.size());
        return SandboxError::ScratchFull { limit };
    }
    // wasmtime's hostcall fuel ran out (its error type is private).
    if error.chain().any(|cause| cause.to_string().starts_with("too much data is being copied")) {
        return SandboxError::TransferTooLarge { limit: state.transfer_limit };
    }
    if error.chain().any(|cause| cause.is::<std::str::Utf8Error>()) {
        return SandboxError::InvalidOutput("a string is not valid UTF-8".into());
    }
    // `exit()` in a guest (WASI's proc_exit): a tool has no process of its
    // own to end, so it returned nothing.
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return SandboxError::Trap {
            message: format!("the tool called exit({}) instead of returning a result", exit.0),
        };
    }
    let stack_overflow = error.downcast_ref::<Trap>() == Some(&Trap::StackOverflow);
    match state.limiter.hit {
        // A refused growth explains a trap that follows it (a guest that
        // aborts when an allocation fails), not a stack overflow.
        Some(LimitHit::Memory { desired }) if !stack_overflow => {
            return SandboxError::MemoryLimit { limit: limits.memory, requested: desired };
        }
        Some(LimitHit::Table { .. }) => {
            return SandboxError::TableLimit { limit: u64::from(limits.table_elements) };
        }
        _ => {}
    }
    if error.is::<LimitReached>() {
        return SandboxError::MemoryLimit { limit: limits.memory, requested: limits.memory };
    }
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    if let Some(panic) = panic_message(&state.stderr.peek()) {
        message = format!("{message} ({panic})");
    }
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        // wasmtime's rendering demangles names; skip its heading line.
        let rendered = backtrace.to_string();
        let frames: Vec<&str> = rendered.lines().skip(1).take(12).map(str::trim).collect();
        if !frames.is_empty() {
            message = format!("{message}\nwasm backtrace:\n  {}", frames.join("\n  "));
        }
    }
    SandboxError::Trap { message }
}

/// The panic line a Rust guest printed to stderr before aborting, if any.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|line| !line.contains("panicked at"));
    let at = lines.next()?;
    let what = lines.next().unwrap_or("").trim();
    let mut text = format!("{} {}", at.trim().trim_end_matches(':'), what).trim().to_owned();
    if let Some(start) = text.find("panicked at") {
        text.drain(..start);
    }
    text.truncate(text.char_indices().nth(500).map_or(text.len(), |(i, _)| i));
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_line() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("panicked at src/lib.rs:10:5 boom"));
        assert_eq!(panic_message("just noise"), None);
    }
}
