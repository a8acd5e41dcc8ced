#!/usr/bin/env bash
# The browser tests, in Debian's headless chromium: the image-stream demo
# (image-stream.test.mjs), the remote-view demo, vtk.js RemoteView over
# three clients (remote-view.test.mjs), origin checks (origins.test.mjs) and
# permessage-deflate on the wire (compression.test.mjs).
#
#   bash tests/browser/run.sh
#
# Installs chromium with apt-get if /usr/bin/chromium is missing (as root,
# or through sudo), installs playwright-core with `npm ci` (it downloads no
# browser), then builds what the tests need:
#   - js-client/dist, if missing or older than js-client/src;
#   - the remote-view page (examples/remote-view/web/dist), every time:
#     `npm ci` there if node_modules is missing, then `npm run build` (~1 s);
#   - the release image-stream and remote-view binaries, unless
#     IMAGE_STREAM_BIN / REMOTE_VIEW_BIN are set;
# and runs `node --test` on both files. Screenshots and server logs land in
# tests/artifacts/. CAPTURE_VTKJS_CALLS=1 also rewrites
# crates/wslink-viewport/tests/fixtures/vtkjs-calls.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium (apt-get)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium
fi

echo "== npm ci (tests/browser)"
(cd "$here" && npm ci --no-audit --no-fund)

# Built if missing, or older than its sources (the remote-view page bundles it).
js_stamp="$root/js-client/dist/src/SmartConnect.js"
if [ ! -f "$js_stamp" ] || [ -n "$(find "$root/js-client/src" -newer "$js_stamp" -print -quit)" ]; then
  echo "== building js-client"
  (cd "$root/js-client" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
fi

# The remote-view page bundles js-client/dist, so it is built after it;
# always rebuilt (cheap), so it never lags behind its sources.
web="$root/examples/remote-view/web"
if [ ! -d "$web/node_modules" ]; then
  echo "== npm ci (examples/remote-view/web)"
  (cd "$web" && npm ci --no-audit --no-fund)
fi
echo "== npm run build (examples/remote-view/web)"
(cd "$web" && npm run build)

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
bins=()
if [ -z "${IMAGE_STREAM_BIN:-}" ]; then
  bins+=(-p image-stream)
  export IMAGE_STREAM_BIN="$target/release/image-stream"
fi
if [ -z "${REMOTE_VIEW_BIN:-}" ]; then
  bins+=(-p remote-view)
  export REMOTE_VIEW_BIN="$target/release/remote-view"
fi
if [ "${#bins[@]}" -gt 0 ]; then
  echo "== cargo build --release ${bins[*]}"
  (cd "$root" && cargo build --release "${bins[@]}")
fi

wslink_bin="${CARGO_TARGET_DIR:-$root/target}/debug/wslink"
if [ -z "${WSLINK_BIN:-}" ] && [ ! -x "$wslink_bin" ]; then
  echo "== cargo build -p wslink-cli (for origins.test.mjs)"
  (cd "$root" && cargo build -p wslink-cli)
fi

echo "== node --test image-stream.test.mjs remote-view.test.mjs origins.test.mjs compression.test.mjs"
cd "$here"
exec node --test --test-reporter=spec --test-timeout=180000 image-stream.test.mjs remote-view.test.mjs origins.test.mjs compression.test.mjs
