#!/usr/bin/env node
// Conformance client runner built on Kitware's OFFICIAL npm wslink client,
// used unmodified: the browser bundle dist/wslink.js of wslink 2.5.0
// ("wslink-2") or 1.12.4 ("wslink-1") from tests/peers/node_modules
// (installed by tests/peers/install.sh).
//
//   node --experimental-websocket tests/conformance/npm-client.mjs \
//        --url ws://127.0.0.1:PORT/ws --secret S --generation 2|1 \
//        [--cases id,id,...] [--timeout MS]
//
// Runs every case of tests/conformance/CASES.md and prints one line per case
// (`ok <id>`, `fail <id>: <reason>`, `skip <id>: <reason>`), then the last
// line `N passed, M failed, K skipped`. Exit code 0 iff M is 0. The shared
// runner interface is described in tests/conformance/README.md.
//
// Each case opens its own connection(s), so a case that breaks its
// connection (e.g. a frame too large for Node) cannot spoil the next one.

import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Node 20 only has a global WebSocket behind --experimental-websocket: if it
// is missing, run this script again with the flag.
if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawnSync(
    process.execPath,
    ['--experimental-websocket', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(child.status ?? 1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const peers = path.resolve(here, '../peers');

// --------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const opts = { url: null, secret: 'wslink-secret', generation: '2', cases: null, timeout: 20000 };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--url') opts.url = value();
    else if (arg === '--secret') opts.secret = value();
    else if (arg === '--generation') opts.generation = value();
    else if (arg === '--cases') opts.cases = value().split(',').filter(Boolean);
    else if (arg === '--timeout') opts.timeout = Number(value());
    else if (arg === '-h' || arg === '--help') usage(null);
    else usage(`unknown argument ${arg}`);
  }
  if (!opts.url) usage('--url is required');
  if (opts.generation !== '1' && opts.generation !== '2') usage('--generation must be 2 or 1');
  return opts;
}

function usage(problem) {
  if (problem) process.stderr.write(`npm-client: ${problem}\n`);
  process.stderr.write(
    'usage: node --experimental-websocket npm-client.mjs --url ws://HOST:PORT/ws ' +
      '[--secret S] [--generation 2|1] [--cases id,...] [--timeout MS]\n',
  );
  process.exit(problem ? 2 : 0);
}

const opts = parseArgs(process.argv.slice(2));
const GEN = Number(opts.generation);

// --------------------------------------------------------------------------
// Load the official client. The bundle is built for browsers: it needs
// `self` at load time, and parts of it look at window.location and
// document.baseURI.

const fakeLocation = {
  href: 'http://127.0.0.1/',
  origin: 'http://127.0.0.1',
  protocol: 'http:',
  host: '127.0.0.1',
  hostname: '127.0.0.1',
  port: '',
  pathname: '/',
  search: '',
  hash: '',
};
globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= fakeLocation;
globalThis.document ??= { baseURI: fakeLocation.href };

// The npm client logs with console.log (e.g. "session message id without
// matching call, dropped"); keep stdout for the result lines only.
console.log = (...args) => console.error(...args);

const require = createRequire(import.meta.url);
const wslink = require(path.join(peers, 'node_modules', `wslink-${GEN}`, 'dist', 'wslink.js'));
const wslinkVersion = require(path.join(peers, 'node_modules', `wslink-${GEN}`, 'package.json')).version;
const msgpack = require(path.join(peers, 'node_modules', '@msgpack', 'msgpack'));

// --------------------------------------------------------------------------
// Helpers

const LARGE = 6 * 1024 * 1024;
const TOPIC = 'conformance.topic';

/** bytes(size, seed): byte i is (i * 31 + seed) % 251. */
function pattern(size, seed = 0) {
  const out = new Uint8Array(size);
  const period = Math.min(251, size);
  for (let i = 0; i < period; i += 1) out[i] = (i * 31 + seed) % 251;
  for (let filled = period; filled < size; filled *= 2) {
    out.copyWithin(filled, 0, Math.min(filled, size - filled));
  }
  return out;
}

function byteSum(bytes) {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 1) sum += bytes[i];
  return sum % 2 ** 32;
}

class CaseFailure extends Error {}
class CaseSkip extends Error {}

function fail(reason) {
  throw new CaseFailure(reason);
}

