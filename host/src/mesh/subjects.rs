//! The NATS subjects nodes and gateways use, versioned with the wire.

/// Where every node publishes its advert (`toolmesh.v1.advert.<node>`).
pub const ADVERTS: &str = "toolmesh.v1.advert.*";

/// Where node `id` publishes its advert.
pub fn advert(id: &str) -> String {
    format!("toolmesh.v1.advert.{id}")
}

/// Where node `id` takes calls.
pub fn call(id: &str) -> String {
    format!("toolmesh.v1.call.{id}")
}

/// Where node `id` is told to stop a call.
pub fn cancel(id: &str) -> String {
    format!("toolmesh.v1.cancel.{id}")
}

/// Where the gateway answers request `request` of the code of attempt
/// `attempt` of call `call_id` running on node `node`.
pub fn tools(node: &str, call_id: &str, attempt: u32, request: u64) -> String {
    format!("toolmesh.v1.tools.{node}.{call_id}.{attempt}.{request}")
}

/// Where node `id` takes the answers to its calls' calls to other tools.
pub fn tools_answers(id: &str) -> String {
    format!("toolmesh.v1.tools.{id}.>")
}

/// Whether `id` is usable inside a subject: one token of `[A-Za-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
