#!/usr/bin/env bash
# Runs every cargo-fuzz target of wslink-core for a bounded time.
#
#   bash crates/wslink-core/fuzz/run.sh --ci          each target ${FUZZ_SECONDS:-20} s
#   bash crates/wslink-core/fuzz/run.sh 600           each target 10 minutes
#   bash crates/wslink-core/fuzz/run.sh 600 unchunker one target
#
# Works with the stable toolchain: cargo-fuzz needs nightly-only flags
# (-Zsanitizer), which RUSTC_BOOTSTRAP=1 unlocks on stable. cargo-fuzz is
# installed from crates.io when missing. New inputs go to a scratch corpus;
# the committed seeds under corpus/<target> are only read. A crash leaves its
# input under artifacts/<target>/ and fails the run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

seconds=${FUZZ_SECONDS:-20}
case "${1:-}" in
  --ci | "") ;;
  *[!0-9]*) echo "usage: $0 [--ci | SECONDS] [TARGET...]" >&2; exit 2 ;;
  *) seconds=$1 ;;
esac
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

# Reused across runs on one machine; CI starts empty.
scratch="${FUZZ_SCRATCH:-$here/target/scratch-corpus}"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "$here/corpus/$t" "$here/artifacts/$t"
  echo "--- fuzz $t for ${seconds} s"
  log="$scratch/$t.log"
  rc=0
  cargo fuzz run "$t" "$scratch/$t" "$here/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log"
    echo "FAIL  $t: exit $rc (a crash leaves its input under $here/artifacts/$t/)"
    failed=$((failed + 1))
  else
    echo "ok    $t"
  fi
done
echo "fuzz: $(( ${#targets[@]} - failed )) targets clean, ${failed} crashed"
[ "$failed" -eq 0 ]
