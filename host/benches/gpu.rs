//! GPU compute through the sandbox, measured the way users run it: the
//! release `tool serve --gpu` in its own process, called over MCP, beside
//! the same WGSL kernel (`examples/matmul/src/matmul.wgsl`) run natively
//! with wgpu on the same adapter by this process, and beside the same
//! product on the CPU inside wasm.
//!
//! For each N, `matmul_bench` generates two N×N f32 matrices inside the
//! sandbox and multiplies them; the tool reports the time of the product
//! itself (upload, dispatch, read-back), and this process measures the
//! whole MCP call. The native baseline times the same steps: upload,
//! dispatch, read-back, with the pipeline made beforehand (the sandbox
//! caches a component's kernels too). Medians of a few runs after a
//! warm-up run at each size.
//!
//! Run with `scripts/bench.sh gpu`; the adapter is the best Vulkan one
//! found (lavapipe on a machine without a GPU) and is named in the output.

mod common;

use common::{call_tool as call, start_gpu_serve as start_serve};
use serde_json::json;
use std::time::Instant;

const WGSL: &str = include_str!("../../examples/matmul/src/matmul.wgsl");
const SIZES: [u32; 4] = [256, 512, 1024, 2048];
/// The CPU path inside wasm is timed up to this size.
const CPU_MAX: u32 = 1024;
const RUNS: usize = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The same matmul natively through wgpu.
struct Native {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    name: String,
}

impl Native {
    fn new() -> Native {
        // The adapter the node chooses.
        let adapter = toolmesh_host::capability::gpu::device::best_adapter().expect("no Vulkan adapter");
        let name = adapter.get_info().name;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            required_limits: adapter.limits(),
            // As the node asks for its device.
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        }))
        .expect("open the device");
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(WGSL.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Native { device, queue, pipeline, name }
    }

    fn buffer(&self, bytes: &[u8]) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.len() as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// Upload, dispatch and read back an N×N product; returns milliseconds.
    fn product_ms(&self, n: u32) -> f64 {
        let values: Vec<u8> = (0..n * n).flat_map(|i| ((i % 7) as f32 * 0.25 - 0.75).to_le_bytes()).collect();
        let started = Instant::now();
        let a = self.buffer(&values);
        let b = self.buffer(&values);
        let bytes = u64::from(n) * u64::from(n) * 4;
        let c = self.buffer(&vec![0u8; bytes as usize]);
        let dims = self.buffer(&[n, n, n, 0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let entries: Vec<wgpu::BindGroupEntry> = [&a, &b, &c, &dims]
            .iter()
            .enumerate()
            .map(|(i, buffer)| wgpu::BindGroupEntry { binding: i as u32, resource: buffer.as_entire_binding() })
            .collect();
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(n.div_ceil(16), n.div_ceil(16), 1);
        }
        encoder.copy_buffer_to_buffer(&c, 0, &staging, 0, bytes);
        let index = self.queue.submit([encoder.finish()]);
        staging.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("map"));
        self.device.poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None }).expect("poll");
        let result: Vec<f32> = staging
            .slice(..)
            .get_mapped_range()
            .expect("mapped")
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        staging.unmap();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(result.iter().all(|v| v.is_finite()));
        ms
    }
}

fn main() {
    let native = Native::new();
    native.product_ms(64);
    let data = tempfile::tempdir().unwrap();
    let (_serve, url) = start_serve(data.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = toolmesh_registry::client::http_builder().build().unwrap();
    let tool = "examples.matmul.matmul_bench";
    println!("adapter: {}", native.name);
    println!("| N | native wgpu | sandbox GPU (in tool) | ratio | MCP call, GPU | sandbox CPU (wasm) |");
    println!("|---|---|---|---|---|---|");
    runtime.block_on(async {
        let (warm, _) = call(&http, &url, tool, json!({"n": 64, "device": "gpu"})).await;
        assert!(warm["device"].as_str().unwrap().contains(&native.name), "{warm} on another adapter");
        for n in SIZES {
            native.product_ms(n);
            let native_ms = median((0..RUNS).map(|_| native.product_ms(n)).collect());
            call(&http, &url, tool, json!({"n": n, "device": "gpu"})).await;
            let mut inner = Vec::new();
            let mut outer = Vec::new();
            for seed in 0..RUNS as u32 {
                let (out, ms) = call(&http, &url, tool, json!({"n": n, "seed": seed, "device": "gpu"})).await;
                inner.push(out["ms"].as_f64().unwrap());
                outer.push(ms);
            }
            let (inner, outer) = (median(inner), median(outer));
            let cpu = if n <= CPU_MAX {
                let (out, _) = call(&http, &url, tool, json!({"n": n, "device": "cpu"})).await;
                format!("{:.1} ms", out["ms"].as_f64().unwrap())
            } else {
                "—".into()
            };
            println!("| {n} | {native_ms:.1} ms | {inner:.1} ms | {:.2}× | {outer:.1} ms | {cpu} |", inner / native_ms);
        }
    });
}
