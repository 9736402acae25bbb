#!/usr/bin/env bash
# Checks the served OpenAPI document and fuzzes the live server with it:
#
#   tests/openapi/check.sh BASE_URL TOKEN VENV_DIR [IDS [EIDS]]
#
# 1. installs the pinned validator and fuzzer (requirements.txt) into a venv at VENV_DIR;
# 2. reads BASE_URL/v1/openapi.json WITHOUT a token and validates it with
#    openapi-spec-validator (an implementation independent of utoipa);
# 3. runs schemathesis against BASE_URL with `Authorization: Bearer TOKEN`, for a bounded
#    number of examples per operation, with the checks: no 5xx, status codes, content types
#    and response bodies as documented. IDS and EIDS (comma-separated) are ids that exist:
#    half of the generated `{id}` and `{eid}` path parameters are taken from them, so the
#    fuzzer reaches real workflows, runs, schedules and targets, not only 404s.
#
# The integration test `openapi::the_document_validates_and_the_server_survives_fuzzing`
# starts a seeded `weft serve` and calls this. Anything that cannot be installed or any
# failed check exits non-zero and says what to do; nothing is skipped.
set -euo pipefail

die() { echo "tests/openapi/check.sh: error: $*" >&2; exit 1; }
[ $# -ge 3 ] && [ $# -le 5 ] || die "usage: check.sh BASE_URL TOKEN VENV_DIR [IDS [EIDS]]"
base=$1 token=$2 venv=$3 ids=${4:-} eids=${5:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

python3 -c 'import venv, ensurepip' 2>/dev/null \
    || die "python3 cannot make venvs; apt-get install python3-venv (tests/run installs it)"
if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" || die "could not create a venv at $venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || die "pip could not install $(tr '\n' ' ' <"$here/requirements.txt") from PyPI into $venv; check the network or a PyPI mirror (PIP_INDEX_URL)"

document=$(mktemp)
config=$(mktemp)
trap 'rm -f "$document" "$config"' EXIT
toml_list() { local IFS=,; local out=() v; for v in $1; do out+=("\"$v\""); done; (IFS=,; echo "[${out[*]}]"); }
{
    echo '[parameters]'
    [ -n "$ids" ] && echo '"path.id" = { dictionary = "ids", probability = 0.5 }'
    [ -n "$eids" ] && echo '"path.eid" = { dictionary = "eids", probability = 0.5 }'
    [ -n "$ids" ] && printf '[dictionaries.ids]\nvalues = %s\n' "$(toml_list "$ids")"
    [ -n "$eids" ] && printf '[dictionaries.eids]\nvalues = %s\n' "$(toml_list "$eids")"
    true
} >"$config"
"$venv/bin/python" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
    "$base/v1/openapi.json" "$document" \
    || die "GET $base/v1/openapi.json without a token failed; the document must be public"
echo "== openapi-spec-validator"
"$venv/bin/openapi-spec-validator" "$document" \
    || die "the served document does not validate; fix the #[utoipa::path] annotations named above"

echo "== schemathesis"
# It keeps a cache in the working directory; keep it out of the checkout.
cd "$venv"
"$venv/bin/schemathesis" --no-color --config-file "$config" run "$document" --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${WEFT_FUZZ_EXAMPLES:-15}" \
    --workers 2 \
    --request-timeout 10 \
    --seed 1 \
    || die "schemathesis found responses that break the document (above, each with a curl line to reproduce): fix the handler, or the annotation if the answer is right"