function short(text, max = 200) {
  const s = String(text);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

function isBinary(v) {
  return v instanceof Uint8Array || v instanceof ArrayBuffer || ArrayBuffer.isView(v) || v instanceof Blob;
}

/** Replaces, at any depth, Blob / ArrayBuffer / views by Uint8Array. */
async function normalize(v) {
  if (v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return Promise.all(v.map(normalize));
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = await normalize(x);
    return out;
  }
  return v;
}

function describe(v) {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `binary(${v.length} bytes)`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (typeof v === 'object') return `object{${Object.keys(v).join(',')}}`;
  if (typeof v === 'string') return short(JSON.stringify(v), 80);
  if (typeof v === 'bigint') return `${v}n`;
  return `${typeof v} ${String(v)}`;
}

/** First difference between expected and actual (normalized), or null. */
function difference(expected, actual, where = '$') {
  if (expected instanceof Uint8Array) {
    if (!(actual instanceof Uint8Array)) return `${where}: expected binary(${expected.length} bytes), got ${describe(actual)}`;
    if (expected.length !== actual.length) return `${where}: expected ${expected.length} bytes, got ${actual.length} bytes`;
    const a = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
    const b = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
    if (!a.equals(b)) {
      let i = 0;
      while (a[i] === b[i]) i += 1;
      return `${where}: bytes differ first at index ${i} (expected ${a[i]}, got ${b[i]})`;
    }
    return null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${where}: expected ${describe(expected)}, got ${describe(actual)}`;
    if (expected.length !== actual.length) return `${where}: expected ${expected.length} items, got ${actual.length}`;
    for (let i = 0; i < expected.length; i += 1) {
      const d = difference(expected[i], actual[i], `${where}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual) || actual instanceof Uint8Array) {
      return `${where}: expected ${describe(expected)}, got ${describe(actual)}`;
    }
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(actual).sort();
    if (ek.join('\u0001') !== ak.join('\u0001')) return `${where}: expected keys [${ek}], got keys [${ak}]`;
    for (const k of ek) {
      const d = difference(expected[k], actual[k], `${where}.${k}`);
      if (d) return d;
    }
    return null;
  }
  if (typeof expected !== typeof actual || !Object.is(expected, actual)) {
    return `${where}: expected ${describe(expected)}, got ${describe(actual)}`;
  }
  return null;
}

async function assertSame(expected, actual) {
  const d = difference(expected, await normalize(actual));
  if (d) fail(d);
}

function errorText(err) {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object') {
    if ('code' in err || 'message' in err) return `error ${err.code}: ${err.message}`;
    if (err.type) return `event ${err.type}`;
  }
  return short(JSON.stringify(err));
}

/** Expects a call to be rejected with a wslink error; returns the error. */
async function expectError(promise) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    if (err instanceof CaseFailure) throw err;
    if (err && typeof err === 'object' && 'code' in err) return err;
    fail(`expected a wslink error reply, got ${errorText(err)}`);
  }
  return fail(`expected an error reply, got result ${describe(await normalize(result))}`);
}

// --------------------------------------------------------------------------
// Connections through the official client

// The client id is only known inside the npm client (its hello promise
// resolves with it, but nothing public exposes it). To check it without
// touching the client, every WebSocket it creates gets a passive extra
// 'message' listener that decodes frames until it sees the hello reply
// (id "system:c0:0"), then removes itself.
const NativeWebSocket = globalThis.WebSocket;
let lastSocket = null;

class HelloTapWebSocket extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    lastSocket = this;
    let resolveHello;
    this.helloReply = new Promise((res) => {
      resolveHello = res;
    });
    const unchunker = new Unchunker();
    const listener = async (event) => {
      try {
        let message = null;
        if (typeof event.data === 'string') {
          message = JSON.parse(event.data);
        } else if (GEN >= 2) {
          const data = event.data instanceof Blob ? await event.data.arrayBuffer() : event.data;
          message = unchunker.push(data);
        }
        if (message && message.id === 'system:c0:0') {
          this.removeEventListener('message', listener);
          resolveHello(message);
        }
      } catch (_) {
        /* not ours to judge: the client reports its own decoding problems */
      }
    };
    this.addEventListener('message', listener);
  }
}
globalThis.WebSocket = HelloTapWebSocket;

/**
 * Everything a case opens is registered here so it is closed when the case
 * ends, whatever the outcome.
 */
class CaseContext {
  constructor() {
    this.closers = [];
  }

