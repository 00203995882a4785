//! What this process counts, in the Prometheus text format at `/metrics`:
//! calls and their latency per tool as the gateway saw them and as the
//! node ran them, errors by kind, in-flight calls, calls waiting for room,
//! retries, live nodes, the compiled-component cache, and what each
//! caller used of each tool (calls, CPU and GPU time, bytes) and the
//! quotas it ran into.
//!
//! One set per process ([`global`]): `tool serve` is a gateway and a node
//! at once and shows both; `tool gateway` and `tool node` show their own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

/// A call's tool and how it ended (`ok`, or an error kind such as `timeout`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The tool's name.
    pub tool: String,
    /// `ok`, `cancelled`, or the error's kind.
    pub outcome: String,
}

/// A tool's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabel {
    /// The tool's name.
    pub tool: String,
}

/// One node's attempts and how they ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// The node's id.
    pub node: String,
    /// `ok`, `failed` (the node answered with an error) or `lost`.
    pub outcome: String,
}

/// Who called, and how the call ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    /// The caller's name (a token's subject, an API key's id), bounded by
    /// [`BoundedLabels`].
    pub caller: String,
    /// `ok`, `cancelled`, or the error's kind.
    pub outcome: String,
}

/// Who used which tool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    /// The caller's name, bounded by [`BoundedLabels`].
    pub caller: String,
    /// The tool's name, bounded by [`BoundedLabels`].
    pub tool: String,
}

/// Who ran into which quota.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    /// The caller's name, bounded by [`BoundedLabels`].
    pub caller: String,
    /// The quota (`calls_per_minute`, `cpu_seconds_per_hour`, `concurrent_calls`).
    pub quota: String,
}

type Seconds = Family<UsageLabels, Counter<f64, std::sync::atomic::AtomicU64>>;

/// Why something happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason, one word.
    pub reason: String,
}

type Latency = Family<ToolLabel, Histogram, fn() -> Histogram>;

/// Seconds from 0.5 ms to about two minutes, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// What an MCP front counts (`tool serve`, `tool gateway`).
pub struct GatewayMetrics {
    /// Calls by tool and outcome.
    pub calls: Family<CallLabels, Counter>,
    /// Call latency by tool, as the client waited for it.
    pub seconds: Latency,
    /// Calls running now.
    pub in_flight: Gauge,
    /// Calls waiting for room on a fitting node.
    pub waiting: Gauge,
    /// Attempts made again elsewhere, by reason (`lost`, `refused`).
    pub retries: Family<ReasonLabel, Counter>,
    /// Nodes whose adverts are live.
    pub nodes: Gauge,
    /// Attempts by node and outcome.
    pub node_attempts: Family<NodeLabels, Counter>,
    /// Calls by caller and outcome.
    pub caller_calls: Family<CallerLabels, Counter>,
    /// The caller names `caller_calls` and the usage metrics carry.
    pub callers: BoundedLabels,
    /// The tool names the usage metrics carry.
    pub usage_tools: BoundedLabels,
    /// CPU time of calls, by caller and tool.
    pub usage_cpu: Seconds,
    /// GPU time of calls, by caller and tool.
    pub usage_gpu: Seconds,
    /// Bytes of arguments, by caller and tool.
    pub usage_bytes_in: Family<UsageLabels, Counter>,
    /// Bytes of results, by caller and tool.
    pub usage_bytes_out: Family<UsageLabels, Counter>,
    /// Calls refused for a quota, by caller and quota.
    pub quota_refusals: Family<QuotaLabels, Counter>,
    /// Calls, errors and recent latencies per tool, for people (web pages).
    pub tally: CallTally,
}

/// Recent latencies kept per tool for [`ToolTally`]'s percentiles.
const RECENT_CALLS: usize = 512;

/// Per-tool counts a page can read: calls, errors, and the latencies of the
/// last [`RECENT_CALLS`] calls. Keyed by the gateway's tool names, which
/// come from its catalog, so the map grows only with the catalog.
#[derive(Default)]
pub struct CallTally(std::sync::Mutex<std::collections::HashMap<String, ToolTally>>);

/// One tool's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolTally {
    /// Calls that ended (cancelled ones included).
    pub calls: u64,
    /// Calls that ended in an error.
    pub errors: u64,
    /// Seconds of the most recent calls, oldest first once full.
    recent: std::collections::VecDeque<f64>,
}

