#!/usr/bin/env bash
# The launcher in a browser: npm wslink's SmartConnect (2.5.0 and 1.12.4) in
# headless chromium gets sessions from `wslink launch`, and the same
# scenario runs against Kitware's Python launcher (the reference pair), then
# a session goes through the built-in proxy. See smartconnect.test.mjs.
#
#   bash tests/launcher/run.sh
#
# Installs what it needs: the reference peers (tests/peers/install.sh, a
# no-op once done), Debian's chromium with apt-get when /usr/bin/chromium is
# missing, playwright-core (npm ci in tests/browser, which downloads no
# browser); builds target/debug/wslink if it is missing or stale. The
# README's remote-view config is checked too when target/release/remote-view
# and examples/remote-view/web/dist exist (the browser stage builds them).
# The Rust tests of the launcher run in the `cargo test` stage
# (crates/wslink-launcher/tests, crates/wslink-cli/tests/launch.rs).
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

# Built when missing or older than a Rust source it is made of (after the
# run-all build stage it is current, and a -p build could recompile for
# other features).
wslink_bin="${CARGO_TARGET_DIR:-$root/target}/debug/wslink"
case "$wslink_bin" in /*) ;; *) wslink_bin="$root/$wslink_bin" ;; esac
if [ -z "${WSLINK_BIN:-}" ]; then
  if [ ! -x "$wslink_bin" ] || [ -n "$(find "$root/crates" "$root/Cargo.lock" -newer "$wslink_bin" \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -not -path '*/fuzz/*' -print -quit)" ]; then
    echo "== cargo build -p wslink-cli"
    (cd "$root" && cargo build -p wslink-cli)
  fi
fi

echo "== node --test smartconnect.test.mjs"
cd "$here"
exec node --test --test-reporter=spec --test-timeout=110000 smartconnect.test.mjs
