#!/usr/bin/env python3
"""Writes the seed corpus for the `unchunker` fuzz target (format: see
fuzz_targets/unchunker.rs): valid chunked messages, in and out of order and
interleaved, plus a few near misses. Run from this directory."""

import os
import random
import struct

OUT = "corpus/unchunker"


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


def main():
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
