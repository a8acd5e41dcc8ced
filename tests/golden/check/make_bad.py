"""Write deliberately wrong vectors, to prove the checkers can fail.

    python make_bad.py VECTORS_DIR OUT_DIR        (a Python wslink 2.6.0 venv)

Each is a committed good vector with one thing broken (a frame, a header, the
expectation), plus one made from scratch. Every file names, in "must_fail",
the checkers that have to reject it ("python" and/or "npm"); a checker not
named cannot see that kind of damage (e.g. JavaScript has no int/float
split), which "why" explains.
"""

import copy
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import golden  # noqa: E402

import msgpack  # noqa: E402
from wslink.chunking import generate_chunks  # noqa: E402

P2, P1 = "python-wslink-2.6.0", "python-wslink-1.12.4"
N2, N1 = "npm-wslink-2.5.0", "npm-wslink-1.12.4"


def load(vectors, producer, name):
    with open(os.path.join(vectors, producer, name + ".json"), encoding="utf-8") as fh:
        return json.load(fh)


def find_path(j, pred, path=()):
    """First path (tuple of keys/indices) to a node satisfying pred."""
    if pred(j):
        return path
    if isinstance(j, dict):
        items = j.items()
    elif isinstance(j, list):
        items = enumerate(j)
    else:
        return None
    for k, v in items:
        p = find_path(v, pred, path + (k,))
        if p is not None:
            return p
    return None


def set_at(j, path, value):
    for k in path[:-1]:
        j = j[k]
    j[path[-1]] = value


def main(vectors, out):
    os.makedirs(out, exist_ok=True)
    made = []

    def emit(name, doc, must_fail, why):
        doc = copy.deepcopy(doc)
        doc["description"] = f"BAD: {why}"
        doc["must_fail"] = must_fail
        with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, ensure_ascii=False)
        made.append(name)

    # ---- 2.x, server to client
    d = load(vectors, P2, "result-binary")
    d["messages"][0]["result"]["all_bytes"]["$bin"] = "ff" + d["messages"][0]["result"]["all_bytes"]["$bin"][2:]
    emit("p2-bin-byte-differs", d, ["python", "npm"], "one byte of a bin value differs from the expectation")

    d = load(vectors, P2, "result-int-edges")
    assert d["messages"][0]["result"][1] == 1
    d["messages"][0]["result"][1] = {"$float": 1.0}
    emit("p2-int-expected-as-float", d, ["python"], "integer 1 on the wire, float 1.0 expected (JS cannot tell)")

    d = load(vectors, P2, "result-int-edges")
    p = find_path(d["messages"], lambda j: j == {"$int": "18446744073709551615"})
    set_at(d["messages"], p, {"$int": "18446744073709551614"})
    emit("p2-u64-off-by-one", d, ["python"], "u64 max on the wire, u64 max - 1 expected (same double in JS)")

    d = load(vectors, P2, "chunked-result")
    assert len(d["frames"]) >= 3
    del d["frames"][1]
    emit("p2-chunk-missing", d, ["python", "npm"], "a middle chunk of a chunked message is missing")

    d = load(vectors, P2, "chunked-result")
    f = bytearray(bytes.fromhex(d["frames"][1]["binary"]))
    f[8:12] = struct.pack("<I", struct.unpack("<I", f[8:12])[0] + 1)
    d["frames"][1]["binary"] = f.hex()
    emit("p2-chunk-total-mismatch", d, ["python", "npm"], "the second chunk's header declares another total size")

    d = load(vectors, P2, "hello-reply")
    d["frames"] = [{"text": json.dumps(d["messages"][0])}]
    emit("p2-text-frame", d, ["python", "npm"], "a 2.x message sent as a JSON text frame")

    d = load(vectors, P2, "error-method-not-found")
    d["messages"][0]["error"]["code"] = -32600
    emit("p2-wrong-error-code", d, ["python", "npm"], "error code -32601 on the wire, -32600 expected")

    d = load(vectors, P2, "result-mixed")
    del d["messages"][0]["result"]["unicode"]["emoji"]
    emit("p2-extra-map-key", d, ["python", "npm"], "the wire map has a key the expectation lacks")

    d = load(vectors, P2, "publish")
    d["messages"][1]["id"] = d["messages"][1]["id"].replace("golden.topic", "golden.other")
    emit("p2-publish-topic", d, ["python", "npm"], "publish on golden.topic, golden.other expected")

    # ---- 1.x, server to client
    d = load(vectors, P1, "result-two-attachments")
    bins = [i for i, f in enumerate(d["frames"]) if "binary" in f]
    a, b = bins[:2]
    d["frames"][a], d["frames"][b] = d["frames"][b], d["frames"][a]
    emit("p1-attachments-swapped", d, ["python", "npm"], "the two binary frames swapped")

    d = load(vectors, P1, "result-attachment")
    assert "text" in d["frames"][0] and "wslink.binary.attachment" in d["frames"][0]["text"]
    del d["frames"][0]
    emit("p1-header-missing", d, ["python", "npm"], "a binary frame without its attachment header")

    d = load(vectors, P1, "result-attachment")
    d["raw_messages"][0]["result"]["image"] = "wslink_bin9"
    emit("p1-raw-key-differs", d, ["python"], "raw_messages names another key (the npm checker ignores raw_messages)")

    d = load(vectors, P1, "result-float-edges")
    p = find_path(d["messages"], lambda j: j == {"$float": 1.0})
    set_at(d["messages"], p, 1)
    emit("p1-float-expected-as-int", d, ["python"], "1.0 in the JSON text, integer 1 expected (JS cannot tell)")

    d = load(vectors, P1, "result-mixed")
    p = find_path(d["messages"], lambda j: j == "a\u0000b")
    set_at(d["messages"], p, "a\u0000c")
    emit("p1-string-differs", d, ["python", "npm"], "a string with NUL differs in its last character")

    # ---- client to server (only the Python checker reads requests)
    d = load(vectors, N2, "call-echo")
    d["messages"][0]["args"][0] = 2
    emit("c2-args-differ", d, ["python"], "call args differ from the expectation")

    d = load(vectors, N1, "call-attachment-single")
    d["frames"][-1]["text"] = d["frames"][-1]["text"].replace('"wslink_bin', '"not_bin')
    raw = d["raw_messages"][0]
    raw["args"][0] = raw["args"][0].replace("wslink_bin", "not_bin")
    d["messages"][0]["args"][0] = raw["args"][0]
    emit("c1-attachment-unreferenced", d, ["python"], "an attachment is sent but the call never names its key")

    # made from scratch: a hello over the server's 512-byte pre-auth limit.
    # It decodes fine, but the official server must refuse to reassemble it.
    hello = {"wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello",
             "args": [{"secret": "x" * 600}], "kwargs": {}}
    frames = list(generate_chunks(msgpack.packb(hello), 0))
    emit("c2-hello-over-512", {
        "producer": "make_bad.py", "generation": 2, "direction": "client-to-server",
        "frames": [golden.frame_to_json(f) for f in frames],
        "messages": [golden.to_tagged(hello)],
    }, ["python"], "a 600+ byte hello: wslink 2.6.0's server allows 512 bytes before authentication")

    print(f"make_bad: wrote {len(made)} bad vectors to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make_bad.py VECTORS_DIR OUT_DIR")
    main(sys.argv[1], sys.argv[2])
