#!/usr/bin/env bash
# The README's first command, exactly as written and on its defaults:
# `bash examples/remote-view/run.sh`, then http://127.0.0.1:8080/ must serve
# the page, and the page (vtk.js RemoteView) must show a rendered frame
# within a second of loading. The browser test (remote-view.test.mjs)
# drives the page itself on a free port; this one proves the defaults a
# person types are the ones that work.
#
#   bash tests/browser/demo-defaults.sh
#
# Needs port 8080 free, chromium and tests/browser/node_modules (the browser
# stage installs both). Uses the `wslink` command (target/debug/wslink,
# built if missing) for one call.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
artifacts="$root/tests/artifacts"
mkdir -p "$artifacts"
log="$artifacts/demo-defaults.log"
base="http://127.0.0.1:8080"

if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  echo "FAIL  port 8080 is already taken: the demo's default cannot be tested here"
  exit 1
fi

wslink="${CARGO_TARGET_DIR:-$root/target}/debug/wslink"
[ -x "$wslink" ] || cargo build -q -p wslink-cli

echo "== bash examples/remote-view/run.sh (log: ${log#"$root"/})"
setsid bash examples/remote-view/run.sh >"$log" 2>&1 &
demo=$!
stop() {
  kill -TERM -- "-$demo" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$demo" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$demo" 2>/dev/null || true
}
trap stop EXIT

# A fresh clone compiles first; once the server is up the page must answer.
started=$SECONDS
# `/` redirects to index.html, as wslink's aiohttp server does.
until curl -sfL -o "$artifacts/demo-index.html" "$base/"; do
  if ! kill -0 "$demo" 2>/dev/null; then
    echo "FAIL  the demo exited before serving $base/"; tail -n 30 "$log"; exit 1
  fi
  if [ $((SECONDS - started)) -gt 600 ]; then
    echo "FAIL  $base/ did not answer within 600 s"; tail -n 30 "$log"; exit 1
  fi
  sleep 0.5
done
up=$((SECONDS - started))
grep -q "main.js" "$artifacts/demo-index.html" || { echo "FAIL  $base/ is not the remote-view page"; exit 1; }
echo "ok    $base/ serves the page (${up} s after the command, build included)"

# The page on its defaults, in chromium: vtk.js RemoteView through npm
# wslink 2.5.0's SmartConnect shows a frame of its own size.
node "$here/demo-defaults.mjs" "$base/" || { tail -n 30 "$log"; exit 1; }

# The server's own account of it, over RPC on the same defaults.
stats=$("$wslink" call ws://127.0.0.1:8080/ws remote_view.stats)
python3 - "$stats" <<'PY' || { echo "FAIL  remote_view.stats: $stats"; exit 1; }
import json, sys
views = json.loads(sys.argv[1])["views"]
assert views["1"]["frames"] >= 1, views
assert views["1"]["failures"] == 0, views
PY
echo "ok    remote_view.stats on defaults: $(head -c 200 <<<"$stats")"
echo "demo on defaults: 3 passed, 0 failed"
