#!/usr/bin/env bash
# The C and C++ API (crates/wslink-c), end to end:
#
#   bash tests/c/run.sh
#
#  1. include/wslink.h is what cbindgen 0.29.4 makes of the crate today
#     (cbindgen is installed into target/tools/ from crates.io when
#     missing, about 2 minutes of compiling once per checkout, unless one
#     of that version is on PATH; CBINDGEN=/path/to/cbindgen names one);
#  2. builds libwslink_c (debug) and the `wslink` binary (WSLINK_BIN to
#     use another), runs the crate's tests with the test-hooks feature
#     (hostile servers and launchers through the C API, a forced panic);
#  3. builds examples/c/call.c with gcc (shared library) and
#     examples/cpp/call.cpp with g++ (static library), -Wall -Wextra
#     -Werror, and both again with CMake (apt-get installs Debian's cmake
#     when it is missing, as root or through sudo);
#  4. builds the checkers tests/c/check.c (gcc, shared library) and
#     tests/c/check.cpp (g++ through wslink.hpp, static library), each also
#     with -fsanitize=address,undefined (LeakSanitizer on, any finding
#     fatal);
#  5. runs the examples and the checkers, plain and sanitized, against our
#     server (wslink 2.x and 1.x) and Kitware's Python servers (wslink 2.6.0
#     in target/peers/py2, 1.12.4 in target/peers/py1: tests/peers/install.sh
#     makes them); the checkers prove a wrong secret is WSLINK_ERR_AUTH
#     (code -32000), JSON and binary both ways, 100 publishes received in
#     order and intact, an unknown method WSLINK_ERR_RPC (code -32601);
#  6. runs the C checker under valgrind (memcheck: invalid accesses inside
#     the Rust library too, which the sanitizers do not instrument, and
#     definite leaks) against our server in both generations (apt-get
#     installs Debian's valgrind when it is missing);
#  7. runs the examples through Kitware's launcher (python -m
#     wslink.launcher) starting our server.
#
# Every program must print "all checks passed" and exit 0 (a sanitizer or
# valgrind finding makes it exit non-zero). Logs land in target/c-tests/.
# Ends with "N passed, M failed".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
work="$target/c-tests"
rm -rf "$work"
mkdir -p "$work/logs"
crate="$root/crates/wslink-c"
lib="$target/debug"

passed=0
failed=0
pids=()
cleanup() {
  local pid child
  for pid in "${pids[@]}"; do
    # The launcher's sessions are its children: stop them with it.
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do kill "$child" 2>/dev/null || true; done
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok    $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }

bash "$root/tests/peers/install.sh"

echo "== header: include/wslink.h against cbindgen 0.29.4"
cbindgen_version=0.29.4
cbindgen="${CBINDGEN:-$target/tools/cbindgen-$cbindgen_version/bin/cbindgen}"
if [ ! -x "$cbindgen" ] && [ -z "${CBINDGEN:-}" ] &&
  [ "$(cbindgen --version 2>/dev/null || true)" = "cbindgen $cbindgen_version" ]; then
  cbindgen="$(command -v cbindgen)" # one of that version on PATH will do
fi
if [ ! -x "$cbindgen" ]; then
  echo "   installing cbindgen $cbindgen_version (crates.io) into $target/tools"
  cargo install cbindgen --locked --version "$cbindgen_version" --root "$target/tools/cbindgen-$cbindgen_version" --quiet
fi
case "$("$cbindgen" --version)" in
  *" $cbindgen_version") ;;
  *) echo "cbindgen $cbindgen_version is needed, $cbindgen is $("$cbindgen" --version)"; exit 1 ;;
esac
(cd "$crate" && "$cbindgen" --quiet --config cbindgen.toml --crate wslink-c --output "$work/wslink.h")
if diff -u "$crate/include/wslink.h" "$work/wslink.h" >"$work/header.diff"; then
  ok "crates/wslink-c/include/wslink.h is up to date"
