#!/usr/bin/env bash
# The README's first command, exactly as written and on its defaults:
# `bash examples/image-stream/run.sh`, then http://127.0.0.1:8080/ must serve
# the page and image.frames must carry PNG frames within seconds. The
# browser test (image-stream.test.mjs) drives the page itself on a free
# port; this one proves the defaults a person types are the ones that work.
#
#   bash tests/browser/demo-defaults.sh
#
# Needs port 8080 free. Uses the `wslink` command (target/debug/wslink,
# built if missing) to subscribe.
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

echo "== bash examples/image-stream/run.sh (log: ${log#"$root"/})"
setsid bash examples/image-stream/run.sh >"$log" 2>&1 &
demo=$!
stop() {
  kill -TERM -- "-$demo" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$demo" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$demo" 2>/dev/null || true
}
trap stop EXIT

# A fresh clone compiles first; once the server is up the page must answer.
started=$SECONDS
until curl -sf -o "$artifacts/demo-index.html" "$base/"; do
  if ! kill -0 "$demo" 2>/dev/null; then
    echo "FAIL  the demo exited before serving $base/"; tail -n 30 "$log"; exit 1
  fi
  if [ $((SECONDS - started)) -gt 600 ]; then
    echo "FAIL  $base/ did not answer within 600 s"; tail -n 30 "$log"; exit 1
  fi
  sleep 0.5
done
up=$((SECONDS - started))
grep -q "<canvas" "$artifacts/demo-index.html" || { echo "FAIL  $base/ has no canvas"; exit 1; }
echo "ok    $base/ serves the page (${up} s after the command, build included)"

# Frames within seconds of the server answering: 10 of them inside 5 s.
first=$(date +%s%N)
frames=$(timeout 5 "$wslink" subscribe ws://127.0.0.1:8080/ws image.frames --count 10) || {
  echo "FAIL  fewer than 10 frames on image.frames within 5 s"; tail -n 30 "$log"; exit 1
}
ms=$(( ($(date +%s%N) - first) / 1000000 ))
count=$(grep -c '"\$binary"' <<<"$frames" || true)
if [ "$count" -ne 10 ]; then
  echo "FAIL  expected 10 frames with a binary image, got $count:"; head -c 600 <<<"$frames"; exit 1
fi
echo "ok    10 frames on image.frames in ${ms} ms; first: $(head -n 1 <<<"$frames" | head -c 200)"

# The page's controls go through RPC on the same defaults.
state=$("$wslink" call ws://127.0.0.1:8080/ws image.state)
grep -q '"width":640' <<<"$state" && grep -q '"height":360' <<<"$state" || {
  echo "FAIL  image.state is not the default 640x360: $state"; exit 1
}
echo "ok    image.state on defaults: $state"
echo "demo on defaults: 3 passed, 0 failed"
