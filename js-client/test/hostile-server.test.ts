/**
 * The client against servers that lie, misbehave or attack. Every case must
 * end in a typed error (a rejected call, or a `protocol` error event with the
 * offending message dropped) or a closed connection; never an exception
 * escaping from the socket's event handlers, a stack overflow, a call that
 * waits forever, or memory that grows with what the server sends.
 *
 * The server is the in-process fake (a fake WebSocket class given to the
 * client), which lets each test send arbitrary frames.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { encode } from '@msgpack/msgpack';
import { chunkMessage, encodeHeader, HEADER_LENGTH, Reassembler } from '../src/chunking.js';
import type { CodecV1 } from '../src/codec-v1.js';
import { WslinkClient, type ClientOptions } from '../src/connection.js';
import { WslinkError } from '../src/errors.js';
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
  it('a header declaring 4 GiB is refused at the default limit', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server);
    server.last.socket.deliver(frame(7, 0, 0xffffffff, [1, 2, 3, 4]));
    assertReported(errors, /declared size 4294967295 exceeds the limit of 536870912 bytes/);
    await stillWorks(c);
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

  it('chunks past the end, overlapping, duplicate or changing size are reported and dropped', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server);
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
      errors.length = 0;
      for (const f of frames) server.last.socket.deliver(f);
      assert.equal(errors.length, 1, pattern.source);
      assertReported(errors, pattern);
    }
    assert.equal(reassemblerOf(c).pendingMessages, 0);
    await stillWorks(c);
  });

  it('100,000 partial messages: at most 64 are held, the rest reported', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server);
    const reassembler = reassemblerOf(c);
    for (let id = 0; id < 100_000; id += 1) server.last.socket.deliver(frame(id, 0, 2, [1]));
    assert.equal(reassembler.pendingMessages, 64);
    assert.equal(reassembler.pendingBytes, 64);
    assert.equal(errors.length, 100_000 - 64);
    assertReported(errors, /dropped: more than 64 partial messages/);
    await stillWorks(c);
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
  it('2.x: malformed msgpack and 100,000 levels of nesting are reported, not thrown', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server);
    const cases: [string, Uint8Array, RegExp][] = [
      ['undefined marker', Uint8Array.from([0xc1]), /Malformed msgpack/],
      ['array claiming 4 billion elements', Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]), /Malformed msgpack/],
      ['binary claiming 4 GiB', Uint8Array.from([0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]), /Malformed msgpack/],
      ['map claiming 4 billion entries', Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]), /Malformed msgpack/],
      ['not an envelope', Uint8Array.from([0x2a]), /not a wslink envelope/],
      ['100,000 nested arrays', nestedMsgpack(100_000), /nested deeper than 256 levels/],
    ];
    for (const [what, msgpack, pattern] of cases) {
      errors.length = 0;
      server.last.socket.deliver(whole(msgpack));
      assert.equal(errors.length, 1, what);
      assertReported(errors, pattern);
    }
    await stillWorks(c);
  });

  it('2.x: a reply nested 100,000 deep is dropped; the call ends with its timeout', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server);
    const p = c.call('test.never', [], {}, { timeout: 100 });
    // {"id": ID, "result": [[[...]]]}
    const head = encode({ id: lastId(server.last) });
    const m = new Uint8Array(head.byteLength + 7 + 100_001);
    m.set(head);
    m[0] = 0x82;
    m.set([0xa6, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74], head.byteLength);
    m.set(nestedMsgpack(100_000), head.byteLength + 7);
    for (const f of chunkMessage(m, 4096)) server.last.socket.deliver(f);
    await assert.rejects(p, isError('timeout'));
    assertReported(errors, /nested deeper than 256 levels/);
    await stillWorks(c);
  });

  it('1.x: malformed JSON and 100,000 levels of nesting are reported, not thrown', async () => {
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server);
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
      errors.length = 0;
      server.last.socket.deliver(text);
      assert.equal(errors.length, 1, what);
      assertReported(errors, pattern);
    }
    await stillWorks(c);
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

  it('publishes that never complete are bounded by the reassembly limits', async () => {
    const server = new FakeServer();
    const { c, errors } = await connected(server, { limits: { maxPendingBytes: MIB } });
    const r = reassemblerOf(c);
    const chunk = new Uint8Array(32 * 1024);
    for (let id = 0; id < 10_000; id += 1) {
      server.last.socket.deliver(frame(id, 0, 100_000, chunk));
      assert.ok(r.pendingMessages <= 64 && r.pendingBytes <= MIB);
    }
    assertReported(errors, /would hold more than 1048576 bytes|more than 64 partial messages/);
    await stillWorks(c);
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

  it('a binary without a header is reported and dropped', async () => {
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server);
    server.last.socket.deliver(Uint8Array.from([0, 1]));
    assertReported(errors, /without an attachment header/);
    assert.equal(codecV1Of(c).unclaimedAttachments, 0);
    await stillWorks(c);
  });

  it('a flood of headers without binaries keeps the newest 4096 keys', async () => {
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server);
    for (let i = 0; i < 10_000; i += 1) server.last.socket.deliver(header(`wslink_bin${i}`));
    const announced = (codecV1Of(c) as unknown as { announced: string[] }).announced;
    assert.equal(announced.length, 4096);
    assert.equal(announced[0], `wslink_bin${10_000 - 4096}`);
    assertReported(errors, /More than 4096 attachment keys announced/);
    await stillWorks(c);
  });

  it('a key the size of a frame is refused (else 4096 of them would be held)', async () => {
    const server = new FakeServer({ generation: 1 });
    const { c, errors } = await connected(server);
    server.last.socket.deliver(header(`wslink_bin${'7'.repeat(MIB)}`));
    server.last.socket.deliver(header('not a key'));
    assert.equal(errors.length, 2);
    assertReported(errors, /not a wslink_binN key \(header ignored\)/);
    assert.ok(errors.every((e) => e.message.length < 300), errors[0]?.message.length.toString());
    assert.equal((codecV1Of(c) as unknown as { announced: string[] }).announced.length, 0);
    await stillWorks(c);
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

  it('a server flooding instead of answering the hello is a connect timeout', async () => {
    const server = new FakeServer();
    server.hold = new Promise(() => {});
    const c = client(server, { connectTimeout: 200 });
    const errors: WslinkError[] = [];
    c.on('error', (e) => errors.push(e));
    const connecting = c.connect();
    await until(() => server.connections.length === 1 && server.last.received.length === 1);
    const conn = server.last;
    // Half a hello reply, then publishes and garbage until the client gives up.
    conn.socket.deliver(frame(1, 0, 1000, new Uint8Array(500).fill(0x83)));
    const blob = new Uint8Array(64 * 1024);
    const flood = setInterval(() => {
      for (let i = 0; i < 20; i += 1) conn.reply({ wslink: '1.0', id: 'publish:t:0', result: blob });
      conn.socket.deliver(whole(nestedMsgpack(100_000)));
    }, 1);
    try {
      await assert.rejects(connecting, isError('timeout'));
    } finally {
      clearInterval(flood);
    }
    assert.ok(errors.some((e) => e.kind === 'protocol' && /nested deeper/.test(e.message)));
    assert.equal(c.state, 'closed');
  });
});
