//! `model.wasm` (all-MiniLM-L6-v2 in a component) measured the way users
//! run it: the release `tool serve` granting GPU compute, in its own
//! process, called over MCP with `embed` of a batch of 128 sentences in one
//! call, on the GPU path in half and single precision (skipped on a
//! software adapter, where it says nothing about a GPU), the CPU path
//! through host linear algebra and the CPU path inside wasm; the latency
//! of one short sentence, on the GPU (the first call, which uploads the
//! weights, and later ones) and through host linear algebra; beside
//! sentence-transformers on PyTorch (CPU) embedding the same sentences on
//! the same machine (`model/baseline.py`, in the Python environment of
//! `examples/model/reference/make_reference.py`, or `$TOOLMESH_ST_PYTHON`).
//!
//! Also the costs a user meets once: publishing the ~92 MB component into
//! a fresh `tool serve` (`tool publish` as its own process, chunked upload
//! with the describe call), and the first call after it (compiling and
//! caching the component) against a later one.
//!
//! Run with `scripts/bench.sh model`.

mod common;

use common::{call_raw, call_tool, components, start_gpu_serve_with};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 5;
/// Sentences of one batch.
const BATCH: usize = 128;
/// Calls timed for the latency of one short sentence.
const SINGLES: usize = 21;

