/**
 * The client against servers that lie, misbehave or attack. Every case must
 * end in a typed error: a protocol error that closes the connection (close
 * code 1002, or 1009 for a size limit) and rejects every call in flight at
 * once, or a rejected call, or a notice on the `error` event; never an
 * exception escaping from the socket's event handlers, a stack overflow, a
 * call that waits for its timeout, or memory that grows with what the
 * server sends.
 *
 * The server is the in-process fake (a fake WebSocket class given to the
 * client), which lets each test send arbitrary frames.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { encode } from '@msgpack/msgpack';
import { chunkMessage, encodeHeader, HEADER_LENGTH, Reassembler } from '../src/chunking.js';
import type { CodecV1 } from '../src/codec-v1.js';
import { DEFAULT_ATTACHMENT_LIMITS } from '../src/codec.js';
import { WebsocketConnection } from '../src/compat.js';
import { WslinkClient, type ClientOptions, type ConnectionState, type DisconnectInfo } from '../src/connection.js';
import { WslinkError } from '../src/errors.js';
import type { CloseInfo } from '../src/socket.js';
import { guardConsole } from './helpers/console-guard.js';
import { FakeServer, until, type FakeConnection } from './helpers/fake-server.js';

guardConsole();

const MIB = 1024 * 1024;

const open: WslinkClient[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function client(server: FakeServer, extra: Partial<ClientOptions> = {}): WslinkClient {
  const c = new WslinkClient({ url: 'ws://fake/ws', WebSocket: server.WebSocket, protocol: server.generation, ...extra });
  open.push(c);
  return c;
}

/** A connected client and the `error` events it reports. */
async function connected(server: FakeServer, extra: Partial<ClientOptions> = {}): Promise<{ c: WslinkClient; errors: WslinkError[] }> {
  const c = client(server, extra);
  const errors: WslinkError[] = [];
  c.on('error', (e) => errors.push(e));
  await c.connect();
  return { c, errors };
}

function frame(id: number, offset: number, total: number, content: number[] | Uint8Array): Uint8Array {
  const body = content instanceof Uint8Array ? content : Uint8Array.from(content);
  const out = new Uint8Array(HEADER_LENGTH + body.byteLength);
  encodeHeader({ id, offset, size: total }, out);
  out.set(body, HEADER_LENGTH);
  return out;
}

/** A msgpack message as one 2.x frame. */
function whole(msgpack: Uint8Array): Uint8Array {
  return frame(11, 0, msgpack.byteLength, msgpack);
}

/** The id of the request the server received last. */
function lastId(conn: FakeConnection): string {
  const m = conn.received[conn.received.length - 1] as { id: string };
  return m.id;
}

function isError(kind: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof WslinkError, `expected a WslinkError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.code, -32099);
    return true;
  };
}

/** What followed a server's garbage. */
interface Aftermath {
  c: WslinkClient;
  conn: FakeConnection;
  /** The rejection of the call that was in flight. */
  error: WslinkError;
  /** The `error` events. */
  errors: WslinkError[];
  disconnects: DisconnectInfo[];
  closes: CloseInfo[];
  states: ConnectionState[];
}

/** Resolves with `p`'s rejection, failing if it is still pending after `ms`. */
async function rejectsAtOnce(p: Promise<unknown>, ms = 1000): Promise<WslinkError> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the call was still pending ${ms} ms after the protocol error`)), ms);
  });
  try {
    await Promise.race([p, late]);
  } catch (e) {
    if (e instanceof WslinkError) return e;
    throw e;
  } finally {
    clearTimeout(timer);
  }
  throw new Error('the call succeeded');
}

/**
 * Connects, makes a call (no timeout) and has the server send `garbage`
 * (frames, or a function of the connection giving them, called once the
 * call was sent); returns the call's rejection and the events.
 */
async function afterGarbage(
  server: FakeServer,
  garbage: (string | Uint8Array)[] | ((conn: FakeConnection, c: WslinkClient) => (string | Uint8Array)[]),
  extra: Partial<ClientOptions> = {},
): Promise<Aftermath> {
  const { c, errors } = await connected(server, extra);
  const disconnects: DisconnectInfo[] = [];
  const closes: CloseInfo[] = [];
  const states: ConnectionState[] = [];
  c.on('disconnect', (d) => disconnects.push(d));
  c.on('close', (d) => closes.push(d));
  c.on('state', (s) => states.push(s));
  const conn = server.last;
  const p = c.call('test.never');
  for (const f of typeof garbage === 'function' ? garbage(conn, c) : garbage) conn.socket.deliver(f);
  const error = await rejectsAtOnce(p);
  return { c, conn, error, errors, disconnects, closes, states };
}

