#!/usr/bin/env bash
# Golden-vector checks with the official decoders.
#
#   bash tests/golden/check/run.sh            self-test (see below), and the
#                                             vectors in $GOLDEN_OURS if set
#   bash tests/golden/check/run.sh PATH...    check these vector files/dirs
#
# Checking PATH runs the three checkers on it:
#   python-wslink-2.6.0   check_python.py under $PY2 (generation 2 files)
#   python-wslink-1.12.4  check_python.py under $PY1 (generation 1 files)
#   npm-wslink            check_npm.mjs, wslink 2.5.0 / 1.12.4 bundles
#                         (server-to-client files only)
#
# The self-test proves the checkers both ways: the committed vectors (bytes
# of the official packages) must pass all of them, and every deliberately
# broken vector written by make_bad.py must be rejected by each checker it
# names in "must_fail".
#
# Peers: tests/peers/install.sh's, or PY2 / PY1 / NPM_PEERS (lib/peers.sh).
# Last line: `golden: N passed, M failed`; exit 1 if anything failed.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../lib/peers.sh"
golden_require_peers || exit 1

check="$GOLDEN_ROOT/check"
total_passed=0
total_failed=0

count_line() { # "...: N passed, M failed..." -> adds to the totals
    local line=$1 p f
    p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line")
    f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
    total_passed=$((total_passed + ${p:-0}))
    total_failed=$((total_failed + ${f:-0}))
}

run_checkers() { # PATH...
    local output rc before
    for runner in "$PY2_BIN $check/check_python.py" "$PY1_BIN $check/check_python.py" "node $check/check_npm.mjs"; do
        # shellcheck disable=SC2086
        output=$($runner "$@" 2>&1)
        rc=$?
        printf '%s\n' "$output"
        before=$total_failed
        count_line "$(tail -n 1 <<<"$output")"
        if [[ $rc != 0 && $total_failed == "$before" ]]; then
            echo "fail: $runner exited $rc"
            total_failed=$((total_failed + 1))
        fi
    done
}

self_test() {
    local vectors="$GOLDEN_ROOT/vectors" tmp f gen must checker output rc
    echo "--- official vectors must pass every checker"
    run_checkers "$vectors"

    echo "--- broken vectors must be rejected"
    tmp="$(mktemp -d)"
    "$PY2_BIN" "$check/make_bad.py" "$vectors" "$tmp" || { rm -rf "$tmp"; total_failed=$((total_failed + 1)); return; }
    for f in "$tmp"/*.json; do
        read -r gen must < <("$PY2_BIN" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["generation"], " ".join(d["must_fail"]))' "$f")
        for checker in $must; do
            case "$checker/$gen" in
                python/2) output=$("$PY2_BIN" "$check/check_python.py" "$f" 2>&1); rc=$? ;;
                python/1) output=$("$PY1_BIN" "$check/check_python.py" "$f" 2>&1); rc=$? ;;
                npm/*) output=$(node "$check/check_npm.mjs" "$f" 2>&1); rc=$? ;;
                *) output="unknown checker $checker"; rc=0 ;;
            esac
            if [[ $rc != 0 ]] && grep -q "^fail " <<<"$output"; then
                echo "ok rejected $(basename "$f") by $checker: $(grep -m1 '^fail ' <<<"$output" | sed "s|^fail $f: ||" | cut -c1-160)"
                total_passed=$((total_passed + 1))
            else
                echo "fail $(basename "$f") was NOT rejected by $checker"
                total_failed=$((total_failed + 1))
            fi
        done
    done
    rm -rf "$tmp"
}

if [[ $# -gt 0 ]]; then
    run_checkers "$@"
else
    self_test
    if [[ -n "${GOLDEN_OURS:-}" ]]; then
        echo "--- our vectors ($GOLDEN_OURS)"
        run_checkers "$GOLDEN_OURS"
    fi
fi

if [[ $total_passed == 0 && $total_failed == 0 ]]; then
    echo "golden: no vector was checked" >&2
    total_failed=1
fi
echo "golden: $total_passed passed, $total_failed failed"
[[ $total_failed == 0 ]]
