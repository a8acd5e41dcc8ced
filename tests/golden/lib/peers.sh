# Sourced by the golden-vector scripts: where the official peers are.
#
# Defaults are what tests/peers/install.sh installs:
#   PY2        target/peers/py2        venv with Python wslink 2.6.0
#   PY1        target/peers/py1        venv with Python wslink 1.12.4
#   NPM_PEERS  tests/peers/node_modules with wslink-2 (npm wslink 2.5.0),
#                                      wslink-1 (npm wslink 1.12.4),
#                                      @msgpack/msgpack
# PY2 / PY1 may name a venv directory or a python executable. NPM_PEERS names
# a node_modules directory laid out as above.
#
# After sourcing: GOLDEN_ROOT (tests/golden), REPO_ROOT, PY2_BIN, PY1_BIN,
# NPM_PEERS (absolute), and the function golden_require_peers.

GOLDEN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$GOLDEN_ROOT/../.." && pwd)"

_golden_python() { # venv-dir-or-python
    if [[ -d "$1" ]]; then
        echo "$1/bin/python"
    else
        echo "$1"
    fi
}

PY2_BIN="$(_golden_python "${PY2:-$REPO_ROOT/target/peers/py2}")"
PY1_BIN="$(_golden_python "${PY1:-$REPO_ROOT/target/peers/py1}")"
NPM_PEERS="$(cd "${NPM_PEERS:-$REPO_ROOT/tests/peers/node_modules}" 2>/dev/null && pwd || echo "${NPM_PEERS:-$REPO_ROOT/tests/peers/node_modules}")"
export NPM_PEERS

golden_require_peers() {
    local missing=0
    "$PY2_BIN" -c 'import wslink, sys; sys.exit(wslink.__version__ != "2.6.0")' 2>/dev/null ||
        { echo "golden: no Python wslink 2.6.0 at $PY2_BIN (set PY2)" >&2; missing=1; }
    "$PY1_BIN" -c 'from importlib.metadata import version; import sys; sys.exit(version("wslink") != "1.12.4")' 2>/dev/null ||
        { echo "golden: no Python wslink 1.12.4 at $PY1_BIN (set PY1)" >&2; missing=1; }
    for p in wslink-2/dist/wslink.js wslink-1/dist/wslink.js @msgpack/msgpack/package.json; do
        [[ -f "$NPM_PEERS/$p" ]] ||
            { echo "golden: no $NPM_PEERS/$p (set NPM_PEERS)" >&2; missing=1; }
    done
    if [[ $missing != 0 ]]; then
        echo "golden: install the peers with: bash tests/peers/install.sh" >&2
        return 1
    fi
}
