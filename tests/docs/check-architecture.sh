#!/usr/bin/env bash
# ARCHITECTURE.md may name only files, directories and functions that exist,
# and README.md must link it.
#
#   bash tests/docs/check-architecture.sh          # this checkout
#   bash tests/docs/check-architecture.sh ROOT     # another tree (e.g. a copy)
#
# What counts as a path (fenced ``` blocks, such as the diagram, are not read):
#   - every word of an inline `code span` that contains a "/" or ends in
#     .rs .ts .mjs .js .md .sh .json .toml .py .txt .lock .html .css .yml,
#     except URLs (anything with "://"), Rust paths (anything with "::"),
#     words starting with "/", "-", "$" or "@" (npm scopes), and
#     placeholders ("<", ">", "{", "}"); trailing , ; : . are dropped. It
#     must exist relative to ROOT (a "*" in it must match something);
#   - every markdown link target ](target) that is not a URL or an #anchor.
# What counts as a function:
#   - a code span that is exactly `name()`, `Type::name()` or `Type.name()`
#     (any number of `module::` parts in front). `name` must be defined
#     (Rust `fn name`, TypeScript/JavaScript `function name` or a method
#     `name(`, Python `def name`) in a source file named in the same
#     paragraph (a run of non-blank lines: a list without blank lines is one)
#     or in the heading above it (a named directory stands for every source
#     file under it); when neither names any, anywhere in the project's
#     sources. A capitalised `Type` must be declared somewhere
#     (struct, enum, trait, type, class or interface).
# Exit status 1, with one line per problem, if anything is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${1:-$(cd "$here/../.." && pwd)}"
exec python3 - "$root" <<'PY'
import glob
import os
import re
import sys

root = os.path.abspath(sys.argv[1])
doc_path = os.path.join(root, "ARCHITECTURE.md")
readme_path = os.path.join(root, "README.md")
problems = []

if not os.path.isfile(doc_path):
    print(f"check-architecture: {doc_path} does not exist")
    sys.exit(1)

EXTENSIONS = (".rs", ".ts", ".mjs", ".js", ".md", ".sh", ".json", ".toml",
              ".py", ".txt", ".lock", ".html", ".css", ".yml")
SOURCE_EXTENSIONS = (".rs", ".ts", ".mjs", ".js", ".py")
SKIP_DIRS = {"node_modules", "target", ".git", "dist", "corpus", "vectors", "artifacts"}
SOURCE_ROOTS = ["crates", "examples", "benches", "tests", "js-client"]
FUNCTION = re.compile(r"^((?:[A-Za-z_]\w*(?:::|\.))*)([A-Za-z_]\w*)\(\)$")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def is_path_word(word):
    if not word or "://" in word or "::" in word:
        return False
    if word[0] in "/-$@" or any(c in word for c in "<>{}"):
        return False
    return "/" in word or word.endswith(EXTENSIONS)


def exists(rel):
    full = os.path.join(root, rel)
    if "*" in rel:
        return bool(glob.glob(full))
    return os.path.exists(full)


def source_files_under(rel):
    full = os.path.join(root, rel)
    if os.path.isfile(full):
        return [full] if full.endswith(SOURCE_EXTENSIONS) else []
    out = []
    for dirpath, dirnames, filenames in os.walk(full):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        out.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(SOURCE_EXTENSIONS))
    return out


_texts = {}


def text(path):
    if path not in _texts:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                _texts[path] = f.read()
        except OSError:
            _texts[path] = ""
    return _texts[path]


def defines_function(path, name):
    t = text(path)
    n = re.escape(name)
    if path.endswith(".rs"):
        return re.search(rf"\bfn\s+{n}\b", t) is not None
    if path.endswith(".py"):
        return re.search(rf"\bdef\s+{n}\b", t) is not None
    return (re.search(rf"\bfunction\s*\*?\s*{n}\b", t) is not None
            or re.search(rf"^\s*(?:export\s+)?(?:(?:async|static|private|public|protected|readonly|get|set)\s+)*#?{n}\s*(?:<[^>\n]*>)?\s*\(", t, re.M) is not None
            or re.search(rf"\b{n}\s*[:=]\s*(?:async\s*)?(?:\([^)\n]*\)|\w+)\s*=>", t) is not None)


