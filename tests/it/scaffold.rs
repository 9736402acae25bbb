//! `weft plugin new NAME --lang rust|python|js`: the project it writes builds with one
//! command. The Rust one is built and run here (cargo, wasm32-wasip2); the Python and
//! JavaScript ones are built by `sdk/ci.sh`, which needs their toolchains.

use crate::common::*;
use std::process::Command;

#[test]
fn a_rust_plugin_from_plugin_new_builds_with_one_command_and_runs() {
    let weft = Weft::new();
    let out = weft.run_without_db(&["plugin", "new", "greet-rs", "--lang", "rust"]);
    out.expect_code(0);
    assert!(out.stdout.contains("greet-rs/build.sh"), "{}", out.stdout);
    let project = weft.dir.path().join("greet-rs");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains(&format!("path = \"{REPO}/plugins/sdk\"")),
        "{manifest}"
    );

    // One command; a shared target directory keeps later runs of this test fast.
    let status = Command::new(project.join("build.sh"))
        .env(
            "CARGO_TARGET_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/scaffold-rust"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run build.sh");
    assert!(status.success(), "greet-rs/build.sh failed: {status}");
    let wasm = project.join("greet-rs.wasm");
    let out = weft.run(&[
        "plugin",
        "add",
        path_str(&wasm),
        "--name",
        "greet-rs",
        "--version",
        "0.1.0",
    ]);
    out.expect_code(0);
    assert!(out.stdout.contains("(step world"), "{}", out.stdout);

    let bad = weft.write_workflow(
        "bad.yaml",
        "id: g\nsteps:\n  - {name: G, plugin: greet-rs, input: {name: 5}}\n",
    );
    weft.run(&["validate", path_str(&bad)])
        .expect_code(1)
        .expect_stderr(&["steps[0].input.name: expected a string, got 5"]);
    let good = weft.write_workflow(
        "good.yaml",
        "id: g\nsteps:\n  - {name: G, plugin: greet-rs, input: {name: Ada}}\n",
    );
    let (out, run) = weft.start(&good, &[]);
    out.expect_code(0);
    assert_eq!(step(&run, "G")["output"]["greeting"], "hello Ada");

    let again = weft.run_without_db(&["plugin", "new", "greet-rs", "--lang", "rust"]);
    again.expect_code(1).expect_stderr(&["greet-rs already exists"]);
}

#[test]
fn python_and_javascript_projects_are_written_with_an_executable_build() {
    use std::os::unix::fs::PermissionsExt;
    let weft = Weft::new();
    for (lang, source) in [("python", "plugin.py"), ("js", "plugin.js")] {
        let name = format!("greet-{lang}");
        weft.run_without_db(&["plugin", "new", &name, "--lang", lang])
            .expect_code(0);
        let project = weft.dir.path().join(&name);
        assert!(project.join(source).exists(), "{lang}: no {source}");
        let build = project.join("build.sh");
        let script = std::fs::read_to_string(&build).expect("build.sh");
        assert!(
            script.contains(REPO) && script.contains(&format!("{name}.wasm")),
            "{script}"
        );
        let mode = std::fs::metadata(&build).expect("build.sh").permissions().mode();
        assert_ne!(mode & 0o111, 0, "{lang}: build.sh is not executable");
    }
    weft.run_without_db(&["plugin", "new", "bad name", "--lang", "js"])
        .expect_code(1)
        .expect_stderr(&["is not a plugin name"]);
}
