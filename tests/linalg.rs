//! Host linear algebra end to end: the `tool` binary runs the test
//! component `linalg_abuse` (tests/linalg-abuse), which sends whatever
//! products, shapes and uploads it is asked for. Results are checked
//! against arithmetic done here; hostile calls must each end in a clear
//! error, within the call's budgets.

use serde_json::{Value, json};
use toolmesh_e2e::{Run, component, tool};

/// Runs `tool_name` of the test component with a sandbox configuration of
/// `config` (TOML), `--json` and `extra` flags; the arguments go in a file.
fn run(tool_name: &str, args: Value, config: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sandbox.toml");
    std::fs::write(&file, config).unwrap();
    let arguments = dir.path().join("args.json");
    std::fs::write(&arguments, args.to_string()).unwrap();
    let component = component("linalg_abuse").display().to_string();
    let (args, config) = (format!("@{}", arguments.display()), file.display().to_string());
    let mut argv = vec!["run", &component, tool_name, "--args", &args, "--config", &config, "--json"];
    argv.extend_from_slice(extra);
    tool(&argv)
}

/// A `rows` × `cols` matrix of varied values.
fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..rows)
        .map(|_| {
            (0..cols)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 33) % 2001) as f32 / 1000.0 - 1.0
                })
                .collect()
        })
        .collect()
}

fn product(a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f64>> {
    a.iter()
        .map(|row| {
            (0..b[0].len()).map(|j| row.iter().zip(b).map(|(x, r)| f64::from(*x) * f64::from(r[j])).sum()).collect()
        })
        .collect()
}

fn transpose(m: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..m[0].len()).map(|j| m.iter().map(|r| r[j]).collect()).collect()
}

fn assert_close(got: &Value, expected: &[Vec<f64>], tolerance: f64) {
    let got: Vec<Vec<f64>> = serde_json::from_value(got.clone()).unwrap();
    assert_eq!((got.len(), got[0].len()), (expected.len(), expected[0].len()), "shape");
    for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
        assert!((g - e).abs() <= tolerance, "{g} against {e}");
    }
}

fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse; integrate instead.
    let steps = 2000;
    let h = x / steps as f64;
    let f = |t: f64| (-t * t).exp();
    let sum: f64 = (0..steps).map(|i| f(h * i as f64) + 4.0 * f(h * (i as f64 + 0.5)) + f(h * (i + 1) as f64)).sum();
    sum * h / 6.0 * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn products_on_the_host_match_the_arithmetic_plain_transposed_and_aliased() {
    let (a, b) = (matrix(37, 70, 1), matrix(70, 23, 2));
    let out = &Run::structured(&run("matmul", json!({"a": a, "b": b}), "", &[]))["c"];
    assert_close(out, &product(&a, &b), 1e-3);
    let bt = transpose(&b);
    let out = &Run::structured(&run("matmul", json!({"a": a, "b": bt, "transpose_b": true}), "", &[]))["c"];
    assert_close(out, &product(&a, &b), 1e-3);
    // One matrix as both factors: a · aᵀ.
    let out = &Run::structured(&run(
        "matmul",
        json!({"a": a, "b": [[0.0]], "alias": true, "transpose_b": true}),
        "",
        &[],
    ))["c"];
    assert_close(out, &product(&a, &transpose(&a)), 1e-3);
    // Large enough to be spread over threads (the result stays within the
    // call's 1 MiB of output).
    let (a, b) = (matrix(120, 400, 3), matrix(400, 100, 4));
    let out = &Run::structured(&run("matmul", json!({"a": a, "b": b}), "", &[]))["c"];
    assert_close(out, &product(&a, &b), 2e-3);
    let text = Run::failure(&run("matmul", json!({"a": a, "b": a}), "", &[]));
    assert!(text.contains("inner sizes differ"), "{text}");
}

