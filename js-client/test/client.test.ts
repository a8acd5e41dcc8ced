import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { connect, WslinkClient, type ClientOptions, type ConnectionState } from '../src/connection.js';
import { ErrorCode, WslinkError } from '../src/errors.js';
import { chunkMessage, encodeHeader } from '../src/chunking.js';
import { guardConsole } from './helpers/console-guard.js';
import { FakeServer, until } from './helpers/fake-server.js';

guardConsole();

const open: WslinkClient[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function client(server: FakeServer, extra: Partial<ClientOptions> = {}): WslinkClient {
  const c = new WslinkClient({ url: 'ws://fake/ws', WebSocket: server.WebSocket, protocol: server.generation, ...extra });
  open.push(c);
  return c;
}

async function connected(server: FakeServer, extra: Partial<ClientOptions> = {}): Promise<WslinkClient> {
  return client(server, extra).connect();
}

function isError(kind: string, code = -32099) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof WslinkError, `expected a WslinkError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.code, code);
    return true;
  };
}

for (const generation of [2, 1] as const) {
  describe(`client over wslink ${generation}.x`, () => {
    it('connects, says hello and calls', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      assert.equal(c.state, 'open');
      assert.equal(c.clientId, 'c1');
      assert.equal(c.maxMsgSize, generation === 2 ? 4 << 20 : undefined);
      assert.equal(await c.call('test.add', [2, 3]), 5);
      assert.deepEqual(await c.call('test.kwargs', [1, 'a'], { x: 1, y: [true] }), { args: [1, 'a'], kwargs: { x: 1, y: [true] } });
      const hello = server.last.received[0] as { id: string; method: string; args: unknown[] };
      assert.deepEqual([hello.id, hello.method, hello.args], ['system:c0:0', 'wslink.hello', [{ secret: 'wslink-secret' }]]);
      assert.match((server.last.received[1] as { id: string }).id, /^rpc:c1:\d+$/);
    });

    it('round-trips binary given as ArrayBuffer, Uint8Array, DataView or Blob, received as Uint8Array', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const bytes = Uint8Array.from([1, 2, 3]);
      const back = (await c.call('test.echo', [{ ab: bytes.slice().buffer, u8: bytes, dv: new DataView(bytes.slice().buffer), blob: new Blob([bytes]) }])) as Record<string, unknown>;
      for (const k of ['ab', 'u8', 'dv', 'blob']) {
        assert.ok(back[k] instanceof Uint8Array, k);
        assert.deepEqual([...(back[k])], [1, 2, 3]);
      }
    });

    it('keeps call order when a Blob argument has to be read first', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const results = await Promise.all([
        c.call('test.echo', [new Blob([Uint8Array.from([1])])]),
        c.call('test.echo', ['second']),
        c.call('test.echo', ['third']),
      ]);
      assert.deepEqual(results, [Uint8Array.from([1]), 'second', 'third']);
      const methods = server.last.received.slice(1).map((m) => (m as { args: unknown[] }).args[0]);
      assert.deepEqual(methods, [Uint8Array.from([1]), 'second', 'third']);
    });

    it('rejects with typed server errors', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      await assert.rejects(c.call('test.fail', ['boom-42']), (e: WslinkError) => {
        assert.ok(e instanceof WslinkError);
        assert.ok(e instanceof Error);
        assert.equal(e.code, ErrorCode.EXCEPTION);
        assert.equal(e.message, 'Exception raised');
        assert.equal(e.kind, 'server');
        assert.equal(e.method, 'test.fail');
        assert.match((e.data as { exception: string }).exception, /boom-42/);
        assert.deepEqual(Object.keys(e.toJSON()), ['code', 'message', 'data']);
        return true;
      });
      await assert.rejects(c.call('nope'), isError('server', ErrorCode.METHOD_NOT_FOUND));
    });

    it('rejects a wrong secret with -32000 and ends closed', async () => {
      const server = new FakeServer({ generation, secret: 'right' });
      const c = client(server, { secret: 'wrong', reconnect: true });
      await assert.rejects(c.connect(), isError('server', ErrorCode.AUTHENTICATION));
      await until(() => c.state === 'closed', 1000, 'closed');
      assert.equal(server.sockets.length, 1, 'no retry after an authentication failure');
    });

    it('times out calls, per call or by default', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server, { callTimeout: 30 });
      const start = Date.now();
      await assert.rejects(c.call('test.never'), isError('timeout'));
      assert.ok(Date.now() - start < 2000);
      await assert.rejects(c.call('test.never', [], {}, { timeout: 10 }), isError('timeout'));
      assert.equal(await c.call('test.sleep', [50], {}, { timeout: 1000 }), 50);
      assert.equal(c.inFlight, 0);
    });

    it('never sends a call abandoned before its frames went out (Blob arguments still being read)', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      class SlowBlob extends Blob {
        override async arrayBuffer(): Promise<ArrayBuffer> {
          await new Promise((r) => setTimeout(r, 100));
          return super.arrayBuffer();
        }
      }
      const sentBefore = server.last.socket.sent.length;
      const controller = new AbortController();
      const aborted = c.call('test.echo', [new SlowBlob([new Uint8Array(1024)])], {}, { signal: controller.signal });
      const timedOut = c.call('test.echo', [new SlowBlob([new Uint8Array(1024)])], {}, { timeout: 20 });
      // Queued behind them, so sent only once they are settled.
      const after = c.call('test.echo', ['after']);
      setTimeout(() => controller.abort(), 10);
      await assert.rejects(aborted, isError('aborted'));
      await assert.rejects(timedOut, isError('timeout'));
      assert.equal(await after, 'after');
      // Not one frame of the abandoned calls (no attachment either, in 1.x).
      assert.equal(server.last.socket.sent.length, sentBefore + 1);
      assert.deepEqual(
        server.last.received.slice(1).map((m) => (m as { args: unknown[] }).args[0]),
        ['after'],
      );
    });

    it('honours AbortSignal, before and during the call', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const sentBefore = server.last.received.length;
      await assert.rejects(c.call('test.add', [1, 2], {}, { signal: AbortSignal.abort('nope') }), (e: WslinkError) => {
        assert.equal(e.kind, 'aborted');
        assert.equal(e.cause, 'nope');
        return true;
      });
      assert.equal(server.last.received.length, sentBefore, 'an aborted call is not sent');
      const controller = new AbortController();
      const p = c.call('test.never', [], {}, { signal: controller.signal });
      setTimeout(() => controller.abort(), 10);
      await assert.rejects(p, isError('aborted'));
      assert.equal(c.inFlight, 0);
    });

    it('ignores replies to unknown ids', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const errors: WslinkError[] = [];
      c.on('error', (e) => errors.push(e));
      server.last.reply({ wslink: '1.0', id: 'rpc:c1:999', result: 'stray' });
      server.last.reply({ wslink: '1.0', id: 'unknown-format', result: 'stray' });
      assert.equal(await c.call('test.add', [1, 1]), 2);
      assert.deepEqual(errors, []);
      assert.equal(c.state, 'open');
    });

    it('closes the connection on a malformed frame; pending calls reject at once', async () => {
      const garbage: (string | Uint8Array)[] =
        generation === 2
          ? ['text on a 2.x connection', chunkMessage(Uint8Array.from([0xc1]), 100)[0] as Uint8Array, encodeHeader({ id: 1, offset: 0, size: 0xfffffff0 })]
          : ['{not json', Uint8Array.from([1, 2, 3]), '[1]'];
      for (const frame of garbage) {
        const server = new FakeServer({ generation });
        const c = await connected(server);
        const errors: WslinkError[] = [];
        c.on('error', (e) => errors.push(e));
        const p = c.call('test.never');
        server.last.socket.deliver(frame);
        await assert.rejects(p, isError('protocol'));
        assert.equal(errors.length, 1);
        assert.equal(errors[0]?.kind, 'protocol');
        assert.equal(c.state, 'closed');
      }
    });

    it('delivers published messages to the subscribers of their topic', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const got: unknown[] = [];
      const other: unknown[] = [];
      const off = c.subscribe('img.stream', (m, topic) => got.push([topic, m]));
      c.subscribe('other', (m) => other.push(m));
      c.subscribe('weird:topic-with:colons', (m) => other.push(m));
      server.publish('img.stream', { seq: 0, blob: Uint8Array.from([1]) });
      server.publish('weird:topic-with:colons', 'w');
      server.publish('nobody', 1);
      await until(() => got.length === 1 && other.length === 1);
      assert.deepEqual(got, [['img.stream', { seq: 0, blob: Uint8Array.from([1]) }]]);
      assert.deepEqual(other, ['w']);
      off();
      server.publish('img.stream', 2);
      assert.equal(await c.call('test.add', [1, 1]), 2);
      assert.equal(got.length, 1);
      assert.equal(c.subscriberCount('img.stream'), 0);
    });

    it('reports a throwing subscriber and keeps delivering', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const errors: WslinkError[] = [];
      c.on('error', (e) => errors.push(e));
      const got: unknown[] = [];
      c.subscribe('t', () => {
        throw new Error('subscriber bug');
      });
      c.subscribe('t', (m) => got.push(m));
      server.publish('t', 1);
      await until(() => got.length === 1);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.kind, 'callback');
    });

    it('rejects calls in flight when the connection drops, and calls made while closed', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const states: ConnectionState[] = [];
      c.on('state', (s) => states.push(s));
      const p = c.call('test.never');
      server.last.drop();
      await assert.rejects(p, (e: WslinkError) => e.kind === 'disconnected' && /code 1006/.test(e.message));
      await until(() => c.state === 'closed');
      assert.deepEqual(states, ['closed']);
      await assert.rejects(c.call('test.add', [1, 2]), isError('not-connected'));
    });

    it('close() rejects calls in flight with kind closed and resolves once closed', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const closes: unknown[] = [];
      c.on('close', (info) => closes.push(info));
      const rejected = assert.rejects(c.call('test.never'), isError('closed'));
      await c.close();
      await rejected;
      assert.equal(c.state, 'closed');
      assert.equal(closes.length, 1);
      await c.close();
      await assert.rejects(c.connect(), isError('closed'));
    });

    it('reconnects with backoff, says hello again and keeps subscriptions', async () => {
      const server = new FakeServer({ generation });
      const c = client(server, { reconnect: { initialDelay: 5, maxDelay: 20, jitter: 0 } });
      const states: ConnectionState[] = [];
      const ready: { clientId: string; reconnected: boolean }[] = [];
      const attempts: { attempt: number; delay: number }[] = [];
      c.on('state', (s) => states.push(s));
      c.on('ready', (info) => ready.push(info));
      c.on('reconnecting', (info) => attempts.push({ attempt: info.attempt, delay: info.delay }));
      const disconnects: boolean[] = [];
      c.on('disconnect', (info) => disconnects.push(info.willReconnect));
      await c.connect();
      const got: unknown[] = [];
      c.subscribe('t', (m) => got.push(m));

      server.refuse = true;
      server.last.drop();
      await until(() => attempts.length >= 3, 2000, 'three attempts');
      server.refuse = false;
      await until(() => c.state === 'open', 2000, 'reopened');

      assert.deepEqual(disconnects, [true]);
      assert.deepEqual(
        attempts.slice(0, 4).map((a) => a.delay),
        [5, 10, 20, 20].slice(0, Math.min(4, attempts.length)),
      );
      assert.deepEqual(ready.map((r) => r.reconnected), [false, true]);
      assert.notEqual(ready[0]?.clientId, ready[1]?.clientId);
      assert.equal(c.clientId, ready[1]?.clientId);
      assert.deepEqual(states.slice(0, 3), ['connecting', 'open', 'reconnecting']);
      assert.equal(states[states.length - 1], 'open');
      const hello = server.last.received[0] as { method: string };
      assert.equal(hello.method, 'wslink.hello');

      server.publish('t', 'after reconnect');
      await until(() => got.length === 1);
      assert.equal(await c.call('test.add', [2, 2]), 4);
    });

    it('fails over along a list of URLs, in turn, and keeps subscriptions', async () => {
      const a = new FakeServer({ generation });
      const b = new FakeServer({ generation });
      const c3 = new FakeServer({ generation });
      const servers = new Map([['ws://a/ws', a], ['ws://b/ws', b], ['ws://c/ws', c3]]);
      // Called with `new`, a function that returns an object yields that
      // object: the socket of the fake server at `url`.
      const routed = function (url: string) {
        const server = servers.get(url);
        if (!server) throw new Error(`no server at ${url}`);
        return new server.WebSocket(url);
      } as unknown as ClientOptions['WebSocket'];
      const c = client(a, { url: [...servers.keys()], WebSocket: routed, reconnect: { initialDelay: 1, jitter: 0 } });
      const ready: { url: string; reconnected: boolean }[] = [];
      const tried: string[] = [];
      c.on('ready', (info) => ready.push({ url: info.url, reconnected: info.reconnected }));
      c.on('reconnecting', (info) => tried.push(info.url));
      await c.connect();
      assert.deepEqual(c.urls, ['ws://a/ws', 'ws://b/ws', 'ws://c/ws']);
      assert.equal(c.url, 'ws://a/ws');
      const got: unknown[] = [];
      c.subscribe('t', (m) => got.push(m));

      // a dies and b refuses: the client goes on to c.
      a.refuse = true;
      b.refuse = true;
      a.last.drop();
      await until(() => c.state === 'open' && c.url === 'ws://c/ws', 2000, 'on c');
      assert.deepEqual(tried, ['ws://b/ws', 'ws://c/ws']);
      assert.deepEqual(ready, [{ url: 'ws://a/ws', reconnected: false }, { url: 'ws://c/ws', reconnected: true }]);
      assert.equal(a.sockets.length, 1);
      assert.equal(b.sockets.length, 1);
      assert.equal((c3.last.received[0] as { method: string }).method, 'wslink.hello');
      c3.publish('t', 'from c');
      await until(() => got.length === 1);
      assert.deepEqual(got, ['from c']);

      // c dies: round-robin wraps around to a, which is back.
      a.refuse = false;
      c3.refuse = true;
      c3.last.drop();
      await until(() => c.state === 'open' && c.url === 'ws://a/ws', 2000, 'back on a');
      assert.deepEqual(tried, ['ws://b/ws', 'ws://c/ws', 'ws://a/ws']);
      a.publish('t', 'from a');
      await until(() => got.length === 2);
      assert.equal(await c.call('test.add', [1, 1]), 2);
    });

    it('refuses an empty or non-string URL list', () => {
      assert.throws(() => new WslinkClient({ url: [] }), TypeError);
      assert.throws(() => new WslinkClient({ url: ['ws://a/ws', 3 as unknown as string] }), TypeError);
      assert.equal(new WslinkClient({ url: 'ws://a/ws' }).url, 'ws://a/ws');
    });

    it('does not wait for a close event after a failed handshake', async () => {
      const server = new FakeServer({ generation });
      const c = client(server, { reconnect: { initialDelay: 1, jitter: 0 } });
      await c.connect();
      server.refuse = true;
      server.refuseWithoutClose = true;
      server.last.drop();
      await until(() => server.sockets.length >= 4, 2000, 'attempts go on');
      server.refuse = false;
      await until(() => c.state === 'open', 2000, 'reopened');
    });

    it('gives up after maxAttempts', async () => {
      const server = new FakeServer({ generation });
      const c = client(server, { reconnect: { initialDelay: 1, maxAttempts: 2, jitter: 0 } });
      await c.connect();
      server.refuse = true;
      const closed = new Promise((r) => c.once('close', r));
      server.last.drop();
      await closed;
      assert.equal(c.state, 'closed');
      assert.equal(server.sockets.length, 3);
    });

    it('retries the first connection only with retryInitial', async () => {
      const server = new FakeServer({ generation });
      server.refuse = true;
      await assert.rejects(client(server, { reconnect: { initialDelay: 1 } }).connect(), isError('connect-failed'));
      assert.equal(server.sockets.length, 1);
      const c = client(server, { reconnect: { initialDelay: 1, retryInitial: true, jitter: 0 } });
      const p = c.connect();
      await until(() => server.sockets.length >= 4);
      server.refuse = false;
      assert.equal(await p, c);
      assert.equal(c.state, 'open');
    });

    it('times out a connection that never opens', async () => {
      const server = new FakeServer({ generation });
      server.answerOpen = false;
      await assert.rejects(client(server, { connectTimeout: 20 }).connect(), isError('timeout'));
    });

    it('connect() without a WebSocket implementation fails cleanly', async () => {
      const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
      (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
      try {
        await assert.rejects(connect({ url: 'ws://nowhere/ws', protocol: generation }), isError('connect-failed'));
      } finally {
        (globalThis as { WebSocket?: unknown }).WebSocket = saved;
      }
    });

    it('rejects bad arguments without sending', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      await assert.rejects(c.call('test.add', 5 as unknown as unknown[]), isError('encoding'));
      await assert.rejects(c.call('test.add', [], [] as unknown as Record<string, unknown>), isError('encoding'));
      const cyclic: unknown[] = [];
      cyclic.push(cyclic);
      await assert.rejects(c.call('test.echo', [cyclic]), isError('encoding'));
      assert.equal(await c.call('test.add', [1, 2]), 3);
    });

    it('many concurrent calls all get their own reply', async () => {
      const server = new FakeServer({ generation });
      const c = await connected(server);
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => c.call('test.sleep', [i % 7])));
      assert.deepEqual(results, Array.from({ length: 200 }, (_, i) => i % 7));
    });

    it('logs only through the logger it is given', async () => {
      const server = new FakeServer({ generation });
      const lines: string[] = [];
      const logger = { debug: (...a: unknown[]) => lines.push(a.map(String).join(' ')), warn: (...a: unknown[]) => lines.push(a.map(String).join(' ')) };
      const c = await connected(server, { logger });
      await c.call('test.add', [1, 1]);
      server.last.socket.deliver(generation === 2 ? 'bad text' : '{bad');
      assert.ok(lines.some((l) => /idle -> connecting/.test(l)));
      assert.ok(lines.some((l) => /wslink: .*(Text frame|Malformed JSON)/.test(l)), JSON.stringify(lines));
    });
  });
}

describe('client (2.x specifics)', () => {
  it('chunks at the server maxMsgSize from the hello reply', async () => {
    const server = new FakeServer({ generation: 2, maxMsgSize: 1000 });
    const c = await connected(server);
    const sent = server.last.socket.sent.length;
    const big = new Uint8Array(5000).map((_, i) => i % 256);
    const back = await c.call('test.echo', [big]);
    assert.deepEqual(back, big);
    const frames = server.last.socket.sent.slice(sent) as Uint8Array[];
    assert.equal(frames.length, 6);
    assert.ok(frames.every((f) => f.byteLength <= 1000));
  });

  it('sets binaryType arraybuffer on its socket', async () => {
    const server = new FakeServer({ generation: 2 });
    await connected(server);
    assert.equal(server.last.socket.binaryType, 'arraybuffer');
  });

  it('still reads Blob frames from a socket stuck in binaryType blob, in order', async () => {
    const server = new FakeServer({ generation: 2 });
    const Base = server.WebSocket;
    const Stuck = class extends Base {
      override get binaryType(): string {
        return 'blob';
      }
      override set binaryType(_v: string) {
        // ignored, as some implementations do
      }
    };
    const c = await connected(server, { WebSocket: Stuck });
    const results = await Promise.all([c.call('test.add', [1, 1]), c.call('test.echo', [Uint8Array.from([5])]), c.call('test.add', [2, 2])]);
    assert.deepEqual(results, [2, Uint8Array.from([5]), 4]);
  });

  it('exposes int64 exactly', async () => {
    const server = new FakeServer({ generation: 2 });
    const c = await connected(server);
    const values = [9007199254740993n, -9223372036854775808n, 18446744073709551615n, 9007199254740991, 4294967296];
    assert.deepEqual(await c.call('test.echo', [values]), values);
  });
});
