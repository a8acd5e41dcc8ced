#!/usr/bin/env python3
"""Reference conformance server on Kitware's Python wslink (2.x or 1.12.x).

Implements the conformance service described in shared/conformance-service.md
with whichever wslink the running interpreter has installed, and starts
through wslink's own entry point (wslink.server.start), so wslink's usual
flags apply: --host --port --timeout --authKey --content --ws-endpoint ...
The WebSocket endpoint is ws://HOST:PORT/ws and the default secret is
"wslink-secret" (wslink's own default for --authKey).

Binary values:
  * wslink 2.x packs messages with msgpack, so bytes are returned as they are.
  * wslink 1.x sends JSON; every bytes value in a result (or a published
    message) is swapped for the key that self.addAttachment() returns, and
    wslink sends the bytes in their own binary frame. Attachments sent by a
    client reach the methods as bytes.

Once listening, one line "conformance-server listening on ws://HOST:PORT/ENDPOINT
(wslink VERSION)" is printed to stdout; callers should rather poll the port.
"""

import asyncio
import sys
from importlib.metadata import version as distribution_version

import wslink
from wslink import register as export_rpc
from wslink import server
from wslink.websocket import LinkProtocol, ServerProtocol

# wslink 2.x has wslink.__version__; 1.12.x does not, so ask the installed
# distribution's metadata instead.
WSLINK_VERSION = getattr(wslink, "__version__", None) or distribution_version("wslink")
GENERATION = int(WSLINK_VERSION.split(".", 1)[0])

PERIOD = 251  # bytes(size, seed)[i] = (i * 31 + seed) % 251 repeats every 251 bytes


def pattern(size, seed=0):
    """bytes(size, seed) of the conformance spec."""
    size = int(size)
    seed = int(seed)
    if size <= 0:
        return b""
    one_period = bytes((i * 31 + seed) % PERIOD for i in range(PERIOD))
    repeats = size // PERIOD + 1
    return (one_period * repeats)[:size]


class ConformanceApi(LinkProtocol):
    """The conformance.* methods."""

    def _outgoing(self, value):
        """Prepare a value for sending: with wslink 1.x, every bytes value
        (at any depth) goes through the attachment table."""
        if GENERATION >= 2:
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.addAttachment(bytes(value))
        if isinstance(value, list):
            return [self._outgoing(v) for v in value]
        if isinstance(value, tuple):
            return [self._outgoing(v) for v in value]
        if isinstance(value, dict):
            return {k: self._outgoing(v) for k, v in value.items()}
        return value

    @export_rpc("conformance.echo")
    def echo(self, value):
        return self._outgoing(value)

    @export_rpc("conformance.add")
    def add(self, a, b):
        return a + b

    @export_rpc("conformance.kwargs")
    def kwargs(self, *args, **kwargs):
        return self._outgoing({"args": list(args), "kwargs": kwargs})

    @export_rpc("conformance.fail")
    def fail(self, message):
        raise Exception(message)

    @export_rpc("conformance.blob")
    def blob(self, size, seed=0):
        return self._outgoing({"size": size, "blob": pattern(size, seed)})

    @export_rpc("conformance.digest")
    def digest(self, blob):
        if isinstance(blob, str):
            # wslink 1.x hands over the key itself when no attachment with
            # that key was received: say so instead of summing characters.
            raise TypeError(f"digest expects binary, got the string {blob[:40]!r}")
        data = bytes(blob)
        return {"len": len(data), "sum": sum(data) % (1 << 32)}

    @export_rpc("conformance.publish")
    def publish_messages(self, topic, count, size):
        for seq in range(int(count)):
            self.publish(topic, self._outgoing({"seq": seq, "blob": pattern(size, seq)}))
        return count

    @export_rpc("conformance.sleep")
    async def sleep(self, ms):
        await asyncio.sleep(ms / 1000.0)
        return ms


class ConformanceServer(ServerProtocol):
    secret_from_options = "wslink-secret"

    @staticmethod
    def configure(options):
        # Called by wslink.server.start with the parsed command line.
        ConformanceServer.secret_from_options = options.authKey
        ConformanceServer.options = options

    def initialize(self):
        self.registerLinkProtocol(ConformanceApi())
        self.updateSecret(ConformanceServer.secret_from_options)

    def port_callback(self, port):
        options = getattr(ConformanceServer, "options", None)
        host = getattr(options, "host", "localhost")
        endpoint = getattr(options, "ws", "ws")
        print(
            f"conformance-server listening on ws://{host}:{port}/{endpoint} "
            f"(wslink {WSLINK_VERSION})",
            flush=True,
        )


def main(argv=None):
    server.start(
        argv,
        protocol=ConformanceServer,
        description=f"wslink conformance server (wslink {WSLINK_VERSION})",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
