#!/usr/bin/env bash
# The benchmark's two remote-view servers speak the same protocol: the same
# check (npm wslink 2.5.0 against the VTK Web image-delivery calls, frames
# decoded with Pillow) passes against Kitware's Python wslink 2.6.0 peer
# (tests/peers/python/remote_view_server.py) and against ours
# (examples/remote-view), so BENCHMARKS.md compares like with like.
#
#   bash tests/peers/check-remote-view.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bin="${REMOTE_VIEW_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/remote-view}"
[ -x "$bin" ] || cargo build --release -p remote-view
www="$root/examples/remote-view/web/dist"
[ -f "$www/index.html" ] || { echo "no page at $www (bash tests/browser/run.sh builds it)"; exit 1; }

echo "== the Python peer"
node tests/peers/python/check_remote_view_server.mjs

echo "== ours"
log=$(mktemp)
"$bin" --host 127.0.0.1 --port 0 --www "$www" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  url=$(sed -n 's/.*(WebSocket \(ws:[^)]*\)).*/\1/p' "$log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "remote-view did not start:"; cat "$log"; exit 1; }
node tests/peers/python/check_remote_view_server.mjs --url "$url"
