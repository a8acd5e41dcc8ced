#!/usr/bin/env bash
# `wslink serve` started like Kitware's `python -m wslink.server` 2.6.0:
# the same command lines and WSLINK_* variables against both servers
# (Python's runs tests/peers/python/conformance_server.py, which parses its
# flags with wslink.server.add_arguments; the bare `python -m wslink.server`
# refuses every hello, its ServerProtocol has no secret). Each server is
# waited for by its ready line, then probed with npm wslink 2.5.0, raw
# WebSockets and HTTP; see compat.mjs for the checks and the known
# differences.
#
#   bash tests/cli-compat/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bash "$root/tests/peers/install.sh"

# Built when missing or older than a Rust source it is made of (after the
# run-all build stage it is current).
wslink_bin="${CARGO_TARGET_DIR:-$root/target}/debug/wslink"
case "$wslink_bin" in /*) ;; *) wslink_bin="$root/$wslink_bin" ;; esac
if [ ! -x "$wslink_bin" ] || [ -n "$(find "$root/crates" "$root/Cargo.lock" -newer "$wslink_bin" \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -not -path '*/fuzz/*' -print -quit)" ]; then
  echo "== cargo build -p wslink-cli"
  (cd "$root" && cargo build -p wslink-cli)
fi

export WSLINK_BIN="$wslink_bin"
export WSLINK_PY2="${WSLINK_PY2:-$root/target/peers/py2/bin/python}"
exec node "$here/compat.mjs"