/**
 * The connection was closed over a protocol error matching `pattern`: the
 * call in flight rejected with it, one `error` event, the socket closed with
 * `code` and the error as reason, the events saying so.
 */
function assertClosedOver(a: Aftermath, pattern: RegExp, code: number): void {
  assert.equal(a.error.kind, 'protocol', a.error.message);
  assert.equal(a.error.code, -32099);
  assert.equal(a.error.closeCode, code, a.error.message);
  assert.match(a.error.message, pattern);
  assert.equal(a.error.method, 'test.never');
  assert.ok(a.error.cause instanceof WslinkError);
  assert.equal(a.errors.length, 1, JSON.stringify(a.errors.map((e) => e.message)));
  const reported = a.errors[0] as WslinkError;
  assert.equal(reported, a.error.cause);
  assert.equal(reported.kind, 'protocol');
  assert.equal(reported.closeCode, code);
  const sent = a.conn.socket.closeCalls[0];
  assert.ok(sent, 'the client did not close the socket');
  assert.equal(sent.code, code);
  assert.ok(new TextEncoder().encode(sent.reason).byteLength <= 123, sent.reason);
  assert.ok(sent.reason && reported.message.startsWith(sent.reason.replace(/\.\.\.$/, '')), `${sent.reason} / ${reported.message}`);
  assert.deepEqual(a.disconnects, [{ code, reason: sent.reason, wasClean: false, willReconnect: false }]);
  assert.deepEqual(a.closes, [{ code, reason: sent.reason, wasClean: false }]);
  assert.deepEqual(a.states, ['closed']);
  assert.equal(a.c.state, 'closed');
  assert.equal(a.c.inFlight, 0);
}

/** Every reported error is a protocol error, and one of them matches. */
function assertReported(errors: WslinkError[], pattern: RegExp): void {
  assert.ok(
    errors.some((e) => pattern.test(e.message)),
    `no error matching ${String(pattern)} in ${JSON.stringify(errors.map((e) => e.message))}`,
  );
  assert.ok(errors.every((e) => e.kind === 'protocol' && e.code === -32099));
}

/** The client's 2.x reassembler (a private field: tests look, never touch). */
function reassemblerOf(c: WslinkClient): Reassembler {
  return (c as unknown as { codec: { reassembler: Reassembler } }).codec.reassembler;
}

function codecV1Of(c: WslinkClient): CodecV1 {
  return (c as unknown as { codec: CodecV1 }).codec;
}

/** The client still works: a call gets its reply. */
async function stillWorks(c: WslinkClient): Promise<void> {
  assert.equal(await c.call('test.add', [2, 3]), 5);
  assert.equal(c.state, 'open');
}

function nestedMsgpack(depth: number): Uint8Array {
  const m = new Uint8Array(depth + 1).fill(0x91);
  m[depth] = 0x90;
  return m;
}

