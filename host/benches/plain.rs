//! A plain-WIT component against a toolmesh-world one doing the same work,
//! through the release `tool serve` driven from outside: the `plain`
//! fixture's `bench.greet` (a WIT function `greet(name: string) -> string`,
//! arguments turned into component values by the host) and the `hello`
//! example's `greet` (the toolmesh world: JSON parsed in the guest), both
//! answering `Hello, bench!`. One connection from a load generator of its
//! own, run after run, alternating; then 32 connections. Beside it,
//! publish → first result of each on a fresh node (the cold start).
//!
//! Run with `scripts/bench.sh plain`.

mod common;

use common::{Tally, first_result, median, ms};
use std::time::{Duration, Instant};

const RUNS: usize = 6;
const COLD_ROUNDS: usize = 5;

fn main() {
    common::load_if_asked();
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (hello, plain) = (common::components().join("hello.wasm"), common::components().join("plain.wasm"));
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::os::unix::fs::symlink(&hello, examples.join("hello.wasm")).unwrap();

    let data = dir.path().join("serve");
    let (_serve, base) = common::start_tool_serve_warmed(&data, &examples);
    common::publish(&base, &data, &plain, "bench/plain", &dir.path().join("publisher"));
    let url = format!("{base}/mcp");
    let (toolmesh_tool, plain_tool) = ("examples.hello.greet", "bench.plain.bench.greet");
    runtime.block_on(async {
        first_result(&http, &url, plain_tool).await;
        // Let the optimising compiler replace the first, quick code.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for tool in [toolmesh_tool, plain_tool] {
            common::load(&http, &url, tool, 1, Duration::from_millis(500), &mut Tally::default()).await;
        }
    });

    println!("| run | toolmesh world calls/s | plain WIT calls/s | plain / toolmesh cost per call |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 1..=RUNS {
        let ours = common::load_in_a_process(&url, toolmesh_tool, seconds);
        let plain = common::load_in_a_process(&url, plain_tool, seconds);
        ratios.push(ours / plain);
        println!("| {run} | {ours:.0} | {plain:.0} | {:.2}× |", ours / plain);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "\none connection, {RUNS} runs of {seconds} s each: plain / toolmesh cost lowest {:.2}×, median {:.2}×, highest {:.2}×",
        ratios[0],
        ratios[RUNS / 2],
        ratios[RUNS - 1]
    );

    runtime.block_on(async {
        let (mut ours, mut theirs) = (Tally::default(), Tally::default());
        for _ in 0..4 {
            let quarter = Duration::from_secs_f64(seconds / 2.0);
            common::load(&http, &url, toolmesh_tool, 32, quarter, &mut ours).await;
            common::load(&http, &url, plain_tool, 32, quarter, &mut theirs).await;
        }
        let ((ours, o50, o99), (theirs, t50, t99)) = (ours.summary(), theirs.summary());
        println!("\n| 32 connections | calls/s | p50 | p99 |");
        println!("|---|---|---|---|");
        println!("| toolmesh world (`hello` greet) | {ours:.0} | {} | {} |", ms(o50), ms(o99));
        println!("| plain WIT (`plain` bench.greet) | {theirs:.0} | {} | {} |", ms(t50), ms(t99));
        println!("plain / toolmesh cost per call at 32 connections: {:.2}×", ours / theirs);
    });

    let no_examples = dir.path().join("no-examples");
    std::fs::create_dir_all(&no_examples).unwrap();
    println!("\n| publish → first result, fresh node (median of {COLD_ROUNDS}) | time |");
    println!("|---|---|");
    for (component, name, tool) in [(&hello, "bench/hello", "bench.hello.greet"), (&plain, "bench/plain", plain_tool)] {
        let mut total = Vec::new();
        for round in 0..COLD_ROUNDS {
            let data = dir.path().join(format!("cold-{name}-{round}").replace('/', "-"));
            let (_server, base) = common::start_tool_serve(&data, &no_examples);
            let started = Instant::now();
            let cache = dir.path().join(format!("publisher-{round}-{}", name.replace('/', "-")));
            common::publish(&base, &data, component, name, &cache);
            let answered = runtime.block_on(first_result(&http, &format!("{base}/mcp"), tool));
            total.push(answered - started);
        }
        let file = component.file_name().unwrap().to_string_lossy();
        println!("| `{file}` | {} |", ms(median(total)));
    }
}
