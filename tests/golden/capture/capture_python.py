"""Capture server-to-client wire messages produced by Kitware's Python wslink.

Run with the Python of a venv holding wslink 2.6.0 or 1.12.4 (the version
decides the generation):

    python capture_python.py OUT_DIR

No network: a real wslink.protocol.WslinkHandler (the server-side message
handler that the aiohttp backend drives) is given a recording object in place
of the aiohttp websocket, and requests are fed to its onMessage exactly as the
backend does. Everything it sends -- hello replies, results, errors, publish
messages, 1.x attachment headers and binary frames -- is what the official
code produced, with the venv's own msgpack (2.x) or json (1.x) as encoder.

Each vector's "messages" are the frames decoded again by the official
receive path (2.x: wslink.chunking.UnChunker; 1.x: json.loads plus the
attachment pairing in lib/golden.py), and are cross-checked against the value
the RPC method returned, so a decode slip cannot go unnoticed.
"""

import asyncio
import logging
import os
import sys
import types
from importlib.metadata import version

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import golden  # noqa: E402

import wslink  # noqa: E402
import wslink.protocol as wproto  # noqa: E402
from wslink import register as export_rpc  # noqa: E402
from wslink.websocket import LinkProtocol, ServerProtocol  # noqa: E402

WSLINK_VERSION = version("wslink")
GENERATION = int(WSLINK_VERSION.split(".")[0])
assert WSLINK_VERSION in ("2.6.0", "1.12.4"), WSLINK_VERSION
PRODUCER = f"python-wslink-{WSLINK_VERSION}"

if GENERATION == 2:
    import msgpack
    from wslink.chunking import UnChunker, generate_chunks
else:
    import json

SECRET = "golden-secret"
# The aiohttp backend names a connection str(uuid4()).replace("-", ""); the
# hello reply's clientID is "c" + that. A fixed one keeps the vectors tidy.
CLIENT_ID = "0f8c4b2a9d1e4c3f8a7b6c5d4e3f2a1b"
CLIENT_ID_2 = "9a8b7c6d5e4f40312233445566778899"
CLIENT = "c" + CLIENT_ID


# ---------------------------------------------------------------------------
# values the RPC methods return


def str_of(n):
    return "".join(chr(ord("a") + i % 26) for i in range(n))


MIXED = {
    "nested": {
        "a": [1, [2, [3, {"deep": True}]]],
        "empty_map": {},
        "empty_list": [],
        "list_of_maps": [{"x": 1}, {"y": [None]}],
    },
    "unicode": {
        "nul": "a\x00b",
        "emoji": "\U0001F600 \U0001F1EB\U0001F1F7",
        "accents": "\u00e9t\u00e9",
        "cjk": "\u6f22\u5b57",
        "escapes": "quote\" backslash\\ newline\n tab\t bell\x07",
        "empty": "",
        "\u00fcml\u00e4ut key": "value",
    },
    "ints": [0, 1, -1, 2**53 + 1, -(2**63), 2**64 - 1],
    "floats": [0.5, -1.5, 1.0, 0.1, 1e300],
    "bool": [True, False],
    "nil": None,
}

INT_EDGES = [
    0, 1, -1, 127, 128, -32, -33, -128, -129, 255, 256, -32768, -32769,
    65535, 65536, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32,
    2**53 - 1, 2**53, 2**53 + 1, -(2**53) + 1, -(2**53), -(2**53) - 1,
    2**63 - 1, 2**63, 2**64 - 1, -(2**63),
]

FLOAT_EDGES = [
    0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 3.141592653589793, 1e300, -1e300,
    5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 2.0**53,
    2.0**53 + 2, 2.0**64, 1e21, 123456789.125,
]

SIZE_EDGES = {
    "fixstr_31": str_of(31),
    "str8_32": str_of(32),
    "str8_255": str_of(255),
    "str16_256": str_of(256),
    "fixarray_15": list(range(15)),
    "array16_16": list(range(16)),
    "fixmap_15": {f"k{i:02d}": i for i in range(15)},
    "map16_16": {f"k{i:02d}": i for i in range(16)},
}

