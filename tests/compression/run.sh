#!/usr/bin/env bash
# permessage-deflate with Node's WebSocket (which offers it) and Kitware's npm
# wslink 2.5.0 and 1.12.4 against our conformance server: the upgrade's
# answer, a JSON-heavy reply compressed on the wire, a JPEG-like binary with
# RSV1 clear, and --no-ws-compress (see node-client.mjs). The frame-level
# checks with a raw client, the inflate bomb and the reader's own tests are
# in `cargo test -p wslink-server` (tests/compression.rs, src/transport/).
#
#   bash tests/compression/run.sh
#
# Needs tests/peers/install.sh's npm packages; builds the server if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
server="${CARGO_TARGET_DIR:-target}/debug/conformance-server"
[ -x "$server" ] || cargo build -q -p conformance-server
exec node tests/compression/node-client.mjs --server "$server"
