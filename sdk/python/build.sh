#!/usr/bin/env bash
# Builds a Python Weft plugin into a WebAssembly component:
#
#   sdk/python/build.sh PLUGIN_DIR OUT.wasm
#
# PLUGIN_DIR holds plugin.py (and any modules it imports); plugin.py exports one class with
# @export_step or @export_target, which decides the world (step-plugin or target-plugin).
# componentize-py (pinned in requirements-build.txt) is installed into a venv on first use:
# sdk/python/.venv, or $WEFT_PY_VENV. $WEFT_WIT_DIR overrides the WIT folder (default: wit/ of
# this checkout).
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 PLUGIN_DIR OUT.wasm"
plugin_dir=$(cd "$1" 2>/dev/null && pwd) || die "plugin folder $1 not found"
out=$2

sdk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wit=${WEFT_WIT_DIR:-$sdk/../../wit}
[ -f "$wit/weft.wit" ] || die "$wit/weft.wit not found; set WEFT_WIT_DIR to the folder holding weft.wit"
venv=${WEFT_PY_VENV:-$sdk/.venv}
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python not found; install Python 3.10 or newer (apt-get install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$python is older than 3.10"

pinned=$(grep -E '^componentize-py==' "$sdk/requirements-build.txt")
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py ${pinned#componentize-py==}"; then
    echo "installing $pinned into $venv" >&2
    "$python" -m venv "$venv" || die "could not create a venv at $venv (apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$sdk/requirements-build.txt" \
        || die "could not install $pinned from PyPI into $venv; install it there yourself ($venv/bin/pip install -r $sdk/requirements-build.txt)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Import the plugin with this machine's Python first: a mistake shows now, not after the build.
world=$(PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$sdk" "$python" -m weft_plugin._build "$plugin_dir" "$work")

echo "building $plugin_dir ($world) -> $out" >&2
start=$EPOCHREALTIME
(cd "$work" && "$venv/bin/componentize-py" -d "$wit" -w "$world" componentize weft_entry \
    -p "$work" -p "$plugin_dir" -p "$sdk" -o "$work/out.wasm") >"$work/log" 2>&1 \
    || { cat "$work/log" >&2; die "componentize-py failed for $plugin_dir"; }
mkdir -p "$(dirname "$out")"
mv "$work/out.wasm" "$out"
awk -v s="$start" -v e="$EPOCHREALTIME" -v f="$out" -v n="$(wc -c <"$out")" \
    'BEGIN { printf "built %s: %d bytes in %.1f s\n", f, n, e - s }'