else
  head -40 "$work/header.diff"
  fail "crates/wslink-c/include/wslink.h is stale: regenerate it with
        (cd crates/wslink-c && $cbindgen --config cbindgen.toml --crate wslink-c --output include/wslink.h)"
fi

echo "== cargo build -p wslink-c; cargo test -p wslink-c --features test-hooks"
cargo build -p wslink-c
if [ -z "${WSLINK_BIN:-}" ]; then
  cargo build -p wslink-cli
fi
wslink_bin="${WSLINK_BIN:-$target/debug/wslink}"
if cargo test -p wslink-c --features test-hooks; then
  ok "cargo test -p wslink-c (the C API against hostile servers and launchers, misuse, a forced panic)"
else
  fail "cargo test -p wslink-c"
fi

echo "== building the examples"
cflags=(-Wall -Wextra -Werror -I "$crate/include")
if gcc -std=c11 "${cflags[@]}" "$crate/examples/c/call.c" -L "$lib" -lwslink_c -Wl,-rpath,"$lib" -pthread \
  -o "$work/call_c" 2>"$work/logs/gcc.log"; then
  ok "gcc: examples/c/call.c (libwslink_c.so)"
else
  cat "$work/logs/gcc.log"
  fail "gcc: examples/c/call.c"
fi
if g++ -std=c++17 -pedantic "${cflags[@]}" "$crate/examples/cpp/call.cpp" "$lib/libwslink_c.a" -pthread -ldl -lm \
  -o "$work/call_cpp" 2>"$work/logs/g++.log"; then
  ok "g++: examples/cpp/call.cpp (libwslink_c.a)"
else
  cat "$work/logs/g++.log"
  fail "g++: examples/cpp/call.cpp"
