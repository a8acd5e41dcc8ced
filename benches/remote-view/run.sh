#!/usr/bin/env bash
# Remote-rendering benchmark (vtk.js RemoteView in headless chromium) against
# our remote-view server and Kitware's Python wslink 2.6.0 serving the same
# protocol and scene (tests/peers/python/remote_view_server.py):
#
#   bash benches/remote-view/run.sh              # full: 5 s drags, both servers, both sizes
#   bash benches/remote-view/run.sh --quick      # 1 s drags: a smoke run
#   bash benches/remote-view/run.sh --servers python --sizes 640x360
#
# Sets up what is missing, then runs bench.mjs with the arguments given
# (see its header): Debian's chromium (apt-get), playwright-core (npm ci
# here, no browser download), the Python peer venv (tests/peers/install.sh)
# when the python server is measured, the page (js-client/dist and
# examples/remote-view/web/dist) when it is missing, and
# `cargo build --release --locked -p remote-view` when our server is measured
# (REMOTE_VIEW_BIN set: that binary is used as it is).
# The table is printed and written to target/bench/remote-view.md (raw
# numbers in remote-view.json beside it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

servers="ours,python"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ "${args[i]}" == --servers && $((i + 1)) -lt ${#args[@]} ]]; then
        servers="${args[i + 1]}"
    fi
done
wants() { [[ ",$servers," == *",$1,"* ]]; }

if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
    echo "== installing Debian's chromium (apt-get)"
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium
fi

if [[ ! -d "$here/node_modules/playwright-core" ]]; then
    echo "== npm ci (benches/remote-view)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

if wants python; then
    bash "$root/tests/peers/install.sh"
fi

web="$root/examples/remote-view/web"
if [[ -z "${REMOTE_VIEW_DIST:-}" && ! -f "$web/dist/index.html" ]]; then
    if [[ ! -f "$root/js-client/dist/src/SmartConnect.js" ]]; then
        echo "== building js-client"
        (cd "$root/js-client" && { [[ -d node_modules ]] || npm ci --no-audit --no-fund; } && npm run build)
    fi
    echo "== building the remote-view page"
    (cd "$web" && { [[ -d node_modules ]] || npm ci --no-audit --no-fund; } && npm run build)
fi

if wants ours && [[ -z "${REMOTE_VIEW_BIN:-}" ]]; then
    echo "== cargo build --release --locked -p remote-view"
    (cd "$root" && cargo build --release --locked -p remote-view)
fi

echo "== node bench.mjs $*"
cd "$here"
exec node bench.mjs "$@"
