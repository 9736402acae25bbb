#!/usr/bin/env bash
# Builds {{name}}.wasm, a WebAssembly component, next to this script. WEFT_HOME is a Weft
# checkout (default: the one `weft plugin new` named); its SDK installs componentize-py on first use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${WEFT_HOME:-{{weft_home}}}/sdk/python/build.sh" "$here" "$here/{{name}}.wasm"