ALL_BYTES = bytes(range(256))


class GoldenLink(LinkProtocol):
    @export_rpc("golden.mixed")
    def mixed(self):
        return MIXED

    @export_rpc("golden.int_edges")
    def int_edges(self):
        return INT_EDGES

    @export_rpc("golden.float_edges")
    def float_edges(self):
        return FLOAT_EDGES

    @export_rpc("golden.size_edges")
    def size_edges(self):
        return SIZE_EDGES

    @export_rpc("golden.binary")
    def binary(self):
        # 2.x: binary travels inline (bytes, bytearray and memoryview all
        # become msgpack bin). 1.x has no inline binary (json.dumps raises).
        return {
            "all_bytes": ALL_BYTES,
            "empty": b"",
            "bytearray": bytearray(b"\x00\xff\x10"),
            "memoryview": memoryview(b"view!"),
            "in_list": [b"\x01", b"\x02\x03"],
        }

    @export_rpc("golden.none")
    def none(self):
        return None

    @export_rpc("golden.echo")
    def echo(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs}

    @export_rpc("golden.raise")
    def fail(self, reason):
        raise ValueError(reason)

    @export_rpc("golden.unserializable")
    def unserializable(self):
        return {"a set": {1, 2}}

    @export_rpc("golden.bytes_result")
    def bytes_result(self):
        return {"raw": b"\x00\x01"}

    @export_rpc("golden.text")
    def text(self, n):
        return str_of(n)

    # 1.x attachments (addAttachment is the 1.x API; in 2.x it is a no-op
    # returning its argument)
    @export_rpc("golden.attachment")
    def attachment(self):
        return {"image": self.addAttachment(b"\x89PNG\r\n\x1a\n\x00\x00"), "size": [2, 2]}

    @export_rpc("golden.two_attachments")
    def two_attachments(self):
        a = self.addAttachment(bytes(range(16)))
        b = self.addAttachment(b"")
        return {"first": a, "list": ["before", b, "after"]}

    @export_rpc("golden.bare_attachment")
    def bare_attachment(self):
        return self.addAttachment(b"bare\x00bytes")

    @export_rpc("golden.publish")
    def do_publish(self, topic, count):
        for i in range(count):
            self.publish(topic, {"seq": i, "note": "from golden.publish"})
        return "published"

    @export_rpc("golden.publish_attachment")
    def do_publish_attachment(self, topic):
        self.publish(topic, {"frame": self.addAttachment(b"\x01\x02\x03\x04"), "w": 2})
        return "published"


class GoldenServer(ServerProtocol):
    def initialize(self):
        self.registerLinkProtocol(GoldenLink())
        self.updateSecret(SECRET)


# ---------------------------------------------------------------------------
# a fake connection


class RecordingWebSocket:
    """Stands in for aiohttp's WebSocketResponse: records what is sent."""

    def __init__(self):
        self.frames = []
        self.closed = False

    async def send_bytes(self, data):
        self.frames.append(bytes(data))

    async def send_str(self, data):
        assert isinstance(data, str)
        self.frames.append(data)


class WebApp:
    last_active_client_id = None

    async def stop(self):
        pass