#[test]
fn dense_layers_add_their_bias_gelu_and_residual() {
    let (x, w) = (matrix(5, 6, 5), matrix(6, 6, 6));
    let bias: Vec<f32> = (0..6).map(|i| i as f32 / 10.0).collect();
    // Weights: 3 values of padding, W (6 × 6), then the bias.
    let weights: Vec<f32> = [vec![9.0; 3], w.concat(), bias.clone()].concat();
    let args = json!({"x": x, "weights": weights, "offset": 3, "outputs": 6, "inputs": 6, "bias": 39, "gelu": true, "add_x": true});
    let out = Run::structured(&run("linear", args, "", &[]))["c"].clone();
    let expected: Vec<Vec<f64>> = product(&x, &transpose(&w))
        .iter()
        .zip(&x)
        .map(|(row, xr)| {
            row.iter()
                .zip(&bias)
                .zip(xr)
                .map(|((v, b), r)| {
                    let v = v + f64::from(*b);
                    0.5 * v * (1.0 + erf(v / 2f64.sqrt())) + f64::from(*r)
                })
                .collect()
        })
        .collect();
    assert_close(&out, &expected, 1e-4);
    // Weights under a SHA-256 that is not theirs are refused.
    let args = json!({"x": x, "weights": weights, "offset": 3, "outputs": 6, "inputs": 6, "sha256": "ab".repeat(32)});
    let text = Run::failure(&run("linear", args, "", &[]));
    assert!(text.contains("SHA-256") && text.contains(&"ab".repeat(32)), "{text}");
}

#[test]
fn hostile_shapes_and_ranges_are_refused_before_any_work() {
    let answers = Run::structured(&run("shapes", json!({}), "", &[]))["answers"].clone();
    let answers: Vec<String> = serde_json::from_value(answers).unwrap();
    let expected = [
        "quota exceeded",             // u32::MAX × u32::MAX zeros
        "both must be at least 1",    // 0 rows
        "3 values given for a 2 × 2", // from-list of the wrong length
        "inner sizes differ",         // 2×8 · 3×5
        "x has 8 columns",            // W of 9 inputs
        "past the weights' 64",       // W past the end
        "past the weights' 64",       // an offset that overflows
        "the bias: values 62",        // the bias past the end
        "past the weights' 64",       // u32::MAX outputs
        "add is 3 × 5",               // a residual of another shape
        "do not split into 3 heads",  // 8 columns, 3 heads
        "add up to 3 rows",           // lengths past the rows
        "each at least 1",            // an empty sequence
        "one shape",                  // q, k, v of different shapes
        "the scale: values 60",       // γ past the end
        "add is 3 × 5",               // a residual of another shape
        "not a finite number",        // NaN epsilon
        "past the matrix's 2 rows",   // writing past the last row
        "past the matrix's 2 rows",   // reading past the last row
        "ok",                         // x as input and residual at once
    ];
    assert_eq!(answers.len(), expected.len(), "{answers:#?}");
    for (answer, expected) in answers.iter().zip(expected) {
        assert!(answer.contains(expected), "expected `{expected}` in `{answer}`");
    }
}

#[test]
fn one_step_of_attention_is_bounded_in_work() {
    // One head of 2048 rows × 4096 columns: 6.9e10 operations in one step.
    let out = Run::structured(&run("attention", json!({"rows": 2048, "cols": 4096, "heads": 1}), "", &[]));
    assert!(out["answer"].as_str().unwrap().contains("more work than one step allows"), "{out}");
    // The same rows in 16 heads of 64 columns fit, and so does a model's.
    for (rows, cols, heads) in [(2048, 1024, 16), (256, 384, 12)] {
        let out = Run::structured(&run("attention", json!({"rows": rows, "cols": cols, "heads": heads}), "", &[]));
        assert_eq!(out["answer"], "ok", "{rows} × {cols} in {heads} heads");
    }
}

