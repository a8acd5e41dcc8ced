#!/usr/bin/env bash
# The benchmarks, side by side, in one command (see BENCHMARKS.md):
#
#   bash benches/run.sh            # full run: several minutes
#   bash benches/run.sh --quick    # every scenario briefly: a smoke test
#
# 1. installs the reference peers (Kitware's Python wslink 2.6.0 among them)
#    with tests/peers/install.sh, from the registries;
# 2. builds our conformance server, the raw tokio-tungstenite server and the
#    load generator in release mode;
# 3. runs the codec micro-benchmarks (criterion);
# 4. runs wslink-bench, which starts each server in its own process on
#    loopback, drives it with our Rust client (or plain tokio-tungstenite
#    for the raw server) and prints one table, also written to
#    target/bench/results.md.
#
# Other arguments go to wslink-bench (e.g. --runs 7, --only rpc,publish,
# --targets ours2,raw); WSLINK_BENCH_THREADS sets the load generator's
# worker threads.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

quick=0
for arg in "$@"; do
    [[ "$arg" == --quick ]] && quick=1
done

bash tests/peers/install.sh

# 10,000 idle connections need as many descriptors in the load generator and
# in the server (each its own process, so each its own limit).
want=20000
hard="$(ulimit -Hn)"
if [[ "$hard" == unlimited || "$hard" -ge "$want" ]]; then
    ulimit -n "$want"
else
    ulimit -n "$hard"
    echo "run.sh: the descriptor limit is $hard (hard); the 10,000-connection scenario will stop short" >&2
fi

cargo build --release --locked -p conformance-server -p wslink-bench

if [[ "$quick" == 1 ]]; then
    cargo bench --locked -p wslink-core --bench codec -- --quick >/dev/null
else
    cargo bench --locked -p wslink-core --bench codec -- \
        --warm-up-time 1 --measurement-time 3 >/dev/null
fi

mkdir -p target/bench
exec ./target/release/wslink-bench --markdown target/bench/results.md "$@"
