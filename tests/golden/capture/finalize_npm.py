"""Turn the records written by capture_npm.mjs into vector files.

    python finalize_npm.py RECORDS.json OUT_DIR      (a Python wslink 2.6.0 venv)

The frames are the npm client's bytes as captured. "messages" is what they
decode to, exactly: 2.x frames go through wslink 2.6.0's own UnChunker and
msgpack (which keeps int vs float and 64-bit integers exact); 1.x text frames
through json.loads with the attachment pairing of lib/golden.py. Each decoded
message is then checked against the value the capture passed to the client,
compared the way JavaScript sees numbers (as doubles), so the vector cannot
disagree with what the client was asked to send.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import golden  # noqa: E402

from wslink.chunking import UnChunker  # noqa: E402


def decode(generation, frames):
    if generation == 2:
        u = UnChunker()
        u.set_max_message_size(4 * 1024**3)
        out = []
        for f in frames:
            assert isinstance(f, bytes), "2.x frames are binary"
            m = u.process_chunk(f)
            if m is not None:
                out.append(m)
        assert not u.pending_messages, "incomplete message"
        return None, out
    rx = golden.V1Receiver()
    raw, out = [], []
    for f in frames:
        r = rx.push(f)
        if r is not None:
            raw.append(r[0])
            out.append(r[1])
    assert not rx.leftovers(), rx.leftovers()
    return raw, out


def js_intended(j):
    """The capture's JSON form -> Python, numbers as floats."""
    if isinstance(j, dict):
        if set(j) == {"$number"}:
            return float(j["$number"])
        if set(j) == {"$bin"}:
            return bytes.fromhex(j["$bin"])
        return {k: js_intended(v) for k, v in j.items()}
    if isinstance(j, list):
        return [js_intended(v) for v in j]
    return j


def js_view(v):
    """A decoded value as JavaScript would hold it: every number a double."""
    if isinstance(v, bool) or v is None or isinstance(v, (str, bytes)):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, list):
        return [js_view(x) for x in v]
    if isinstance(v, dict):
        return {k: js_view(x) for k, x in v.items()}
    return v


def main(records_path, out_dir):
    with open(records_path, encoding="utf-8") as fh:
        records = json.load(fh)
    for rec in records:
        frames = [golden.frame_from_json(f) for f in rec["frames"]]
        raw, messages = decode(rec["generation"], frames)
        want = rec["intended"]
        assert len(want) == len(messages), (rec["name"], len(want), len(messages))
        for i, (m, w) in enumerate(zip(messages, want)):
            reason = golden.compare(js_view(m), js_intended(w))
            if reason:
                sys.exit(f"{rec['producer']}/{rec['name']} message {i}: decoded differs from what was passed: {reason}")
        if "intended_raw" in rec:
            for i, (m, w) in enumerate(zip(raw, rec["intended_raw"])):
                reason = golden.compare(js_view(m), js_intended(w))
                if reason:
                    sys.exit(f"{rec['producer']}/{rec['name']} raw message {i}: {reason}")
        golden.write_vector(
            os.path.join(out_dir, rec["producer"], rec["name"] + ".json"),
            producer=rec["producer"], generation=rec["generation"],
            direction=rec["direction"], description=rec["description"],
            frames=frames, messages=messages, raw_messages=raw,
        )
    print(f"npm: wrote {len(records)} vectors")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: finalize_npm.py RECORDS.json OUT_DIR")
    main(sys.argv[1], sys.argv[2])
