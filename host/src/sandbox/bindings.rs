//! Host bindings of the `toolmesh:tool/tool` world (see `wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tool",
    imports: { "toolmesh:tool/gpu": async },
    exports: { default: async },
    with: {
        "toolmesh:tool/gpu.buffer": crate::capability::gpu::GpuBuffer,
        "toolmesh:tool/gpu.kernel": crate::capability::gpu::GpuKernel,
    },
});
