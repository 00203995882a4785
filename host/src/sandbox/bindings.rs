//! Host bindings of the `toolmesh:tool/tool` world (see `wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tool",
    exports: { default: async },
});
