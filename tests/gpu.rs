//! GPU compute end to end: the `tool` binary runs GPU components on the
//! machine's adapter (lavapipe, a Vulkan CPU adapter, in CI). A machine
//! with no Vulkan adapter fails these tests with a message saying so.

use serde_json::{Value, json};
use toolmesh_e2e::{Run, component, tool};

/// Runs `tool` on `name` with `--gpu`, a policy of `policy` (TOML under
/// `[gpu]`) and `--json`.
fn gpu_run(name: &str, tool_name: &str, args: Value, policy: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, format!("[gpu]\nallow = true\n{policy}")).unwrap();
    let file_arg = component(name).display().to_string();
    let args = args.to_string();
    let policy_arg = file.display().to_string();
    tool(&["run", &file_arg, tool_name, "--args", &args, "--policy", &policy_arg, "--json"])
}

fn adapter_or_explain() -> Value {
    let run = gpu_run("gpu_abuse", "adapter", json!({}), "");
    assert_eq!(
        run.code, 0,
        "no usable GPU adapter: these tests need Vulkan (on Debian: apt-get install mesa-vulkan-drivers).\n{}{}",
        run.stdout, run.stderr
    );
    Run::structured(&run)
}

#[test]
fn the_adapter_and_the_calls_budgets_are_reported() {
    let info = adapter_or_explain();
    assert!(!info["name"].as_str().unwrap().is_empty(), "{info}");
    assert_eq!(info["backend"], "vulkan");
    assert!(["cpu", "discrete", "integrated", "virtual", "other"].contains(&info["kind"].as_str().unwrap()));
    assert_eq!(info["max_total_bytes"], 1u64 << 30);
    assert_eq!(info["max_dispatches"], 10_000);
    assert_eq!(info["time_budget_ms"], 10_000);
}

/// A deterministic matrix of `rows`×`cols` numbers in [-1, 1).
fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..rows)
        .map(|_| {
            (0..cols)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        })
        .collect()
}

#[test]
fn matmul_on_the_gpu_matches_a_reference_product() {
    // Sizes that are not multiples of the 16×16 tile.
    let (a, b) = (matrix(37, 53, 1), matrix(53, 29, 2));
    let run = gpu_run("matmul", "matmul", json!({"a": a, "b": b}), "");
    let out = Run::structured(&run);
    assert!(out["device"].as_str().unwrap().starts_with("gpu: "), "{}", out["device"]);
    let c = out["c"].as_array().unwrap();
    assert_eq!((c.len(), c[0].as_array().unwrap().len()), (37, 29));
    for (i, row) in c.iter().enumerate() {
        for (j, value) in row.as_array().unwrap().iter().enumerate() {
            let expected: f64 = (0..53).map(|k| f64::from(a[i][k]) * f64::from(b[k][j])).sum();
            let got = value.as_f64().unwrap();
            assert!((got - expected).abs() < 1e-4, "c[{i}][{j}] = {got}, expected {expected}");
        }
    }
    // The same product on the CPU: through host linear algebra, and inside
    // the sandbox.
    for device in ["cpu", "wasm"] {
        let cpu = Run::structured(&gpu_run("matmul", "matmul", json!({"a": a, "b": b, "device": device}), ""));
        assert_eq!(cpu["device"], device);
        let cpu_c = cpu["c"].as_array().unwrap();
        let close = cpu_c.iter().flat_map(|r| r.as_array().unwrap()).zip(c.iter().flat_map(|r| r.as_array().unwrap()));
        assert!(close.into_iter().all(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-4), "{device}");
    }
}

#[test]
fn a_tool_that_requires_a_gpu_is_refused_where_the_policy_grants_none() {
    // gpu-abuse imports the GPU interface and says nothing more: it requires one.
    let file = component("gpu_abuse").display().to_string();
    let run = tool(&["run", &file, "adapter"]);
    assert!(Run::failure(&run).contains("GPU compute"), "{}", run.stderr);
}

