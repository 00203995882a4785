//! What can go wrong in the sandbox, each failure with its own variant so
//! callers (the CLI, the gateway) can report it precisely.

use std::time::Duration;

/// A failure to load or run a tool component.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The engine could not be set up with this configuration.
    #[error("cannot set up the sandbox engine: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly component.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The component imports something this host does not provide.
    #[error("component imports `{import}`, which this host does not provide (a tool may import {provided})")]
    UnsupportedImport {
        /// The import, such as `wasi:http/outgoing-handler@0.2.0`.
        import: String,
        /// What the host offers, for the message.
        provided: String,
    },
    /// The node's policy does not cover what the tool requests; the call was
    /// refused before it started.
    #[error("this node does not grant what the tool requests: {}", .missing.join("; "))]
    NotCovered {
        /// Each thing requested and not granted, with why.
        missing: Vec<String>,
    },
    /// The component imports an interface whose capability this call was
    /// not granted; refused before instantiation.
    #[error("component imports `{import}`, which needs the {capability} grant, and this call has none: {why}")]
    NotGranted {
        /// The import, such as `wasi:http/outgoing-handler@0.2.6`.
        import: String,
        /// The capability that provides it.
        capability: &'static str,
        /// Why there is no grant.
        why: &'static str,
    },
    /// The call filled its scratch directory past its size and was stopped.
    #[error("tool filled its scratch directory past its size of {}", humanize_bytes(*.limit))]
    ScratchFull {
        /// The size granted.
        limit: u64,
    },
    /// A call asked for more than the engine allows.
    #[error("{what} of {asked} is above this host's maximum of {max}")]
    LimitAboveMaximum {
        /// Which limit.
        what: &'static str,
        /// What was asked for.
        asked: u64,
        /// The most the engine allows.
        max: u64,
    },
    /// The call ran past its wall-clock limit and was stopped.
    #[error("tool exceeded its time limit of {}", humanize_duration(*.limit))]
    Timeout {
        /// The limit that was exceeded.
        limit: Duration,
    },
    /// The call tried to use more linear memory than allowed and was stopped.
    #[error("tool exceeded its memory limit of {} (it asked for {})", humanize_bytes(*.limit), humanize_bytes(*.requested))]
    MemoryLimit {
        /// The limit in bytes.
        limit: u64,
        /// The total the tool tried to reach.
        requested: u64,
    },
    /// The call tried to grow a table past its limit and was stopped.
    #[error("tool exceeded its table limit of {limit} elements")]
    TableLimit {
        /// The limit in elements.
        limit: u64,
    },
    /// The component could not be instantiated (its start-up code trapped,
    /// or it asked for more than its limits before the call began).
    #[error("cannot instantiate the tool: {0}")]
    Instantiate(String),
    /// The guest trapped: a panic, stack overflow, out-of-bounds access…
    #[error("tool trapped: {message}")]
    Trap {
        /// The trap, the wasm backtrace and the tail of the guest's stderr.
        message: String,
    },
    /// The result was larger than the output limit.
    #[error("tool output is {} (all items together), over the limit of {}", humanize_bytes(*.size), humanize_bytes(*.limit))]
    OutputTooLarge {
        /// The size of the result.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The guest tried to hand the host more bytes at once (a result, an
    /// error message, a log line) than the call's cap; the host stopped
    /// before copying them.
    #[error("tool tried to pass more than {} to the host at once, over its output limit", humanize_bytes(*.limit))]
    TransferTooLarge {
        /// The most the host copies out of the guest in one transfer.
        limit: u64,
    },
    /// The node's memory budget has no room for this call now.
    #[error(
        "node busy: this call needs {} of the node's {} memory budget and running calls hold the rest; try again shortly",
        humanize_bytes(*.needed), humanize_bytes(*.budget)
    )]
    NodeBusy {
        /// Bytes the call would reserve.
        needed: u64,
        /// The node's whole budget.
        budget: u64,
    },
    /// Every call slot of the node stayed taken while the call waited.
    #[error("node busy: all {slots} call slots are taken; try again shortly")]
    NoSlot {
        /// How many calls the node runs at once.
        slots: u32,
    },
    /// The guest returned something malformed (text that is not UTF-8,
    /// JSON content that is not JSON, a bad tool description…).
    #[error("tool returned malformed output: {0}")]
    InvalidOutput(String),
    /// The arguments were refused, by the host or by the tool itself.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and reported that it failed.
    #[error("tool failed: {0}")]
    ToolFailed(String),
    /// The session a call names is gone (it expired, was closed, its last
    /// run was stopped, or its node restarted), or cannot be opened.
    #[error("{0}")]
    Session(String),
    /// The package has no resource at that URI, or no prompt of that name.
    #[error("not found: {0}")]
    NotFound(String),
    /// The call asked its client questions it has no answers to yet: ask
    /// them, then run it again with the answers.
    #[error("the tool asks its client {} question(s) first", .0.len())]
    InputRequired(std::collections::BTreeMap<String, crate::capability::ask::Question>),
    /// The call failed after asking for what the client did not declare it
    /// can answer (these capabilities, such as `sampling`).
    #[error("the tool needs what the client did not declare: {}", .0.join(", "))]
    MissingCapability(Vec<String>),
}