  /**
   * Connects with the official client. Resolves { session, clientID, closed,
   * call } once the hello reply is accepted; rejects with what the client
   * reported (the hello error object, or a connection event).
   */
  connect(secret = opts.secret) {
    return new Promise((resolve, reject) => {
      const connection = wslink.WebsocketConnection.newInstance({ urls: opts.url, secret });
      let settled = false;
      let closeInfo = null;
      let onClosed = () => {};
      const closed = new Promise((res) => {
        onClosed = res;
      });
      this.closers.push(() => {
        const session = connection.getSession();
        if (session && closeInfo === null) {
          try {
            session.close();
          } catch (_) {
            /* already closed */
          }
        }
      });
      let socket = null;
      connection.onConnectionReady(async () => {
        if (settled) return;
        settled = true;
        const session = connection.getSession();
        // (the tap decodes the same frame as the client; allow it a moment)
        const hello = await Promise.race([socket.helloReply, new Promise((res) => setTimeout(res, 2000, null))]);
        const clientID = hello && hello.result ? hello.result.clientID : undefined;
        const closedReject = closed.then((info) => {
          throw new CaseFailure(`connection closed (code ${info.code}${info.reason ? `, ${info.reason}` : ''}) before the reply`);
        });
        closedReject.catch(() => {});
        resolve({
          session,
          clientID,
          closed,
          // a call that fails fast when the connection drops: the npm client
          // itself leaves such calls pending forever.
          call: (method, args = [], kwargs = {}) => Promise.race([session.call(method, args, kwargs), closedReject]),
        });
      });
      connection.onConnectionError((_, err) => {
        if (settled) return;
        settled = true;
        reject(err);
      });
      connection.onConnectionClose((_, event) => {
        closeInfo = { code: event && event.code, reason: event && event.reason };
        onClosed(closeInfo);
        if (!settled) {
          settled = true;
          reject(new Error(`connection closed (code ${closeInfo.code}) before hello completed`));
        }
      });
      const session = connection.connect();
      socket = lastSocket; // connect() constructs the WebSocket synchronously
      if (!session) {
        settled = true;
        reject(new Error('connect() returned no session'));
      }
    });
  }

  /** Session-level binary argument: raw Uint8Array in 2.x, attachment in 1.x. */
  static binaryArg(session, bytes) {
    return GEN >= 2 ? bytes : session.addAttachment(bytes);
  }

  close() {
    for (const closer of this.closers.splice(0)) closer();
  }
}

/** Walks a value, handing every Uint8Array to the session as a binary arg. */
function withBinaries(session, value) {
  if (value instanceof Uint8Array) return CaseContext.binaryArg(session, value);
  if (Array.isArray(value)) return value.map((v) => withBinaries(session, v));
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = withBinaries(session, v);
    return out;
  }
  return value;
}

async function echoCase(ctx, value) {
  const c = await ctx.connect();
  const result = await c.call('conformance.echo', [withBinaries(c.session, value)]);
  await assertSame(value, result);
}

// --------------------------------------------------------------------------
// hello.call-before: bypasses the npm client, which refuses to send before
// hello (it rejects client-side with -32099). A correctly encoded call goes
// out on a plain WebSocket instead: msgpack behind a 12-byte chunk header
// for 2.x, a JSON text frame for 1.x.

function encodeChunk2x(message) {
  const body = msgpack.encode(message);
  const frame = new Uint8Array(12 + body.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 0x5eed, true); // message id
  view.setUint32(4, 0, true); // offset
  view.setUint32(8, body.length, true); // total size
  frame.set(body, 12);
  return frame;
}

/** Reassembles 2.x chunks into messages. */
class Unchunker {
  constructor() {
    this.pending = new Map();
  }

  push(buffer) {
    const bytes = new Uint8Array(buffer);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const id = view.getUint32(0, true);
    const offset = view.getUint32(4, true);
    const total = view.getUint32(8, true);
    let entry = this.pending.get(id);
    if (!entry) {
      entry = { content: new Uint8Array(total), received: 0 };
      this.pending.set(id, entry);
    }
    entry.content.set(bytes.subarray(12), offset);
    entry.received += bytes.length - 12;
    if (entry.received < total) return null;
    this.pending.delete(id);
    return msgpack.decode(entry.content);
  }
}

