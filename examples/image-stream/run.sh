#!/usr/bin/env bash
# The demo, from a fresh clone:
#
#   bash examples/image-stream/run.sh [image-stream flags...]
#   # then open http://127.0.0.1:8080/
#
# Builds the TypeScript client (npm ci if it has no node_modules yet, then
# npm run build), then builds and runs the image-stream server in release
# mode. The server copies the page, js-client/dist and @msgpack/msgpack's
# ESM build into one directory and serves it (see src/site.rs).
# Flags: --host --port --secret --fps --width --height --palette --www --js-client.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

cd "$root/js-client"
if [ ! -d node_modules ]; then
  echo "== npm ci (js-client)"
  npm ci --no-audit --no-fund
fi
echo "== npm run build (js-client)"
npm run build

cd "$root"
echo "== cargo run --release -p image-stream"
exec cargo run --release -p image-stream -- "$@"