#[test]
fn inspect_shows_whether_the_gpu_is_required_or_optional() {
    let requests = |name: &str| {
        let run = tool(&["inspect", &component(name).display().to_string(), "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["requests"].clone()
    };
    assert_eq!(requests("gpu_abuse"), json!({"format": 1, "gpu": true}));
    assert_eq!(requests("matmul"), json!({"format": 2, "gpu_optional": true}));
    assert_eq!(requests("hello"), json!({"format": 1}));
}

#[test]
fn tools_whose_gpu_is_optional_run_on_the_cpu_without_a_grant() {
    // matmul and model declare their GPU optional in the component itself
    // (`toolmesh_guest::gpu_optional!()`): no tool.toml, no --gpu.
    let file = component("matmul").display().to_string();
    let run = tool(&["run", &file, "matmul", "--args", r#"{"a": [[1, 2]], "b": [[3], [4]]}"#, "--json"]);
    let out = Run::structured(&run);
    assert_eq!((out["c"].clone(), out["device"].clone()), (json!([[11.0]]), json!("cpu")));
    // Asking for the GPU explicitly without a grant is the tool's own error.
    let run = tool(&["run", &file, "matmul", "--args", r#"{"a": [[1]], "b": [[2]], "device": "gpu"}"#]);
    assert!(Run::failure(&run).contains("no GPU"), "{}", run.stderr);

    let model = component("model").display().to_string();
    let run = tool(&["run", &model, "embed", "--args", r#"{"texts": ["hi"]}"#, "--json"]);
    let out = Run::structured(&run);
    assert_eq!((out["dimensions"].clone(), out["device"].clone()), (json!(384), json!("cpu")));
    let vector: Vec<f64> = out["embeddings"][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(vector.len(), 384);
    assert!((vector.iter().map(|v| v * v).sum::<f64>().sqrt() - 1.0).abs() < 1e-4, "a unit vector");

    // Where the policy grants a GPU, the same component gets it.
    let out = Run::structured(&gpu_run("matmul", "matmul", json!({"a": [[1, 2]], "b": [[3], [4]]}), ""));
    assert!(out["device"].as_str().unwrap().starts_with("gpu: "), "{}", out["device"]);
}

#[test]
fn invalid_wgsl_is_refused_with_the_validators_message() {
    let wgsl = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
    let run = gpu_run("gpu_abuse", "run_wgsl", json!({"wgsl": wgsl, "buffers": [[0]]}), "");
    let text = Run::failure(&run);
    assert!(text.contains("invalid shader"), "{text}");
    let draw = "@vertex fn main() -> @builtin(position) vec4<f32> { return vec4<f32>(0.0); }";
    let text = Run::failure(&gpu_run("gpu_abuse", "run_wgsl", json!({"wgsl": draw, "buffers": [[0]]}), ""));
    assert!(text.contains("only compute shaders"), "{text}");
}

#[test]
fn buffers_over_the_quota_are_refused() {
    let text = Run::failure(&gpu_run("gpu_abuse", "alloc", json!({"bytes": 2u64 << 30}), ""));
    assert!(text.contains("GPU quota exceeded") && text.contains("largest allowed"), "{text}");
    let text =
        Run::failure(&gpu_run("gpu_abuse", "alloc", json!({"bytes": 1 << 20, "count": 9}), "max_bytes = \"8MiB\""));
    assert!(text.contains("over its quota of 8388608 bytes"), "{text}");
    // Reading one back needs a staging copy of it within the quota too.
    let held = Run::structured(&gpu_run(
        "gpu_abuse",
        "alloc",
        json!({"bytes": 1 << 20, "count": 7, "read": true}),
        "max_bytes = \"8MiB\"",
    ));
    assert_eq!(held, json!({"buffers": 7, "nonzero_bytes": 0}), "new buffers read as zeros");
}

#[test]
fn out_of_bounds_writes_stay_inside_the_buffer() {
    let wgsl = "@group(0) @binding(0) var<storage, read_write> small: array<u32>;
        @group(0) @binding(1) var<storage, read_write> other: array<u32>;
        @compute @workgroup_size(1) fn main() {
            for (var i = 0u; i < 64u; i++) { small[1000000u + i * 4096u] = 0xdeadbeefu; }
            other[0] = other[0] + small[70000u];
        }";
    let args = json!({"wgsl": wgsl, "buffers": [[1, 2, 3, 4], [7, 7, 7, 7]], "read": 1});
    let other = Run::structured(&gpu_run("gpu_abuse", "run_wgsl", args, ""))["values"].clone();
    // Writes past the end land inside `small` (clamped) or nowhere; `other` keeps its values.
    let other: Vec<u64> = other.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(other[1..], [7, 7, 7], "{other:?}");
    let args = json!({"wgsl": wgsl, "buffers": [[1, 2, 3, 4], [7, 7, 7, 7]], "read": 0});
    let small = Run::structured(&gpu_run("gpu_abuse", "run_wgsl", args, ""))["values"].clone();
    assert_eq!(small.as_array().unwrap().len(), 4);
}

#[test]
fn loops_stop_at_the_iteration_bound() {
    let wgsl = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
        @compute @workgroup_size(1) fn main() { loop { v[0] = v[0] + 1u; } }";
    let out = Run::structured(&gpu_run(
        "gpu_abuse",
        "run_wgsl",
        json!({"wgsl": wgsl, "buffers": [[0]]}),
        "max_loop_iterations = 1000",
    ));
    assert_eq!(out, json!({"values": [1000]}), "the 1001st iteration exits the loop");
}

#[test]
fn nested_counted_loops_are_charged_up_front() {
    // Loops that count to a constant are charged their count on entry, and
    // entered only while the invocation has iterations left.
    let wgsl = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
        @compute @workgroup_size(1) fn main() {
            for (var a = 0u; a < 1000u; a++) {
                v[1] += 1u;
                for (var b = 0u; b < 65536u; b++) { for (var c = 0u; c < 65536u; c++) { v[0] += 1u; } }
            }
        }";
    let out = Run::structured(&gpu_run(
        "gpu_abuse",
        "run_wgsl",
        json!({"wgsl": wgsl, "buffers": [[0, 0]]}),
        "max_loop_iterations = 1000",
    ));
    assert_eq!(out, json!({"values": [0, 1000]}), "the outer loop used up the budget: nothing nested ran");
}

#[test]
fn a_runaway_shader_is_stopped_by_the_time_budget() {
    // Nested, because some drivers end any one loop after 65535 iterations
    // (lavapipe does).
    let wgsl = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
        @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
            loop { loop { loop { v[id.x % 4u] = v[id.x % 4u] * 3u + 1u; } } }
        }";
    // About 5 s of work on lavapipe on two cores; far more on a real GPU.
    let args = json!({"wgsl": wgsl, "buffers": [[0, 0, 0, 0]], "workgroups": [256, 1, 1]});
    let run = gpu_run("gpu_abuse", "run_wgsl", args, "time_budget = \"300ms\"\nmax_loop_iterations = 4000000000");
    let text = Run::failure(&run);
    assert!(text.contains("GPU timeout") && text.contains("time budget (300 ms)"), "{text}");
}

#[test]
fn dispatches_are_counted_against_the_quota() {
    let out = Run::structured(&gpu_run("gpu_abuse", "dispatch_storm", json!({"count": 100}), "max_dispatches = 100"));
    assert_eq!(out, json!({"values": [100]}), "every queued dispatch ran, in order");
    let text = Run::failure(&gpu_run("gpu_abuse", "dispatch_storm", json!({"count": 101}), "max_dispatches = 100"));
    assert!(text.contains("its 100 dispatches"), "{text}");
}

#[test]
fn a_binding_that_does_not_fit_the_kernel_is_refused() {
    let wgsl = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;
        @group(0) @binding(1) var<storage, read_write> b: array<u32>;
        @compute @workgroup_size(1) fn main() { a[0] = b[0]; }";
    let text = Run::failure(&gpu_run("gpu_abuse", "run_wgsl", json!({"wgsl": wgsl, "buffers": [[1]]}), ""));
    assert!(text.contains("binds @binding [0, 1]") && text.contains("gives [0]"), "{text}");
}

/// One upload for `gpu_abuse`'s `weights`: `values` under their own SHA-256.
fn upload(values: &[u32]) -> Value {
    use sha2::Digest as _;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sha: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    json!({"values": values, "sha256": sha})
}

#[test]
fn kept_weights_are_found_again_and_no_kernel_or_write_can_change_them() {
    let values: Vec<u32> = (1..=64).collect();
    let then = ["read", "sum", "write", "bind_writable", "read"];
    let args = json!({"uploads": [upload(&values), upload(&values)], "then": then});
    let out = Run::structured(&gpu_run("gpu_abuse", "weights", args, ""));
    assert_eq!(out["found"], json!([false, true]), "the second is the copy the first kept: {out}");
    assert_eq!(out["answers"], json!(["ok", "ok"]));
    let answers = out["then"].as_array().unwrap();
    assert_eq!(answers[0], json!(values));
    assert_eq!(answers[1], json!([2080]), "a read-only kernel sums them");
    let write = answers[2].as_str().unwrap();
    assert!(write.contains("read-only"), "{write}");
    let bind = answers[3].as_str().unwrap();
    assert!(bind.contains("read-only") && bind.contains("@binding(0)"), "{bind}");
    assert_eq!(answers[4], json!(values), "unchanged after both tries");
}

#[test]
fn uploads_in_pieces_of_any_multiple_of_four_bytes_are_whole() {
    // Pieces of 4 and 12 bytes: mapped ranges start at multiples of 8,
    // so the host carries the odd 4 bytes over to the next piece.
    for piece in [4, 12, 20] {
        let values: Vec<u32> = (0..37).map(|i| i * 7 + piece).collect();
        let mut one = upload(&values);
        one["piece"] = json!(piece);
        let out =
            Run::structured(&gpu_run("gpu_abuse", "weights", json!({"uploads": [one], "then": ["read", "sum"]}), ""));
        assert_eq!(out["answers"], json!(["ok"]), "{out}");
        assert_eq!(out["then"][0], json!(values));
        assert_eq!(out["then"][1], json!([values.iter().sum::<u32>()]));
    }
}

#[test]
fn uploads_with_a_wrong_hash_length_or_size_are_refused() {
    let good = upload(&[7, 8, 9, 10]);
    let mut wrong_hash = upload(&[7, 8, 9, 10]);
    wrong_hash["sha256"] = upload(&[1])["sha256"].clone();
    let mut short = upload(&[7, 8, 9, 10]);
    short["length"] = json!(20);
    let mut odd = upload(&[7, 8, 9, 10]);
    odd["length"] = json!(6);
    let mut huge = upload(&[7, 8, 9, 10]);
    huge["length"] = json!(1u64 << 40);
    let mut not_hex = upload(&[7, 8, 9, 10]);
    not_hex["sha256"] = json!("../../etc/passwd");
    let mut odd_pieces = upload(&[7, 8, 9, 10]);
    odd_pieces["piece"] = json!(6);
    let args = json!({"uploads": [wrong_hash, short, odd, huge, not_hex, odd_pieces, good], "then": ["read"]});
    let out = Run::structured(&gpu_run("gpu_abuse", "weights", args, ""));
    let answers: Vec<&str> = out["answers"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(answers[0].contains("the upload's SHA-256 is"), "{}", answers[0]);
    assert!(answers[1].contains("16 bytes written of an upload of 20"), "{}", answers[1]);
    assert!(answers[2].contains("multiple of 4"), "{}", answers[2]);
    assert!(answers[3].contains("over the most one upload may hold"), "{}", answers[3]);
    assert!(answers[4].contains("is not a SHA-256"), "{}", answers[4]);
    assert!(answers[5].contains("pieces must be multiples of 4 bytes, not 6"), "{}", answers[5]);
    assert_eq!(answers[6], "ok");
    assert_eq!(out["found"], json!([false, false, false, false, false, false, false]), "nothing refused was kept");
    assert_eq!(out["then"], json!([[7, 8, 9, 10]]));
}

#[test]
fn a_flood_of_weights_stays_within_the_nodes_weights_memory() {
    // Six distinct 16 KiB weights against 64 KiB of weights memory.
    let uploads: Vec<Value> = (0..6u32).map(|i| upload(&vec![i; 4 << 10])).collect();
    let policy = "weights_memory = \"64KiB\"";
    // Dropped at once, each makes room by evicting the least recently used.
    let out = Run::structured(&gpu_run("gpu_abuse", "weights", json!({"uploads": uploads}), policy));
    assert_eq!(out["answers"], json!(["ok", "ok", "ok", "ok", "ok", "ok"]), "{out}");
    // Held, the fifth no longer fits and nothing held is evicted for it.
    let out = Run::structured(&gpu_run("gpu_abuse", "weights", json!({"uploads": uploads, "hold": true}), policy));
    let answers = out["answers"].as_array().unwrap();
    assert_eq!(answers[..4], [json!("ok"), json!("ok"), json!("ok"), json!("ok")], "{out}");
    for refused in &answers[4..] {
        let text = refused.as_str().unwrap();
        assert!(text.contains("GPU quota exceeded") && text.contains("weights memory"), "{text}");
    }
}

#[test]
fn subgroup_operations_and_half_floats_run_where_the_adapter_has_them() {
    let info = adapter_or_explain();
    let features: Vec<&str> = info["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(features.iter().all(|f| ["f16", "subgroups"].contains(f)), "{features:?}");
    // Each invocation writes its subgroup's sum of ones: its size.
    let subgroups = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
        @compute @workgroup_size(64) fn main(
            @builtin(global_invocation_id) id: vec3<u32>, @builtin(subgroup_size) size: u32) {
            v[id.x] = subgroupAdd(1u) * 1000u + size;
        }";
    let run = gpu_run("gpu_abuse", "run_wgsl", json!({"wgsl": subgroups, "buffers": [], "zeroed": [256]}), "");
    if features.contains(&"subgroups") {
        let values = Run::structured(&run)["values"].as_array().unwrap().clone();
        let size = values[0].as_u64().unwrap() % 1000;
        assert!(size >= 1 && 64 % size == 0, "{values:?}");
        assert!(values.iter().all(|v| v.as_u64() == Some(size * 1001)), "{values:?}");
    } else {
        assert!(Run::failure(&run).contains("invalid shader"));
    }
    // Halves read from a u32 buffer: 1.5 and -2 packed in one word.
    let halves = "enable f16;
        @group(0) @binding(0) var<storage, read> h: array<f16>;
        @group(0) @binding(1) var<storage, read_write> out: array<u32>;
        @compute @workgroup_size(1) fn main() { out[0] = bitcast<u32>(f32(h[0]) * f32(h[1])); }";
    let packed = 0x3e00u32 | (0xc000u32 << 16);
    let run =
        gpu_run("gpu_abuse", "run_wgsl", json!({"wgsl": halves, "buffers": [[packed]], "zeroed": [4], "read": 1}), "");
    if features.contains(&"f16") {
        assert_eq!(Run::structured(&run), json!({"values": [(-3.0f32).to_bits()]}));
    } else {
        assert!(Run::failure(&run).contains("invalid shader"));
    }
}

#[test]
fn weights_that_queued_work_still_reads_are_not_evicted() {
    // 4 bytes held, then two 8 KiB weights against 12 KiB of weights memory.
    let uploads = [upload(&[1]), upload(&vec![2; 2 << 10]), upload(&vec![3; 2 << 10])];
    let policy = "weights_memory = \"12KiB\"";
    // Dropped at once, the second makes room for the third.
    let out = Run::structured(&gpu_run("gpu_abuse", "weights", json!({"uploads": uploads}), policy));
    assert_eq!(out["answers"], json!(["ok", "ok", "ok"]), "{out}");
    // Dropped while a kernel queued to read it has not run, it is still in
    // use: the third does not fit.
    let args = json!({"uploads": uploads, "queue_reads": true});
    let out = Run::structured(&gpu_run("gpu_abuse", "weights", args, policy));
    let answers = out["answers"].as_array().unwrap();
    assert_eq!(answers[..2], [json!("ok"), json!("ok")], "{out}");
    assert!(answers[2].as_str().unwrap().contains("weights memory"), "{out}");
}
