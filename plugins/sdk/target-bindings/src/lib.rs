//! The generated bindings of the `target-plugin` world; `weft_plugin_sdk::target` re-exports
//! them as `bindings`. Only `weft_plugin_sdk::export_target!` should need them.

wit_bindgen::generate!({
    world: "target-plugin",
    path: "../../../wit",
    pub_export_macro: true,
    export_macro_name: "__export_target_plugin",
    default_bindings_module: "weft_plugin_sdk::target::bindings",
});