class Connection:
    def __init__(self, handler, client_id):
        self.handler = handler
        self.client_id = client_id
        self.ws = RecordingWebSocket()
        self.count = 0

    async def open(self):
        self.handler.connections[self.client_id] = self.ws
        await self.handler.onConnect(None, self.client_id)

    async def receive(self, message):
        """Feed one client message the way the aiohttp backend would."""
        if GENERATION == 2:
            for chunk in generate_chunks(msgpack.packb(message), wproto.MAX_MSG_SIZE):
                await self.handler.onMessage(True, types.SimpleNamespace(data=chunk), self.client_id)
        else:
            text = json.dumps(message)
            await self.handler.onMessage(False, types.SimpleNamespace(data=text), self.client_id)
        await settle()

    async def hello(self, secret=SECRET):
        await self.receive({
            "wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello",
            "args": [{"secret": secret}], "kwargs": {},
        })

    async def call(self, method, args=(), kwargs=None):
        rpcid = f"rpc:c{self.client_id}:{self.count}"
        self.count += 1
        await self.receive({
            "wslink": "1.0", "id": rpcid, "method": method,
            "args": list(args), "kwargs": kwargs or {},
        })
        return rpcid

    def take(self):
        frames, self.ws.frames = self.ws.frames, []
        return frames


async def settle():
    # publish() schedules its send on the loop; let it (and the 1.x
    # freeAttachments call_soon) run.
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------
# decoding what was captured, with the official receive path


def decode(frames):
    """Return (raw_messages, messages); raw is None for 2.x."""
    if GENERATION == 2:
        unchunker = UnChunker()
        unchunker.set_max_message_size(4 * 1024**3)  # as after a hello
        out = []
        for f in frames:
            assert isinstance(f, bytes), "2.x sends binary frames only"
            m = unchunker.process_chunk(f)
            if m is not None:
                out.append(m)
        assert not unchunker.pending_messages, "incomplete message"
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


def check(got, want, what):
    reason = golden.compare(got, want)
    if reason:
        raise AssertionError(f"{what}: decoded message differs from the value sent: {reason}")


def result_of(rpcid, value):
    return {"wslink": "1.0", "id": rpcid, "result": value}


def error_of(rpcid, code, message, data=None):
    err = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"wslink": "1.0", "id": rpcid, "error": err}


class Writer:
    def __init__(self, out_dir):
        self.dir = os.path.join(out_dir, PRODUCER)
        self.names = []

    def write(self, name, description, frames, expect=None, notes=None):
        """expect: list of expected messages (with traces etc. replaced by
        None to skip the comparison of that message)."""
        assert frames, f"{name}: nothing was sent"
        raw, messages = decode(frames)
        if expect is not None:
            assert len(expect) == len(messages), (name, len(expect), len(messages))
            for i, (m, e) in enumerate(zip(messages, expect)):
                if e is not None:
                    check(m, e, f"{name} message {i}")
        golden.write_vector(
            os.path.join(self.dir, name + ".json"),
            producer=PRODUCER, generation=GENERATION,
            direction="server-to-client", description=description,
            frames=frames, messages=messages, raw_messages=raw, notes=notes,
        )
        self.names.append(name)
        return messages


# ---------------------------------------------------------------------------