async function callBeforeHello(ctx) {
  const id = 'rpc:c0:0';
  const call = { wslink: '1.0', id, method: 'conformance.add', args: [2, 3], kwargs: {} };
  const ws = new NativeWebSocket(opts.url);
  ws.binaryType = 'arraybuffer';
  ctx.closers.push(() => ws.close());
  const unchunker = new Unchunker();
  const replies = [];
  let gotReply;
  const firstReply = new Promise((res) => {
    gotReply = res;
  });
  ws.onmessage = (event) => {
    let message = null;
    if (typeof event.data === 'string') message = JSON.parse(event.data);
    else if (GEN >= 2) message = unchunker.push(event.data);
    if (message && message.id === id) {
      replies.push(message);
      gotReply(message);
    }
  };
  const closed = new Promise((_, rej) => {
    ws.onclose = (event) => rej(new CaseFailure(`connection closed (code ${event.code}) without a reply`));
  });
  closed.catch(() => {});
  await Promise.race([
    new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = () => rej(new CaseFailure('could not open the WebSocket'));
    }),
    closed,
  ]);
  ws.send(GEN >= 2 ? encodeChunk2x(call) : JSON.stringify(call));
  const reply = await Promise.race([firstReply, closed]);
  // Give a (wrong) result reply time to arrive as well.
  await new Promise((res) => setTimeout(res, 300));
  if (replies.some((r) => 'result' in r)) fail(`got a result: ${short(JSON.stringify(replies))}`);
  if (!reply.error) fail(`reply without error: ${short(JSON.stringify(reply))}`);
  if (reply.error.code !== -32000) fail(`expected error -32000, got ${reply.error.code} (${reply.error.message})`);
  if (replies.length !== 1) fail(`expected one reply, got ${replies.length}`);
}

// --------------------------------------------------------------------------
// The cases of CASES.md, in its order.

const INT_SAFE = [0, 1, -1, 127, 128, -33, 255, 65535, 2147483647, -2147483648, 4294967295, 9007199254740991, -9007199254740991];
const INT64 = [9007199254740993n, -9007199254740993n, 9223372036854775807n, -9223372036854775808n, 18446744073709551615n];