impl ToolTally {
    /// The `q` quantile (0–1) of recent latencies in seconds, if any call ended.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let last = sorted.len().checked_sub(1)?;
        Some(sorted[((last as f64) * q.clamp(0.0, 1.0)).round() as usize])
    }
}

impl CallTally {
    /// Counts a call of `tool` that ended with `outcome` after `secs`.
    pub fn record(&self, tool: &str, outcome: &str, secs: f64) {
        let mut tools = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let tally = tools.entry(tool.to_owned()).or_default();
        tally.calls += 1;
        if outcome != "ok" && outcome != "cancelled" {
            tally.errors += 1;
        }
        if tally.recent.len() == RECENT_CALLS {
            tally.recent.pop_front();
        }
        tally.recent.push_back(secs);
    }

    /// The counts of `tool`, if it was called.
    pub fn get(&self, tool: &str) -> Option<ToolTally> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(tool).cloned()
    }
}

/// What a node counts (`tool serve`, `tool node`).
pub struct NodeMetrics {
    /// Calls run, by tool and outcome.
    pub calls: Family<CallLabels, Counter>,
    /// Time to run a call, by tool (fetch and compile included on a miss).
    pub seconds: Latency,
    /// Calls running now.
    pub in_flight: Gauge,
    /// Component lookups, by result (`hit`, `miss`).
    pub components: Family<ReasonLabel, Counter>,
    /// Time to fetch and compile a component on a miss.
    pub load_seconds: Histogram,
    /// The tool names its metrics carry.
    pub tools: BoundedLabels,
}

/// The names (a node's tools, a gateway's callers) a metric is labelled
/// with: the first [`MAX_TOOL_LABELS`] names met (each at most 64
/// characters); any other counts as `other`, so callers cannot grow the
/// metrics without bound.
#[derive(Default)]
pub struct BoundedLabels(std::sync::Mutex<std::collections::HashSet<String>>);

/// Distinct names one such metric carries.
pub const MAX_TOOL_LABELS: usize = 256;

impl BoundedLabels {
    /// The label for `tool`.
    pub fn label(&self, tool: &str) -> String {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(tool) {
            return tool.to_owned();
        }
        let usable = tool.len() <= 64 && !tool.is_empty() && tool.bytes().all(|b| b.is_ascii_graphic());
        if usable && seen.len() < MAX_TOOL_LABELS {
            seen.insert(tool.to_owned());
            return tool.to_owned();
        }
        "other".to_owned()
    }
}

/// All of this process's metrics and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    /// The MCP front's.
    pub gateway: GatewayMetrics,
    /// The node's.
    pub node: NodeMetrics,
}