ALL_SOURCES = None


def all_sources():
    global ALL_SOURCES
    if ALL_SOURCES is None:
        ALL_SOURCES = [f for r in SOURCE_ROOTS for f in source_files_under(r)]
    return ALL_SOURCES


def declares_type(name):
    pat = re.compile(rf"\b(?:struct|enum|trait|type|class|interface)\s+{re.escape(name)}\b")
    return any(pat.search(text(f)) for f in all_sources())


# Blocks of lines: paragraphs (split at blank lines and headings), outside
# fenced code blocks, each with the heading above it.
lines = text(doc_path).splitlines()
blocks = []  # (heading_line_index or None, [(line_no, line)])
fenced = False
heading = None
current = []


def flush():
    global current
    if current:
        blocks.append((heading, current))
    current = []


for i, line in enumerate(lines, 1):
    if line.lstrip().startswith("```"):
        flush()
        fenced = not fenced
        continue
    if fenced:
        continue
    if line.startswith("#"):
        flush()
        heading = (i, line)
        blocks.append((None, [(i, line)]))
        continue
    if not line.strip():
        flush()
        continue
    current.append((i, line))
flush()
if fenced:
    problems.append("ARCHITECTURE.md: a ``` fence is never closed")

paths_checked = set()
functions_checked = 0


def paths_in(entries):
    found = []
    for line_no, line in entries:
        for span in CODE_SPAN.findall(line):
            for word in span.split():
                word = word.rstrip(",;:.")
                if is_path_word(word):
                    found.append((line_no, word))
        for target in LINK.findall(line):
            target = target.split("#", 1)[0]
            if target and ":" not in target:
                found.append((line_no, target))
    return found


for head, entries in blocks:
    own = paths_in(entries)
    for line_no, rel in own:
        paths_checked.add(rel)
        if not exists(rel):
            problems.append(f"ARCHITECTURE.md:{line_no}: `{rel}` does not exist")
    scope_paths = [rel for _, rel in own]
    if head is not None:
        scope_paths += [rel for _, rel in paths_in([head])]
    scope = []
    for rel in scope_paths:
        if exists(rel) and "*" not in rel:
            scope.extend(source_files_under(rel))
    for line_no, line in entries:
        for span in CODE_SPAN.findall(line):
            m = FUNCTION.match(span.strip())
            if not m:
                continue
            functions_checked += 1
            prefix, name = m.group(1), m.group(2)
            parts = [p for p in re.split(r"::|\.", prefix) if p]
            if parts and parts[-1][0].isupper() and not declares_type(parts[-1]):
                problems.append(f"ARCHITECTURE.md:{line_no}: `{span}`: no type {parts[-1]} is declared")
            where = scope if scope else all_sources()
            if not any(defines_function(f, name) for f in where):
                named = ", ".join(sorted({os.path.relpath(f, root) for f in where})) if scope else "the project's sources"
                if len(named) > 300:
                    named = named[:300] + "..."
                problems.append(f"ARCHITECTURE.md:{line_no}: `{span}`: {name} is not defined in {named}")

readme = text(readme_path)
if not re.search(r"\]\(\.?/?ARCHITECTURE\.md(#[^)]*)?\)", readme):
    problems.append("README.md: no link to ARCHITECTURE.md (expected a markdown link ](ARCHITECTURE.md))")

if problems:
    print("\n".join(problems))
    print(f"check-architecture: {len(problems)} problem(s)")
    sys.exit(1)
print(f"check-architecture: {len(paths_checked)} paths and {functions_checked} function names in ARCHITECTURE.md exist; README.md links it")
PY
