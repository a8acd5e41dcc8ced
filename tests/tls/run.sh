#!/usr/bin/env bash
# wss:// and https:// from real clients against `wslink serve --ssl adhoc`:
# npm wslink 2.5.0 and 1.12.4 in Debian's headless chromium (trusting the
# certificate by its key hash, on a page served over https), and js-client
# in Node (trusting it through NODE_EXTRA_CA_CERTS). See wss.test.mjs. The
# Rust side (server, client, CLI) is tested by cargo test
# (crates/wslink-server/tests/tls.rs, crates/wslink-cli/tests/tls.rs).
#
#   bash tests/tls/run.sh
#
# Installs what it needs: the reference peers (tests/peers/install.sh, a
# no-op once done), Debian's chromium with apt-get when missing,
# playwright-core (npm ci in tests/browser, no browser download); builds
# js-client/dist and target/debug/wslink when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bash "$root/tests/peers/install.sh"

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
  echo "== installing Debian's chromium (apt-get)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium
fi

if [ ! -f "$root/tests/browser/node_modules/playwright-core/package.json" ]; then
  echo "== npm ci (tests/browser, for playwright-core)"
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund)
fi

js_stamp="$root/js-client/dist/src/index.js"
if [ ! -f "$js_stamp" ] || [ -n "$(find "$root/js-client/src" -newer "$js_stamp" -print -quit)" ]; then
  echo "== building js-client"
  (cd "$root/js-client" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
fi

wslink_bin="${CARGO_TARGET_DIR:-$root/target}/debug/wslink"
if [ -z "${WSLINK_BIN:-}" ] && [ ! -x "$wslink_bin" ]; then
  echo "== cargo build -p wslink-cli"
  (cd "$root" && cargo build -p wslink-cli)
fi

echo "== node --test tests/tls/wss.test.mjs"
cd "$here"
exec node --test --test-reporter=spec --test-timeout=120000 wss.test.mjs
