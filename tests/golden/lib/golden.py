"""Shared helpers for the golden vectors (stdlib only, Python >= 3.8).

The vector format is described in tests/golden/README.md. In short, a vector
is a JSON file holding the wire frames (hex for binary frames, the string for
text frames) and the complete messages they carry, in "tagged JSON":

  {"$bin": "<hex>"}        binary (msgpack bin, or a wslink 1.x attachment)
  {"$int": "<decimal>"}    an integer outside +-2**53
  {"$float": <number>}     a float whose value is integral (1.0, -0.0, 1e300)
  anything else            plain JSON (integral numbers are integers)

This module converts between Python values and tagged JSON, compares decoded
values with an expectation strictly (int vs float, bytes vs str, bool vs int
are all different), and reads/writes vector files.
"""

import json
import math
import os

SAFE = 2**53

PRODUCERS = (
    "python-wslink-2.6.0",
    "python-wslink-1.12.4",
    "npm-wslink-2.5.0",
    "npm-wslink-1.12.4",
)


class NotRepresentable(ValueError):
    pass


# ---------------------------------------------------------------------------
# Python value -> tagged JSON


def to_tagged(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if -SAFE <= value <= SAFE:
            return value
        return {"$int": str(value)}
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NotRepresentable(f"{value!r} has no tagged-JSON form")
        if value.is_integer():
            return {"$float": value}
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bin": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [to_tagged(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise NotRepresentable(f"map key {k!r} is not a string")
            out[k] = to_tagged(v)
        return out
    raise NotRepresentable(f"{type(value).__name__} has no tagged-JSON form")


# ---------------------------------------------------------------------------
# tagged JSON -> Python value


def from_tagged(j):
    if isinstance(j, dict):
        if len(j) == 1:
            (k, v), = j.items()
            if k == "$bin" and isinstance(v, str):
                return bytes.fromhex(v)
            if k == "$int" and isinstance(v, str):
                return int(v)
            if k == "$float" and isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        return {k: from_tagged(v) for k, v in j.items()}
    if isinstance(j, list):
        return [from_tagged(v) for v in j]
    return j


# ---------------------------------------------------------------------------
# strict comparison


def _kind(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bin"
    if isinstance(v, (list, tuple)):
        return "array"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _short(v, limit=80):
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def compare(got, want, path="$"):
    """Return None if got matches want exactly, else a one-line reason.

    Maps are compared as sets of entries (the order of keys is not part of
    the comparison); everything else strictly, including the kind of number.
    """
    kg, kw = _kind(got), _kind(want)
    if kg != kw:
        return f"{path}: got {kg} {_short(got)}, expected {kw} {_short(want)}"
    if kg == "float":
        if math.isnan(want):
            return None if math.isnan(got) else f"{path}: got {got!r}, expected nan"
        if got != want or math.copysign(1, got) != math.copysign(1, want):
            return f"{path}: got {got!r}, expected {want!r}"
        return None
    if kg == "bin":
        g, w = bytes(got), bytes(want)
        if g != w:
            return f"{path}: got bin {_short(g.hex())} ({len(g)} bytes), expected {_short(w.hex())} ({len(w)} bytes)"
        return None
    if kg == "array":
        if len(got) != len(want):
            return f"{path}: got array of {len(got)}, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            r = compare(g, w, f"{path}[{i}]")
            if r:
                return r
        return None
    if kg == "map":
        gk, wk = set(got), set(want)
        if gk != wk:
            extra = sorted(map(repr, gk - wk))
            missing = sorted(map(repr, wk - gk))
            return f"{path}: map keys differ (unexpected {extra}, missing {missing})"
        for k in want:
            r = compare(got[k], want[k], f"{path}[{k!r}]")
            if r:
                return r
        return None
    if got != want:
        return f"{path}: got {_short(got)}, expected {_short(want)}"
    return None


# ---------------------------------------------------------------------------
# vector files


def frame_to_json(frame):
    if isinstance(frame, str):
        return {"text": frame}
    return {"binary": bytes(frame).hex()}


def frame_from_json(f):
    if "binary" in f:
        return bytes.fromhex("".join(f["binary"].split()))
    if "text" in f:
        return f["text"]
    raise ValueError(f"frame without 'binary' or 'text': {f!r}")


def write_vector(path, *, producer, generation, direction, description, frames,
                 messages, raw_messages=None, notes=None):
    """messages / raw_messages are Python values; they are tagged here."""
    doc = {
        "producer": producer,
        "generation": generation,
        "direction": direction,
        "description": description,
    }
    if notes:
        doc["notes"] = notes
    doc["frames"] = [frame_to_json(f) for f in frames]
    doc["messages"] = [to_tagged(m) for m in messages]
    if raw_messages is not None:
        doc["raw_messages"] = [to_tagged(m) for m in raw_messages]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


def read_vector(path):
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    for key in ("generation", "frames", "messages"):
        if key not in doc:
            raise ValueError(f"missing {key!r}")
    if doc["generation"] not in (1, 2):
        raise ValueError(f"bad generation {doc['generation']!r}")
    return doc


def list_vectors(paths):
    """Expand files and directories (recursively) into sorted *.json files."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, _dirs, files in os.walk(p):
                out.extend(os.path.join(root, f) for f in files if f.endswith(".json"))
        else:
            out.append(p)
    return sorted(out)


# ---------------------------------------------------------------------------
# wslink 1.x attachment pairing, as a receiver does it.
#
# This is OUR code (a minimal re-implementation, not Kitware's): binary frames
# are paired, in order, with the keys announced by the preceding
# {"method": "wslink.binary.attachment", "args": [keys]} notifications, which
# is how both wslink 1.12.4 ends pair them (the Python server keeps a FIFO of
# announced keys and pops one per binary frame; the npm client fills the first
# announced slot that has no data yet). Then every string equal to a received
# key (matching ^wslink_bin\d+$) inside args/kwargs (a request) or result (a
# reply or publish) is replaced by the bytes. Errors carry no attachments.

import re  # noqa: E402

ATTACH_KEY = re.compile(r"^wslink_bin\d+$")


class V1Receiver:
    def __init__(self):
        self.queue = []      # announced keys waiting for their binary frame
        self.received = {}   # key -> bytes

    def push(self, frame):
        """Feed one frame; return (raw_message, message) or None."""
        if not isinstance(frame, str):
            if not self.queue:
                raise ValueError("binary frame without a preceding attachment header")
            self.received[self.queue.pop(0)] = bytes(frame)
            return None
        msg = json.loads(frame)
        if not isinstance(msg, dict):
            raise ValueError("text frame is not a JSON object")
        if "id" not in msg:
            if msg.get("method") == "wslink.binary.attachment":
                keys = msg.get("args", [])
                if not isinstance(keys, list):
                    raise ValueError("attachment header args is not a list")
                self.queue.extend(keys)
                return None
            raise ValueError(f"text frame without id: {frame[:80]!r}")
        raw = json.loads(frame)  # an untouched copy
        for field in ("args", "kwargs", "result"):
            if field in msg:
                msg[field] = self._substitute(msg[field])
        return raw, msg

    def _substitute(self, o):
        if isinstance(o, str) and ATTACH_KEY.match(o) and o in self.received:
            return self.received.pop(o)
        if isinstance(o, list):
            return [self._substitute(v) for v in o]
        if isinstance(o, dict):
            return {k: self._substitute(v) for k, v in o.items()}
        return o

    def leftovers(self):
        problems = []
        if self.queue:
            problems.append(f"announced attachments never received: {self.queue}")
        if self.received:
            problems.append(f"attachments received but never referenced: {sorted(self.received)}")
        return problems
