//! Host-side bindings for the two worlds of `wit/weft.wit`.

pub mod step {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "step-plugin",
        exports: { default: async },
    });
}

pub mod target {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "target-plugin",
        exports: { default: async },
        with: {
            "weft:plugin/types": super::step::weft::plugin::types,
            "weft:plugin/host": super::step::weft::plugin::host,
        },
    });
}
