//! The plugins bundled with Weft, compiled from `plugins/` by `build.rs` and embedded in the
//! binary so a fresh `weft` runs the examples without uploading anything.

use super::World;
use crate::names::Digest;
use std::sync::LazyLock;

/// A bundled plugin.
pub struct Builtin {
    pub name: &'static str,
    pub version: &'static str,
    /// Whether it is a step or an action target; `build.rs` lists it with each built-in.
    pub world: World,
    pub bytes: &'static [u8],
    pub digest: Digest,
}

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Every bundled plugin, with its digest computed once.
pub fn all() -> &'static [Builtin] {
    static ALL: LazyLock<Vec<Builtin>> = LazyLock::new(|| {
        BUILTINS
            .iter()
            .map(|&(name, version, world, bytes)| Builtin {
                name,
                version,
                world,
                bytes,
                digest: Digest::of(bytes),
            })
            .collect()
    });
    &ALL
}