async def main(out_dir):
    logging.disable(logging.CRITICAL)  # the handler logs the exceptions we provoke
    server = GoldenServer()
    handler = wproto.WslinkHandler(server, WebApp())
    w = Writer(out_dir)
    gen = GENERATION

    # --- hello -------------------------------------------------------------
    c = Connection(handler, CLIENT_ID)
    await c.open()
    await c.hello()
    hello_result = {"clientID": CLIENT}
    if gen == 2:
        hello_result["maxMsgSize"] = wproto.MAX_MSG_SIZE
    w.write("hello-reply",
            "Reply to a wslink.hello with the right secret"
            + (" (clientID and maxMsgSize)" if gen == 2 else " (clientID only in 1.x)"),
            c.take(), [result_of("system:c0:0", hello_result)])

    bad = Connection(handler, CLIENT_ID_2)
    await bad.open()
    await bad.hello(secret="not-the-secret")
    w.write("hello-wrong-secret", "Reply to a wslink.hello with a wrong secret: error -32000",
            bad.take(), [error_of("system:c0:0", -32000, "Authentication failed")])

    rpcid = await bad.call("golden.mixed")
    w.write("unauthorized-call", "A call on a connection that never said hello: error -32000",
            bad.take(), [error_of(rpcid, -32000, "Unauthorized: Skip message processing")])

    await c.receive({"wslink": "1.0", "id": "system:c0:1", "method": "wslink.bogus",
                     "args": [], "kwargs": {}})
    w.write("unknown-system-method", "A system: id with a method other than wslink.hello: error -32601",
            c.take(), [error_of("system:c0:1", -32601, "Unknown system method called")])

    # --- results -----------------------------------------------------------
    rpcid = await c.call("golden.mixed")
    w.write("result-mixed",
            "Result with nested maps/arrays, unicode (NUL, emoji, escapes), edge ints, floats, nil, bools",
            c.take(), [result_of(rpcid, MIXED)])

    rpcid = await c.call("golden.int_edges")
    w.write("result-int-edges",
            "Integers at every msgpack/JSON width boundary, including 2^53+1, i64 min, u64 max",
            c.take(), [result_of(rpcid, INT_EDGES)])

    rpcid = await c.call("golden.float_edges")
    w.write("result-float-edges",
            "Floats: -0.0, integral floats, subnormal, max, 2^53, 1e21",
            c.take(), [result_of(rpcid, FLOAT_EDGES)])

    rpcid = await c.call("golden.size_edges")
    w.write("result-size-edges",
            "Strings, arrays and maps at the fix/8/16 length boundaries",
            c.take(), [result_of(rpcid, SIZE_EDGES)])

    rpcid = await c.call("golden.none")
    w.write("result-none", "A method returning None: result is nil/null",
            c.take(), [result_of(rpcid, None)])

    echo_args = [1, "two", [3.5, None], {"four": 4}]
    echo_kwargs = {"flag": True, "name": "\u00e9"}
    rpcid = await c.call("golden.echo", echo_args, echo_kwargs)
    w.write("result-echo", "A method echoing its args and kwargs",
            c.take(), [result_of(rpcid, {"args": echo_args, "kwargs": echo_kwargs})])

    # --- errors ------------------------------------------------------------
    rpcid = await c.call("golden.no_such_method")
    w.write("error-method-not-found",
            "Call of an unregistered method: -32601 with the method name as data (a string)",
            c.take(), [error_of(rpcid, -32601, "Unregistered method called", "golden.no_such_method")])

    rpcid = await c.call("golden.raise", ["golden failure"])
    msgs = w.write("error-exception",
                   "Method raising an exception: -32001 with data {method, exception, trace}",
                   c.take(), [None])
    err = msgs[0]["error"]
    assert err["code"] == -32001 and err["message"] == "Exception raised", err
    assert err["data"]["method"] == "golden.raise", err
    assert err["data"]["exception"] == "ValueError('golden failure')", err
    assert "Traceback" in err["data"]["trace"], err

    rpcid = await c.call("golden.unserializable")
    w.write("error-unserializable",
            "Method returning a value the encoder rejects (a set): -32002 with the method name as data",
            c.take(), [error_of(rpcid, -32002, "Method result cannot be serialized", "golden.unserializable")])

    # --- publish -----------------------------------------------------------
    rpcid = await c.call("golden.publish", ["golden.topic", 2])
    frames = c.take()
    w.write("publish",
            "A method publishing twice on topic golden.topic. The call's result goes out "
            "first (publish() only schedules its sends); the publish counter is never "
            "incremented, so both publish ids end in :0",
            frames,
            [result_of(rpcid, "published"),
             result_of("publish:golden.topic:0", {"seq": 0, "note": "from golden.publish"}),
             result_of("publish:golden.topic:0", {"seq": 1, "note": "from golden.publish"})])

    # --- generation specific -------------------------------------------------
    if gen == 2:
        rpcid = await c.call("golden.binary")
        w.write("result-binary",
                "Inline binary: all 256 byte values, empty, bytearray, memoryview, bin in a list",
                c.take(),
                [result_of(rpcid, {
                    "all_bytes": ALL_BYTES, "empty": b"", "bytearray": b"\x00\xff\x10",
                    "memoryview": b"view!", "in_list": [b"\x01", b"\x02\x03"]})])

        # chunking: MAX_MSG_SIZE is the module global the send path reads
        saved = wproto.MAX_MSG_SIZE
        try:
            wproto.MAX_MSG_SIZE = 64
            rpcid = await c.call("golden.text", [300])
            frames = c.take()
            assert len(frames) > 1 and all(len(f) <= 64 for f in frames)
            w.write("chunked-result",
                    "A 300-character result sent with MAX_MSG_SIZE=64: several frames of "
                    "at most 64 bytes (12-byte header + 52 bytes), one random message id",
                    frames, [result_of(rpcid, str_of(300))])

            wproto.MAX_MSG_SIZE = 1
            rpcid = await c.call("golden.text", [3])
            frames = c.take()
            assert all(len(f) == 13 for f in frames)
            w.write("chunked-1-byte",
                    "A small result sent with MAX_MSG_SIZE=1: max(1-12, 1) = 1 content byte per frame",
                    frames, [result_of(rpcid, str_of(3))])

            wproto.MAX_MSG_SIZE = 64
            rpcid = await c.call("golden.binary")
            frames = c.take()
            w.write("chunked-binary",
                    "The golden.binary result (with 256 bytes of bin) chunked at 64 bytes",
                    frames, None)
        finally:
            wproto.MAX_MSG_SIZE = saved

        # one file with a whole session in it
        s = Connection(handler, "00000000000000000000000000000003")
        await s.open()
        await s.hello()
        r1 = await s.call("golden.echo", [[1, 2, 3]], {})
        r2 = await s.call("golden.publish", ["golden.session", 1])
        w.write("session",
                "One connection: hello reply, a result, then a call that publishes: its result, then the publish",
                s.take(),
                [result_of("system:c0:0", {"clientID": "c00000000000000000000000000000003",
                                            "maxMsgSize": wproto.MAX_MSG_SIZE}),
                 result_of(r1, {"args": [[1, 2, 3]], "kwargs": {}}),
                 result_of(r2, "published"),
                 result_of("publish:golden.session:0", {"seq": 0, "note": "from golden.publish"})])
    else:
        rpcid = await c.call("golden.bytes_result")
        w.write("error-bytes-result",
                "1.x cannot put bytes in JSON: a method returning bytes gets -32002",
                c.take(), [error_of(rpcid, -32002, "Method result cannot be serialized", "golden.bytes_result")])

        rpcid = await c.call("golden.attachment")
        frames = c.take()
        w.write("result-attachment",
                "Result with one attachment: header text frame, binary frame, then the JSON "
                "naming the key (keys count from wslink_bin0 in the Python server)",
                frames,
                [result_of(rpcid, {"image": b"\x89PNG\r\n\x1a\n\x00\x00", "size": [2, 2]})])

        rpcid = await c.call("golden.two_attachments")
        w.write("result-two-attachments",
                "Result with two attachments (one empty, one inside a list): one header per key",
                c.take(),
                [result_of(rpcid, {"first": bytes(range(16)), "list": ["before", b"", "after"]})])

        rpcid = await c.call("golden.bare_attachment")
        w.write("result-bare-attachment",
                "A result that is an attachment key itself",
                c.take(), [result_of(rpcid, b"bare\x00bytes")])

        rpcid = await c.call("golden.publish_attachment", ["golden.image"])
        w.write("publish-attachment",
                "The call's result, then a publish whose data holds an attachment",
                c.take(),
                [result_of(rpcid, "published"),
                 result_of("publish:golden.image:0", {"frame": b"\x01\x02\x03\x04", "w": 2})])

    print(f"{PRODUCER}: wrote {len(w.names)} vectors to {w.dir}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: capture_python.py OUT_DIR")
    asyncio.run(main(sys.argv[1]))