describe('hostile 2.x chunk headers', () => {
  it('a header declaring 4 GiB is refused at the default limit (close 1009)', async () => {
    const a = await afterGarbage(new FakeServer(), [frame(7, 0, 0xffffffff, [1, 2, 3, 4])]);
    assertClosedOver(a, /declared size 4294967295 exceeds the limit of 536870912 bytes/, 1009);
  });

  it('a 4 GiB message within the limits holds only what arrived; the server leaving mid-message rejects the call', async () => {
    const server = new FakeServer();
    const { c } = await connected(server, { limits: { maxMessageSize: 0xffffffff, maxPendingBytes: 0xffffffff } });
    const p = c.call('test.never');
    const before = process.memoryUsage().arrayBuffers;
    const chunk = new Uint8Array(64 * 1024).fill(0x90);
    for (let i = 0; i < 64; i += 1) server.last.socket.deliver(frame(7, i * chunk.byteLength, 0xffffffff, chunk));
    const reassembler = reassemblerOf(c);
    assert.equal(reassembler.pendingMessages, 1);
    assert.equal(reassembler.pendingChunks, 1);
    // 4 MiB arrived, in one buffer grown by doubling.
    assert.ok(reassembler.pendingBytes <= 8 * MIB, `${reassembler.pendingBytes}`);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 64 * MIB, `${grown} bytes of ArrayBuffers`);
    server.last.drop();
    await assert.rejects(p, isError('disconnected'));
    assert.equal(reassembler.pendingBytes, 0);
  });

  it('chunks past the end, overlapping, duplicate or changing size close the connection (1002)', async () => {
    const cases: [Uint8Array[], RegExp][] = [
      [[frame(1, 95, 100, new Uint8Array(10))], /runs past the declared size/],
      // An offset that would wrap a u32 around.
      [[frame(2, 0xfffffffc, 1000, new Uint8Array(8))], /runs past the declared size/],
      [[frame(3, 0, 100, new Uint8Array(10)), frame(3, 5, 100, new Uint8Array(10))], /overlaps/],
      [[frame(4, 0, 100, new Uint8Array(10)), frame(4, 0, 100, new Uint8Array(10))], /overlaps/],
      [[frame(5, 50, 100, new Uint8Array(10)), frame(5, 0, 100, new Uint8Array(10)), frame(5, 45, 100, new Uint8Array(10))], /overlaps/],
      [[frame(6, 0, 100, new Uint8Array(10)), frame(6, 10, 200, new Uint8Array(10))], /total size changed/],
      [[frame(7, 0, 100, [])], /empty chunk/],
      [[frame(8, 0, 0, [1])], /total size of 0/],
      [[new Uint8Array(5)], /shorter than the 12-byte/],
    ];
    for (const [frames, pattern] of cases) {
      const a = await afterGarbage(new FakeServer(), frames);
      assertClosedOver(a, pattern, 1002);
      assert.equal(reassemblerOf(a.c).pendingMessages, 0);
      assert.equal(reassemblerOf(a.c).pendingBytes, 0);
    }
  });

  it('100,000 partial messages: 64 are held, the 65th closes the connection', async () => {
    const server = new FakeServer();
    let most = 0;
    const a = await afterGarbage(server, (conn, c) => {
      // Delivered one by one, to watch what the client holds meanwhile.
      for (let id = 0; id < 100_000; id += 1) {
        conn.socket.deliver(frame(id, 0, 2, [1]));
        most = Math.max(most, reassemblerOf(c).pendingMessages);
      }
      return [];
    });
    assertClosedOver(a, /dropped: more than 64 partial messages/, 1002);
    assert.equal(most, 64);
    assert.equal(reassemblerOf(a.c).pendingBytes, 0);
  });

  it('scattered out-of-order chunks stop at maxPendingChunks, quickly', () => {
    const errors: WslinkError[] = [];
    const r = new Reassembler({}, (e) => errors.push(e));
    const started = Date.now();
    // Back to front with gaps: each chunk is a new run before all others.
    for (let i = 0; i < 100_000; i += 1) assert.equal(r.push(frame(1, 2 * (100_000 - i), 300_000, [i & 0xff])), null);
    assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
    assert.equal(errors.length, 1);
    assertReported(errors, /more than 4096 separate chunks/);
    assert.equal(r.pendingChunks, 0);
    assert.equal(r.pendingBytes, 0);
  });

  it('one-byte chunks in order are held in one buffer, not one object per byte', () => {
    const r = new Reassembler();
    const n = 200_000;
    let out: Uint8Array | null = null;
    for (let i = 0; i < n; i += 1) {
      out = r.push(frame(1, i, n, [i & 0xff]));
      if (i < n - 1) {
        assert.equal(out, null);
        assert.equal(r.pendingChunks, 1);
        assert.ok(r.pendingBytes <= 2 * (i + 1), `${r.pendingBytes} bytes for ${i + 1}`);
      }
    }
    assert.ok(out);
    assert.equal(out.byteLength, n);
    assert.ok(out.every((b, i) => b === (i & 0xff)));
    assert.equal(r.pendingBytes, 0);
  });
});

