#!/usr/bin/env bash
# Every test of the project, from a fresh clone: installs what the tests need
# (Python venvs with Kitware's wslink 2.6.0 and 1.12.4, the npm packages,
# Debian's chromium for the browser test), then runs each stage and prints
# one line per stage. Exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Tests that could skip for a missing peer fail instead: everything is installed here.
export WSLINK_REQUIRE_ALL=1

results=()
failed=0
stage() {
  local name=$1
  shift
  echo
  echo "=== ${name}"
  local start=$SECONDS
  if "$@"; then
    results+=("ok    ${name} ($((SECONDS - start)) s)")
  else
    results+=("FAIL  ${name} ($((SECONDS - start)) s)")
    failed=$((failed + 1))
  fi
}

js_client() {
  cd js-client && npm ci --no-audit --no-fund && npm run build && npm run typecheck && npm run lint && npm test
}

stage "install reference peers (PyPI, npm)" bash tests/peers/install.sh
stage "docs: ARCHITECTURE.md names only paths that exist" bash tests/docs/check-architecture.sh
stage "build workspace" cargo build --workspace --all-targets --all-features
stage "cargo test" cargo test --workspace --all-features
stage "broker: shared topics and RPC workers across processes on a real nats-server (three edges, a worker, faults; wslink serve --broker edges and the TS client failing over from a killed one)" bash tests/broker/run.sh
stage "adversarial suite (hostile input, faults, load against a live server)" bash tests/adversarial/run.sh
stage "js-client: build, typecheck, lint, unit tests" bash -c "$(declare -f js_client); js_client"
stage "golden vectors: official decoders read our bytes" bash tests/golden/check/ours.sh
stage "conformance matrix (official peers, both generations)" node tests/conformance/run.mjs
stage "permessage-deflate with Node's WebSocket (npm wslink 2.5.0 and 1.12.4)" bash tests/compression/run.sh
stage "declared subscriptions on the wire (our clients beside npm 2.5.0 and 1.12.4)" node tests/conformance/subscriptions.mjs
stage "fuzz (bounded)" bash crates/wslink-core/fuzz/run.sh --ci
stage "browser: vtk.js RemoteView on remote-view (three clients), image-stream, origins, permessage-deflate on the wire, in headless chromium" bash tests/browser/run.sh
stage "remote-view protocol: the Python benchmark peer and ours pass one check" bash tests/peers/check-remote-view.sh
stage "demo: the README's first command on its defaults (127.0.0.1:8080)" bash tests/browser/demo-defaults.sh
stage "wslink serve vs python -m wslink.server 2.6.0: flags, WSLINK_* variables, ready line" bash tests/cli-compat/run.sh
stage "launcher: SmartConnect in chromium via wslink launch and Kitware's launcher, the built-in proxy" bash tests/launcher/run.sh
stage "tls: npm wslink 2.5.0/1.12.4 over wss in chromium (page over https), js-client over wss in Node" bash tests/tls/run.sh
stage "relay: Kitware's reverse server via wslink relay, wslink serve --reverse-url via Kitware's relay, ours to ours, npm wslink 2.5.0; refusals, stalled readers" bash tests/relay/run.sh
stage "C and C++: wslink.h fresh, examples (gcc, g++, CMake) and checkers (auth, unknown method, binary, 100 ordered publishes) against our and Kitware's servers and launcher, under ASan/LSan and valgrind, hostile servers through the C API" bash tests/c/run.sh
stage "installs: cargo package, pip wheel, npm tarball, each tested from a clean directory" bash tests/install/run.sh
# After the browser stage: its chromium and playwright-core are needed here.
stage "js-client: integration tests (our and the Python servers, Node and chromium)" bash -c "cd js-client && npm run test:integration"

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
echo "stages: $(( ${#results[@]} - failed )) passed, ${failed} failed"
[ "$failed" -eq 0 ]
