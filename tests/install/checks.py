#!/usr/bin/env python3
"""Checks of tests/install/run.sh that read manifests rather than run things.

    python3 tests/install/checks.py crates METADATA.json
        every publishable crate's crates.io metadata (METADATA.json:
        the output of `cargo metadata --format-version 1 --locked`)
    python3 tests/install/checks.py msrv METADATA.json
        the MSRV against the rust-version every locked package declares
    python3 tests/install/checks.py versions
        the workspace, its internal dependency requirements, js-client (and
        its lock file), the Python package and CHANGELOG.md carry one version
    python3 tests/install/checks.py wheel WHEEL
        the wheel is wslink-rs at the workspace's version, and holds the
        `wslink` script and its metadata, nothing to import (so it cannot
        shadow Kitware's `wslink` package)

Prints `ok ...` / `FAIL ...` lines; exit code 1 if anything failed.
"""

import json
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    sys.exit("tests/install/checks.py needs Python 3.11 or newer (tomllib)")
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# crates.io's category slugs (rust-lang/crates.io, src/boot/categories.toml):
# an unknown slug is refused only at upload, which a dry run never reaches.
CATEGORIES = set(
    """
    algorithms api-bindings asynchronous authentication caching command-line-interface
    command-line-utilities compression computer-vision config concurrency cryptography
    cryptography::cryptocurrencies database database-implementations data-structures
    date-and-time development-tools development-tools::build-utils
    development-tools::cargo-plugins development-tools::debugging development-tools::ffi
    development-tools::procedural-macro-helpers development-tools::profiling
    development-tools::testing email embedded emulators encoding external-ffi-bindings
    filesystem game-engines game-development games graphics gui hardware-support
    internationalization localization mathematics memory-management multimedia
    multimedia::audio multimedia::video multimedia::images multimedia::encoding
    network-programming no-std os os::linux-apis os::macos-apis os::unix-apis
    os::windows-apis parser-implementations parsing rendering rendering::engine
    rendering::graphics-api rendering::data-formats rust-patterns science
    science::robotics simulation template-engine text-editors text-processing
    value-formatting visualization wasm web-programming web-programming::http-client
    web-programming::http-server web-programming::websocket
    """.split()
)
KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{0,19}$")
PLACEHOLDER = re.compile(r"example\.(com|org|net|invalid)|\.invalid\b|localhost|127\.0\.0\.1|TODO|FIXME|your[-_]?(org|name)", re.I)

failures = 0


def report(ok, what):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures += 1


def version_tuple(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def workspace_package():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]


def crates(metadata_file):
    meta = json.loads(Path(metadata_file).read_text())
    ws = workspace_package()
    msrv = ws["rust-version"]
    members = set(meta["workspace_members"])
    by_id = {p["id"]: p for p in meta["packages"]}
    mine = [by_id[i] for i in sorted(members)]
    publishable = [p for p in mine if p.get("publish") != []]
    report(publishable, "publishable crates: " + ", ".join(p["name"] for p in publishable))
    names = {p["name"] for p in mine}

    for p in publishable:
        name = p["name"]
        missing = [k for k in ("description", "license", "readme", "rust_version") if not p.get(k)]
        report(not missing, f"{name}: description, license, readme, rust-version" + (f" (missing: {', '.join(missing)})" if missing else ""))
        kws = p.get("keywords") or []
        bad = [k for k in kws if not KEYWORD.match(k)]
        report(1 <= len(kws) <= 5 and not bad, f"{name}: keywords {kws} (1 to 5, each a letter then up to 19 of [A-Za-z0-9_+-])")
        cats = p.get("categories") or []
        unknown = [c for c in cats if c not in CATEGORIES]
        report(1 <= len(cats) <= 5 and not unknown, f"{name}: categories {cats}" + (f" (not crates.io slugs: {unknown})" if unknown else " (1 to 5 crates.io slugs)"))
        urls = {k: p.get(k) for k in ("repository", "homepage", "documentation") if p.get(k)}
        placeholders = {k: v for k, v in urls.items() if PLACEHOLDER.search(v)}
        report(not placeholders, f"{name}: no placeholder URLs" + (f" ({placeholders})" if placeholders else f" ({urls or 'none set'})"))
        doc = p.get("documentation")
        if doc and doc.startswith("https://docs.rs/"):
            report(doc.rstrip("/") == f"https://docs.rs/{name}", f"{name}: documentation is its own docs.rs page ({doc})")
        report(p.get("rust_version") == msrv, f"{name}: rust-version {p.get('rust_version')} is the workspace's {msrv}")
        report(p["version"] == ws["version"], f"{name}: version {p['version']} is the workspace's {ws['version']}")
        # A sibling reached by path must also carry a version requirement
        # (cargo drops path-only dev-dependencies when packaging).
        for d in p["dependencies"]:
            if d["name"] in names and d.get("kind") != "dev":
                req = d.get("req", "*")
                ok = req not in ("*", "") and req.lstrip("^=") == ws["version"]
                report(ok, f"{name}: depends on {d['name']} with version requirement {req!r} (wanted {ws['version']!r} beside its path)")


