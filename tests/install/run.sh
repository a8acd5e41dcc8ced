#!/usr/bin/env bash
# The three installs, each from its packed artifact in a clean temporary
# directory, the way each community installs a tool:
#
#   cargo  every publishable crate's metadata and the MSRV; `cargo publish
#          --dry-run --workspace` (each crate packaged, then built from its
#          .crate against the other packaged crates); `cargo install --path
#          crates/wslink-cli` gives a working `wslink`
#   pip    maturin builds the wheel (packaging/pypi, `bin` bindings); a fresh
#          venv installs it with no index and no Rust on PATH; its `wslink
#          serve --conformance` passes the npm client's conformance cases,
#          2.x and 1.x, failing only what known-limitations.json lists; the
#          wheel sits beside Kitware's `wslink` in one venv
#   npm    `npm pack` of js-client holds no dev files; a fresh project
#          installs the tarball, imports it as ESM under Node and makes the
#          README's first call (against the wheel's server), its types
#          resolve under `tsc --strict` (nodenext and bundler resolution),
#          and esbuild bundles it for the browser
#
# and the versions of the three agree. One `ok`/`FAIL` line per part, a
# summary, exit code 1 if any part failed. Temporary directories and the
# servers it starts are removed/stopped on exit.
#
# Cargo builds go to the workspace's target directory (INSTALL_TARGET_DIR
# overrides), so the release and debug dependencies the earlier run-all
# stages built are reused and the wheel, `cargo install` and the dry run
# compile little of their own.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

MATURIN_VERSION=1.16.0
ESBUILD_VERSION=0.28.2 # as examples/remote-view/web
PYTHON="${PYTHON:-python3}"
SECRET="install-test-secret"
export CARGO_TARGET_DIR="${INSTALL_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}}"
export CARGO_TERM_COLOR=never

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wslink-install.XXXXXX")"
: >"$tmp/pids"
cleanup() {
    local pid
    while read -r pid; do
        [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    done <"$tmp/pids"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

results=()
failed=0
# part NAME FUNCTION: runs FUNCTION in a subshell with errexit in force
# (started in the background, because `if f` or `f || ...` would switch
# errexit off inside f), its output indented.
run_part() {
    (
        set -euo pipefail
        shopt -s inherit_errexit
        "$@"
    ) 2>&1 | sed -u 's/^/    /'
    return "${PIPESTATUS[0]}"
}

part() {
    local name=$1 start=$SECONDS rc=0 pid
    shift
    echo
    echo "--- ${name}"
    run_part "$@" &
    pid=$!
    wait "$pid" || rc=$?
    if ((rc == 0)); then
        echo "ok    ${name} ($((SECONDS - start)) s)"
        results+=("ok    ${name} ($((SECONDS - start)) s)")
    else
        echo "FAIL  ${name} ($((SECONDS - start)) s)"
        results+=("FAIL  ${name} ($((SECONDS - start)) s)")
        failed=$((failed + 1))
    fi
}

# start_server BIN NAME: `BIN serve --conformance` on a free port; prints
# its URL once it listens. The pid goes to $tmp/pids and $tmp/NAME.pid.
start_server() {
    local bin=$1 name=$2 url="" i
    : >"$tmp/$name.out"
    "$bin" serve --conformance --host 127.0.0.1 --port 0 --secret "$SECRET" --timeout 0 \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    echo $! >>"$tmp/pids"
    echo $! >"$tmp/$name.pid"
    for i in $(seq 150); do
        url="$(sed -n 's/^wslink server on //p' "$tmp/$name.out")"
        [[ -n $url ]] && break
        kill -0 "$(cat "$tmp/$name.pid")" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $url ]]; then
        echo "$bin serve did not print its address; stderr:" >&2
        cat "$tmp/$name.err" >&2
        return 1
    fi
    echo "$url"
}

stop_server() {
    local pid
    pid="$(cat "$tmp/$1.pid")"
    kill "$pid" 2>/dev/null || true
    sed -i "/^${pid}\$/d" "$tmp/pids"
}

# ---------------------------------------------------------------- versions

versions() {
    "$PYTHON" tests/install/checks.py versions
}

# ------------------------------------------------------------------- cargo

cargo_metadata() {
    cargo metadata --format-version 1 --locked >"$tmp/metadata.json"
    "$PYTHON" tests/install/checks.py crates "$tmp/metadata.json"
}

