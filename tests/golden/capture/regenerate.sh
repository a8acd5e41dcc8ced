#!/usr/bin/env bash
# Regenerates tests/golden/vectors/ from the official packages:
#   python-wslink-2.6.0, python-wslink-1.12.4   capture_python.py (server side)
#   npm-wslink-2.5.0, npm-wslink-1.12.4         capture_npm.mjs + finalize_npm.py
#
#   bash tests/golden/capture/regenerate.sh
#
# Uses the peers installed by tests/peers/install.sh (override with PY2, PY1,
# NPM_PEERS: see tests/golden/lib/peers.sh). No network. Chunk ids are random,
# so a regeneration changes them (and the Python tracebacks hold paths): the
# vectors are a record of one run, not a deterministic build product.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../lib/peers.sh"
golden_require_peers

capture="$GOLDEN_ROOT/capture"
vectors="$GOLDEN_ROOT/vectors"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PY2_BIN" "$capture/capture_python.py" "$tmp/out"
"$PY1_BIN" "$capture/capture_python.py" "$tmp/out"
node "$capture/capture_npm.mjs" "$tmp/npm-records.json"
"$PY2_BIN" "$capture/finalize_npm.py" "$tmp/npm-records.json" "$tmp/out"

mkdir -p "$vectors"
for producer in python-wslink-2.6.0 python-wslink-1.12.4 npm-wslink-2.5.0 npm-wslink-1.12.4; do
    [[ -d "$tmp/out/$producer" ]] || { echo "regenerate: nothing captured for $producer" >&2; exit 1; }
    rm -rf "${vectors:?}/$producer"
    mv "$tmp/out/$producer" "$vectors/$producer"
    echo "regenerate: $producer: $(ls "$vectors/$producer" | wc -l) vectors"
done
echo "regenerate: done; check them with: bash tests/golden/check/run.sh"
