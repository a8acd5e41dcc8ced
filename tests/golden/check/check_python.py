"""Decode vector files with Kitware's Python wslink and compare.

    python check_python.py PATH...       (files or directories of vectors)

Run it with the Python of a venv holding wslink 2.6.0 (checks the files of
generation 2) or wslink 1.12.4 (generation 1); files of the other generation
are left to the other venv and not counted. Prints `ok <file>` or
`fail <file>: <reason>` per file, then `N passed, M failed`; exits 1 if any
failed.

For every file, in both directions:
  2.x  the frames go through wslink.chunking.UnChunker (the server's own
       reassembly, which msgpack.unpackb()s the message with the library's
       defaults) and each complete message must equal the expected one.
  1.x  text frames are json.loads()ed and binary frames paired with the keys
       of the attachment headers. THE PAIRING IS OURS (lib/golden.py,
       V1Receiver), a minimal re-implementation of what wslink 1.12.4 does.
       raw_messages (keys not substituted), when present, must equal the
       parsed JSON, and messages the result of the pairing.
Comparison is strict: int vs float, str vs bin, and every value must match;
the order of map keys is not compared.

For client-to-server files, additionally, the frames are fed to the official
server itself: a real wslink.protocol.WslinkHandler, on a fake connection,
with a catch-all RPC method that records the args and kwargs it is called
with. This exercises the real server's acceptance rules (2.x: the 512-byte
limit on a message before a successful hello, the msgpack decoding of
onMessage; 1.x: its own attachment pairing in onMessage). Each request must
reach the method with exactly the expected args/kwargs, and every hello must
be answered with a result, not an error. The token check accepts any secret.
If the file does not start with a hello, the connection is first marked as
authenticated, as a successful hello would.
"""

import asyncio
import logging
import os
import sys
import traceback
import types
from importlib.metadata import version

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import golden  # noqa: E402

import wslink.protocol as wproto  # noqa: E402
from wslink.websocket import ServerProtocol  # noqa: E402

WSLINK_VERSION = version("wslink")
GENERATION = int(WSLINK_VERSION.split(".")[0])

if GENERATION == 2:
    import msgpack
    from wslink.chunking import UnChunker
else:
    import json


class Fail(Exception):
    pass


# ---------------------------------------------------------------------------
# plain decoding


def decode_frames(frames):
    """Return (raw_messages or None, messages)."""
    if GENERATION == 2:
        unchunker = UnChunker()
        unchunker.set_max_message_size(4 * 1024**3)
        out = []
        for i, f in enumerate(frames):
            if isinstance(f, str):
                raise Fail(f"frame {i} is a text frame; wslink 2.x sends and accepts binary frames only")
            try:
                m = unchunker.process_chunk(f)
            except Exception as e:  # noqa: BLE001
                raise Fail(f"frame {i}: UnChunker: {type(e).__name__}: {e}") from None
            if m is not None:
                out.append(m)
        if unchunker.pending_messages:
            raise Fail(f"{len(unchunker.pending_messages)} message(s) left incomplete")
        return None, out
    rx = golden.V1Receiver()
    raw, out = [], []
    for i, f in enumerate(frames):
        try:
            r = rx.push(f)
        except Exception as e:  # noqa: BLE001
            raise Fail(f"frame {i}: {type(e).__name__}: {e}") from None
        if r is not None:
            raw.append(r[0])
            out.append(r[1])
    problems = rx.leftovers()
    if problems:
        raise Fail("; ".join(problems))
    return raw, out


