#!/usr/bin/env bash
# The golden stage of tests/run-all.sh: the checkers' self-test, then OUR
# encodings read by the official decoders.
#
#   bash tests/golden/check/ours.sh
#
# 1. crates/wslink-core/examples/golden_ours.rs re-encodes the messages of
#    every official vector (tests/golden/vectors/) with our encoder of the
#    same generation and writes vector files into a temporary directory
#    (skipping, with the reason, only what our encoder deliberately cannot
#    say; any other problem fails the stage).
# 2. run.sh runs its self-test and then the checkers on those files
#    (GOLDEN_OURS).
#
# Last line: `golden: N passed, M failed`; exit 1 if anything failed.
# Peers and overrides as for run.sh (lib/peers.sh).
set -uo pipefail

check="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$check/../../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "--- writing our vectors (golden_ours)"
if ! (cd "$repo" && cargo run -q -p wslink-core --example golden_ours -- "$tmp/ours"); then
    echo "fail: golden_ours could not write our vectors"
    echo "golden: 0 passed, 1 failed"
    exit 1
fi

GOLDEN_OURS="$tmp/ours" bash "$check/run.sh"