describe('malformed messages', () => {
  it('2.x: malformed msgpack and 100,000 levels of nesting close the connection (1002)', async () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['undefined marker', Uint8Array.from([0xc1]), /Malformed msgpack/],
      ['array claiming 4 billion elements', Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]), /Malformed msgpack/],
      ['binary claiming 4 GiB', Uint8Array.from([0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]), /Malformed msgpack/],
      ['map claiming 4 billion entries', Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]), /Malformed msgpack/],
      ['not an envelope', Uint8Array.from([0x2a]), /not a wslink envelope/],
      ['100,000 nested arrays', nestedMsgpack(100_000), /nested deeper than 256 levels/],
    ];
    for (const [what, msgpack, pattern] of cases) {
      const a = await afterGarbage(new FakeServer(), [whole(msgpack)]);
      assert.match(a.error.message, pattern, what);
      assertClosedOver(a, pattern, 1002);
    }
  });

  it('2.x: a text frame closes the connection (1002)', async () => {
    const a = await afterGarbage(new FakeServer(), ['{"wslink": "1.0"}']);
    assertClosedOver(a, /Text frame received on a wslink 2.x connection/, 1002);
  });

  it('2.x: a reply nested 100,000 deep rejects its call at once, not at its timeout', async () => {
    const a = await afterGarbage(new FakeServer(), (conn) => {
      // {"id": ID, "result": [[[...]]]}
      const head = encode({ id: lastId(conn) });
      const m = new Uint8Array(head.byteLength + 7 + 100_001);
      m.set(head);
      m[0] = 0x82;
      m.set([0xa6, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74], head.byteLength);
      m.set(nestedMsgpack(100_000), head.byteLength + 7);
      return chunkMessage(m, 4096);
    });
    assertClosedOver(a, /nested deeper than 256 levels/, 1002);
  });

  it('1.x: malformed JSON and 100,000 levels of nesting close the connection (1002)', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const cases: [string, string, RegExp][] = [
      ['not JSON', '{not json', /Malformed JSON/],
      ['truncated', '{"wslink":"1.0","id":', /Malformed JSON/],
      ['not an envelope', '[1, 2]', /not a wslink envelope/],
      ['100,000 nested arrays', deep, /nested deeper than 256 levels/],
      ['100,000 nested objects', '{"a":'.repeat(100_000) + 'null' + '}'.repeat(100_000), /nested deeper than 256 levels/],
      // Long digit runs take the exact-integer parser, which counts levels itself.
      ['100,000 nested arrays with a big integer', '['.repeat(100_000) + '12345678901234567890' + ']'.repeat(100_000), /deeper than 256 levels/],
      ['a reply nested 100,000 deep', `{"wslink":"1.0","id":"rpc:c1:0","result":${deep}}`, /nested deeper than 256 levels/],
    ];
    for (const [what, text, pattern] of cases) {
      const a = await afterGarbage(new FakeServer({ generation: 1 }), [text]);
      assert.match(a.error.message, pattern, what);
      assertClosedOver(a, pattern, 1002);
    }
  });
});

describe('replies nobody asked for', () => {
  for (const generation of [2, 1] as const) {
    it(`${generation}.x: replies to ids never sent and duplicate replies are ignored`, async () => {
      const server = new FakeServer({ generation });
      const { c, errors } = await connected(server);
      const first = c.call('test.never');
      const id = lastId(server.last);
      const [, clientId, n] = id.split(':');
      const conn = server.last;
      // Before the real reply: one to the call not made yet (it must not be
      // kept for it), ids that overflow or do not parse, other clients'.
      for (const stray of [
        `rpc:${clientId}:${Number(n) + 1}`,
        `rpc:${clientId}:18446744073709551616`,
        `rpc:${clientId}:-1`,
        'rpc:other:0',
        'system:c0:0',
        '',
      ]) {
        conn.reply({ wslink: '1.0', id: stray, result: 'stray' });
      }
      conn.reply({ wslink: '1.0', id, result: 'first' });
      conn.reply({ wslink: '1.0', id, result: 'first again' });
      conn.reply({ wslink: '1.0', id, error: { code: -1, message: 'late error' } });
      assert.equal(await first, 'first');
      const second = c.call('test.never');
      conn.reply({ wslink: '1.0', id: lastId(conn), result: 'second' });
      assert.equal(await second, 'second');
      assert.deepEqual(errors, []);
      assert.equal(c.inFlight, 0);
      await stillWorks(c);
    });
  }
});

