#!/usr/bin/env bash
# The browser test: the image-stream demo in Debian's headless chromium.
#
#   bash tests/browser/run.sh
#
# Installs chromium with apt-get if /usr/bin/chromium is missing (as root,
# or through sudo), installs playwright-core with `npm ci` (it downloads no
# browser), builds what the test needs if it is missing (js-client/dist; the
# release image-stream binary unless IMAGE_STREAM_BIN is set), then runs
# `node --test`. Screenshot and server log land in tests/artifacts/.
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

if [ ! -d "$root/js-client/dist" ]; then
  echo "== building js-client"
  (cd "$root/js-client" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
fi

if [ -z "${IMAGE_STREAM_BIN:-}" ]; then
  echo "== cargo build --release -p image-stream"
  (cd "$root" && cargo build --release -p image-stream)
  export IMAGE_STREAM_BIN="${CARGO_TARGET_DIR:-$root/target}/release/image-stream"
fi

echo "== node --test image-stream.test.mjs"
cd "$here"
exec node --test --test-reporter=spec --test-timeout=180000 image-stream.test.mjs
