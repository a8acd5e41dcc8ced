#!/usr/bin/env bash
# The adversarial suite (see src/main.rs): builds the conformance server and
# the suite, then runs every attack against the server as its own process,
# with healthy clients beside the attackers. Prints one line per attack and
# a summary with the figures (attacks, peak server RSS, healthy-client
# replies lost); exits non-zero if anything failed.
#
#   bash tests/adversarial/run.sh [--release] [--rounds N] [--only SUBSTRING]... [--list]
#
# Every attack runs twice (--rounds 2) unless --rounds is given: memory that
# grows from one round to the next is a leak.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=debug
flags=()
if [ "${1:-}" = "--release" ]; then
  profile=release
  flags=(--release)
  shift
fi
cargo build ${flags[@]+"${flags[@]}"} -p conformance-server -p wslink-adversarial
bin="${CARGO_TARGET_DIR:-target}/$profile"
rounds=(--rounds 2)
case " $* " in *" --rounds "*) rounds=() ;; esac
exec "$bin/wslink-adversarial" --server "$bin/conformance-server" ${rounds[@]+"${rounds[@]}"} "$@"
