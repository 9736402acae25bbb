//! `weft plugin new NAME --lang rust|python|js`: writes a plugin project, from the templates
//! in `src/cli/scaffold/` (embedded in the binary), into a new folder NAME. Each project builds
//! with one command, `./build.sh`, into `NAME.wasm`.
//!
//! Templates hold two placeholders: `{{name}}`, the plugin's name, and `{{weft_home}}`, the
//! Weft checkout whose SDK the project builds with (`--weft-home`, else `$WEFT_HOME`, else the
//! checkout this binary was built from).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// (path in the project, content, executable) of each file of a language's template.
fn files(lang: Lang) -> &'static [(&'static str, &'static str, bool)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("scaffold/rust/Cargo.toml"), false),
            ("src/lib.rs", include_str!("scaffold/rust/src/lib.rs"), false),
            ("build.sh", include_str!("scaffold/rust/build.sh"), true),
            ("README.md", include_str!("scaffold/rust/README.md"), false),
        ],
        Lang::Python => &[
            ("plugin.py", include_str!("scaffold/python/plugin.py"), false),
            ("build.sh", include_str!("scaffold/python/build.sh"), true),
            ("README.md", include_str!("scaffold/python/README.md"), false),
        ],
        Lang::Js => &[
            ("plugin.js", include_str!("scaffold/js/plugin.js"), false),
            ("build.sh", include_str!("scaffold/js/build.sh"), true),
            ("README.md", include_str!("scaffold/js/README.md"), false),
        ],
    }
}

/// Writes the project `name` in `lang` into the new folder `./name`.
pub fn new_plugin(name: &str, lang: Lang, weft_home: Option<PathBuf>) -> Result<ExitCode> {
    check_name(name, lang)?;
    let home = match weft_home.or_else(|| std::env::var_os("WEFT_HOME").map(PathBuf::from)) {
        Some(home) => home,
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    let home = std::path::absolute(&home).with_context(|| format!("--weft-home {}", home.display()))?;
    if !home.join("plugins/sdk/Cargo.toml").exists() || !home.join("sdk/README.md").exists() {
        bail!(
            "{} is not a Weft checkout (no plugins/sdk or sdk/ in it); pass --weft-home PATH or set WEFT_HOME",
            home.display()
        );
    }
    let dir = Path::new(name);
    if dir.exists() {
        bail!("{name} already exists; choose another name or remove it");
    }
    let home_text = home.to_str().context("the Weft checkout's path is not UTF-8")?;
    for (path, template, executable) in files(lang) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = template
            .replace("{{name}}", name)
            .replace("{{weft_home}}", home_text);
        std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", target.display()))?;
        }
    }
    println!("created {name}/ ({lang:?} plugin, SDK from {home_text}); build it with: {name}/build.sh");
    Ok(ExitCode::SUCCESS)
}

/// A plugin name (letters, digits, `-`, `_`, `.`) that is also a folder name and, for Rust,
/// a crate name.
fn check_name(name: &str, lang: Lang) -> Result<()> {
    let plugin_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with(['.', '-']);
    if !plugin_name {
        bail!("{name:?} is not a plugin name: use letters, digits, `-`, `_` and `.`, starting with a letter or digit");
    }
    if matches!(lang, Lang::Rust) && (name.contains('.') || name.starts_with(|c: char| c.is_ascii_digit())) {
        bail!("{name:?} is not a Rust crate name: use letters, digits, `-` and `_`, starting with a letter");
    }
    Ok(())
}
