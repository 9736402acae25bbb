//! Builds the bundled plugins in `plugins/` for `wasm32-wasip2` and embeds them.
//!
//! The plugins are their own Cargo workspace, built by a nested `cargo build` into
//! `target/weft-plugins-<tree>` (a separate target directory, so the outer build's lock is not
//! contended; one per source tree, so checkouts sharing a target directory keep their own). The built-in ones are embedded through `$OUT_DIR/builtins.rs`; the directory of
//! every built plugin (test-only ones included) is exported to the crate as
//! `WEFT_PLUGIN_DIR`, which the integration tests use. The host's template engine
//! (`plugins/templates`) is embedded beside them, but it is not a plugin.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugins embedded in the binary as built-ins: (plugin name, .wasm file stem, world).
const BUILTINS: &[(&str, &str, &str)] = &[
    ("approval", "approval", "step"),
    ("interaction", "interaction", "step"),
    ("transform", "transform", "step"),
    ("echo", "echo", "step"),
    ("fail", "fail", "step"),
    ("sleep", "sleep", "step"),
    ("http-request", "http_request", "step"),
    ("audit-sink", "audit_sink", "target"),
    ("policy", "policy", "target"),
    ("notify", "notify", "target"),
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=plugins");
    println!("cargo:rerun-if-changed=wit");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    ensure_target(&rustc);

    // `target/<profile>/build/weft-*/out` → `target/weft-plugins-<tree>`: one directory per
    // source tree, so checkouts sharing a target directory never embed each other's plugins.
    let tree = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        root.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    };
    let plugins_dir = format!("weft-plugins-{tree}");
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join(&plugins_dir))
        .unwrap_or_else(|| out_dir.join(&plugins_dir));
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(root.join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings describe the host crate, not the plugins.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key == "RUSTFLAGS" || key == "RUSTC_WRAPPER" {
            build.env_remove(key);
        }
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the bundled plugins");
    if !status.success() {
        panic!("building the bundled plugins in plugins/ failed (see the errors above)");
    }

    let wasm_dir = target_dir.join(TARGET).join("release");
    let version = plugin_version(&root.join("plugins/Cargo.toml"));
    let mut code = String::from("/// (name, version, world, component bytes) of each built-in plugin.\n");
    code.push_str("const BUILTINS: &[(&str, &str, crate::plugins::World, &[u8])] = &[\n");
    for (name, stem, world) in BUILTINS {
        let world = match *world {
            "step" => "crate::plugins::World::Step",
            "target" => "crate::plugins::World::Target",
            other => panic!("built-in {name} has world {other:?}; use step or target"),
        };
        let path = wasm_dir.join(format!("{stem}.wasm"));
        assert!(
            path.exists(),
            "the plugin build did not produce {}",
            path.display()
        );
        code.push_str(&format!(
            "    ({name:?}, {version:?}, {world}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let engine = wasm_dir.join("templates.wasm");
    assert!(
        engine.exists(),
        "the plugin build did not produce {}",
        engine.display()
    );
    code.push_str(&format!(
        "/// The host's template engine component (plugins/templates).\npub const TEMPLATE_ENGINE: &[u8] = include_bytes!({:?});\n",
        engine.display().to_string()
    ));
    std::fs::write(out_dir.join("builtins.rs"), code).unwrap();
    println!("cargo:rustc-env=WEFT_PLUGIN_DIR={}", wasm_dir.display());
}

/// Installs the wasm32-wasip2 target with rustup if it is missing, or stops with the command.
fn ensure_target(rustc: &str) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let installed = sysroot.is_some_and(|s| Path::new(&s).join("lib/rustlib").join(TARGET).exists());
    if installed {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        panic!("the {TARGET} target is missing and could not be installed; run: rustup target add {TARGET}");
    }
}

/// The bundled plugins' version: `[workspace.package] version` in plugins/Cargo.toml.
fn plugin_version(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().expect("plugins/Cargo.toml is valid TOML");
    doc["workspace"]["package"]["version"]
        .as_str()
        .expect("plugins/Cargo.toml sets [workspace.package] version")
        .to_owned()
}
