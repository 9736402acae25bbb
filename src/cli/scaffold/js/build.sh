#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, next to this script. WEFT_HOME is a Weft
# checkout (default: the one `weft plugin new` named); its SDK installs the build tools with npm ci on first use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec node "${WEFT_HOME:-{{weft_home}}}/sdk/js/build.mjs" "$here" "$here/{{name}}.wasm"
