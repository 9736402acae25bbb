#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, next to this script.
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
crate=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/${crate//-/_}.wasm" "{{name}}.wasm"
echo "built {{name}}.wasm ($(wc -c <"{{name}}.wasm") bytes)"
