//! Code that calls tools, measured the way agents meet it: the release
//! `tool serve` in its own process (`run_javascript`, `run_python`, the
//! hello and text examples and the hostile test tools published), called
//! over MCP (streamable HTTP) from this process.
//!
//! 1. A call from code against the same call made directly: `greet`
//!    called 200 times one after another by an MCP client, and 200 times
//!    by a JavaScript program (`await tools.examples.hello.greet(…)` in a
//!    loop), each per call; the program's share is its run's time less the
//!    same run with an empty loop.
//! 2. Fan-out: 50 calls one by one against the same 50 in `Promise.all`,
//!    timed by the program: `nap` of 20 ms (a tool that waits, as one that
//!    fetches does) and `greet` (CPU only, bounded by the machine's cores).
//! 3. Sessions: a trivial statement in a live session, 300 calls each for
//!    JavaScript and Python, one after another.
//! 4. Bytes returned to the model for the workflow in
//!    docs/code-execution.md, made as separate tool calls and as one
//!    program.
//!
//! Run with `scripts/bench.sh code-tools`.

mod common;

use common::{call_raw, call_tool, components, examples_of, publish, quantile, start_tool_serve_warmed};
use serde_json::{Value, json};
use std::time::Instant;

const JS: &str = "examples.javascript.run_javascript";
const PY: &str = "examples.python.run_python";
const INNER: usize = 200;
const ROUNDS: usize = 5;
const FAN: usize = 50;
const SESSION_CALLS: usize = 300;

fn median(mut values: Vec<f64>) -> f64 {
    quantile(&mut values, 0.5)
}

/// Milliseconds per direct MCP call of greet, over `INNER` calls.
async fn direct(http: &reqwest::Client, url: &str) -> f64 {
    let started = Instant::now();
    for i in 0..INNER {
        let (reply, _) = call_raw(http, url, "examples.hello.greet", json!({"name": format!("n{i}")})).await;
        assert_eq!(reply["result"]["isError"], false, "{reply}");
    }
    started.elapsed().as_secs_f64() * 1e3 / INNER as f64
}

/// Milliseconds of one run_javascript call whose program calls greet `n` times.
async fn program(http: &reqwest::Client, url: &str, n: usize) -> f64 {
    let code = format!(
        "let last; for (let i = 0; i < {n}; i++) {{ last = await tools.examples.hello.greet({{name: 'n' + i}}) }} last"
    );
    let (report, ms) = call_tool(http, url, JS, json!({ "code": code })).await;
    assert_eq!(report["error"], Value::Null, "{report}");
    ms
}

/// (one by one, at once) in ms, as the program measured them.
async fn fan_out(http: &reqwest::Client, url: &str, call: &str) -> (f64, f64) {
    let code = format!(
        "const one = () => {call};
let t = Date.now();
for (let i = 0; i < {FAN}; i++) await one();
const sequential = Date.now() - t;
t = Date.now();
await Promise.all(Array.from({{length: {FAN}}}, one));
[sequential, Date.now() - t]"
    );
    let (report, _) = call_tool(http, url, JS, json!({ "code": code })).await;
    let times = &report["result"];
    (times[0].as_f64().expect("ms"), times[1].as_f64().expect("ms"))
}

/// Milliseconds per call of a trivial statement in a live session.
async fn session(http: &reqwest::Client, url: &str, tool: &str) -> Vec<f64> {
    let (code, check) = if tool == PY { ("x = 1", "x + 1") } else { ("var x = 1", "x + 1") };
    call_tool(http, url, tool, json!({"code": code, "session": "bench"})).await;
    let mut all = Vec::with_capacity(SESSION_CALLS);
    for _ in 0..SESSION_CALLS + 20 {
        let (report, ms) = call_tool(http, url, tool, json!({"code": check, "session": "bench"})).await;
        assert_eq!(report["result"], 2, "{report}");
        all.push(ms);
    }
    all.split_off(20)
}

const TITLES: [&str; 5] = [
    "Sandboxing untrusted tools with WebAssembly components",
    "Why agents should write code instead of calling tools one by one",
    "Content-addressed registries and the OCI distribution API",
    "Placing calls on a mesh of self-hosted nodes over NATS",
    "GPU compute for untrusted code through wgpu",
];

