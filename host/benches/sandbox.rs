//! Sandbox benchmarks: compile (Cranelift, and Winch for a node's first
//! calls), cached load, and a fresh instance plus a trivial call under the
//! pooling and on-demand allocators.
//!
//! Run with `scripts/bench.sh` (it builds the components first).

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::PathBuf;
use std::time::Duration;
use toolmesh_host::config::{Allocator, SandboxConfig};
use toolmesh_host::digest::Digest;
use toolmesh_host::sandbox::{CallOptions, Sandbox};
use wasmtime::component::Component;

fn hello_bytes() -> Vec<u8> {
    let exe = std::env::current_exe().expect("bench binary path");
    let path: PathBuf = exe.ancestors().nth(3).expect("target dir").join("wasm32-wasip2/release/hello.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-components.sh", path.display()))
}

fn benches(c: &mut Criterion) {
    let bytes = hello_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();

    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let engine = sandbox.engine().clone();
    c.bench_function("compile/hello", |b| b.iter(|| Component::new(&engine, &bytes).unwrap()));
    // The baseline tier: Winch compiles and the component is linked (no cache).
    c.bench_function("load_quick/hello", |b| b.iter(|| sandbox.load_quick(&bytes).unwrap()));

    let compiled = Component::new(&engine, &bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.cwasm");
    std::fs::write(&file, compiled.serialize().unwrap()).unwrap();
    c.bench_function("load_cached/hello", |b| {
        // SAFETY: the file was serialized just above by this engine.
        b.iter(|| unsafe { Component::deserialize_file(&engine, &file).unwrap() })
    });

    let mut group = c.benchmark_group("instantiate_and_call");
    for (name, allocator) in [("pooling", Allocator::Pooling), ("on_demand", Allocator::OnDemand)] {
        let sandbox = Sandbox::new(SandboxConfig { allocator, ..SandboxConfig::default() }).unwrap();
        let component = Component::new(sandbox.engine(), &bytes).unwrap();
        let tool = sandbox.link(Digest::of(&bytes), &component).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(sandbox.call(&tool, "greet", r#"{"name":"bench"}"#, CallOptions::default())).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = sandbox;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(sandbox);
