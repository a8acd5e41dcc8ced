#!/usr/bin/env bash
# The relay (reverse connections), both ends, each against Kitware's:
#
#   1. Kitware's Python server (--reverse-url) -> `wslink relay` <- npm wslink 2.5.0
#      (and 1.12.4 <- 1.12.4)
#   2. `wslink serve --reverse-url`            -> Kitware's relay <- npm wslink 2.5.0
#   3. `wslink serve --reverse-url`            -> `wslink relay` <- npm wslink 2.5.0
#   4. npm wslink 2.5.0 -> `wslink relay --mode forward` -> Kitware's server
#   5. the bounds: a browser on a path with no server is refused (4404), a
#      second browser on a busy path too (4409), the server leaving ends its
#      browser and frees the path, and a browser that stops reading is
#      dropped while the relay's memory stays flat and another pair works
#      (crates/wslink-relay/tests/relay.rs, run here by cargo test).
#
#   bash tests/relay/run.sh
#
# npm's side is tests/relay/relay-client.mjs (a call, 1 MiB of binary there
# and back, a large binary result, 20 publishes in order) and the
# conformance runner tests/conformance/npm-client.mjs, whose cases run one
# after another: so each case is a new browser on the same relayed server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

bash tests/peers/install.sh >/dev/null
py="$root/target/peers/py2/bin/python"
wslink_bin="${WSLINK_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/wslink}"
case "$wslink_bin" in /*) ;; *) wslink_bin="$root/$wslink_bin" ;; esac
if [ ! -x "$wslink_bin" ] || [ -n "$(find crates Cargo.lock -newer "$wslink_bin" \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -not -path '*/fuzz/*' -print -quit)" ]; then
  echo "== cargo build -p wslink-cli"
  cargo build -q -p wslink-cli
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # (aiohttp may wait a minute for its WebSocket handlers on TERM)
  for _ in $(seq 30); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for FILE TEXT: until FILE has a line containing TEXT (10 s).
wait_for() {
  for _ in $(seq 100); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; return 1
}

# wait_count FILE TEXT N: until FILE has N lines containing TEXT (10 s).
wait_count() {
  for _ in $(seq 100); do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for $3 x '$2' in $1:"; cat "$1"; return 1
}

# wait_port PORT: until something listens there (10 s).
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1"; return 1
}

# The hello and ordinary calls, each case a new browser; what a relayed
# Kitware server cannot take is left out (see below). hello.wrong-secret
# and echo.string are left out: each keeps a connection open while it opens
# another, and a relayed server takes one browser at a time (the second
# gets 4409, as the `busy` check shows).
CASES=hello.ok,echo.null,echo.bool,echo.unicode,echo.float,echo.nested,echo.binary-empty,echo.binary-small,echo.binary-nested,add.ints,add.floats,kwargs.mixed,blob.empty,blob.small,blob.large,digest.small,error.exception,error.unknown-method,sleep.concurrent
# Ours can also take messages over 4 MiB from the browser, and, told by our
# relay that a browser left, wants the next one's hello (hello.call-before:
# a call before the hello, after other browsers said theirs, is refused).
OUR_CASES=$CASES,echo.binary-large,digest.large,hello.call-before

conformance() { # URL CASES
  node tests/conformance/npm-client.mjs --url "$1" --cases "$2" 2>"$work/runner.err" | tee "$work/runner.out"
  tail -1 "$work/runner.out" | grep -q ' 0 failed' || { cat "$work/runner.err"; return 1; }
}

# start_our_relay LOGNAME: sets $port (not in a $(...) subshell, so that
# its pid reaches the cleanup).
start_our_relay() {
  "$wslink_bin" relay --mode relay --host 127.0.0.1 --port 0 --stall-timeout 3 >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
  wait_for "$work/$1.out" "wslink relay on"
  port=$(sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/' "$work/$1.out" | head -1)
}

echo "== 1. Kitware's Python server --reverse-url -> wslink relay <- npm wslink 2.5.0"
start_our_relay relay1
url="ws://127.0.0.1:$port/proxy/job-1"
node tests/relay/relay-client.mjs refused "$url" 4404
"$py" tests/peers/python/conformance_server.py --reverse-url "$url" >"$work/py1.out" 2>&1 &
pypid=$!; pids+=($pypid)
# (the refused browser above was taken for a server until it spoke)
wait_count "$work/relay1.err" "server connected" 2
node tests/relay/relay-client.mjs publish "$url"
node tests/relay/relay-client.mjs busy "$url"
# Kitware's server reads its relay connection with aiohttp's 4 MiB limit:
# a browser message over 4 MiB (echo.binary-large, digest.large) ends it;
# and it handles one call at a time (sleep.concurrent, as without a relay).
conformance "$url" "${CASES/,sleep.concurrent/}"
# Kitware's server lets the next browser in on the last one's hello (it
# answers our relay's client-left ping as any ping): a call sent before any
# hello gets a result there. Checked so this README claim stays true.
node tests/conformance/npm-client.mjs --url "$url" --cases hello.ok,hello.call-before 2>/dev/null >"$work/inherit.out" || true
grep -q "fail hello.call-before: got a result" "$work/inherit.out" || { echo "Kitware's relayed server no longer lets a browser in without a hello:"; cat "$work/inherit.out"; exit 1; }
echo "ok (Kitware's server, as documented) a browser after another is let in without a hello"
kill "$pypid"; wait "$pypid" 2>/dev/null || true
wait_for "$work/relay1.err" "server gone; path free"
node tests/relay/relay-client.mjs refused "$url" 4404

echo "== 1b. the same with wslink 1.x: Kitware's 1.12.4 server, npm wslink 1.12.4 (JSON text frames, attachments)"
start_our_relay relay1b
url="ws://127.0.0.1:$port/proxy/job-1b"
target/peers/py1/bin/python tests/peers/python/conformance_server.py --reverse-url "$url" >"$work/py1b.out" 2>&1 &
pids+=($!)
wait_count "$work/relay1b.err" "server connected" 1
# 1.x sends an attachment as one frame: over the relay's message limit
# (blob.large, 6 MiB) it would end the sender, so it is left out; and
# Kitware's server takes one call at a time (sleep.concurrent).
node tests/conformance/npm-client.mjs --generation 1 --url "$url" --cases "$(echo "$CASES" | sed "s/,blob.large//; s/,sleep.concurrent//")" 2>"$work/runner.err" | tee "$work/runner.out" | grep -v "^ok"
tail -1 "$work/runner.out" | grep -q ' 0 failed' || { cat "$work/runner.err"; exit 1; }

echo "== 2. wslink serve --reverse-url -> Kitware's relay (python -m wslink.relay --mode relay) <- npm wslink 2.5.0"
port=$(free_port)
"$py" -m wslink.relay --mode relay --host 127.0.0.1 --port "$port" >"$work/pyrelay.out" 2>&1 &
pids+=($!)
wait_port "$port"
url="ws://127.0.0.1:$port/proxy/job-2"
"$wslink_bin" serve --conformance --reverse-url "$url" >"$work/rs2.out" 2>"$work/rs2.err" &
rspid=$!; pids+=($rspid)
wait_for "$work/rs2.out" "connected to the relay"
# Kitware's relay refuses frames of 4 MiB (its aiohttp limit) from either
# side, Kitware's own server's too: the large result stays under it here.
node tests/relay/relay-client.mjs publish "$url" $((3 * 1024 * 1024))
conformance "$url" "${CASES/blob.large,/}"
# When Kitware's relay goes, the server ends, as Kitware's does. (KILL: on
# TERM aiohttp waits up to a minute for its WebSocket handlers.)
kill -KILL "${pids[-2]}"; wait "${pids[-2]}" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$rspid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$rspid" 2>/dev/null; then echo "wslink serve --reverse-url did not exit when the relay left"; exit 1; fi
wait "$rspid" && echo "ok the server exited (status 0) when the relay left" || { echo "the server exited with an error"; exit 1; }

echo "== 3. wslink serve --reverse-url -> wslink relay <- npm wslink 2.5.0"
start_our_relay relay3
url="ws://127.0.0.1:$port/proxy/job-3"
"$wslink_bin" serve --conformance --reverse-url "$url" >"$work/rs3.out" 2>"$work/rs3.err" &
rspid=$!; pids+=($rspid)
wait_for "$work/rs3.out" "connected to the relay"
node tests/relay/relay-client.mjs publish "$url"
node tests/relay/relay-client.mjs busy "$url"
conformance "$url" "$OUR_CASES"
# A second server for a held path is refused; the first keeps it.
status=0
"$wslink_bin" serve --conformance --reverse-url "$url" >"$work/rs3b.out" 2>&1 || status=$?
if [ "$status" != 3 ] || ! grep -q "409" "$work/rs3b.out"; then
  echo "a second server for a held path: expected exit 3 with HTTP 409, got $status:"; cat "$work/rs3b.out"; exit 1
fi
echo "ok a second server for the path is refused: $(grep -o 'refused.*' "$work/rs3b.out")"
node tests/relay/relay-client.mjs publish "$url" 1000
kill "$rspid"; wait "$rspid" 2>/dev/null || true
wait_for "$work/relay3.err" "server gone; path free"
node tests/relay/relay-client.mjs refused "$url" 4404
"$wslink_bin" call "ws://127.0.0.1:$port/not-a-route" conformance.add 1 2 >/dev/null 2>&1 && { echo "a path outside the route was accepted"; exit 1; }
echo "ok a path outside --proxy-route is not a WebSocket route"

echo "== 4. wslink relay --mode forward (Kitware's default mode) -> Kitware's Python server on its port"
pyport=$(free_port)
"$py" tests/peers/python/conformance_server.py --host 127.0.0.1 --port "$pyport" >"$work/py4.out" 2>&1 &
pids+=($!)
wait_port "$pyport"
"$wslink_bin" relay --host 127.0.0.1 --port 0 >"$work/relay4.out" 2>"$work/relay4.err" &
pids+=($!)
wait_for "$work/relay4.out" "mode forward"
port=$(sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/' "$work/relay4.out" | head -1)
node tests/relay/relay-client.mjs publish "ws://127.0.0.1:$port/proxy/$pyport"
conformance "ws://127.0.0.1:$port/proxy/$pyport" "${CASES/,sleep.concurrent/}"

echo "== 5. bounds (cargo test -p wslink-relay)"
cargo test -q -p wslink-relay 2>&1 | grep -E "^test result|panicked|FAILED"

echo "relay: all checks passed"