describe('publish floods', () => {
  it('chunked publishes keep nothing once delivered, whatever the pace of the subscriber', async () => {
    const server = new FakeServer({ maxMsgSize: 4096 });
    const { c, errors } = await connected(server);
    let seen = 0;
    let last = -1;
    c.subscribe('frames', (m) => {
      seen += 1;
      last = (m as { seq: number }).seq;
      // A slow subscriber: the socket's events wait for it, nothing piles up here.
      const deadline = Date.now() + (seen % 1000 === 0 ? 5 : 0);
      while (Date.now() < deadline);
    });
    const blob = new Uint8Array(16 * 1024);
    for (let seq = 0; seq < 5000; seq += 1) server.publish('frames', { seq, blob });
    assert.equal(seen, 5000);
    assert.equal(last, 4999);
    const r = reassemblerOf(c);
    assert.equal(r.pendingMessages, 0);
    assert.equal(r.pendingBytes, 0);
    assert.deepEqual(errors, []);
    await stillWorks(c);
  });

  it('publishes that never complete are bounded by the reassembly limits, then close the connection (1009)', async () => {
    const server = new FakeServer();
    let most = 0;
    const a = await afterGarbage(
      server,
      (conn, c) => {
        const r = reassemblerOf(c);
        const chunk = new Uint8Array(32 * 1024);
        for (let id = 0; id < 10_000; id += 1) {
          conn.socket.deliver(frame(id, 0, 100_000, chunk));
          assert.ok(r.pendingMessages <= 64 && r.pendingBytes <= MIB);
          most = Math.max(most, r.pendingBytes);
        }
        return [];
      },
      { limits: { maxPendingBytes: MIB } },
    );
    assertClosedOver(a, /would hold more than 1048576 bytes/, 1009);
    assert.equal(most, MIB);
  });
});

describe('1.x attachments out of step', () => {
  const header = (key: string): string => JSON.stringify({ wslink: '1.0', method: 'wslink.binary.attachment', args: [key] });

  it('a header without its binary leaves the key a string', async () => {
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server);
    const p = c.call('test.never');
    server.last.socket.deliver(header('wslink_bin77'));
    server.last.socket.deliver(JSON.stringify({ wslink: '1.0', id: lastId(server.last), result: { img: 'wslink_bin77' } }));
    assert.deepEqual(await p, { img: 'wslink_bin77' });
    assert.deepEqual(errors, []);
  });

  it('a binary without a header closes the connection (1002)', async () => {
    const a = await afterGarbage(new FakeServer({ generation: 1 }), [Uint8Array.from([0, 1])]);
    assertClosedOver(a, /without an attachment header/, 1002);
    assert.equal(codecV1Of(a.c).unclaimedAttachments, 0);
  });

  it('a flood of headers without binaries: 4096 keys are held, the 4097th closes the connection', async () => {
    let most = 0;
    const a = await afterGarbage(new FakeServer({ generation: 1 }), (conn, c) => {
      const codec = codecV1Of(c) as unknown as { announced: string[] };
      for (let i = 0; i < 10_000; i += 1) {
        conn.socket.deliver(header(`wslink_bin${i}`));
        most = Math.max(most, codec.announced.length);
      }
      return [];
    });
    assertClosedOver(a, /More than 4096 attachment keys announced/, 1002);
    assert.equal(most, 4096);
  });

  it('a key the size of a frame is refused (else 4096 of them would be held)', async () => {
    for (const key of [`wslink_bin${'7'.repeat(MIB)}`, 'not a key']) {
      const a = await afterGarbage(new FakeServer({ generation: 1 }), [header(key)]);
      assertClosedOver(a, /not a wslink_binN key/, 1002);
      assert.ok(a.error.message.length < 300, a.error.message.length.toString());
    }
  });

  it('attachments no message claims are bounded in number and bytes', async () => {
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server, { limits: { maxAttachmentBytes: MIB } });
    for (let i = 0; i < 10_000; i += 1) {
      server.last.socket.deliver(header(`wslink_bin${i}`));
      server.last.socket.deliver(new Uint8Array(1024));
    }
    assert.ok(codecV1Of(c).unclaimedAttachments <= 1024, `${codecV1Of(c).unclaimedAttachments}`);
    assertReported(errors, /Unclaimed attachment wslink_bin\d+ dropped/);
    await stillWorks(c);
  });
});

