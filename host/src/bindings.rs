//! Host bindings for the `wafer:inference/scoring` world, generated from `wit/world.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wafer:inference/scoring",
    exports: { default: async },
});