impl Metrics {
    fn new() -> Self {
        let gateway = GatewayMetrics {
            calls: Family::default(),
            seconds: Family::new_with_constructor(latency),
            in_flight: Gauge::default(),
            waiting: Gauge::default(),
            retries: Family::default(),
            nodes: Gauge::default(),
            node_attempts: Family::default(),
            caller_calls: Family::default(),
            callers: BoundedLabels::default(),
            usage_tools: BoundedLabels::default(),
            usage_cpu: Family::default(),
            usage_gpu: Family::default(),
            usage_bytes_in: Family::default(),
            usage_bytes_out: Family::default(),
            quota_refusals: Family::default(),
            tally: CallTally::default(),
        };
        let node = NodeMetrics {
            calls: Family::default(),
            seconds: Family::new_with_constructor(latency),
            in_flight: Gauge::default(),
            components: Family::default(),
            load_seconds: latency(),
            tools: BoundedLabels::default(),
        };
        let mut registry = Registry::with_prefix("toolmesh");
        let g = registry.sub_registry_with_prefix("gateway");
        g.register("calls", "Tool calls by tool and outcome", gateway.calls.clone());
        g.register("call_seconds", "Tool call latency as clients waited for it", gateway.seconds.clone());
        g.register("in_flight", "Tool calls running now", gateway.in_flight.clone());
        g.register("waiting", "Tool calls waiting for room on a fitting node", gateway.waiting.clone());
        g.register("retries", "Attempts made again on another node, by reason", gateway.retries.clone());
        g.register("nodes", "Nodes whose adverts are live", gateway.nodes.clone());
        g.register("node_attempts", "Attempts by node and outcome", gateway.node_attempts.clone());
        g.register("caller_calls", "Tool calls by caller and outcome", gateway.caller_calls.clone());
        g.register("usage_cpu_seconds", "CPU time of calls by caller and tool", gateway.usage_cpu.clone());
        g.register("usage_gpu_seconds", "GPU time of calls by caller and tool", gateway.usage_gpu.clone());
        g.register("usage_bytes_in", "Bytes of arguments by caller and tool", gateway.usage_bytes_in.clone());
        g.register("usage_bytes_out", "Bytes of results by caller and tool", gateway.usage_bytes_out.clone());
        g.register("quota_refusals", "Calls refused for a quota, by caller and quota", gateway.quota_refusals.clone());
        let n = registry.sub_registry_with_prefix("node");
        n.register("calls", "Calls run by tool and outcome", node.calls.clone());
        n.register("call_seconds", "Time to run a call", node.seconds.clone());
        n.register("in_flight", "Calls running now", node.in_flight.clone());
        n.register("components", "Component lookups by result (hit, miss)", node.components.clone());
        n.register("load_seconds", "Time to fetch and compile a component on a miss", node.load_seconds.clone());
        Metrics { registry, gateway, node }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Counts one in a gauge until dropped (however the work ends).
pub struct Counting<'a>(&'a Gauge);

impl<'a> Counting<'a> {
    /// Adds one to `gauge` until the guard is dropped.
    pub fn start(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Counting(gauge)
    }
}

impl Drop for Counting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Records a finished call in `calls` and `seconds`.
pub fn record_call(calls: &Family<CallLabels, Counter>, seconds: &Latency, tool: &str, outcome: &str, secs: f64) {
    calls.get_or_create(&CallLabels { tool: tool.to_owned(), outcome: outcome.to_owned() }).inc();
    seconds.get_or_create(&ToolLabel { tool: tool.to_owned() }).observe(secs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_count_errors_and_rank_latencies() {
        let tally = CallTally::default();
        assert_eq!(tally.get("t"), None);
        for (i, outcome) in ["ok", "timeout", "cancelled", "ok"].iter().enumerate() {
            tally.record("t", outcome, (i + 1) as f64);
        }
        let t = tally.get("t").unwrap();
        assert_eq!((t.calls, t.errors), (4, 1));
        assert_eq!((t.quantile(0.0), t.quantile(0.5), t.quantile(1.0)), (Some(1.0), Some(3.0), Some(4.0)));
        for _ in 0..RECENT_CALLS {
            tally.record("t", "ok", 0.5);
        }
        assert_eq!(tally.get("t").unwrap().quantile(1.0), Some(0.5), "only recent calls are ranked");
    }

    #[test]
    fn calls_show_up_in_the_text_format() {
        let metrics = Metrics::new();
        record_call(&metrics.gateway.calls, &metrics.gateway.seconds, "text.count", "ok", 0.003);
        record_call(&metrics.gateway.calls, &metrics.gateway.seconds, "text.count", "timeout", 2.0);
        {
            let _running = Counting::start(&metrics.node.in_flight);
            assert!(metrics.encode().contains("toolmesh_node_in_flight 1\n"));
        }
        let caller = CallerLabels { caller: metrics.gateway.callers.label("alice"), outcome: "ok".into() };
        metrics.gateway.caller_calls.get_or_create(&caller).inc();
        let text = metrics.encode();
        assert!(text.contains(r#"toolmesh_gateway_caller_calls_total{caller="alice",outcome="ok"} 1"#), "{text}");
        assert!(text.contains("toolmesh_node_in_flight 0\n"), "{text}");
        assert!(text.contains(r#"toolmesh_gateway_calls_total{tool="text.count",outcome="ok"} 1"#), "{text}");
        assert!(text.contains(r#"toolmesh_gateway_calls_total{tool="text.count",outcome="timeout"} 1"#), "{text}");
        assert!(text.contains(r#"toolmesh_gateway_call_seconds_count{tool="text.count"} 2"#), "{text}");
        assert!(text.contains(r#"toolmesh_gateway_call_seconds_bucket{le="0.004",tool="text.count"} 1"#), "{text}");
    }

    #[test]
    fn tool_labels_are_bounded() {
        let labels = BoundedLabels::default();
        assert_eq!(labels.label("count"), "count");
        assert_eq!(labels.label(&"x".repeat(65)), "other");
        assert_eq!(labels.label("bad\nname"), "other");
        for i in 1..MAX_TOOL_LABELS {
            assert_eq!(labels.label(&format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(labels.label("one-too-many"), "other");
        assert_eq!(labels.label("count"), "count", "names already seen keep their label");
    }
}