describe('servers that leave or stall', () => {
  for (const how of ['close frame', 'dropped connection'] as const) {
    it(`closing mid-chunked reply (${how}) rejects the calls in flight`, async () => {
      const server = new FakeServer({ maxMsgSize: 64 });
      const { c } = await connected(server);
      const a = c.call('test.never');
      const id = lastId(server.last);
      const b = c.call('test.never');
      const reply = chunkMessage(encode({ wslink: '1.0', id, result: 'a reply long enough to need several chunks' }), 32);
      assert.ok(reply.length > 2);
      server.last.socket.deliver(reply[0]!);
      server.last.socket.deliver(reply[1]!);
      if (how === 'close frame') server.last.socket.finishClose(1000, 'bye', true);
      else server.last.drop();
      await assert.rejects(a, isError('disconnected'));
      await assert.rejects(b, isError('disconnected'));
      await until(() => c.state === 'closed');
      await assert.rejects(c.call('test.add', [1, 2]), isError('not-connected'));
    });
  }

  for (const generation of [2, 1] as const) {
    it(`${generation}.x: a server that never answers the hello is a connect timeout`, async () => {
      const server = new FakeServer({ generation });
      server.hold = new Promise(() => {});
      const c = client(server, { connectTimeout: 100 });
      const started = Date.now();
      await assert.rejects(c.connect(), isError('timeout'));
      assert.ok(Date.now() - started < 2000);
      assert.equal(c.state, 'closed');
    });
  }

  it('a server flooding publishes instead of answering the hello is a connect timeout', async () => {
    const server = new FakeServer();
    server.hold = new Promise(() => {});
    const c = client(server, { connectTimeout: 200 });
    const errors: WslinkError[] = [];
    c.on('error', (e) => errors.push(e));
    const connecting = c.connect();
    await until(() => server.connections.length === 1 && server.last.received.length === 1);
    const conn = server.last;
    // Half a hello reply, then publishes until the client gives up.
    conn.socket.deliver(frame(1, 0, 1000, new Uint8Array(500).fill(0x83)));
    const blob = new Uint8Array(64 * 1024);
    const flood = setInterval(() => {
      for (let i = 0; i < 20; i += 1) conn.reply({ wslink: '1.0', id: 'publish:t:0', result: blob });
    }, 1);
    try {
      await assert.rejects(connecting, isError('timeout'));
    } finally {
      clearInterval(flood);
    }
    assert.deepEqual(
      errors.map((e) => e.kind),
      ['timeout'],
    );
    assert.equal(c.state, 'closed');
  });

  for (const generation of [2, 1] as const) {
    it(`${generation}.x: garbage instead of the hello reply fails connect() at once with the protocol error`, async () => {
      const server = new FakeServer({ generation });
      server.hold = new Promise(() => {});
      const c = client(server, { connectTimeout: 60_000 });
      const errors: WslinkError[] = [];
      const closes: CloseInfo[] = [];
      c.on('error', (e) => errors.push(e));
      c.on('close', (info) => closes.push(info));
      const connecting = c.connect();
      await until(() => server.connections.length === 1 && server.last.received.length === 1);
      server.last.socket.deliver(generation === 2 ? whole(nestedMsgpack(100_000)) : '{"wslink": ');
      const error = await rejectsAtOnce(connecting);
      assert.equal(error.kind, 'protocol');
      assert.equal(error.closeCode, 1002);
      assert.match(error.message, generation === 2 ? /nested deeper than 256 levels/ : /Malformed JSON/);
      // Reported once (as the failed attempt), not twice.
      assert.deepEqual(errors, [error]);
      assert.equal(server.last.socket.closeCalls[0]?.code, 1002);
      assert.equal(closes.length, 1);
      assert.equal(closes[0]?.code, 1002);
      assert.equal(c.state, 'closed');
    });
  }
});