#[test]
fn uploads_are_checked_by_length_and_content_and_kept_once_whole() {
    let answers: Vec<String> =
        serde_json::from_value(Run::structured(&run("uploads", json!({}), "", &[]))["answers"].clone()).unwrap();
    let expected = [
        "not the 0000", // the wrong SHA-256
        "68 bytes written of an upload of 64",
        "60 bytes written of an upload of 64",
        "is not a SHA-256",
        "63 bytes are not whole f32 values",
        "quota exceeded", // an upload of 16 EiB
        "ok",             // written in pieces of 7 bytes
        "ok",             // and found again
    ];
    assert_eq!(answers.len(), expected.len(), "{answers:#?}");
    for (answer, expected) in answers.iter().zip(expected) {
        assert!(answer.contains(expected), "expected `{expected}` in `{answer}`");
    }
}

#[test]
fn a_calls_bytes_and_work_are_bounded() {
    let config = "[linalg]\nmax_call_bytes = \"8MiB\"\nmax_op_flops = 100000000\nmax_call_flops = 1000000000\n";
    let budgets = Run::structured(&run("budgets", json!({}), config, &[]));
    assert_eq!(
        (budgets["max_call_bytes"].as_u64(), budgets["max_call_flops"].as_u64()),
        (Some(8 << 20), Some(1_000_000_000))
    );
    assert!(budgets["threads"].as_u64().unwrap() >= 1);
    // 1 MiB each: the ninth does not fit.
    let text = Run::failure(&run("zeros", json!({"rows": 512, "cols": 512, "count": 9}), config, &[]));
    assert!(text.contains("past its 8 MiB"), "{text}");
    assert_eq!(
        Run::structured(&run("zeros", json!({"rows": 512, "cols": 512, "count": 7}), config, &[])),
        json!({"held": 7})
    );
    // 2·300³ = 54 MFLOP a product: 18 fit in the call's 1 GFLOP.
    let out = Run::structured(&run("work", json!({"n": 300, "repeat": 40}), config, &[]));
    assert_eq!(out["done"], 18, "{out}");
    assert!(out["error"].as_str().unwrap().contains("at most 1000000000 a call"), "{out}");
    let out = Run::structured(&run("work", json!({"n": 400, "repeat": 1}), config, &[]));
    assert!(out["error"].as_str().unwrap().contains("at most 100000000 each"), "{out}");
}

#[test]
fn work_past_the_calls_time_stops_between_blocks() {
    let started = std::time::Instant::now();
    // 2·1024³ ≈ 2 GFLOP a product, endlessly: the call's 2 s end it.
    let run = run("work", json!({"n": 1024, "repeat": 100000}), "", &["--timeout", "2s"]);
    let elapsed = started.elapsed();
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("time ran out") || text.contains("timed out") || text.contains("time limit"), "{text}");
    assert!(elapsed < std::time::Duration::from_secs(30), "stopped soon after its time: {elapsed:?}");
}

#[test]
fn floods_of_uploads_are_bounded_by_the_weights_memory() {
    let config = "[linalg]\nweights_memory = \"8MiB\"\n";
    // Unused weights make way for new ones.
    let out = Run::structured(&run("flood", json!({"count": 20, "bytes": 1 << 20}), config, &[]));
    assert_eq!(out, json!({"kept": 20, "error": null}));
    // Held ones do not: the ninth is refused.
    let out = Run::structured(&run("flood", json!({"count": 12, "bytes": 1 << 20, "hold": true}), config, &[]));
    assert_eq!(out["kept"], 8, "{out}");
    assert!(out["error"].as_str().unwrap().contains("all in use"), "{out}");
}

#[test]
fn a_node_can_turn_host_linear_algebra_off() {
    let text = Run::failure(&run("budgets", json!({}), "[linalg]\nenabled = false\n", &[]));
    assert!(text.contains("no host linear algebra") && text.contains("enabled = false"), "{text}");
}
