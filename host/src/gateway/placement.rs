//! Where a call runs when there are several nodes: a pure function of the
//! table of nodes (from their adverts) and what the call needs, so it is
//! tested on its own and every gateway decides alike.
//!
//! The algorithm, in order:
//!
//! 1. **Policy fit.** Only nodes whose grants cover the tool's whole
//!    request ([`Grants::missing`] is empty). None: "no node grants …",
//!    naming what the closest node lacks (or "no GPU node" for a GPU tool
//!    when no node has an adapter).
//! 2. **Hardware fit.** A tool that requires a GPU needs a node with a GPU
//!    adapter (and a policy that grants it).
//! 3. **Health.** Nodes whose circuit breaker is open, and nodes this call
//!    already tried, are skipped. None left: "no healthy node".
//! 4. **Room.** Nodes with a free slot. None: [`NoPlacement::NoCapacity`];
//!    the caller waits a bounded time for room and places again.
//! 5. **Order.** For a tool whose GPU is optional, nodes that would give
//!    it one (granted, with an adapter) first: it falls back to the others
//!    only when none of those has room or health. Then nodes that have
//!    compiled the component (cache affinity), then the lowest load per
//!    slot (in flight / slots), then by id so equal nodes are always
//!    ranked the same.
//!
//! The answer is a ranking: the first node gets the call, the rest are
//! where a retry goes.

use crate::grant::Grants;
use std::cmp::Ordering;
use toolmesh_registry::request::ToolRequest;

/// One node as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// The node's id.
    pub id: String,
    /// What its policy grants.
    pub grants: Grants,
    /// GPU adapters it offers.
    pub gpus: usize,
    /// Calls it runs at once.
    pub slots: u32,
    /// Calls running on it now (its advert plus what this gateway sent since).
    pub in_flight: u32,
    /// Whether it has compiled the call's component.
    pub has_compiled: bool,
    /// Whether its circuit breaker is open (recent failures): skipped.
    pub breaker_open: bool,
}

/// What a call needs of a node.
#[derive(Debug, Clone, Copy)]
pub struct CallNeeds<'a> {
    /// The tool's published request.
    pub request: &'a ToolRequest,
    /// Nodes this call already tried (a retry never goes back).
    pub tried: &'a [String],
}

/// Why no node can take the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPlacement {
    /// No node could ever run it as things stand.
    #[error("{0}")]
    NoFit(String),
    /// Nodes fit, but every one is full.
    #[error("no capacity: all {fitting} nodes that can run this tool are busy")]
    NoCapacity {
        /// How many nodes fit.
        fitting: usize,
    },
}

