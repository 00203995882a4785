//! Host bindings of the `toolmesh:tool/mcp-tool` world (see `wit/`): the
//! `tool` world, the GPU and linear-algebra interfaces, calls to other tools, and the `server`
//! export (which the host looks up only where a component has it).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mcp-tool",
    imports: { "toolmesh:tool/gpu": async, "toolmesh:tool/linalg": async, "toolmesh:tool/tools": async },
    exports: { default: async },
    with: {
        "toolmesh:tool/gpu.buffer": crate::capability::gpu::GpuBuffer,
        "toolmesh:tool/gpu.kernel": crate::capability::gpu::GpuKernel,
        "toolmesh:tool/gpu.weights-upload": crate::capability::gpu::GpuUpload,
        "toolmesh:tool/linalg.matrix": crate::capability::linalg::LinalgMatrix,
        "toolmesh:tool/linalg.weights": crate::capability::linalg::LinalgWeights,
        "toolmesh:tool/linalg.upload": crate::capability::linalg::LinalgUpload,
    },
});
