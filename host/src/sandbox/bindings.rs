//! Host bindings of the `toolmesh:tool/gpu-tool` world (see `wit/`): the
//! `tool` world and the GPU interface, everything a tool may import.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gpu-tool",
    imports: { "toolmesh:tool/gpu": async },
    exports: { default: async },
    with: {
        "toolmesh:tool/gpu.buffer": crate::capability::gpu::GpuBuffer,
        "toolmesh:tool/gpu.kernel": crate::capability::gpu::GpuKernel,
    },
});
