//! Host-side bindings for the plugin contract, both versions, and for the host's own template
//! engine.
//!
//! `weft:plugin@0.2.0` (`wit/weft.wit`) is the current contract; components built against
//! `weft:plugin@0.1.0` (`wit/v0.1.0`) still load. The two differ only by 0.2.0's `describe`,
//! so the 0.1.0 bindings reuse 0.2.0's `types` (component types are checked by structure,
//! not by package): calling a step or target is the same code for both, and only the host
//! imports are registered twice, under each version's name.

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

/// `weft:plugin@0.1.0`: the same worlds without `describe`.
pub mod v1 {
    pub mod step {
        wasmtime::component::bindgen!({
            path: "wit/v0.1.0",
            world: "step-plugin",
            exports: { default: async },
            with: {
                "weft:plugin/types": crate::plugins::bindings::step::weft::plugin::types,
            },
        });
    }

    pub mod target {
        wasmtime::component::bindgen!({
            path: "wit/v0.1.0",
            world: "target-plugin",
            exports: { default: async },
            with: {
                "weft:plugin/types": crate::plugins::bindings::step::weft::plugin::types,
                "weft:plugin/host": super::step::weft::plugin::host,
            },
        });
    }
}

/// The host's own template engine (`plugins/templates`), not a plugin world.
pub mod templates {
    wasmtime::component::bindgen!({
        path: "plugins/templates/wit",
        world: "template-engine",
        exports: { default: async },
    });
}
