#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (each target's input layout is
described at the top of fuzz_targets/<target>.rs). Run from this directory.

- unchunker: valid chunked messages, in and out of order and interleaved,
  plus a few near misses;
- v2_decoder, v1_decoder: every golden vector of the matching generation
  (tests/golden/vectors/*/*.json), its frames in the target's record layout;
- attachments: a few operation sequences;
- ids: valid ids and names, and near misses.
"""

import glob
import json
import os
import random
import struct

OUT = "corpus/unchunker"
GOLDEN = os.path.join("..", "..", "..", "tests", "golden", "vectors")


def frames(msg_id, message, content_size):
    total = len(message)
    return [
        struct.pack("<III", msg_id, off, total) + message[off : off + content_size]
        for off in range(0, total, content_size)
    ]


def records(fs):
    out = b""
    for f in fs:
        assert len(f) < 0xFF
        out += bytes([len(f)]) + f
    return out


def seed(name, flags, budget, body):
    # flags bit 0: authenticated; bits 1..3: max partial messages.
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(bytes([flags, budget]) + body)


def write(target, name, data):
    os.makedirs(os.path.join("corpus", target), exist_ok=True)
    with open(os.path.join("corpus", target, name), "wb") as fh:
        fh.write(data)


def golden():
    """(name, generation, frames, first message id) per golden vector, where
    a frame is (is_binary, bytes)."""
    out = []
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*", "*.json"))):
        with open(path) as fh:
            vector = json.load(fh)
        producer = os.path.basename(os.path.dirname(path)).replace("wslink-", "")
        name = producer + "-" + os.path.basename(path)[: -len(".json")]
        frames = [
            (True, bytes.fromhex(f["binary"])) if "binary" in f else (False, f["text"].encode())
            for f in vector["frames"]
        ]
        first = (vector.get("messages") or [{}])[0]
        out.append((name, vector["generation"], frames, first))
    return out


def record(payload, flag=False):
    # [u16 LE header][payload]; bit 15 is the target's flag bit.
    assert len(payload) < 0x8000
    return struct.pack("<H", len(payload) | (0x8000 if flag else 0)) + payload


def v2_seed(frames, starts_with_hello):
    # Byte 0: authenticated, 7 partial messages, depth 15; byte 1: budget
    # 255 * 64. A connection that starts with the hello starts
    # unauthenticated and authenticates (bit 15) at its second frame.
    flags = 0xFE if starts_with_hello else 0xFF
    body = b"".join(record(f, starts_with_hello and i == 1) for i, f in enumerate(frames))
    return bytes([flags, 0xFF]) + body


def v1_seed(frames):
    # Byte 0: 7 announced keys, 31 * 64 bytes of text; byte 1: 255 * 16
    # held bytes. Bit 15 marks a binary frame.
    return bytes([0xFF, 0xFF]) + b"".join(record(data, binary) for binary, data in frames)


def decoders():
    vectors = golden()
    chunked = {}
    for name, generation, frames, first in vectors:
        if generation == 2:
            hello = first.get("id") == "system:c0:0" or first.get("method") == "wslink.hello"
            write("v2_decoder", name, v2_seed([f for _, f in frames], hello))
            if name.startswith("python-2.6.0-chunked-") and name != "python-2.6.0-chunked-1-byte":
                chunked[name] = [f for _, f in frames]
        else:
            write("v1_decoder", name, v1_seed(frames))
    # Two chunked messages interleaved, the second one reversed.
    a, b = chunked["python-2.6.0-chunked-binary"], chunked["python-2.6.0-chunked-result"]
    b = b[::-1]
    mixed = [f for pair in zip(a, b) for f in pair]
    write("v2_decoder", "interleaved-chunked", v2_seed(mixed, False))


def attachments():
    # Byte 0: 8 announced keys; byte 1: 32 * 8 held bytes; then operations
    # (0 header, 1 binary, 2 claim, 3 discard, 4 clear, 5 keys).
    def header(*keys):
        return bytes([0, len(keys)]) + bytes(keys)

    def binary(data):
        return bytes([1, len(data)]) + data

    # Values: 3 = array (count), 4 = map (count), 0 = string key (key byte),
    # 1 = integer, 2 = binary (length).
    claim_two = bytes([2, 3, 3, 0, 1, 0, 2, 4, 1, 0, 0x40, 0, 1])
    seqs = {
        "pair-and-claim": header(1, 2) + binary(b"abc") + binary(b"\x00\xff") + claim_two,
        "key-without-bytes": header(1) + binary(b"x") + bytes([2, 0, 5]) + bytes([2, 0, 1]),
        "leading-zero-key": header(0x81, 1) + binary(b"0") + binary(b"1") + bytes([2, 0, 0x81]),
        "bad-key": header(1, 0xC4) + b"bin1" + binary(b"z") + bytes([2, 0, 1]),
        "over-limits": bytes([0, 3, 1, 2, 3]) * 4 + binary(bytes(250)) + binary(bytes(10)),
        # 0xb4: wslink_bin + 20 nines (the most digits allowed), 0xb5: 21.
        "digit-limit": header(0xB4) + binary(b"d") + bytes([2, 0, 0xB4]) + header(0xB5),
        "unannounced-discard-clear": binary(b"u") + header(1, 2) + binary(b"a") + bytes([3, 4, 5, 7]),
    }
    for name, ops in seqs.items():
        write("attachments", name, bytes([8, 32]) + ops)


def ids():
    seeds = {
        "hello": "system:c0:0",
        "rpc": "rpc:c1a2b3_x:42",
        "publish-dotted": "publish:viewport.image_stream.2:18446744073709551615",
        "seq-overflow": "rpc:c1:18446744073709551616",
        "leading-zero": "rpc:c1:007",
        "empty-part": "publish:a..b:1",
        "trailing-dot": "publish:a.:1",
        "non-ascii": "publish:\u00e9t\u00e9:1",
        "name-only": "image.frames",
        "bad-kind": "event:c1:1",
    }
    for name, text in seeds.items():
        write("ids", name, text.encode())


def main():
    decoders()
    attachments()
    ids()
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(7)
    msg = lambda n: bytes(rng.randrange(256) for _ in range(n))
    auth4 = 1 | (4 << 1)
    a, b = msg(100), msg(300)

    seed("single-frame", 4 << 1, 64, records(frames(1, msg(40), 64)))
    seed("in-order", auth4, 64, records(frames(2, a, 30)))
    seed("reversed", auth4, 64, records(frames(3, a, 7)[::-1]))
    fa, fb = frames(4, a, 16), frames(5, b, 200)
    mixed = fa + fb
    rng.shuffle(mixed)
    seed("interleaved-shuffled", auth4, 100, records(mixed))
    # Pre-auth limit, then authentication (0xff toggles it), then a large one.
    seed(
        "auth-toggle",
        4 << 1,
        64,
        records(frames(6, msg(60), 20)) + b"\xff" + records(frames(7, b, 120)),
    )
    one = frames(8, a, 25)
    seed("duplicate", auth4, 64, records([one[0], one[1], one[1]]))
    overlap = struct.pack("<III", 8, 20, 100) + a[20:45]
    seed("overlap", auth4, 64, records([one[0], overlap]))
    mismatch = struct.pack("<III", 8, 25, 101) + a[25:50]
    seed("total-mismatch", auth4, 64, records([one[0], mismatch]))
    seed("one-byte-chunks", auth4, 255, records(frames(9, msg(50), 1)[::-1]))


if __name__ == "__main__":
    main()