/// Bytes of the JSON-RPC results the model's client receives: the
/// workflow as ten tool calls, and as one program.
async fn workflow_bytes(http: &reqwest::Client, url: &str) -> (usize, usize, Value) {
    let mut separate = 0;
    for title in TITLES {
        for tool in ["examples.text.slugify", "examples.text.count"] {
            let (reply, _) = call_raw(http, url, tool, json!({ "text": title })).await;
            separate += reply["result"].to_string().len();
        }
    }
    let code = format!(
        "const titles = {};
const rows = await Promise.all(titles.map(async (text) => {{
  const [slug, counted] = await Promise.all([tools.examples.text.slugify({{text}}), tools.examples.text.count({{text}})]);
  return {{slug, words: counted.words}};
}}));
rows.sort((a, b) => b.words - a.words).slice(0, 3)",
        json!(TITLES)
    );
    let (reply, _) = call_raw(http, url, JS, json!({ "code": code })).await;
    let result = reply["result"].clone();
    (separate, result.to_string().len(), result["structuredContent"]["result"].clone())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let examples = examples_of(dir.path(), &["javascript.wasm", "python.wasm", "hello.wasm", "text.wasm"]);
    let data = dir.path().join("data");
    let (server, base) = start_tool_serve_warmed(&data, &examples);
    publish(&base, &data, &components().join("hostile.wasm"), "test/hostile", &dir.path().join("cache"));
    let url = format!("{base}/mcp");

    runtime.block_on(async {
        // The catalog lags the publish by a moment; warm every path up.
        while call_raw(&http, &url, "test.hostile.nap", json!({"ms": 1})).await.0["result"]["isError"] != false {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        direct(&http, &url).await;
        program(&http, &url, 20).await;

        let (mut directs, mut inners, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let direct_ms = direct(&http, &url).await;
            let empty = program(&http, &url, 0).await;
            let full = program(&http, &url, INNER).await;
            let inner_ms = (full - empty) / INNER as f64;
            directs.push(direct_ms);
            inners.push(inner_ms);
            ratios.push(inner_ms / direct_ms);
        }
        println!("A call from code against the same call made directly ({INNER} greet calls one after another, {ROUNDS} rounds):\n");
        println!("| | per call, median | lowest | highest |");
        println!("|---|---|---|---|");
        let row = |name: &str, values: &[f64], unit: &str| {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            println!(
                "| {name} | {:.3}{unit} | {:.3}{unit} | {:.3}{unit} |",
                median(values.to_vec()),
                sorted[0],
                sorted[sorted.len() - 1]
            );
        };
        row("direct MCP call (client → tool serve)", &directs, " ms");
        row("from run_javascript (`await tools.…`)", &inners, " ms");
        row("ratio, code / direct", &ratios, "×");

        println!("\nFan-out: {FAN} calls one by one against the same {FAN} in Promise.all, timed by the program:\n");
        println!("| tool | one by one | at once | ratio |");
        println!("|---|---|---|---|");
        for (name, call) in [
            ("nap 20 ms (waits)", "tools.test.hostile.nap({ms: 20})"),
            ("greet (CPU only)", "tools.examples.hello.greet({name: 'x'})"),
        ] {
            let mut runs = Vec::new();
            for _ in 0..ROUNDS {
                runs.push(fan_out(&http, &url, call).await);
            }
            let sequential = median(runs.iter().map(|r| r.0).collect());
            let together = median(runs.iter().map(|r| r.1).collect());
            println!("| {name} | {sequential:.0} ms | {together:.0} ms | {:.2}× |", together / sequential);
        }

        println!("\nA trivial statement in a live session, through MCP ({SESSION_CALLS} calls one after another):\n");
        println!("| tool | p50 | p90 | p99 |");
        println!("|---|---|---|---|");
        for tool in [JS, PY] {
            let mut all = session(&http, &url, tool).await;
            let (p50, p90, p99) = (quantile(&mut all, 0.5), quantile(&mut all, 0.9), quantile(&mut all, 0.99));
            println!("| {tool} | {p50:.2} ms | {p90:.2} ms | {p99:.2} ms |");
        }

        let (separate, one, answer) = workflow_bytes(&http, &url).await;
        println!("\nThe workflow of docs/code-execution.md, bytes of results returned to the model:\n");
        println!("| as | bytes |");
        println!("|---|---|");
        println!("| ten tool calls (slugify and count for five titles) | {separate} |");
        println!("| one run_javascript program | {one} |");
        println!("\nits answer: {answer}");
    });
    drop(server);
}
