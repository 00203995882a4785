//! A GPU test component: it runs whatever WGSL and workload its caller
//! sends, so tests written apart from the host can throw hostile shaders,
//! oversized buffers and dispatch storms at it and check each is contained.
use serde_json::Value;
use toolmesh_guest::bindings::toolmesh::tool::gpu as wit;
use toolmesh_guest::gpu::{DeviceKind, Gpu, GpuError, Workgroups};
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
    /// Optional features kernels may use.
    features: Vec<String>,
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
        features: gpu.features()?,
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

/// One upload of `weights`.
#[derive(Deserialize, JsonSchema)]
struct Upload {
    /// The values, as little-endian bytes.
    values: Vec<u32>,
    /// The SHA-256 claimed for them.
    sha256: String,
    /// The length claimed in bytes; the values' when absent.
    length: Option<u64>,
    /// Bytes per write (64 KiB when absent).
    piece: Option<usize>,
}

/// Arguments of `weights`.
#[derive(Deserialize, JsonSchema)]
struct KeepArgs {
    /// Weights to keep, one after another: each found if the node keeps
    /// it, else uploaded.
    uploads: Vec<Upload>,
    /// Hold every kept buffer to the end of the call (else each is dropped
    /// at once).
    #[serde(default)]
    hold: bool,
    /// Queue a kernel that reads each one (not waited for) before it is
    /// dropped.
    #[serde(default)]
    queue_reads: bool,
    /// What to try on the first kept weights afterwards, in order: `read`
    /// (read them back), `sum` (a read-only kernel sums them), `write` (a
    /// write into them), `bind_writable` (a kernel that may write them).
    #[serde(default)]
    then: Vec<String>,
}

/// What `weights` met.
#[derive(Serialize, JsonSchema)]
struct Kept {
    /// For each upload, whether the node already kept it.
    found: Vec<bool>,
    /// For each upload, `ok` or the error.
    answers: Vec<String>,
    /// For each of `then`, the values read back or the error.
    then: Vec<Value>,
}

const SUM: &str = "@group(0) @binding(0) var<storage, read> w: array<u32>;
    @group(0) @binding(1) var<storage, read_write> out: array<u32>;
    @compute @workgroup_size(1) fn main() {
        var total = 0u;
        for (var i = 0u; i < arrayLength(&w); i++) { total += w[i]; }
        out[0] = total;
    }";

const BUMP: &str = "@group(0) @binding(0) var<storage, read_write> w: array<u32>;
    @compute @workgroup_size(1) fn main() { w[0] = w[0] + 1u; }";

/// Finds or uploads one of `weights`' uploads; whether it was found.
fn keep(upload: &Upload) -> Result<(bool, wit::Buffer), GpuError> {
    if let Some(kept) = wit::Buffer::find_weights(&upload.sha256)? {
        return Ok((true, kept));
    }
    let bytes: Vec<u8> = upload.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let started = wit::WeightsUpload::start(&upload.sha256, upload.length.unwrap_or(bytes.len() as u64))?;
    for piece in bytes.chunks(upload.piece.unwrap_or(1 << 16).max(1)) {
        started.write(piece)?;
    }
    Ok((false, wit::WeightsUpload::finish(started)?))
}

fn weights(args: KeepArgs) -> Result<Json<Kept>, ToolError> {
    let gpu = Gpu::open()?;
    let mut out = Kept { found: Vec::new(), answers: Vec::new(), then: Vec::new() };
    let mut held = Vec::new();
    let reader =
        if args.queue_reads { Some((wit::Kernel::compile(SUM, "main")?, wit::Buffer::create(4)?)) } else { None };
    for upload in &args.uploads {
        match keep(upload) {
            Ok((found, buffer)) => {
                out.found.push(found);
                out.answers.push("ok".into());
                if let Some((kernel, total)) = &reader {
                    let bindings =
                        [wit::Binding { index: 0, buffer: &buffer }, wit::Binding { index: 1, buffer: total }];
                    kernel.dispatch(&bindings, (1, 1, 1))?;
                }
                if args.hold || held.is_empty() {
                    held.push(buffer);
                }
            }
            Err(e) => {
                out.found.push(false);
                out.answers.push(e.message());
            }
        }
    }
    let first = held.first().ok_or_else(|| ToolError::failed("no weights were kept"))?;
    let bind = |kernel: &str, extra: Option<&wit::Buffer>| -> Result<(), GpuError> {
        let kernel = wit::Kernel::compile(kernel, "main")?;
        let mut bindings = vec![wit::Binding { index: 0, buffer: first }];
        bindings.extend(extra.map(|buffer| wit::Binding { index: 1, buffer }));
        kernel.dispatch(&bindings, (1, 1, 1))
    };
    let words = |bytes: Vec<u8>| -> Value {
        bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>().into()
    };
    for action in &args.then {
        let answer = match action.as_str() {
            "read" => first.read(0, first.size()).map(words),
            "sum" => wit::Buffer::create(4).and_then(|total| {
                bind(SUM, Some(&total))?;
                total.read(0, 4).map(words)
            }),
            "write" => first.write(0, &[1, 0, 0, 0]).map(|()| Value::from("ok")),
            "bind_writable" => bind(BUMP, None).and_then(|()| wit::finish()).map(|()| Value::from("ok")),
            other => return Err(ToolError::invalid_arguments(format!("then: unknown action `{other}`"))),
        };
        out.then.push(answer.unwrap_or_else(|e| Value::from(e.message())));
    }
    drop(gpu);
    Ok(Json(out))
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
        Tool::new(
            "weights",
            "Keeps weights on the GPU (found, else uploaded) and tries reads, kernels and writes on them.",
            weights,
        ),
    ]
}

toolmesh_guest::export_tools!(tools);