/// The nodes that may take a call with `needs`, best first.
pub fn place<'a>(nodes: &'a [NodeView], needs: CallNeeds<'_>) -> Result<Vec<&'a NodeView>, NoPlacement> {
    if nodes.is_empty() {
        return Err(NoPlacement::NoFit("no node is connected".into()));
    }
    let fitting: Vec<&NodeView> = nodes.iter().filter(|n| n.grants.missing(needs.request).is_empty()).collect();
    if fitting.is_empty() {
        return Err(NoPlacement::NoFit(why_none_fits(nodes, needs.request)));
    }
    let hardware: Vec<&NodeView> =
        fitting.into_iter().filter(|n| !needs.request.requires_gpu() || n.gpus > 0).collect();
    if hardware.is_empty() {
        return Err(NoPlacement::NoFit("no GPU node: the nodes that grant GPU compute have no adapter".into()));
    }
    let healthy: Vec<&NodeView> =
        hardware.iter().copied().filter(|n| !n.breaker_open && !needs.tried.contains(&n.id)).collect();
    if healthy.is_empty() {
        return Err(NoPlacement::NoFit(format!(
            "no healthy node: the {} nodes that can run this tool failed recently or were tried",
            hardware.len()
        )));
    }
    let mut free: Vec<&NodeView> = healthy.iter().copied().filter(|n| n.in_flight < n.slots).collect();
    if free.is_empty() {
        return Err(NoPlacement::NoCapacity { fitting: healthy.len() });
    }
    let prefers_gpu = needs.request.gpu_optional;
    let gives_gpu = |n: &NodeView| prefers_gpu && n.grants.gpu && n.gpus > 0;
    free.sort_by(|a, b| {
        gives_gpu(b)
            .cmp(&gives_gpu(a))
            .then_with(|| b.has_compiled.cmp(&a.has_compiled))
            .then_with(|| load_order(a, b))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(free)
}

/// Lower load per slot first, compared exactly (`a.in/a.slots` vs `b.in/b.slots`).
fn load_order(a: &NodeView, b: &NodeView) -> Ordering {
    (u64::from(a.in_flight) * u64::from(b.slots)).cmp(&(u64::from(b.in_flight) * u64::from(a.slots)))
}

/// Why no node's grants cover `request`: what the closest node lacks.
fn why_none_fits(nodes: &[NodeView], request: &ToolRequest) -> String {
    if request.requires_gpu() && nodes.iter().all(|n| n.gpus == 0) {
        return "no GPU node".into();
    }
    let closest = nodes
        .iter()
        .map(|n| n.grants.missing(request))
        .min_by_key(Vec::len)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.split(" (").next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    format!("no node grants {}", closest.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolmesh_registry::request::{NetworkRule, Scheme};

    fn grants(network: &[&str], gpu: bool) -> Grants {
        Grants {
            network: network.iter().map(|t| t.parse().unwrap()).collect(),
            allow_private: false,
            scratch_max: None,
            secrets: Vec::new(),
            files: Vec::new(),
            gpu,
            max_memory: None,
            max_timeout_ms: 60_000,
        }
    }

    fn node(id: &str, in_flight: u32, slots: u32) -> NodeView {
        NodeView {
            id: id.into(),
            grants: grants(&[], false),
            gpus: 0,
            slots,
            in_flight,
            has_compiled: false,
            breaker_open: false,
        }
    }

    fn ids(placed: Result<Vec<&NodeView>, NoPlacement>) -> Vec<String> {
        placed.unwrap().iter().map(|n| n.id.clone()).collect()
    }

    fn needs(request: &ToolRequest) -> CallNeeds<'_> {
        CallNeeds { request, tried: &[] }
    }

    fn network(host: &str) -> ToolRequest {
        ToolRequest {
            network: vec![NetworkRule {
                scheme: Scheme::Https,
                host: host.parse().unwrap(),
                port: None,
                methods: vec!["GET".into()],
            }],
            ..ToolRequest::default()
        }
    }

    #[test]
    fn least_load_per_slot_wins_and_ties_are_stable() {
        let nodes = [node("b", 2, 4), node("a", 1, 4), node("c", 3, 16)];
        assert_eq!(ids(place(&nodes, needs(&ToolRequest::default()))), ["c", "a", "b"]);
        let even = [node("b", 0, 4), node("a", 0, 8)];
        assert_eq!(ids(place(&even, needs(&ToolRequest::default()))), ["a", "b"]);
    }

    #[test]
    fn cache_affinity_comes_before_load() {
        let mut warm = node("warm", 3, 4);
        warm.has_compiled = true;
        let nodes = [node("cold", 0, 4), warm];
        assert_eq!(ids(place(&nodes, needs(&ToolRequest::default()))), ["warm", "cold"]);
    }

    #[test]
    fn only_nodes_whose_policy_covers_the_request() {
        let mut open = node("open", 3, 4);
        open.grants = grants(&["api.example.com"], false);
        let nodes = [node("closed", 0, 4), open];
        assert_eq!(ids(place(&nodes, needs(&network("api.example.com")))), ["open"]);
        let err = place(&nodes, needs(&network("api.other.com"))).unwrap_err();
        assert_eq!(err, NoPlacement::NoFit("no node grants network GET https://api.other.com".into()));
    }

    #[test]
    fn gpu_tools_need_a_gpu_node() {
        let request = ToolRequest { gpu: true, ..ToolRequest::default() };
        let mut granted_no_adapter = node("a", 0, 4);
        granted_no_adapter.grants = grants(&[], true);
        assert_eq!(place(&[node("cpu", 0, 4)], needs(&request)).unwrap_err(), NoPlacement::NoFit("no GPU node".into()));
        let err = place(std::slice::from_ref(&granted_no_adapter), needs(&request)).unwrap_err();
        assert!(err.to_string().starts_with("no GPU node"), "{err}");
        let mut gpu = granted_no_adapter.clone();
        gpu.id = "gpu".into();
        gpu.gpus = 1;
        assert_eq!(ids(place(&[granted_no_adapter, gpu], needs(&request))), ["gpu"]);
    }

    #[test]
    fn optional_gpu_tools_prefer_gpu_nodes_and_fall_back_to_others() {
        let request = ToolRequest { gpu_optional: true, ..ToolRequest::default() };
        let mut gpu = node("gpu", 3, 4);
        gpu.grants = grants(&[], true);
        gpu.gpus = 1;
        let mut warm_cpu = node("warm-cpu", 0, 4);
        warm_cpu.has_compiled = true;
        // Alone, a CPU node runs it.
        assert_eq!(ids(place(std::slice::from_ref(&warm_cpu), needs(&request))), ["warm-cpu"]);
        // A GPU node with room comes first, busier and colder as it is.
        assert_eq!(ids(place(&[warm_cpu.clone(), gpu.clone()], needs(&request))), ["gpu", "warm-cpu"]);
        // An adapter the policy does not grant is no GPU for the tool.
        let mut ungranted = gpu.clone();
        ungranted.grants = grants(&[], false);
        assert_eq!(ids(place(&[ungranted, warm_cpu.clone()], needs(&request))), ["warm-cpu", "gpu"]);
        // A full GPU node: the call falls back at once.
        gpu.in_flight = 4;
        assert_eq!(ids(place(&[warm_cpu.clone(), gpu], needs(&request))), ["warm-cpu"]);
        // Tools that do not use a GPU are placed as before.
        let mut idle_gpu = node("idle-gpu", 0, 4);
        idle_gpu.grants = grants(&[], true);
        idle_gpu.gpus = 1;
        assert_eq!(ids(place(&[idle_gpu, warm_cpu], needs(&ToolRequest::default()))), ["warm-cpu", "idle-gpu"]);
    }

    #[test]
    fn broken_tried_and_full_nodes_are_skipped() {
        let mut broken = node("broken", 0, 4);
        broken.breaker_open = true;
        let nodes = [broken, node("tried", 0, 4), node("full", 4, 4), node("ok", 3, 4)];
        let tried = ["tried".to_owned()];
        let placed = place(&nodes, CallNeeds { request: &ToolRequest::default(), tried: &tried });
        assert_eq!(ids(placed), ["ok"]);
        let all_full = [node("x", 4, 4), node("y", 1, 1)];
        assert_eq!(
            place(&all_full, needs(&ToolRequest::default())).unwrap_err(),
            NoPlacement::NoCapacity { fitting: 2 }
        );
        assert_eq!(place(&[], needs(&ToolRequest::default())).unwrap_err().to_string(), "no node is connected");
    }
}
