//! Code execution measured the way agents meet it: the release `tool serve`
//! in its own process, with `run_python` (CPython in a component) and
//! `run_javascript` (QuickJS in a component) published, called over MCP
//! (streamable HTTP) with `print(1 + 1)`, one call after another; each call
//! is a fresh sandbox. Beside it, the native interpreters started as
//! processes on the same machine (`python3 -c`, `node -e`): what an agent
//! host that runs code in a subprocess pays, without any isolation.
//!
//! Also what a node pays once: starting on an empty data directory
//! (publishing and compiling both interpreters), and the first call after a
//! restart with the compile cache warm.
//!
//! Run with `scripts/bench.sh code`.

mod common;

use common::{ChildGuard, call_raw, examples_of, quantile, start_tool_serve};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PY: &str = "examples.python.run_python";
const JS: &str = "examples.javascript.run_javascript";
const CALLS: usize = 300;
const PROCESSES: usize = 50;
const RESTARTS: usize = 3;

/// `print(1 + 1)` in `tool`'s language, checked to print 2.
async fn one_run(http: &reqwest::Client, url: &str, tool: &str) -> f64 {
    let code = if tool == PY { "print(1 + 1)" } else { "console.log(1 + 1)" };
    let (reply, ms) = call_raw(http, url, tool, json!({ "code": code })).await;
    assert_eq!(reply["result"]["structuredContent"]["stdout"], "2\n", "{reply}");
    ms
}

/// Milliseconds of `CALLS` sequential runs (after a warm-up).
async fn sequential(http: &reqwest::Client, url: &str, tool: &str) -> Vec<f64> {
    for _ in 0..20 {
        one_run(http, url, tool).await;
    }
    let mut all = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        all.push(one_run(http, url, tool).await);
    }
    all
}

/// Runs per second with `clients` concurrent callers for 3 s.
async fn throughput(http: &reqwest::Client, url: &str, tool: &str, clients: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, tool) = (http.clone(), url.to_owned(), tool.to_owned());
            tokio::spawn(async move {
                let mut done = 0u32;
                while started.elapsed() < Duration::from_secs(3) {
                    one_run(&http, &url, &tool).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap();
    }
    f64::from(done) / started.elapsed().as_secs_f64()
}

/// The interpreter `program` itself, past any shim on the PATH (pyenv's
/// `python3` is a shell script that starts Python twice).
fn executable(program: &str) -> Option<String> {
    let probe = match program {
        "python3" => ["-c", "import sys; print(sys.executable)"],
        _ => ["-e", "console.log(process.execPath)"],
    };
    let out = Command::new(program).args(probe).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Milliseconds of `PROCESSES` runs of a native interpreter process, or
/// `None` if `program` is not installed.
fn native(program: &str, args: &[&str]) -> Option<Vec<f64>> {
    let program = executable(program)?;
    let mut all = Vec::with_capacity(PROCESSES);
    for _ in 0..PROCESSES + 3 {
        let started = Instant::now();
        let out = Command::new(&program).args(args).output().ok()?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n", "{program}");
        all.push(ms);
    }
    Some(all.split_off(3))
}

/// `tool serve` on `data` with the interpreters: the process, its MCP URL,
/// and how long it took to listen.
fn serve(data: &Path, examples: &Path) -> (ChildGuard, String, Duration) {
    let started = Instant::now();
    let (guard, base) = start_tool_serve(data, examples);
    (guard, format!("{base}/mcp"), started.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let examples = examples_of(dir.path(), &["python.wasm", "javascript.wasm"]);
    let data = dir.path().join("data");

    let (server, url, fresh_start) = serve(&data, &examples);
    let first_ever = runtime.block_on(one_run(&http, &url, PY));
    let rows: Vec<(&str, Vec<f64>, f64, f64)> = runtime.block_on(async {
        let mut rows = Vec::new();
        for tool in [PY, JS] {
            let mut runs = sequential(&http, &url, tool).await;
            let one = throughput(&http, &url, tool, 1).await;
            let four = throughput(&http, &url, tool, 4).await;
            rows.push((tool, std::mem::take(&mut runs), one, four));
        }
        rows
    });
    drop(server);

    // After a restart: the first call as soon as the node listens (it may
    // wait for its component to come off the compile cache), and the first
    // call a second later (the node has loaded the catalog by then).
    let mut first_calls: Vec<(f64, f64)> = Vec::new();
    let mut settled_calls: Vec<(f64, f64)> = Vec::new();
    for _ in 0..RESTARTS {
        let (server, url, _) = serve(&data, &examples);
        let py = runtime.block_on(one_run(&http, &url, PY));
        let js = runtime.block_on(one_run(&http, &url, JS));
        first_calls.push((py, js));
        drop(server);
        let (server, url, _) = serve(&data, &examples);
        std::thread::sleep(Duration::from_secs(1));
        let py = runtime.block_on(one_run(&http, &url, PY));
        let js = runtime.block_on(one_run(&http, &url, JS));
        settled_calls.push((py, js));
        drop(server);
    }

    println!("`print(1 + 1)` through `tool serve`'s MCP endpoint ({CALLS} sequential calls after 20 to warm up):\n");
    println!("| runner | p50 | p90 | p99 | runs/s, 1 client | runs/s, 4 clients |");
    println!("|---|---|---|---|---|---|");
    for (tool, mut runs, one, four) in rows {
        let (p50, p90, p99) = (quantile(&mut runs, 0.5), quantile(&mut runs, 0.9), quantile(&mut runs, 0.99));
        println!("| `{tool}` over MCP | {p50:.1} ms | {p90:.1} ms | {p99:.1} ms | {one:.0} | {four:.0} |");
    }
    for (label, program, args) in [
        ("native `python3 -c` (a process, no sandbox)", "python3", &["-c", "print(1 + 1)"][..]),
        ("native `node -e` (a process, no sandbox)", "node", &["-e", "console.log(1 + 1)"][..]),
    ] {
        match native(program, args) {
            Some(mut runs) => {
                let (p50, p90, p99) = (quantile(&mut runs, 0.5), quantile(&mut runs, 0.9), quantile(&mut runs, 0.99));
                println!("| {label} | {p50:.1} ms | {p90:.1} ms | {p99:.1} ms | | |");
            }
            None => println!("| {label} | not installed | | | | |"),
        }
    }
    let median = |calls: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        let mut values: Vec<f64> = calls.iter().map(pick).collect();
        quantile(&mut values, 0.5)
    };
    println!();
    println!("| once per node | time |");
    println!("|---|---|");
    println!(
        "| `tool serve` on an empty data directory: publish both, until it listens | {:.2} s |",
        fresh_start.as_secs_f64()
    );
    println!(
        "| then the first `run_python` (waits for its compile, started in the background at start) | {:.2} s |",
        first_ever / 1e3
    );
    for (when, calls) in [("as soon as the node listens", &first_calls), ("1 s after it listens", &settled_calls)] {
        println!(
            "| first `run_python` after a restart, sent {when} (median of {RESTARTS}) | {:.1} ms |",
            median(calls, |c| c.0)
        );
        println!(
            "| first `run_javascript` after a restart, sent next (median of {RESTARTS}) | {:.1} ms |",
            median(calls, |c| c.1)
        );
    }
}
