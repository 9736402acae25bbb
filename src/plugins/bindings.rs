//! Host-side bindings for the two worlds of the plugin contract (`wit/v0.1.0/weft.wit`), and
//! for the host's own template engine.

pub mod step {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "step-plugin",
        exports: { default: async },
    });
}

pub mod target {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
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
