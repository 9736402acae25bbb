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

/// The host's own template engine (`plugins/templates`), not a plugin world.
pub mod templates {
    wasmtime::component::bindgen!({
        path: "plugins/templates/wit",
        world: "template-engine",
        exports: { default: async },
    });
}