impl SandboxError {
    /// A short, stable word for logs and metrics (`timeout`, `trap`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            SandboxError::Engine(_) => "engine",
            SandboxError::InvalidComponent(_) => "invalid_component",
            SandboxError::UnsupportedImport { .. } => "unsupported_import",
            SandboxError::LimitAboveMaximum { .. } => "limit_above_maximum",
            SandboxError::NotCovered { .. } | SandboxError::NotGranted { .. } => "not_granted",
            SandboxError::ScratchFull { .. } => "scratch_full",
            SandboxError::Timeout { .. } => "timeout",
            SandboxError::MemoryLimit { .. } | SandboxError::TableLimit { .. } => "memory_limit",
            SandboxError::Trap { .. } | SandboxError::Instantiate(_) => "trap",
            SandboxError::OutputTooLarge { .. } | SandboxError::TransferTooLarge { .. } => "output_too_large",
            SandboxError::NodeBusy { .. } | SandboxError::NoSlot { .. } => "node_busy",
            SandboxError::InvalidOutput(_) => "invalid_output",
            SandboxError::InvalidArguments(_) => "invalid_arguments",
            SandboxError::ToolFailed(_) => "tool_failed",
            SandboxError::Session(_) => "session",
            SandboxError::NotFound(_) => "not_found",
            SandboxError::InputRequired(_) => "input_required",
            SandboxError::MissingCapability(_) => "missing_capability",
        }
    }

    /// True when the tool, not the host or the caller, is at fault: a result
    /// the model should see (`isError`), not a protocol error.
    pub fn is_tool_failure(&self) -> bool {
        !matches!(
            self,
            SandboxError::Engine(_)
                | SandboxError::InvalidComponent(_)
                | SandboxError::UnsupportedImport { .. }
                | SandboxError::LimitAboveMaximum { .. }
                | SandboxError::NotCovered { .. }
                | SandboxError::NotGranted { .. }
                | SandboxError::InvalidArguments(_)
                | SandboxError::NotFound(_)
                | SandboxError::InputRequired(_)
                | SandboxError::MissingCapability(_)
                | SandboxError::NodeBusy { .. }
                | SandboxError::NoSlot { .. }
        )
    }

    /// True when the node's policy refused the call: the tool asks for
    /// (or imports) what this node does not grant. Callers show it like a
    /// tool failure, so a model can see why and choose another tool.
    pub fn is_not_granted(&self) -> bool {
        matches!(self, SandboxError::NotCovered { .. } | SandboxError::NotGranted { .. })
    }

    /// True when the node refused the call for lack of room, not because of
    /// the call: the caller may try again later or elsewhere.
    pub fn is_busy(&self) -> bool {
        matches!(self, SandboxError::NodeBusy { .. } | SandboxError::NoSlot { .. })
    }
}

/// Where in a call's life a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the component's manifest and bytes.
    Fetch,
    /// Compiling and linking the component.
    Load,
    /// Waiting for a slot and a share of the node's memory budget.
    Admission,
    /// Making the fresh instance.
    Instantiate,
    /// Running the tool.
    Call,
    /// Checking what the tool returned.
    OutputCheck,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Fetch => "fetch",
            Phase::Load => "load",
            Phase::Admission => "admission",
            Phase::Instantiate => "instantiate",
            Phase::Call => "call",
            Phase::OutputCheck => "output check",
        })
    }
}

impl SandboxError {
    /// The phase this failure belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            SandboxError::Engine(_) | SandboxError::InvalidComponent(_) | SandboxError::UnsupportedImport { .. } => {
                Phase::Load
            }
            SandboxError::LimitAboveMaximum { .. }
            | SandboxError::NotCovered { .. }
            | SandboxError::NotGranted { .. }
            | SandboxError::NodeBusy { .. }
            | SandboxError::NoSlot { .. }
            | SandboxError::Session(_) => Phase::Admission,
            SandboxError::Instantiate(_) => Phase::Instantiate,
            SandboxError::Timeout { .. }
            | SandboxError::MemoryLimit { .. }
            | SandboxError::TableLimit { .. }
            | SandboxError::ScratchFull { .. }
            | SandboxError::Trap { .. }
            | SandboxError::InvalidArguments(_)
            | SandboxError::NotFound(_)
            | SandboxError::InputRequired(_)
            | SandboxError::MissingCapability(_)
            | SandboxError::ToolFailed(_) => Phase::Call,
            SandboxError::OutputTooLarge { .. }
            | SandboxError::TransferTooLarge { .. }
            | SandboxError::InvalidOutput(_) => Phase::OutputCheck,
        }
    }
}

/// Formats a byte count with a binary unit, as the limits are written.
pub fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

fn humanize_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_readable_units() {
        let e = SandboxError::MemoryLimit { limit: 256 << 20, requested: (256 << 20) + (1 << 19) };
        assert_eq!(e.to_string(), "tool exceeded its memory limit of 256 MiB (it asked for 256.5 MiB)");
        let e = SandboxError::Timeout { limit: Duration::from_millis(1500) };
        assert_eq!(e.to_string(), "tool exceeded its time limit of 1500 ms");
        assert_eq!(humanize_bytes(512), "512 B");
    }
}