const CASES = [
  [
    'hello.ok',
    async (ctx) => {
      const c = await ctx.connect();
      if (typeof c.clientID !== 'string' || !/^\w+$/.test(c.clientID)) fail(`client id ${describe(c.clientID)} does not match ^\\w+$`);
    },
  ],
  [
    'hello.wrong-secret',
    async (ctx) => {
      let err = null;
      try {
        await ctx.connect(`${opts.secret}-but-wrong`);
      } catch (e) {
        err = e;
      }
      if (err === null) fail('hello with a wrong secret succeeded');
      if (!err || err.code !== -32000) fail(`expected error -32000, got ${errorText(err)}`);
    },
  ],
  ['hello.call-before', callBeforeHello],
  ['echo.null', (ctx) => echoCase(ctx, null)],
  ['echo.bool', (ctx) => echoCase(ctx, [true, false])],
  [
    'echo.string',
    async (ctx) => {
      await echoCase(ctx, 'hello');
      await echoCase(ctx, '');
    },
  ],
  [
    'echo.unicode',
    async (ctx) => {
      const text = 'a\u0000b \u2603 \u{1F600} \u65E5\u672C\u8A9E e\u0301';
      const c = await ctx.connect();
      const got = await c.call('conformance.echo', [text]);
      if (typeof got !== 'string') fail(`expected a string, got ${describe(got)}`);
      const want = Buffer.from(text, 'utf8');
      const have = Buffer.from(got, 'utf8');
      if (!want.equals(have)) fail(`UTF-8 differs: expected ${want.toString('hex')}, got ${have.toString('hex')}`);
    },
  ],
  ['echo.int-safe', (ctx) => echoCase(ctx, INT_SAFE)],
  [
    'echo.int64',
    async (ctx) => {
      // JS numbers are doubles and the npm client has no int64 type: try
      // BigInt first, then the nearest numbers, and report what happened.
      const c = await ctx.connect();
      const notes = [];
      try {
        const got = await c.call('conformance.echo', [INT64]);
        const same = Array.isArray(got) && got.length === INT64.length && got.every((v, i) => BigInt.asIntN(128, BigInt(v)) === INT64[i]);
        if (same) return;
        notes.push(`BigInt args came back as [${(got || []).map(String)}]`);
      } catch (err) {
        if (err instanceof CaseFailure) throw err;
        notes.push(`client refuses BigInt args (${errorText(err)})`);
      }
      const asNumbers = INT64.map(Number);
      const got = await c.call('conformance.echo', [asNumbers]);
      const exact = INT64.map(String);
      const seen = Array.isArray(got) ? got.map((v) => (typeof v === 'number' ? BigInt(v).toString() : String(v))) : [String(got)];
      const wrong = exact
        .map((want, i) => (seen[i] === want ? null : `${want} -> ${seen[i]}`))
        .filter(Boolean);
      if (wrong.length === 0) return;
      notes.push(`as JS numbers the values are sent and received inexactly: ${wrong.join(', ')}`);
      // The receiving side alone: the server computes an exact int64 from
      // two safe integers.
      const sum = await c.call('conformance.add', [9007199254740991, 2]);
      if (typeof sum !== 'number' || BigInt(sum) !== 9007199254740993n) {
        notes.push(`decoding: add(9007199254740991, 2) = 9007199254740993 arrives as ${typeof sum === 'number' ? BigInt(sum) : describe(sum)}`);
      }
      fail(`int64 not representable by the npm client: ${notes.join('; ')}`);
    },
  ],
  ['echo.float', (ctx) => echoCase(ctx, [0.5, -1.25, 1e300, -2.5e-300, 3.141592653589793])],
  ['echo.nested', (ctx) => echoCase(ctx, { a: [1, { b: [true, null, 'x'] }], c: { d: { e: { f: [[], {}] } } } })],
  ['echo.binary-empty', (ctx) => echoCase(ctx, new Uint8Array(0))],
  ['echo.binary-small', (ctx) => echoCase(ctx, pattern(1024, 5))],
  ['echo.binary-nested', (ctx) => echoCase(ctx, { x: [pattern(10, 1), { y: pattern(20, 2) }], z: pattern(30, 3) })],
  ['echo.binary-large', (ctx) => echoCase(ctx, pattern(LARGE, 9))],
  [
    'add.ints',
    async (ctx) => {
      const c = await ctx.connect();
      await assertSame(5, await c.call('conformance.add', [2, 3]));
    },
  ],
  [
    'add.floats',
    async (ctx) => {
      const c = await ctx.connect();
      await assertSame(0.75, await c.call('conformance.add', [0.5, 0.25]));
    },
  ],
  [
    'kwargs.mixed',
    async (ctx) => {
      const c = await ctx.connect();
      const got = await c.call('conformance.kwargs', [1, 'a'], { x: 1, y: [true] });
      await assertSame({ args: [1, 'a'], kwargs: { x: 1, y: [true] } }, got);
    },
  ],
  [
    'blob.empty',
    async (ctx) => {
      const c = await ctx.connect();
      await assertSame({ size: 0, blob: new Uint8Array(0) }, await c.call('conformance.blob', [0]));
    },
  ],
  [
    'blob.small',
    async (ctx) => {
      const c = await ctx.connect();
      await assertSame({ size: 1000, blob: pattern(1000, 7) }, await c.call('conformance.blob', [1000, 7]));
    },
  ],
  [
    'blob.large',
    async (ctx) => {
      const c = await ctx.connect();
      await assertSame({ size: LARGE, blob: pattern(LARGE, 3) }, await c.call('conformance.blob', [LARGE, 3]));
    },
  ],
  [
    'digest.small',
    async (ctx) => {
      const c = await ctx.connect();
      const data = pattern(1000, 4);
      const got = await c.call('conformance.digest', [CaseContext.binaryArg(c.session, data)]);
      await assertSame({ len: 1000, sum: byteSum(data) }, got);
    },
  ],
  [
    'digest.large',
    async (ctx) => {
      const c = await ctx.connect();
      const data = pattern(LARGE, 8);
      const got = await c.call('conformance.digest', [CaseContext.binaryArg(c.session, data)]);
      await assertSame({ len: LARGE, sum: byteSum(data) }, got);
    },
  ],
  [
    'error.exception',
    async (ctx) => {
      const c = await ctx.connect();
      const err = await expectError(c.call('conformance.fail', ['boom-42']));
      if (err.code !== -32001) fail(`expected code -32001, got ${err.code} (${err.message})`);
      if (err.message !== 'Exception raised') fail(`expected message "Exception raised", got ${describe(err.message)}`);
      const exception = err.data && err.data.exception;
      if (typeof exception !== 'string' || !exception.includes('boom-42')) fail(`data.exception ${describe(exception)} does not contain boom-42`);
    },
  ],
  [
    'error.unknown-method',
    async (ctx) => {
      const c = await ctx.connect();
      const err = await expectError(c.call('conformance.nope', []));
      if (err.code !== -32601) fail(`expected code -32601, got ${err.code} (${err.message})`);
    },
  ],
  [
    'publish.order',
    async (ctx) => {
      const COUNT = 20;
      const SIZE = 1024;
      const a = await ctx.connect();
      const b = await ctx.connect();
      const received = [[], []];
      let notify = () => {};
      const done = () => received.every((r) => r.length >= COUNT);
      const allIn = new Promise((res) => {
        notify = () => done() && res();
      });
      [a, b].forEach((c, n) => {
        const sub = c.session.subscribe(TOPIC, (args) => {
          received[n].push(args[0]);
          notify();
        });
        return sub.promise;
      });
      const count = await a.call('conformance.publish', [TOPIC, COUNT, SIZE]);
      if (count !== COUNT) fail(`publish returned ${describe(count)}, expected ${COUNT}`);
      await Promise.race([allIn, a.closed.then(() => fail('first connection closed')), b.closed.then(() => fail('second connection closed'))]);
      await new Promise((res) => setTimeout(res, 200)); // let extra messages show up
      for (let n = 0; n < 2; n += 1) {
        const got = await normalize(received[n]);
        if (got.length !== COUNT) fail(`connection ${n + 1} got ${got.length} messages, expected ${COUNT}`);
        const seqs = got.map((m) => (m && typeof m === 'object' ? m.seq : m));
        const d = difference(
          Array.from({ length: COUNT }, (_, i) => i),
          seqs,
        );
        if (d) fail(`connection ${n + 1}: seq order [${seqs}] (${d})`);
        const d2 = difference(
          Array.from({ length: COUNT }, (_, i) => ({ seq: i, blob: pattern(SIZE, i) })),
          got,
        );
        if (d2) fail(`connection ${n + 1}: ${d2}`);
      }
    },
  ],
  [
    'sleep.concurrent',
    async (ctx) => {
      const c = await ctx.connect();
      const start = performance.now();
      const got = await Promise.all([0, 1, 2, 3].map(() => c.call('conformance.sleep', [400])));
      const elapsed = Math.round(performance.now() - start);
      await assertSame([400, 400, 400, 400], got);
      if (elapsed >= 1200) fail(`four concurrent sleep(400) calls took ${elapsed} ms (>= 1200 ms: they did not overlap)`);
    },
  ],
];