/// 128 sentences of everyday lengths (6 to 40 words).
fn sentences() -> Vec<String> {
    let subjects = ["A man", "The committee", "My neighbour's dog", "An old lighthouse keeper"];
    let verbs = ["is eating", "reviewed", "quietly watched", "wrote a long letter about"];
    let objects = [
        "a piece of bread.",
        "the budget for next year, line by line, before the meeting on Thursday morning.",
        "the storm rolling in over the harbour while the boats were pulled ashore.",
        "how the city changed after the new railway opened and the old market closed its doors for good, \
         leaving the square empty on Sundays.",
    ];
    (0..BATCH).map(|i| format!("{} {} {}", subjects[i % 4], verbs[(i / 4) % 4], objects[(i / 16 + i) % 4])).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn model_dir() -> PathBuf {
    std::env::var_os("TOOLMESH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::home_dir().expect("a home directory").join(".cache/toolmesh/model/all-MiniLM-L6-v2"))
}

/// sentence-transformers on PyTorch: median seconds of one batch, of one
/// short sentence, and what ran it.
fn baseline(sentences: &[String]) -> Option<(f64, f64, String)> {
    let python = std::env::var_os("TOOLMESH_ST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::home_dir().expect("a home directory").join(".cache/toolmesh/st-venv/bin/python"));
    if !python.exists() {
        println!(
            "sentence-transformers baseline skipped: no {} (see examples/model/reference/make_reference.py)",
            python.display()
        );
        return None;
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_string(sentences).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/model/baseline.py");
    let out = Command::new(python)
        .arg(script)
        .arg(model_dir())
        .arg(file.path())
        .arg(RUNS.to_string())
        .output()
        .expect("run the baseline");
    assert!(out.status.success(), "baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("baseline JSON");
    let seconds = line["seconds"].as_f64().unwrap();
    let single = line["single_seconds"].as_f64().unwrap();
    Some((seconds, single, format!("PyTorch {} on {} threads", line["torch"], line["threads"])))
}

/// Where a call of `embed` ran, as it says.
fn out_device(out: &serde_json::Value) -> String {
    out["device"].as_str().unwrap_or("?").to_owned()
}

fn main() {
    let sentences = sentences();
    let data = tempfile::tempdir().unwrap();
    // No examples: nothing compiles in the background while it is measured.
    let no_examples = data.path().join("no-examples");
    std::fs::create_dir_all(&no_examples).unwrap();
    let (_serve, url) = start_gpu_serve_with(data.path(), &no_examples);
    let base = url.trim_end_matches("/mcp").to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = toolmesh_registry::client::http_builder().build().unwrap();

    // Publishing model.wasm as a user would, into a fresh name.
    let token = std::fs::read_to_string(data.path().join("data/push-token")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let published = Command::new(common::tool_binary())
        .args(["publish"])
        .arg(components().join("model.wasm"))
        .args(["--name", "bench/model", "--version", "1.0.0", "--registry", &base, "--token", token.trim()])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .expect("run tool publish");
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
    let publish_s = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(components().join("model.wasm")).unwrap().len();

    runtime.block_on(async {
        let embed = |device: &'static str| {
            let arguments = json!({"texts": sentences, "device": device});
            let (http, url) = (&http, &url);
            async move { call_tool(http, url, "bench.model.embed", arguments).await }
        };
        // The first call of the new tool compiles it; the next ones do not.
        let until = Instant::now() + std::time::Duration::from_secs(30);
        let short = json!({"texts": ["warm up"], "device": "cpu"});
        let first = loop {
            let (reply, ms) = call_raw(&http, &url, "bench.model.embed", short.clone()).await;
            if reply["result"]["isError"] == false {
                break ms;
            }
            assert!(Instant::now() < until, "bench.model.embed is not served: {reply}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let (_, later) = call_tool(&http, &url, "bench.model.embed", short).await;
        println!("model.wasm: {:.1} MB; `tool publish` {:.2} s", size as f64 / 1e6, publish_s);
        println!("first call of the new tool {first:.0} ms, a later one {later:.0} ms (one short text, CPU path)");
        // One short text on the GPU, in half then single precision: the
        // first call uploads the weights the node then keeps; later calls
        // find them.
        let mut adapter = String::new();
        for device in ["gpu", "gpu-f32"] {
            let args = json!({"texts": ["which GPU"], "device": device});
            let (out, first) = call_tool(&http, &url, "bench.model.embed", args.clone()).await;
            adapter = out_device(&out);
            let mut later = Vec::new();
            for _ in 0..SINGLES {
                later.push(call_tool(&http, &url, "bench.model.embed", args.clone()).await.1);
            }
            println!(
                "one short text, {adapter}: first call {first:.0} ms (uploads the weights), later p50 {:.1} ms",
                median(later)
            );
        }
        let software = ["llvmpipe", "lavapipe", "SwiftShader"].iter().any(|name| adapter.contains(name));
        println!("| path | batch of {BATCH}, median | sentences/s |");
        println!("|---|---|---|");
        let mut cpu_s = None;
        for device in ["gpu", "gpu-f32", "cpu", "wasm"] {
            if device.starts_with("gpu") && software {
                println!("| model.wasm, `device: {device}` | skipped: a software adapter | — |");
                continue;
            }
            let runs = if device == "wasm" { 3 } else { RUNS };
            let mut seconds = Vec::new();
            let mut ran_on = String::new();
            for _ in 0..runs {
                let (out, ms) = embed(device).await;
                assert_eq!(out["embeddings"].as_array().unwrap().len(), BATCH);
                seconds.push(ms / 1000.0);
                ran_on = out_device(&out);
            }
            let s = median(seconds);
            let name = match device {
                "gpu" | "gpu-f32" => format!("model.wasm, {ran_on}"),
                "cpu" => {
                    cpu_s = Some(s);
                    "model.wasm, CPU through host linear algebra".into()
                }
                _ => "model.wasm, CPU inside wasm".into(),
            };
            println!("| {name} | {:.0} ms | {:.1} |", s * 1000.0, BATCH as f64 / s);
        }
        let mut single = Vec::new();
        for _ in 0..SINGLES {
            let args = json!({"texts": [sentences[0]], "device": "cpu"});
            single.push(call_tool(&http, &url, "bench.model.embed", args).await.1);
        }
        let single_ms = median(single);
        println!("one short sentence through host linear algebra: p50 {single_ms:.1} ms ({SINGLES} calls)");
        if let Some((s, one, what)) = baseline(&sentences) {
            println!("| sentence-transformers, {what} | {:.0} ms | {:.1} |", s * 1000.0, BATCH as f64 / s);
            println!("one short sentence, sentence-transformers: p50 {:.1} ms", one * 1000.0);
            if let Some(cpu) = cpu_s {
                println!("host linear algebra against PyTorch, batch of {BATCH}: {:.2}×", s / cpu);
            }
        }
    });
}
