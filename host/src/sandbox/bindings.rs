//! Host bindings of the `toolmesh:tool/gpu-tool` world (see `wit/`): the
//! `tool` world, the GPU interface and calls to other tools: everything a
//! tool may import.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gpu-tool",
    imports: { "toolmesh:tool/gpu": async, "toolmesh:tool/tools": async },
    exports: { default: async },
    with: {
        "toolmesh:tool/gpu.buffer": crate::capability::gpu::GpuBuffer,
        "toolmesh:tool/gpu.kernel": crate::capability::gpu::GpuKernel,
    },
});