fi
apt_install() { # command package: Debian's package, when the command is missing
  if command -v "$1" >/dev/null; then return 0; fi
  echo "   installing Debian's $2 (apt-get)"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
apt_install cmake cmake
if cmake -S "$crate/examples" -B "$work/cmake" -DWSLINK_C_LIB_DIR="$lib" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS=-Werror -DCMAKE_CXX_FLAGS=-Werror >"$work/logs/cmake.log" 2>&1 &&
  cmake --build "$work/cmake" -j 2 >>"$work/logs/cmake.log" 2>&1; then
  ok "cmake: wslink_call_c, wslink_call_cpp"
else
  tail -30 "$work/logs/cmake.log"
  fail "cmake"
fi

echo "== building the checkers (tests/c/check.c, check.cpp), plain and with sanitizers"
# The sanitized builds instrument the C and C++ code; the Rust library is
# not instrumented, but its allocations go through the malloc that ASan
# replaces, so LeakSanitizer sees a result never freed (and ASan a use of
# one after its free function), whichever side allocated it. No LSan
# suppression is needed: the library's runtime and its threads stay
# reachable from its statics and from the stacks of threads still running
# at exit, which LSan scans. Any finding is fatal (-fno-sanitize-recover,
# ASan's and LSan's non-zero exit).
sanitize=(-g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1
build_checker() { # output sanitized(0|1) compiler std source link-flags...
  local out=$1 sanitized=$2 compiler=$3 std=$4 source=$5 flags=("${cflags[@]}")
  shift 5
  if [ "$sanitized" = 1 ]; then flags+=("${sanitize[@]}"); fi
  if "$compiler" "$std" "${flags[@]}" "$source" "$@" -o "$work/$out" 2>"$work/logs/$out.build.log"; then
    ok "$compiler: ${source#"$root"/} -> $out$([ "$sanitized" = 1 ] && echo " (ASan, UBSan, LSan)")"
  else
    cat "$work/logs/$out.build.log"
    fail "$compiler: ${source#"$root"/} -> $out"
  fi
}
shared=(-L "$lib" -lwslink_c -Wl,-rpath,"$lib" -pthread)
static=("$lib/libwslink_c.a" -pthread -ldl -lm)
build_checker check_c 0 gcc -std=c11 "$here/check.c" "${shared[@]}"
build_checker check_cpp 0 g++ -std=c++17 "$here/check.cpp" "${static[@]}"
build_checker check_c_asan 1 gcc -std=c11 "$here/check.c" "${shared[@]}"
build_checker check_cpp_asan 1 g++ -std=c++17 "$here/check.cpp" "${static[@]}"

examples=()
for e in "$work/call_c" "$work/call_cpp" "$work/cmake/wslink_call_c" "$work/cmake/wslink_call_cpp" \
  "$work/check_c" "$work/check_cpp" "$work/check_c_asan" "$work/check_cpp_asan"; do
  if [ -x "$e" ]; then examples+=("$e"); fi
done

free_port() {
  "$root/target/peers/py2/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port what
  local i
  for i in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 is not listening on port $1"
  return 1
}
run_examples() { # label args...
  local label=$1 e name
  shift
  for e in "${examples[@]}"; do
    name="${e#"$work"/}"
    name="${name//\//-}"
    local log="$work/logs/$name-$label.log"
    if timeout 60 "$e" "$@" >"$log" 2>&1 && grep -q "all checks passed" "$log"; then
      ok "$name against $label"
    else
      sed 's/^/      /' "$log"
      fail "$name against $label"
    fi
  done
}

secret="c-tests-secret-$$"

echo "== our server (wslink serve --conformance), both generations"
"$wslink_bin" serve --conformance --host 127.0.0.1 --port 0 --secret "$secret" --timeout 0 \
  >"$work/logs/wslink-serve.log" 2>&1 &
pids+=($!)
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^wslink server on \(ws:[^ ]*\).*/\1/p' "$work/logs/wslink-serve.log" | head -1)"
  [ -n "$url" ] && break
  sleep 0.1
done
if [ -z "$url" ]; then
  cat "$work/logs/wslink-serve.log"
  fail "our server did not start"
else
  run_examples "rust-server-2.x" --url "$url" --secret "$secret" --generation 2
  run_examples "rust-server-1.x" --url "$url" --secret "$secret" --generation 1
  echo "== valgrind: tests/c/check.c against our server, both generations"
  # Memcheck sees what the sanitized builds cannot: accesses inside the
  # Rust library. Only definite leaks count: the library-wide runtime's
  # threads still run at exit, so their stacks and thread-local blocks
  # are "possibly lost" by design. About 15 s a run on a debug build.
  apt_install valgrind valgrind
  if [ -x "$work/check_c" ]; then
    for g in 2 1; do
      log="$work/logs/valgrind-check_c-rust-server-$g.x.log"
      if timeout 120 valgrind -q --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --error-exitcode=1 "$work/check_c" --url "$url" --secret "$secret" --generation "$g" >"$log" 2>&1 &&
        grep -q "all checks passed" "$log"; then
        ok "valgrind check_c against rust-server-$g.x (no invalid access, no definite leak)"
      else
        sed 's/^/      /' "$log"
        fail "valgrind check_c against rust-server-$g.x"
      fi
    done
  fi
fi

echo "== our server over wss:// (wslink serve --ssl adhoc), trusted through options.ca_file"
"$wslink_bin" serve --conformance --host 127.0.0.1 --port 0 --secret "$secret" --timeout 0 \
  --ssl adhoc --ssl-adhoc-cert "$work/adhoc-cert.pem" >"$work/logs/wslink-serve-tls.log" 2>&1 &
pids+=($!)
wss_url=""
for _ in $(seq 1 300); do
  wss_url="$(sed -n 's/^wslink server on \(wss:[^ ]*\).*/\1/p' "$work/logs/wslink-serve-tls.log" | head -1)"
  [ -n "$wss_url" ] && break
  sleep 0.1
done
if [ -z "$wss_url" ]; then
  cat "$work/logs/wslink-serve-tls.log"
  fail "our server did not start with --ssl adhoc"
else
  for e in "$work/check_c" "$work/check_cpp" "$work/check_c_asan" "$work/check_cpp_asan"; do
    [ -x "$e" ] || continue
    name="${e#"$work"/}"
    log="$work/logs/$name-wss.log"
    if timeout 60 "$e" --url "$wss_url" --secret "$secret" --ca "$work/adhoc-cert.pem" >"$log" 2>&1 &&
      grep -q "all checks passed" "$log"; then
      ok "$name against rust-server-2.x over wss://"
    else
      sed 's/^/      /' "$log"
      fail "$name against rust-server-2.x over wss://"
    fi
  done
  # Without the CA file the self-signed certificate is refused.
  log="$work/logs/check_c-wss-untrusted.log"
  if [ -x "$work/check_c" ] && ! timeout 60 "$work/check_c" --url "$wss_url" --secret "$secret" >"$log" 2>&1 &&
    grep -q "WSLINK_ERR_CONNECT" "$log" && grep -qi "certificate" "$log"; then
    ok "check_c without --ca: the self-signed certificate is refused (WSLINK_ERR_CONNECT)"
  else
    sed 's/^/      /' "$log"
    fail "check_c without --ca was not refused for the certificate"
  fi
fi

for g in 2 1; do
  version=$([ "$g" = 2 ] && echo 2.6.0 || echo 1.12.4)
  echo "== Kitware's Python server, wslink $version"
  port="$(free_port)"
  # wslink 1.x takes this as its largest message (it does not chunk).
  WSLINK_MAX_MSG_SIZE=$((16 * 1024 * 1024)) "$root/target/peers/py$g/bin/python" \
    "$root/tests/peers/python/conformance_server.py" \
    --host 127.0.0.1 --port "$port" --authKey "$secret" --timeout 0 >"$work/logs/python-$g.log" 2>&1 &
  pids+=($!)
  if wait_port "$port" "the Python $version server"; then
    run_examples "python-$version" --url "ws://127.0.0.1:$port/ws" --secret "$secret" --generation "$g"
  else
    cat "$work/logs/python-$g.log"
    fail "the Python $version server did not start"
  fi
done

# The checkers need --url and --secret: through the launcher, only the examples.
echo "== Kitware's launcher (python -m wslink.launcher) starting our server"
lport="$(free_port)"
# One port per session (four: the gcc and g++ builds, each generation):
# Kitware's launcher frees a port only at a request after its process ended.
resources=""
for _ in 1 2 3 4; do
  p="$(free_port)"
  resources="$resources${resources:+, }{ \"host\": \"127.0.0.1\", \"port_range\": [$p, $p] }"
done
mkdir -p "$work/launcher/logs"
cat >"$work/launcher/launcher.json" <<EOF
// Kitware's launcher format (comments allowed).
{
  "configuration": {
    "host": "127.0.0.1",
    "port": $lport,
    "endpoint": "paraview",
    "sessionURL": "ws://\${host}:\${port}/ws",
    "timeout": 25,
    "log_dir": "$work/launcher/logs",
    "proxy_file": "$work/launcher/proxy-mapping.txt",
    "fields": ["secret"]               // the session's secret goes back to the client
  },
  "resources": [ $resources ],
  "properties": { "wslink": "$wslink_bin" },
  "apps": {
    "conf": {
      "cmd": ["\${wslink}", "serve", "--conformance", "--host", "\${host}", "--port", "\${port}",
              "--secret", "\${secret}", "--timeout", "3"],
      "ready_line": "wslink server on"
    }
  }
}
EOF
"$root/target/peers/py2/bin/python" -m wslink.launcher "$work/launcher/launcher.json" >"$work/logs/launcher.log" 2>&1 &
pids+=($!)
if wait_port "$lport" "Kitware's launcher"; then
  all=("${examples[@]}")
  examples=()
  for e in "$work/call_c" "$work/call_cpp"; do
    if [ -x "$e" ]; then examples+=("$e"); fi
  done
  for g in 2 1; do
    run_examples "kitware-launcher-$g.x" --launch "http://127.0.0.1:$lport/paraview/" --app conf --generation "$g"
  done
  examples=("${all[@]}")
else
  cat "$work/logs/launcher.log"
  fail "Kitware's launcher did not start"
fi

echo
echo "c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