cargo_msrv() {
    [[ -s $tmp/metadata.json ]] || cargo metadata --format-version 1 --locked >"$tmp/metadata.json"
    "$PYTHON" tests/install/checks.py msrv "$tmp/metadata.json"
    # Only one toolchain is usually installed (and nothing is downloaded
    # here): build with the MSRV itself when rustup has it.
    local msrv
    msrv="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["rust-version"])')"
    local toolchains
    toolchains="$(rustup toolchain list 2>/dev/null || true)"
    if grep -q "^${msrv}[.-]" <<<"$toolchains"; then
        echo "building with Rust ${msrv}"
        cargo "+${msrv}" check --workspace --all-targets --locked
    else
        echo "note: no Rust ${msrv} toolchain here: checked the declared rust-version of every locked package, not a build with ${msrv}"
    fi
}

cargo_publish_dry_run() {
    # cargo >= 1.90 packages the workspace's publishable crates together
    # (publish = false ones are left out) and verifies each by building its
    # .crate against the other .crate files, as crates.io would serve them.
    # --allow-dirty: this checks packaging, not whether the tree is committed.
    #
    # Cargo takes a registry crate of a given version as immutable and never
    # rebuilds it: verified in the main target directory, a .crate of ours
    # would be built against an earlier packaging of its sibling (same
    # 0.1.0, older API). So verification gets a directory of its own, where
    # every build of our crates comes from a registry, and those are
    # dropped before each run; third-party dependencies stay cached.
    local verify="$CARGO_TARGET_DIR/publish-verify"
    rm -rf "$verify"/debug/.fingerprint/wslink-* "$verify"/debug/deps/*wslink_* "$verify"/debug/build/wslink-*
    # The same holds for the sources: cargo unpacks the packaged crates
    # under $CARGO_HOME/registry/src/-<hash>/ and never unpacks a version it
    # already has there, so an earlier run's wslink-core-0.1.0 would be
    # built instead of this one's.
    rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/wslink-*
    CARGO_TARGET_DIR="$verify" cargo publish --dry-run --workspace --locked --allow-dirty 2>&1 | quiet_cargo
}

# Drops cargo's per-crate progress lines.
quiet_cargo() {
    grep -v '^ *\(Compiling\|Checking\|Downloaded\|Downloading\|Locking\|Adding\|Updating\|Unpacking\|Archiving\)' || true
}

cargo_install() {
    cargo install --path crates/wslink-cli --root "$tmp/cargo-root" --locked --quiet
    local out
    out="$("$tmp/cargo-root/bin/wslink" --version)"
    echo "$tmp/cargo-root/bin/wslink --version: $out"
    [[ $out == "wslink $(workspace_version)" ]]
}

workspace_version() {
    "$PYTHON" -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["version"])'
}

# --------------------------------------------------------------------- pip

pip_wheel() {
    # maturin itself from PyPI, pinned, in a venv kept beside the cargo
    # builds so that later runs skip the download.
    local mv="$CARGO_TARGET_DIR/maturin-$MATURIN_VERSION"
    if [[ ! -x $mv/bin/maturin ]]; then
        rm -rf "$mv"
        "$PYTHON" -m venv "$mv"
        "$mv/bin/pip" install --quiet --disable-pip-version-check "maturin==$MATURIN_VERSION"
    fi
    mkdir -p "$tmp/wheels"
    (cd packaging/pypi && "$mv/bin/maturin" build --release --locked --out "$tmp/wheels" 2>&1 | quiet_cargo)
    local wheel
    wheel="$(ls "$tmp"/wheels/wslink_rs-*.whl)"
    echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
    "$PYTHON" tests/install/checks.py wheel "$wheel"
}

pip_venv_conformance() {
    local wheel venv="$tmp/venv"
    wheel="$(ls "$tmp"/wheels/wslink_rs-*.whl)"
    "$PYTHON" -m venv "$venv"
    # No index: the wheel alone, nothing built, nothing fetched.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-index --only-binary :all: "$wheel"
    # As a user would run it: the venv on PATH, no cargo or rustup there.
    local clean_path="$venv/bin:/usr/local/bin:/usr/bin:/bin"
    local found
    found="$(env -i HOME="$HOME" PATH="$clean_path" bash -c 'command -v wslink')"
    echo "wslink on PATH: $found"
    [[ $found == "$venv/bin/wslink" ]]
    local tool
    for tool in cargo rustc rustup; do
        if env -i PATH="$clean_path" bash -c "command -v $tool"; then
            echo "$tool is on the clean PATH: this would not show that the wheel needs no Rust"
            return 1
        fi
    done
    local version
    version="$(env -i PATH="$clean_path" wslink --version)"
    echo "wslink --version: $version"
    [[ $version == "wslink $(workspace_version)" ]]

    local url
    url="$(PATH="$clean_path" start_server wslink wheel-server)"
    echo "from the venv: wslink serve --conformance: $url"
    local sum
    sum="$(env -i PATH="$clean_path" wslink call "$url" conformance.add 2 3 --secret "$SECRET")"
    echo "from the venv: wslink call $url conformance.add 2 3: $sum"
    [[ $sum == 5 ]]
    local gen client rc ok=0
    for gen in 2 1; do
        client="npm-2.5.0"
        [[ $gen == 1 ]] && client="npm-1.12.4"
        rc=0
        node --experimental-websocket tests/conformance/npm-client.mjs \
            --url "$url" --secret "$SECRET" --generation "$gen" >"$tmp/npm-$gen.report" 2>"$tmp/npm-$gen.err" || rc=$?
        echo "$client (${gen}.x) against the wheel's server:"
        node tests/install/judge-conformance.mjs --client "$client" --server rust \
            --generation "$gen" --report "$tmp/npm-$gen.report" --exit-code "$rc" || ok=1
    done
    stop_server wheel-server
    return "$ok"
}

pip_beside_kitware() {
    # Kitware's wslink (the Python package this one's name avoids) installs
    # no `wslink` command: both fit in one venv, each keeping its name.
    local venv="$tmp/venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        -c tests/peers/python/constraints-py2.txt "wslink==2.6.0"
    "$venv/bin/python" -c 'import importlib.metadata as m, wslink.server; print("import wslink: Kitware wslink", m.version("wslink"))'
    local found version
    found="$(PATH="$venv/bin:/usr/bin:/bin" bash -c 'command -v wslink')"
    version="$("$found" --version)"
    echo "the wslink command: $found ($version)"
    [[ $found == "$venv/bin/wslink" && $version == "wslink $(workspace_version)" ]]
}

# --------------------------------------------------------------------- npm

npm_pack() {
    if [[ ! -x js-client/node_modules/.bin/tsc ]]; then
        (cd js-client && npm ci --no-audit --no-fund --loglevel=error)
    fi
    mkdir -p "$tmp/npm"
    # `npm pack` runs the prepack script (the build); its output would mix
    # with --json, so build first and pack without scripts.
    (cd js-client && npm run --silent build)
    (cd js-client && npm pack --json --ignore-scripts --pack-destination "$tmp/npm" >"$tmp/npm/pack.json")
    node - "$tmp/npm/pack.json" js-client/package.json <<'JS'
const fs = require('node:fs');
const [packFile, pkgFile] = process.argv.slice(2);
const [pack] = JSON.parse(fs.readFileSync(packFile, 'utf8'));
const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
const files = pack.files.map((f) => f.path);
const problems = [];
const dev = [/^test\//, /^test-integration\//, /^dist\/test/, /\.test\.[cm]?[jt]s/, /tsconfig/, /eslint/, /node_modules\//, /package-lock\.json$/, /\.tsbuildinfo$/, /^\./];
for (const f of files) if (dev.some((re) => re.test(f))) problems.push(`dev file in the tarball: ${f}`);
// Everything package.json points at is in the tarball.
const targets = [pkg.main, pkg.types];
const walk = (v) => (typeof v === 'string' ? targets.push(v) : Object.values(v).forEach(walk));
walk(pkg.exports);
for (const t of new Set(targets)) if (!files.includes(t.replace(/^\.\//, ''))) problems.push(`${t} (from package.json) is not in the tarball`);
// Built files come from a current source: no leftovers of a removed module.
for (const f of files) {
  const m = /^dist\/(src\/.*?)\.(js|d\.ts)(\.map)?$/.exec(f);
  if (m && !files.includes(`${m[1]}.ts`)) problems.push(`${f} has no ${m[1]}.ts: a stale build output`);
}
for (const f of ['package.json', 'README.md']) if (!files.includes(f)) problems.push(`${f} missing`);
console.log(`${pack.filename}: ${files.length} files, ${pack.size} bytes packed, ${pack.unpackedSize} unpacked`);
for (const p of problems) console.log(`FAIL ${p}`);
process.exitCode = problems.length ? 1 : 0;
JS
}

npm_app() {
    local app="$tmp/app" tgz ts
    tgz="$(ls "$tmp"/npm/wslink-client-*.tgz)"
    ts="$(node -p 'require("./js-client/package-lock.json").packages["node_modules/typescript"].version')"
    mkdir -p "$app"
    echo '{ "name": "install-check", "private": true, "type": "module" }' >"$app/package.json"
    (cd "$app" && npm install --no-audit --no-fund --no-package-lock --loglevel=error \
        "$tgz" "typescript@$ts" "esbuild@$ESBUILD_VERSION")
    echo "installed $(basename "$tgz"), typescript $ts, esbuild $ESBUILD_VERSION into a fresh project"
}

npm_node_esm() {
    local app="$tmp/app" bin url
    # The README's first call, against the wheel's server (or cargo's).
    cat >"$app/first-call.mjs" <<'JS'
import { connect } from 'wslink-client';

const [url, secret] = process.argv.slice(2);
const client = await connect({ url, secret });
const sum = await client.call('conformance.add', [2, 3]);
await client.close();
console.log(`conformance.add(2, 3) = ${sum}`);
if (sum !== 5) process.exit(1);
JS
    cat >"$app/imports.mjs" <<'JS'
import { fileURLToPath } from 'node:url';
import * as main from 'wslink-client';
import WebsocketConnection from 'wslink-client/WebsocketConnection';
import SmartConnect from 'wslink-client/SmartConnect';
import WebsocketConnection2 from 'wslink-client/src/WebsocketConnection';
import SmartConnect2 from 'wslink-client/src/SmartConnect';

const where = fileURLToPath(import.meta.resolve('wslink-client'));
console.log(`wslink-client resolves to ${where}`);
if (!where.startsWith(fileURLToPath(new URL('./node_modules/wslink-client/', import.meta.url)))) process.exit(1);
for (const name of ['connect', 'WslinkClient', 'WslinkError', 'ErrorCode', 'WebsocketConnection', 'SmartConnect']) {
  if (main[name] === undefined) throw new Error(`no export ${name}`);
}
for (const [name, m] of Object.entries({ WebsocketConnection, SmartConnect, WebsocketConnection2, SmartConnect2 })) {
  if (typeof m.newInstance !== 'function') throw new Error(`${name}.newInstance missing`);
}
console.log('imports: wslink-client, /WebsocketConnection, /SmartConnect, /src/WebsocketConnection, /src/SmartConnect');
JS
    (cd "$app" && node imports.mjs)
    bin="$tmp/venv/bin/wslink"
    [[ -x $bin ]] || bin="$tmp/cargo-root/bin/wslink"
    if [[ ! -x $bin ]]; then
        echo "no installed wslink to call (the pip and cargo install parts failed)"
        return 1
    fi
    url="$(start_server "$bin" first-call-server)"
    (cd "$app" && node --experimental-websocket first-call.mjs "$url" "$SECRET")
    stop_server first-call-server
}

npm_types() {
    local app="$tmp/app" mode
    cat >"$app/main.ts" <<'TS'
import { connect, WslinkError, ErrorCode, type WslinkClient, type ClientOptions } from 'wslink-client';
import WebsocketConnection from 'wslink-client/WebsocketConnection';
import SmartConnect from 'wslink-client/SmartConnect';

export async function first(url: string): Promise<unknown> {
  const options: ClientOptions = { url, secret: 'wslink-secret', protocol: 2 };
  const client: WslinkClient = await connect(options);
  try {
    return await client.call('conformance.add', [2, 3]);
  } catch (e) {
    if (e instanceof WslinkError && e.code === ErrorCode.EXCEPTION) return e.message;
    throw e;
  } finally {
    await client.close();
  }
}

export function compat(): void {
  const connection = WebsocketConnection.newInstance({ urls: 'ws://localhost:8080/ws', secret: 'wslink-secret' });
  connection.onConnectionReady((c) => void c.getSession()?.call('conformance.add', [2, 3]));
  SmartConnect.newInstance({ config: { sessionURL: 'ws://localhost:8080/ws' } });
}

// The types are real, not `any`: each of these must be an error.
// @ts-expect-error url is required
void connect({});
// @ts-expect-error protocol is 1 or 2
void connect({ url: 'ws://x/ws', protocol: 3 });
TS
    for mode in nodenext bundler; do
        local module=nodenext
        [[ $mode == bundler ]] && module=esnext
        cat >"$app/tsconfig.$mode.json" <<JSON
{
  "compilerOptions": {
    "strict": true, "noEmit": true, "skipLibCheck": false,
    "target": "es2022", "lib": ["es2022", "dom"], "types": [],
    "module": "$module", "moduleResolution": "$mode"
  },
  "files": ["main.ts"]
}
JSON
        (cd "$app" && ./node_modules/.bin/tsc -p "tsconfig.$mode.json")
        echo "tsc --strict, moduleResolution $mode, no @types/node, library .d.ts checked: clean"
    done
}

npm_esbuild() {
    local app="$tmp/app"
    cat >"$app/browser.ts" <<'TS'
import { connect } from 'wslink-client';
import SmartConnect from 'wslink-client/SmartConnect';

const client = await connect({ url: `ws://${location.host}/ws` });
document.body.textContent = String(await client.call('conformance.add', [2, 3]));
SmartConnect.newInstance({ config: { sessionURL: `ws://${location.host}/ws` } });
TS
    (cd "$app" && ./node_modules/.bin/esbuild browser.ts --bundle --platform=browser --format=esm \
        --target=es2022 --sourcemap --metafile=meta.json --outfile=out/browser.js --log-level=warning)
    node - "$app" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const app = process.argv[2];
const meta = JSON.parse(fs.readFileSync(path.join(app, 'meta.json'), 'utf8'));
const inputs = Object.keys(meta.inputs);
const ours = inputs.filter((i) => i.startsWith('node_modules/wslink-client/dist/src/'));
const problems = [];
if (ours.length === 0) problems.push('no input from node_modules/wslink-client/dist/src');
const strays = inputs.filter((i) => !/^(browser\.ts|node_modules\/(wslink-client\/dist\/src|@msgpack\/msgpack)\/)/.test(i));
if (strays.length) problems.push(`unexpected inputs: ${strays.join(', ')}`);
const bundle = fs.readFileSync(path.join(app, 'out/browser.js'), 'utf8');
if (/\brequire\(|from ["']node:|\bprocess\.env\b/.test(bundle)) problems.push('the bundle needs Node (require, node: imports or process.env)');
// The shipped source maps lead back to the shipped TypeScript.
const map = JSON.parse(fs.readFileSync(path.join(app, 'out/browser.js.map'), 'utf8'));
const sources = map.sources.filter((s) => s.includes('wslink-client/'));
if (!sources.some((s) => s.includes('node_modules/wslink-client/src/') && s.endsWith('.ts'))) problems.push(`source map does not reach wslink-client/src/*.ts: ${sources.slice(0, 3)}`);
for (const s of sources) if (!fs.existsSync(path.resolve(app, 'out', s))) problems.push(`source map names a missing file: ${s}`);
console.log(`esbuild --platform=browser: ${(bundle.length / 1024).toFixed(0)} KiB, ${ours.length} wslink-client modules, source map to ${sources.length} TypeScript files`);
for (const p of problems) console.log(`FAIL ${p}`);
process.exitCode = problems.length ? 1 : 0;
JS
}

# --------------------------------------------------------------------- run

# The npm client of the conformance cases is a reference peer.
if [[ ! -f tests/peers/node_modules/wslink-2/dist/wslink.js || ! -f tests/peers/node_modules/wslink-1/dist/wslink.js ]]; then
    bash tests/peers/install.sh
fi
echo "install tests in $tmp; cargo builds in $CARGO_TARGET_DIR"

part "versions: workspace, crates, js-client, Python package and CHANGELOG agree" versions
part "cargo: crates.io metadata of every publishable crate" cargo_metadata
part "cargo: MSRV (rust-version) against every locked dependency" cargo_msrv
part "cargo: publish --dry-run --workspace (each .crate built against the others)" cargo_publish_dry_run
part "pip: maturin wheel (bin bindings) of wslink-rs" pip_wheel
part "pip: fresh venv, no index, no Rust on PATH; wslink serve --conformance passes the npm client's cases (2.x, 1.x)" pip_venv_conformance
part "pip: beside Kitware's wslink in one venv" pip_beside_kitware
part "cargo: install --path crates/wslink-cli gives wslink" cargo_install
part "npm: pack js-client; no dev files, every export in the tarball" npm_pack
part "npm: a fresh project installs the tarball" npm_app
part "npm: ESM import under Node; the README's first call" npm_node_esm
part "npm: types under tsc --strict (nodenext, bundler)" npm_types
part "npm: esbuild bundle for the browser" npm_esbuild

echo
echo "=== install tests"
printf '%s\n' "${results[@]}"
echo "install: $((${#results[@]} - failed)) passed, ${failed} failed"
((failed == 0))
