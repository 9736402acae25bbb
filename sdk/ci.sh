#!/usr/bin/env bash
# CI for the Python and JavaScript plugin SDKs:
#
#   sdk/ci.sh [OUT_DIR]        (default: target/sdk-examples)
#
# 1. installs what is missing, pinned: componentize-py and wasm-tools into sdk/python/.venv (or
#    $WEFT_PY_VENV) from sdk/python/requirements-ci.txt, the JS build tools with `npm ci` from
#    sdk/js/package-lock.json;
# 2. runs both SDKs' unit tests;
# 3. builds the four examples in examples/plugins/ into OUT_DIR, one at a time (2 cores), and
#    prints each component's size, build time and WIT world;
# 4. runs the built components in Node with a fake host (sdk/js/tools/check-examples.mjs) and,
#    with WEFT_SDK_WASMTIME=1, in wasmtime 48 as the host will (sdk/wasmtime-check);
# 5. writes a Python and a JavaScript project with `weft plugin new`, builds each with its one
#    command (`NAME/build.sh`), adds it to a fresh database and runs it with `weft run`. The
#    `weft` binary is $WEFT, else `cargo build --bin weft` builds one.
#
# Anything that cannot be installed or fails stops the run with a non-zero status and says why;
# nothing is skipped.
set -euo pipefail

die() { echo "sdk/ci.sh: error: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }

sdk=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$sdk")
out=$(mkdir -p "${1:-$repo/target/sdk-examples}" && cd "${1:-$repo/target/sdk-examples}" && pwd)
venv=${WEFT_PY_VENV:-$sdk/python/.venv}
export WEFT_PY_VENV=$venv

step "prerequisites"
command -v python3 >/dev/null || die "python3 not found; install Python 3.10+ (apt-get install python3 python3-venv)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "python3 is older than 3.10"
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 cannot make venvs; apt-get install python3-venv"
command -v node >/dev/null || die "node not found; install Node 20+ (apt-get install nodejs npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' || die "node $(node --version) is older than 20"
command -v npm >/dev/null || die "npm not found; apt-get install npm"
echo "python3 $(python3 -c 'import platform; print(platform.python_version())'), node $(node --version), npm $(npm --version)"

step "install (pinned)"
if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" || die "could not create a venv at $venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$sdk/python/requirements-ci.txt" \
    || die "pip could not install $(tr '\n' ' ' <"$sdk/python/requirements-ci.txt") from PyPI into $venv"
"$venv/bin/componentize-py" --version
"$venv/bin/wasm-tools" --version
(cd "$sdk/js" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed in $sdk/js: the registry must serve the versions pinned in package-lock.json"

step "unit tests: Python SDK"
(cd "$sdk/python" && python3 -m unittest)

step "unit tests: JavaScript SDK"
(cd "$sdk/js" && node --test test/)

step "build the examples into $out"
summary=()
build() {
    local name=$1 line
    shift
    line=$("$@" "$repo/examples/plugins/$name" "$out/$name.wasm" | tail -n 1) || die "building $name failed"
    echo "$line"
    summary+=("$line")
}
build python-greeter "$sdk/python/build.sh"
build python-deny-target "$sdk/python/build.sh"
build js-greeter node "$sdk/js/build.mjs"
build js-stamp-target node "$sdk/js/build.mjs"

step "what each component imports and exports"
for wasm in "$out"/*.wasm; do
    echo "$(basename "$wasm"):"
    "$venv/bin/wasm-tools" component wit "$wasm" | sed -n '/^world/,/^}/p' | grep -E '^  (import|export) [a-z]' \
        | sed 's/^  /  /' || die "wasm-tools could not read $wasm"
done

step "run the components with a fake host"
(cd "$sdk/js" && node --experimental-wasm-extended-const tools/check-examples.mjs "$out")

step "load the components in wasmtime 48, as the host will"
if [ "${WEFT_SDK_WASMTIME:-0}" = 1 ]; then
    command -v cargo >/dev/null || die "cargo not found; install Rust (rustup) or unset WEFT_SDK_WASMTIME"
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/sdk-wasmtime-check}" cargo run --quiet --release --locked \
        --manifest-path "$sdk/wasmtime-check/Cargo.toml" -- "$out" || die "the wasmtime check failed"
else
    echo "not run: set WEFT_SDK_WASMTIME=1 to build sdk/wasmtime-check (compiles wasmtime 48, about 10 min on 2 cores)"
fi

step "weft plugin new: Python and JavaScript projects build with one command and run"
if [ -z "${WEFT:-}" ]; then
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup), or set WEFT to a weft binary"
    (cd "$repo" && cargo build --quiet --bin weft) || die "cargo build --bin weft failed"
    WEFT=$(cd "$repo" && realpath "${CARGO_TARGET_DIR:-target}/debug/weft")
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for lang in python js; do
    name=greet-$lang
    (cd "$scratch" && "$WEFT" plugin new "$name" --lang "$lang" --weft-home "$repo") || die "weft plugin new $name failed"
    started=$SECONDS
    "$scratch/$name/build.sh" >"$scratch/$name.log" 2>&1 || { cat "$scratch/$name.log"; die "$name/build.sh failed"; }
    echo "$name: $(wc -c <"$scratch/$name/$name.wasm") bytes, built in $((SECONDS - started)) s"
    "$WEFT" plugin add "$scratch/$name/$name.wasm" --name "$name" --version 0.1.0 --db "$scratch/weft.redb" \
        || die "weft plugin add $name.wasm failed"
    printf 'id: %s\nsteps:\n  - {name: G, plugin: %s, input: {name: Ada}}\noutputs:\n  greeting: "{{ steps.G.output.greeting }}"\n' \
        "$name" "$name" >"$scratch/$name.yaml"
    "$WEFT" run "$scratch/$name.yaml" --json --db "$scratch/weft.redb" >"$scratch/$name.json" \
        || { cat "$scratch/$name.json"; die "weft run of the $name plugin failed"; }
    grep -q '"greeting": *"hello Ada"' "$scratch/$name.json" || { cat "$scratch/$name.json"; die "$name did not greet Ada"; }
    echo "$name: ran in weft, greeting \"hello Ada\""
done

step "components"
printf '%s\n' "${summary[@]}"