def msrv(metadata_file):
    """Every package in the lock file (what `cargo build --locked` compiles,
    for all targets and platforms) declares a rust-version no newer than
    the workspace's, or none."""
    meta = json.loads(Path(metadata_file).read_text())
    msrv = workspace_package()["rust-version"]
    too_new = []
    undeclared = 0
    for p in meta["packages"]:
        rv = p.get("rust_version")
        if rv is None:
            undeclared += 1
        elif version_tuple(rv) > version_tuple(msrv):
            too_new.append(f"{p['name']} {p['version']} needs {rv}")
    total = len(meta["packages"])
    if not too_new:
        report(True, f"MSRV {msrv}: none of {total} locked packages declares a newer rust-version ({undeclared} declare none)")
    else:
        report(
            False,
            f"MSRV {msrv}: {len(too_new)} of {total} locked packages declare a newer rust-version: "
            + "; ".join(sorted(too_new))
            + ". Raise rust-version in Cargo.toml ([workspace.package]), or lock older versions"
            " where they exist (CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo update)",
        )


def wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(name).decode()
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            fields.setdefault(k, v)
    return fields


def versions():
    ws = workspace_package()["version"]
    report(bool(re.match(r"^\d+\.\d+\.\d+", ws)), f"workspace version {ws}")
    deps = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["dependencies"]
    for name, spec in deps.items():
        if isinstance(spec, dict) and "path" in spec:
            report(spec.get("version") == ws, f"[workspace.dependencies] {name}: version {spec.get('version')!r} beside its path")
    pkg = json.loads((ROOT / "js-client/package.json").read_text())
    report(pkg["version"] == ws, f"js-client/package.json: {pkg['name']} {pkg['version']}")
    lock = json.loads((ROOT / "js-client/package-lock.json").read_text())
    lock_version = lock.get("packages", {}).get("", {}).get("version", lock.get("version"))
    report(lock_version == ws, f"js-client/package-lock.json: {lock_version}")
    py = tomllib.loads((ROOT / "packaging/pypi/pyproject.toml").read_text())["project"]
    report("version" not in py and "version" in py.get("dynamic", []), f"packaging/pypi/pyproject.toml: {py['name']} takes its version from Cargo (dynamic)")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    report(re.search(rf"^## \[{re.escape(ws)}\]", changelog, re.M) is not None, f"CHANGELOG.md has a [{ws}] section")


def wheel(path):
    meta = wheel_metadata(path)
    report(meta.get("Name") == "wslink-rs", f"wheel name {meta.get('Name')} (Kitware's is wslink)")
    ws = workspace_package()["version"]
    report(meta.get("Version") == ws, f"wheel version {meta.get('Version')} is the workspace's {ws}")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    scripts = [n for n in names if ".data/scripts/" in n]
    other = [n for n in names if ".dist-info/" not in n and ".data/scripts/" not in n]
    report([s.rsplit("/", 1)[1] for s in scripts] == ["wslink"], f"wheel scripts: {scripts}")
    report(not other, "wheel installs nothing importable" + (f" (it has {other})" if other else ""))
    tag = Path(path).name.split("-")[2:]
    report(tag[0] == "py3" and tag[1] == "none", f"wheel tag {'-'.join(tag)[:-4]}: any Python 3, no ABI")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "crates" and len(sys.argv) == 3:
        crates(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "msrv":
        msrv(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "versions":
        versions()
    elif len(sys.argv) == 3 and sys.argv[1] == "wheel":
        wheel(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
