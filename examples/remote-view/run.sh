#!/usr/bin/env bash
# The headline demo, from a fresh clone:
#
#   bash examples/remote-view/run.sh [remote-view flags...]
#   # then open http://127.0.0.1:8080/
#
# Builds the TypeScript client (one of the page's three client choices),
# bundles the page (unmodified vtk.js RemoteView + npm wslink's
# SmartConnect, with esbuild; `npm ci` from the committed lock file), then
# builds and runs the remote-view server in release mode.
# Flags: --host --port (0: any free port) --authKey-file (or --secret, or
# WSLINK_AUTH_KEY) --trusted-proxy --www.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

cd "$root/js-client"
if [ ! -d node_modules ]; then
  echo "== npm ci (js-client)"
  npm ci --no-audit --no-fund
fi
echo "== npm run build (js-client)"
npm run build

cd "$root/examples/remote-view/web"
if [ ! -d node_modules ]; then
  echo "== npm ci (examples/remote-view/web)"
  npm ci --no-audit --no-fund
fi
echo "== npm run build (examples/remote-view/web)"
npm run build

cd "$root"
echo "== cargo run --release -p remote-view"
exec cargo run --release -p remote-view -- "$@"
