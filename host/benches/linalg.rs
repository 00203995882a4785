//! A plain matrix product through host linear algebra, measured the way
//! users run it: the release `tool serve` in its own process, called over
//! MCP with `examples.matmul.matmul_bench` (`device: cpu`), which makes two
//! N×N f32 matrices inside the sandbox, sends them to the host, asks for
//! the product and reads it back; the tool reports the time of the product
//! alone (its one host call) and of all those steps, and this process
//! measures the whole MCP call. Beside it the same product
//! called natively from Rust in this process with the same crate (`gemm`,
//! on as many threads as the node uses), and the product inside wasm.
//! Medians of a few runs after a warm-up run at each size.
//!
//! Run with `scripts/bench.sh linalg`.

mod common;

use common::{call_tool, examples_of, start_tool_serve_warmed};
use serde_json::json;
use std::time::Instant;

const SIZES: [u32; 3] = [256, 512, 1024];
const RUNS: usize = 9;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Milliseconds of one native N×N product on all cores.
fn native_ms(n: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> f64 {
    let started = Instant::now();
    // SAFETY: a, b and c each hold n × n values, row-major (row stride n,
    // column stride 1); c is borrowed mutably and aliases neither.
    unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            n as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    started.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let examples = examples_of(dir.path(), &["matmul.wasm"]);
    let (_serve, base) = start_tool_serve_warmed(&dir.path().join("data"), &examples);
    let url = format!("{base}/mcp");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = toolmesh_registry::client::http_builder().build().unwrap();
    let tool = "examples.matmul.matmul_bench";
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "| N | native gemm | product through host linear algebra | ratio | with sending and reading back | MCP call | inside wasm |"
    );
    println!("|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        let (warm, _) = call_tool(&http, &url, tool, json!({"n": 64, "device": "cpu"})).await;
        assert_eq!(warm["device"], "cpu", "{warm}");
        for n in SIZES {
            let count = (n * n) as usize;
            let a: Vec<f32> = (0..count).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
            let b: Vec<f32> = (0..count).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
            let mut c = vec![0.0f32; count];
            native_ms(n as usize, &a, &b, &mut c);
            let native = median((0..RUNS).map(|_| native_ms(n as usize, &a, &b, &mut c)).collect());
            call_tool(&http, &url, tool, json!({"n": n, "device": "cpu"})).await;
            let (mut product, mut inner, mut outer) = (Vec::new(), Vec::new(), Vec::new());
            for seed in 0..RUNS as u32 {
                let (out, ms) = call_tool(&http, &url, tool, json!({"n": n, "seed": seed, "device": "cpu"})).await;
                assert_eq!(out["device"], "cpu");
                product.push(out["product_ms"].as_f64().unwrap());
                inner.push(out["ms"].as_f64().unwrap());
                outer.push(ms);
            }
            let (product, inner, outer) = (median(product), median(inner), median(outer));
            let (wasm, _) = call_tool(&http, &url, tool, json!({"n": n, "device": "wasm"})).await;
            println!(
                "| {n} | {native:.1} ms | {product:.1} ms | {:.2}× | {inner:.1} ms ({:.2}×) | {outer:.1} ms | {:.1} ms |",
                native / product,
                native / inner,
                wasm["ms"].as_f64().unwrap()
            );
        }
    });
}