describe('a protocol error closes the connection', () => {
  for (const generation of [2, 1] as const) {
    it(`${generation}.x: every call in flight rejects at once; the events report the close`, async () => {
      const server = new FakeServer({ generation });
      const { c, errors } = await connected(server);
      const states: [ConnectionState, ConnectionState][] = [];
      const disconnects: DisconnectInfo[] = [];
      const closes: CloseInfo[] = [];
      c.on('state', (state, previous) => states.push([state, previous]));
      c.on('disconnect', (info) => disconnects.push(info));
      c.on('close', (info) => closes.push(info));
      const published: unknown[] = [];
      c.subscribe('t', (m) => published.push(m));
      server.publish('t', 'before');
      const calls = ['test.never', 'test.sleep', 'test.never'].map((m) => c.call(m, m === 'test.sleep' ? [60_000] : []));
      const conn = server.last;
      conn.socket.deliver(generation === 2 ? whole(Uint8Array.from([0xc1])) : '{not json');
      const rejections = await Promise.all(calls.map((p) => rejectsAtOnce(p)));
      const reported = errors[0] as WslinkError;
      assert.equal(errors.length, 1);
      assert.equal(reported.kind, 'protocol');
      assert.equal(reported.closeCode, 1002);
      assert.match(reported.message, generation === 2 ? /Malformed msgpack/ : /Malformed JSON/);
      for (const [i, e] of rejections.entries()) {
        assert.ok(e instanceof WslinkError);
        assert.equal(e.kind, 'protocol');
        assert.equal(e.code, -32099);
        assert.equal(e.closeCode, 1002);
        assert.equal(e.cause, reported);
        assert.equal(e.method, i === 1 ? 'test.sleep' : 'test.never');
        assert.ok(e.message.includes(reported.message), e.message);
      }
      const reason = conn.socket.closeCalls[0]?.reason ?? '';
      assert.deepEqual(conn.socket.closeCalls, [{ code: 1002, reason }]);
      assert.ok(reason.length > 0 && reason.length <= 123, reason);
      assert.deepEqual(states, [['closed', 'open']]);
      assert.deepEqual(disconnects, [{ code: 1002, reason, wasClean: false, willReconnect: false }]);
      assert.deepEqual(closes, [{ code: 1002, reason, wasClean: false }]);
      // Nothing more is read from that socket, and nothing can be sent.
      conn.socket.readyState = 1;
      server.publish('t', 'after');
      assert.deepEqual(published, ['before']);
      await assert.rejects(c.call('test.add', [1, 2]), isError('not-connected'));
      // The server's answer to the close frame changes nothing.
      conn.socket.finishClose(1002, reason, true);
      assert.equal(c.state, 'closed');
      assert.equal(closes.length, 1);
    });
  }

  it('with reconnect, it is a drop like any other: a new connection, subscriptions kept', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server, { reconnect: { initialDelay: 5, jitter: 0 } });
    const disconnects: DisconnectInfo[] = [];
    const ready: boolean[] = [];
    const states: ConnectionState[] = [];
    c.on('disconnect', (info) => disconnects.push(info));
    c.on('ready', (info) => ready.push(info.reconnected));
    c.on('state', (state) => states.push(state));
    const published: unknown[] = [];
    c.subscribe('t', (m) => published.push(m));
    const first = server.last;
    const p = c.call('test.never');
    first.socket.deliver(frame(3, 0, 100, [])); // an empty chunk
    const e = await rejectsAtOnce(p);
    assert.equal(e.kind, 'protocol');
    assert.equal(e.closeCode, 1002);
    assert.deepEqual(
      disconnects.map((d) => [d.code, d.willReconnect]),
      [[1002, true]],
    );
    await until(() => c.state === 'open' && ready.length === 1);
    assert.deepEqual(ready, [true]);
    assert.deepEqual(states, ['reconnecting', 'open']);
    assert.notEqual(server.last, first);
    server.publish('t', 'on the new connection');
    assert.deepEqual(published, ['on the new connection']);
    await stillWorks(c);
    assert.equal(errors.length, 1);
    assert.equal(errors[0], e.cause);
  });

  it('where the WebSocket refuses 1002 (browsers), the close goes out as 1000 with the reason; events still say 1002', async () => {
    const server = new FakeServer({ generation: 1 });
    server.strictClose = true;
    // A bad key's error message is longer than a close reason may be.
    const a = await afterGarbage(server, [JSON.stringify({ wslink: '1.0', method: 'wslink.binary.attachment', args: [`wslink_bin${'7'.repeat(1000)}`] })]);
    const reason = a.disconnects[0]?.reason ?? '';
    assert.equal(a.error.closeCode, 1002);
    assert.deepEqual(a.conn.socket.closeCalls, [{ code: 1000, reason }]);
    assert.ok(reason.endsWith('...') && new TextEncoder().encode(reason).byteLength <= 123, reason);
    assert.equal(a.disconnects[0]?.code, 1002);
    assert.equal(a.closes[0]?.code, 1002);
  });

  it('the npm-style API hears it through onConnectionError and onConnectionClose', async () => {
    const server = new FakeServer();
    const connection = WebsocketConnection.newInstance({ urls: 'ws://fake/ws', WebSocket: server.WebSocket });
    const events: string[] = [];
    let error: unknown;
    connection.onConnectionReady(() => events.push('ready'));
    connection.onConnectionError((_c, e) => {
      events.push('error');
      error = e;
    });
    connection.onConnectionClose((_c, info) => events.push(`close ${info.code}`));
    const session = connection.connect();
    assert.ok(session);
    await until(() => events.includes('ready'));
    const p = session.call('test.never');
    server.last.socket.deliver(whole(Uint8Array.from([0x2a])));
    const e = await rejectsAtOnce(p);
    assert.equal(e.kind, 'protocol');
    await until(() => events.length === 3);
    assert.deepEqual(events, ['ready', 'error', 'close 1002']);
    assert.ok(error instanceof WslinkError && error.kind === 'protocol' && /not a wslink envelope/.test(error.message));
    connection.destroy(0);
  });

  it('is logged only to a logger given in the options', async () => {
    const lines: string[] = [];
    const logger = { warn: (...args: unknown[]) => lines.push(args.map(String).join(' ')) };
    const a = await afterGarbage(new FakeServer(), ['text'], { logger });
    assert.equal(a.error.kind, 'protocol');
    assert.ok(
      lines.some((l) => /Text frame received on a wslink 2.x connection/.test(l)),
      JSON.stringify(lines),
    );
  });
});

