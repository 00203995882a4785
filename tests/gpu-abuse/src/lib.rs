//! A GPU test component: it runs whatever WGSL and workload its caller
//! sends, so tests written apart from the host can throw hostile shaders,
//! oversized buffers and dispatch storms at it and check each is contained.
use toolmesh_guest::gpu::{DeviceKind, Gpu, Workgroups};
use toolmesh_guest::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// Arguments of `run_wgsl`.
#[derive(Deserialize, JsonSchema)]
struct RunWgsl {
    /// The WGSL source.
    wgsl: String,
    /// The compute entry point.
    #[serde(default = "main")]
    entry: String,
    /// The buffers, bound at @binding(0), (1), …: each the u32 values it
    /// starts with.
    buffers: Vec<Vec<u32>>,
    /// Zeroed buffers of these byte sizes, bound after `buffers`.
    #[serde(default)]
    zeroed: Vec<u64>,
    /// Workgroups (x, y, z).
    #[serde(default = "one")]
    workgroups: [u32; 3],
    /// Which buffer to read back after the dispatch.
    #[serde(default)]
    read: usize,
    /// Return at most this many values of it.
    read_words: Option<usize>,
}

fn main() -> String {
    "main".into()
}

fn one() -> [u32; 3] {
    [1, 1, 1]
}

/// Arguments of `alloc`.
#[derive(Deserialize, JsonSchema)]
struct Alloc {
    /// Bytes of each buffer.
    bytes: u64,
    /// How many buffers to hold at once.
    #[serde(default = "single")]
    count: u32,
    /// Read every buffer back and count the bytes that are not zero.
    #[serde(default)]
    read: bool,
}

fn single() -> u32 {
    1
}

/// Arguments of `dispatch_storm`.
#[derive(Deserialize, JsonSchema)]
struct Storm {
    /// How many dispatches to queue.
    count: u32,
}

/// The adapter and budgets, as the call sees them.
#[derive(Serialize, JsonSchema)]
struct AdapterOut {
    name: String,
    backend: String,
    kind: String,
    max_buffer_size: u64,
    max_total_bytes: u64,
    max_dispatches: u32,
    time_budget_ms: u64,
    max_loop_iterations: u32,
}

/// What a workload returned.
#[derive(Serialize, JsonSchema)]
struct Values {
    /// The buffer read back, or the counter.
    values: Vec<u32>,
}

/// What `alloc` held.
#[derive(Serialize, JsonSchema)]
struct Held {
    buffers: usize,
    nonzero_bytes: u64,
}

fn adapter(_: NoArgs) -> Result<Json<AdapterOut>, ToolError> {
    let gpu = Gpu::open()?;
    let info = gpu.info();
    let l = &info.limits;
    Ok(Json(AdapterOut {
        name: info.name.clone(),
        backend: info.backend.clone(),
        kind: match info.kind {
            DeviceKind::Integrated => "integrated",
            DeviceKind::Discrete => "discrete",
            DeviceKind::VirtualGpu => "virtual",
            DeviceKind::Cpu => "cpu",
            DeviceKind::Other => "other",
        }
        .into(),
        max_buffer_size: l.max_buffer_size,
        max_total_bytes: l.max_total_bytes,
        max_dispatches: l.max_dispatches,
        time_budget_ms: l.time_budget_ms,
        max_loop_iterations: l.max_loop_iterations,
    }))
}

fn run_wgsl(args: RunWgsl) -> Result<Json<Values>, ToolError> {
    let gpu = Gpu::open()?;
    let kernel = gpu.kernel(&args.wgsl, &args.entry)?;
    let mut buffers = args.buffers.iter().map(|values| gpu.upload_u32(values)).collect::<Result<Vec<_>, _>>()?;
    for bytes in &args.zeroed {
        buffers.push(gpu.zeroed(*bytes)?);
    }
    let bound: Vec<_> = buffers.iter().collect();
    let [x, y, z] = args.workgroups;
    kernel.dispatch(&bound, Workgroups(x, y, z))?;
    let target = buffers.get(args.read).ok_or_else(|| ToolError::invalid_arguments("read: no such buffer"))?;
    let mut values = target.read_u32()?;
    values.truncate(args.read_words.unwrap_or(usize::MAX));
    Ok(Json(Values { values }))
}

fn alloc(args: Alloc) -> Result<Json<Held>, ToolError> {
    let gpu = Gpu::open()?;
    let mut held = Vec::new();
    for _ in 0..args.count {
        held.push(gpu.zeroed(args.bytes)?);
    }
    let mut nonzero = 0u64;
    if args.read {
        for buffer in &held {
            nonzero += buffer.read_bytes(0, buffer.size())?.iter().filter(|b| **b != 0).count() as u64;
        }
    }
    Ok(Json(Held { buffers: held.len(), nonzero_bytes: nonzero }))
}

const INCREMENT: &str = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
    @compute @workgroup_size(1) fn main() { v[0] = v[0] + 1u; }";

fn dispatch_storm(args: Storm) -> Result<Json<Values>, ToolError> {
    let gpu = Gpu::open()?;
    let counter = gpu.zeroed(4)?;
    let kernel = gpu.kernel(INCREMENT, "main")?;
    for _ in 0..args.count {
        kernel.dispatch(&[&counter], 1)?;
    }
    Ok(Json(Values { values: counter.read_u32()? }))
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("adapter", "Describes the GPU adapter and this call's budgets.", adapter),
        Tool::new("run_wgsl", "Runs a WGSL compute shader on u32 buffers and returns one buffer.", run_wgsl),
        Tool::new("alloc", "Holds GPU buffers at once, optionally reading them back.", alloc),
        Tool::new(
            "dispatch_storm",
            "Queues many one-invocation dispatches that each add one to a counter.",
            dispatch_storm,
        ),
    ]
}

toolmesh_guest::export_tools!(tools);