def compare_list(got, want, what):
    if len(got) != len(want):
        raise Fail(f"frames carry {len(got)} {what}, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        reason = golden.compare(g, w, f"{what}[{i}]")
        if reason:
            raise Fail(reason)


# ---------------------------------------------------------------------------
# the official server


class CheckerServer(ServerProtocol):
    async def validateToken(self, token, client_id):  # noqa: N802 (wslink's name)
        return True


class AnyMethod(dict):
    """functionMap stand-in: every method name exists and records its call."""

    def __init__(self, target, record):
        super().__init__()
        self._entry = (target, record)

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return self._entry


class RecordingWebSocket:
    def __init__(self):
        self.frames = []
        self.closed = False

    async def send_bytes(self, data):
        self.frames.append(bytes(data))

    async def send_str(self, data):
        self.frames.append(data)


class WebApp:
    last_active_client_id = None

    async def stop(self):
        pass


def decode_replies(frames):
    if GENERATION == 2:
        u = UnChunker()
        u.set_max_message_size(4 * 1024**3)
        return [m for m in (u.process_chunk(f) for f in frames if isinstance(f, bytes)) if m is not None]
    return [json.loads(f) for f in frames if isinstance(f, str)]


async def run_server(frames, expected):
    server = CheckerServer()
    handler = wproto.WslinkHandler(server, WebApp())
    calls = []

    def record(_obj, *args, **kwargs):
        calls.append((list(args), kwargs))

    handler.functionMap = AnyMethod(server, record)
    client_id = "golden"
    ws = RecordingWebSocket()
    handler.connections[client_id] = ws
    await handler.onConnect(None, client_id)

    first_is_hello = bool(expected) and isinstance(expected[0], dict) and expected[0].get("method") == "wslink.hello"
    if not first_is_hello:
        # as a successful hello would (see WslinkHandler.handleSystemMessage)
        handler.authentified_client_ids.add(client_id)
        if GENERATION == 2:
            handler.unchunkers[client_id].set_max_message_size(4 * 1024**3)

    for i, f in enumerate(frames):
        is_binary = not isinstance(f, str)
        try:
            await handler.onMessage(is_binary, types.SimpleNamespace(data=f), client_id)
        except Exception as e:  # noqa: BLE001
            raise Fail(f"official server, frame {i}: {type(e).__name__}: {e}") from None
    for _ in range(3):
        await asyncio.sleep(0)

    replies = decode_replies(ws.frames)
    errors = [r for r in replies if isinstance(r, dict) and "error" in r]
    if errors:
        e = errors[0]
        raise Fail(f"official server answered {e.get('id')!r} with error {e['error'].get('code')} "
                   f"{e['error'].get('message')!r} {e['error'].get('data', '')!r}"[:400])

    requests = [m for m in expected if isinstance(m, dict) and "method" in m
                and not str(m.get("id", "")).startswith("system:")]
    hellos = [m for m in expected if isinstance(m, dict) and m.get("method") == "wslink.hello"]
    hello_replies = [r for r in replies if isinstance(r, dict) and r.get("id") == "system:c0:0" and "result" in r]
    if len(hello_replies) != len(hellos):
        raise Fail(f"official server answered {len(hello_replies)} hello(s), expected {len(hellos)}")
    if len(calls) != len(requests):
        raise Fail(f"official server dispatched {len(calls)} call(s), expected {len(requests)}")
    for i, ((args, kwargs), req) in enumerate(zip(calls, requests)):
        reason = golden.compare(args, req.get("args", []), f"official server call {i} args")
        reason = reason or golden.compare(kwargs, req.get("kwargs", {}), f"official server call {i} kwargs")
        if reason:
            raise Fail(reason)


# ---------------------------------------------------------------------------


def check_file(path):
    """Return None if the file is not for this generation, else raise Fail."""
    try:
        doc = golden.read_vector(path)
        frames = [golden.frame_from_json(f) for f in doc["frames"]]
        expected = [golden.from_tagged(m) for m in doc["messages"]]
        expected_raw = [golden.from_tagged(m) for m in doc["raw_messages"]] if "raw_messages" in doc else None
    except Exception as e:  # noqa: BLE001
        raise Fail(f"unreadable vector: {type(e).__name__}: {e}") from None
    if doc["generation"] != GENERATION:
        return None
    raw, messages = decode_frames(frames)
    if raw is not None and expected_raw is not None:
        compare_list(raw, expected_raw, "raw_messages")
    compare_list(messages, expected, "messages")
    if doc.get("direction") == "client-to-server":
        asyncio.run(run_server(frames, expected))
    return True


def main(paths):
    logging.disable(logging.CRITICAL)
    files = golden.list_vectors(paths)
    passed = failed = 0
    for f in files:
        try:
            if check_file(f) is None:
                continue
            print(f"ok {f}")
            passed += 1
        except Fail as e:
            print(f"fail {f}: {e}")
            failed += 1
        except Exception as e:  # noqa: BLE001 -- a checker bug is a failure too
            tb = traceback.format_exc().strip().splitlines()[-1]
            print(f"fail {f}: checker error: {type(e).__name__}: {e} ({tb})")
            failed += 1
    print(f"python-wslink-{WSLINK_VERSION}: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: check_python.py PATH...")
    sys.exit(main(sys.argv[1:]))