describe('1.x frame size limits', () => {
  const header = (key: string): string => JSON.stringify({ wslink: '1.0', method: 'wslink.binary.attachment', args: [key] });

  /** A 1.x result message for `id` of exactly `bytes` bytes of UTF-8, its result mostly `fill`. */
  function resultOfSize(id: string, bytes: number, fill: string): string {
    const encoder = new TextEncoder();
    const room = bytes - encoder.encode(JSON.stringify({ wslink: '1.0', id, result: '' })).byteLength;
    const unit = encoder.encode(fill).byteLength;
    const count = Math.floor(room / unit);
    const text = JSON.stringify({ wslink: '1.0', id, result: 'a'.repeat(room - count * unit) + fill.repeat(count) });
    assert.equal(encoder.encode(text).byteLength, bytes);
    return text;
  }

  it("defaults: 256 MiB for a text frame and for an attachment frame (the Rust client's)", () => {
    assert.equal(DEFAULT_ATTACHMENT_LIMITS.maxTextSize, 256 * MIB);
    assert.equal(DEFAULT_ATTACHMENT_LIMITS.maxAttachmentSize, 256 * MIB);
  });

  for (const fill of ['a', 'é', '€', '😀']) {
    it(`a text frame of maxTextSize bytes passes, one byte more closes the connection (1009); bytes of UTF-8 (${fill})`, async () => {
      const limit = 1200;
      const limits = { maxTextSize: limit };
      const server = new FakeServer({ generation: 1 });
      const { c, errors } = await connected(server, { limits });
      const p = c.call('test.never');
      const exact = resultOfSize(lastId(server.last), limit, fill);
      if (fill !== 'a') assert.ok(exact.length < limit, 'fewer characters than bytes');
      server.last.socket.deliver(exact);
      assert.equal(await p, (JSON.parse(exact) as { result: string }).result);
      assert.deepEqual(errors, []);

      const a = await afterGarbage(new FakeServer({ generation: 1 }), (conn) => [resultOfSize(lastId(conn), limit + 1, fill)], { limits });
      assertClosedOver(a, /Text frame over the limit of 1200 bytes/, 1009);
    });
  }

  it('an attachment frame of maxAttachmentSize bytes passes, one byte more closes the connection (1009)', async () => {
    const limits = { maxAttachmentSize: 1000 };
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server, { limits });
    const p = c.call('test.never');
    server.last.socket.deliver(header('wslink_bin1'));
    server.last.socket.deliver(new Uint8Array(1000).fill(7));
    server.last.socket.deliver(JSON.stringify({ wslink: '1.0', id: lastId(server.last), result: 'wslink_bin1' }));
    const bytes = await p;
    assert.ok(bytes instanceof Uint8Array && bytes.byteLength === 1000 && bytes[999] === 7);
    assert.deepEqual(errors, []);

    const a = await afterGarbage(new FakeServer({ generation: 1 }), [header('wslink_bin2'), new Uint8Array(1001)], { limits });
    assertClosedOver(a, /Binary frame of 1001 bytes over the limit of 1000 bytes/, 1009);
  });
});