// --------------------------------------------------------------------------
// Runner

function line(text) {
  process.stdout.write(`${text.replace(/[\r\n]+/g, ' ')}\n`);
}

async function runCase(id, fn) {
  const ctx = new CaseContext();
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new CaseFailure(`timed out after ${opts.timeout} ms`)), opts.timeout);
  });
  try {
    await Promise.race([fn(ctx), timeout]);
    return ['ok', null];
  } catch (err) {
    if (err instanceof CaseSkip) return ['skip', err.message];
    if (err instanceof CaseFailure) return ['fail', err.message];
    return ['fail', `unexpected ${errorText(err)}`];
  } finally {
    clearTimeout(timer);
    ctx.close();
  }
}

async function main() {
  process.stderr.write(`npm-client: official npm wslink ${wslinkVersion} (generation ${GEN}) -> ${opts.url}\n`);
  const selected = opts.cases ? CASES.filter(([id]) => opts.cases.includes(id)) : CASES;
  if (opts.cases) {
    for (const id of opts.cases) {
      if (!CASES.some(([known]) => known === id)) process.stderr.write(`npm-client: unknown case ${id}\n`);
    }
  }
  const counts = { ok: 0, fail: 0, skip: 0 };
  for (const [id, fn] of selected) {
    const [status, reason] = await runCase(id, fn);
    counts[status] += 1;
    line(reason === null ? `${status} ${id}` : `${status} ${id}: ${reason}`);
  }
  line(`${counts.ok} passed, ${counts.fail} failed, ${counts.skip} skipped`);
  // Connections of timed-out cases may keep the event loop alive.
  process.exit(counts.fail === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`npm-client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
