#!/usr/bin/env node
// Conformance client runner built on the project's TypeScript client
// (js-client, compiled to js-client/dist by `npm run build` there).
//
//   node --experimental-websocket tests/conformance/ts-client.mjs \
//        --url ws://127.0.0.1:PORT/ws --secret S --generation 2|1 \
//        [--cases id,id,...] [--timeout MS]
//
// Runs every case of tests/conformance/CASES.md and prints one line per case
// (`ok <id>`, `fail <id>: <reason>`, `skip <id>: <reason>`), then the last
// line `N passed, M failed, K skipped`. Exit code 0 iff M is 0. The runner
// interface is described in tests/conformance/README.md.
//
// Cases use the client's modern API (connect / call / subscribe); publish.order
// puts one of its two connections on the npm-compatible API
// (WebsocketConnection + session.subscribe, callback receiving [result]).
// hello.call-before sends its call on a plain WebSocket, encoded with the
// client's own codec, since the client itself never calls before its hello.
// Each case opens its own connection(s) and closes them, whatever happens.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

// Node 20 has a global WebSocket only with --experimental-websocket: if it is
// missing, run this script again with the flag.
if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawnSync(
    process.execPath,
    ['--experimental-websocket', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(child.status ?? 1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const distEntry = path.resolve(here, '../../js-client/dist/src/index.js');

// --------------------------------------------------------------------------
// Command line

function usage(problem) {
  if (problem) process.stderr.write(`ts-client: ${problem}\n`);
  process.stderr.write(
    'usage: node --experimental-websocket ts-client.mjs --url ws://HOST:PORT/ws ' +
      '[--secret S] [--generation 2|1] [--cases id,...] [--timeout MS]\n',
  );
  process.exit(problem ? 2 : 0);
}

function parseArgs(argv) {
  const o = { url: null, secret: 'wslink-secret', generation: '2', cases: null, timeout: 20000 };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--url') o.url = value();
    else if (arg === '--secret') o.secret = value();
    else if (arg === '--generation') o.generation = value();
    else if (arg === '--cases') o.cases = value().split(',').filter(Boolean);
    else if (arg === '--timeout') o.timeout = Number(value());
    else if (arg === '-h' || arg === '--help') usage(null);
    else usage(`unknown argument ${arg}`);
  }
  if (!o.url) usage('--url is required');
  if (o.generation !== '1' && o.generation !== '2') usage('--generation must be 2 or 1');
  if (!Number.isFinite(o.timeout) || o.timeout <= 0) usage('--timeout must be a positive number of ms');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const GEN = Number(opts.generation);

if (!fs.existsSync(distEntry)) {
  process.stderr.write(`ts-client: ${distEntry} is missing; run \`npm ci && npm run build\` in js-client first\n`);
  process.exit(2);
}
const wslink = await import(pathToFileURL(distEntry).href);
const { connect, WebsocketConnection, WslinkError, createCodec, request } = wslink;

// --------------------------------------------------------------------------
// Helpers

const LARGE = 6 * 1024 * 1024;

class CaseFailure extends Error {}
class CaseSkip extends Error {}

function fail(reason) {
  throw new CaseFailure(reason);
}

/** bytes(size, seed) of the conformance spec: byte i is (i * 31 + seed) % 251. */
function pattern(size, seed = 0) {
  const out = new Uint8Array(size);
  const period = Math.min(size, 251);
  for (let i = 0; i < period; i += 1) out[i] = (i * 31 + seed) % 251;
  for (let filled = period; filled < size; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, size - filled));
  return out;
}

function short(text, max = 160) {
  const s = String(text).replace(/[\r\n]+/g, ' ');
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

function describe(value, depth = 0) {
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  if (depth > 4) return '...';
  if (Array.isArray(value)) return `[${value.map((v) => describe(v, depth + 1)).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.keys(value).map((k) => `${JSON.stringify(k)}: ${describe(value[k], depth + 1)}`).join(', ')}}`;
  }
  return String(value);
}

function bytesEqual(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Strict structural comparison: same types (binary as Uint8Array, int64 as bigint), same values. */
function difference(expected, actual, where = 'value') {
  if (expected instanceof Uint8Array) {
    if (!(actual instanceof Uint8Array)) return `${where}: expected ${expected.byteLength} bytes of binary, got ${short(describe(actual))}`;
    if (actual.byteLength !== expected.byteLength) return `${where}: expected ${expected.byteLength} bytes, got ${actual.byteLength}`;
    if (!bytesEqual(expected, actual)) {
      let i = 0;
      while (expected[i] === actual[i]) i += 1;
      return `${where}: bytes differ first at offset ${i} (expected ${expected[i]}, got ${actual[i]})`;
    }
    return null;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${where}: expected an array, got ${short(describe(actual))}`;
    if (actual.length !== expected.length) return `${where}: expected ${expected.length} items, got ${actual.length}: ${short(describe(actual))}`;
    for (let i = 0; i < expected.length; i += 1) {
      const d = difference(expected[i], actual[i], `${where}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual) || actual instanceof Uint8Array) {
      return `${where}: expected a map, got ${short(describe(actual))}`;
    }
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(actual).sort();
    if (ek.join('\0') !== ak.join('\0')) return `${where}: expected keys [${ek}], got [${ak}]`;
    for (const k of ek) {
      const d = difference(expected[k], actual[k], `${where}.${k}`);
      if (d) return d;
    }
    return null;
  }
  if (typeof expected !== typeof actual || !Object.is(expected, actual)) {
    return `${where}: expected ${describe(expected)} (${typeof expected}), got ${short(describe(actual))} (${typeof actual})`;
  }
  return null;
}

function assertSame(expected, actual) {
  const d = difference(expected, actual);
  if (d) fail(d);
}

function errorText(e) {
  if (e instanceof WslinkError) return `${e.kind} error ${e.code}: ${e.message}`;
  return e && e.message ? e.message : String(e);
}

/** Expects `promise` to reject with a WslinkError; returns it. */
async function expectError(promise) {
  let value;
  try {
    value = await promise;
  } catch (e) {
    if (!(e instanceof WslinkError)) fail(`expected a WslinkError, got ${errorText(e)}`);
    return e;
  }
  fail(`expected an error, got the result ${short(describe(value))}`);
}

/** Per case: what it opened, closed at the end. */
class CaseContext {
  constructor() {
    this.closers = [];
  }

  async connect(extra = {}) {
    const client = await connect({
      url: opts.url,
      secret: opts.secret,
      protocol: GEN,
      connectTimeout: opts.timeout,
      ...extra,
    }).catch((e) => fail(`connect failed: ${errorText(e)}`));
    this.closers.push(() => client.close());
    return client;
  }

  /** A call whose failure is a case failure with the client's reason. */
  async call(client, method, args = [], kwargs = {}) {
    try {
      return await client.call(method, args, kwargs);
    } catch (e) {
      return fail(`${method} failed: ${errorText(e)}`);
    }
  }

  close() {
    for (const close of this.closers.splice(0)) {
      try {
        const p = close();
        if (p && typeof p.catch === 'function') p.catch(() => {});
      } catch {
        // Closing what is already closed.
      }
    }
  }
}

async function echoCase(ctx, ...values) {
  const c = await ctx.connect();
  for (const value of values) {
    const back = await ctx.call(c, 'conformance.echo', [value]);
    assertSame(value, back);
  }
}

async function callBeforeHello() {
  // A raw socket and the client's own codec: the client never calls before its hello.
  const codec = createCodec(GEN);
  const id = 'rpc:c0:0';
  const frames = codec.encode(request(id, 'conformance.add', [2, 3], {}));
  const ws = new WebSocket(opts.url);
  ws.binaryType = 'arraybuffer';
  const replies = [];
  try {
    let gotReply;
    const firstReply = new Promise((res) => {
      gotReply = res;
    });
    ws.onmessage = (event) => {
      const data = typeof event.data === 'string' ? event.data : new Uint8Array(event.data);
      for (const message of codec.decode(data)) {
        if (message.id === id) {
          replies.push(message);
          gotReply(message);
        }
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
    for (const frame of frames) ws.send(frame);
    const reply = await Promise.race([firstReply, closed]);
    // Leave time for a (wrong) second reply.
    await new Promise((res) => setTimeout(res, 300));
    if (replies.some((r) => r.kind === 'result')) fail(`got a result: ${short(describe(replies.map((r) => r.result)))}`);
    if (reply.kind !== 'error') fail('reply is not an error');
    const code = reply.error && reply.error.code;
    if (code !== -32000) fail(`expected error -32000, got ${describe(code)} (${describe(reply.error && reply.error.message)})`);
    if (replies.length !== 1) fail(`expected one reply, got ${replies.length}`);
  } finally {
    ws.close();
  }
}

/** Resolves when `count` messages arrived, rejects on timeout (the case timeout is the backstop). */
function collector(count) {
  const messages = [];
  let done;
  const complete = new Promise((res) => {
    done = res;
  });
  return {
    messages,
    push(m) {
      messages.push(m);
      if (messages.length === count) done();
    },
    complete,
  };
}

/**
 * A WebSocket class counting the frames that carry a `wslink.subscribe`
 * declaration (PROTOCOL.md §8; too small to be split over frames).
 */
function declarationCounter(sent) {
  const needle = Buffer.from('wslink.subscribe');
  return class extends globalThis.WebSocket {
    send(data) {
      const bytes = typeof data === 'string' ? Buffer.from(data) : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
      if (bytes.includes(needle)) sent.declarations += 1;
      super.send(data);
    }
  };
}

/**
 * The client declares its subscription exactly when the hello reply offered
 * it; with WSLINK_CONFORMANCE_DECLARES (set by run.mjs and the js-client
 * integration tests: 0 for Kitware's servers, 1 for ours), exactly when the
 * server is known to offer it.
 */
function checkDeclared(client, declarations) {
  if (client.declaresSubscriptions !== declarations > 0) {
    fail(`declaresSubscriptions is ${client.declaresSubscriptions} but ${declarations} declaration(s) were sent`);
  }
  const expected = process.env.WSLINK_CONFORMANCE_DECLARES;
  if (expected === '0' && declarations > 0) fail(`declared a subscription ${declarations} time(s) to a server that does not offer it`);
  if (expected === '1' && declarations !== 1) fail(`expected one subscription declaration to a server that offers it, got ${declarations}`);
}

function checkPublished(label, messages, count, size) {
  if (messages.length !== count) fail(`${label}: expected ${count} messages, got ${messages.length}`);
  for (let i = 0; i < count; i += 1) {
    const m = messages[i];
    if (m === null || typeof m !== 'object' || m.seq !== i) {
      fail(`${label}: message ${i} has seq ${describe(m && m.seq)} (order: ${messages.map((x) => x && x.seq).join(',')})`);
    }
    const d = difference(pattern(size, i), m.blob, `${label} message ${i} blob`);
    if (d) fail(d);
  }
}

/** The npm-compatible API: a WebsocketConnection whose session is ready. */
function compatConnection(ctx) {
  return new Promise((resolve, reject) => {
    const connection = WebsocketConnection.newInstance({ urls: opts.url, secret: opts.secret, protocol: GEN });
    ctx.closers.push(() => connection.destroy(0));
    connection.onConnectionReady(() => resolve(connection.getSession()));
    connection.onConnectionError((_c, e) => reject(new CaseFailure(`compat connection failed: ${errorText(e)}`)));
    connection.connect();
  });
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
      if (typeof c.clientId !== 'string' || !/^\w+$/.test(c.clientId)) fail(`client id ${describe(c.clientId)} does not match ^\\w+$`);
      if (c.state !== 'open') fail(`state is ${c.state} after connect`);
    },
  ],
  [
    'hello.wrong-secret',
    async () => {
      const e = await expectError(connect({ url: opts.url, secret: `${opts.secret}-wrong`, protocol: GEN, connectTimeout: opts.timeout }));
      if (e.code !== -32000) fail(`expected error -32000, got ${errorText(e)}`);
      if (e.kind !== 'server') fail(`expected a server error, got kind ${e.kind}: ${e.message}`);
    },
  ],
  ['hello.call-before', callBeforeHello],
  ['echo.null', (ctx) => echoCase(ctx, null)],
  ['echo.bool', (ctx) => echoCase(ctx, [true, false])],
  ['echo.string', (ctx) => echoCase(ctx, 'hello', '')],
  ['echo.unicode', (ctx) => echoCase(ctx, 'a\u0000b ☃ 😀 日本語 e\u0301')],
  ['echo.int-safe', (ctx) => echoCase(ctx, INT_SAFE)],
  ['echo.int64', (ctx) => echoCase(ctx, INT64)],
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
      assertSame(5, await ctx.call(c, 'conformance.add', [2, 3]));
    },
  ],
  [
    'add.floats',
    async (ctx) => {
      const c = await ctx.connect();
      assertSame(0.75, await ctx.call(c, 'conformance.add', [0.5, 0.25]));
    },
  ],
  [
    'kwargs.mixed',
    async (ctx) => {
      const c = await ctx.connect();
      const back = await ctx.call(c, 'conformance.kwargs', [1, 'a'], { x: 1, y: [true] });
      assertSame({ args: [1, 'a'], kwargs: { x: 1, y: [true] } }, back);
    },
  ],
  [
    'blob.empty',
    async (ctx) => {
      const c = await ctx.connect();
      assertSame({ size: 0, blob: new Uint8Array(0) }, await ctx.call(c, 'conformance.blob', [0]));
    },
  ],
  [
    'blob.small',
    async (ctx) => {
      const c = await ctx.connect();
      assertSame({ size: 1000, blob: pattern(1000, 7) }, await ctx.call(c, 'conformance.blob', [1000, 7]));
    },
  ],
  [
    'blob.large',
    async (ctx) => {
      const c = await ctx.connect();
      assertSame({ size: LARGE, blob: pattern(LARGE, 3) }, await ctx.call(c, 'conformance.blob', [LARGE, 3]));
    },
  ],
  [
    'digest.small',
    async (ctx) => {
      const c = await ctx.connect();
      const blob = pattern(1000, 4);
      const sum = blob.reduce((a, b) => a + b, 0) % 2 ** 32;
      assertSame({ len: 1000, sum }, await ctx.call(c, 'conformance.digest', [blob]));
    },
  ],
  [
    'digest.large',
    async (ctx) => {
      const c = await ctx.connect();
      const blob = pattern(LARGE, 8);
      let sum = 0;
      for (let i = 0; i < blob.length; i += 1) sum += blob[i];
      assertSame({ len: LARGE, sum: sum % 2 ** 32 }, await ctx.call(c, 'conformance.digest', [blob]));
    },
  ],
  [
    'error.exception',
    async (ctx) => {
      const c = await ctx.connect();
      const e = await expectError(c.call('conformance.fail', ['boom-42']));
      if (e.kind !== 'server') fail(`expected a server error, got ${errorText(e)}`);
      if (e.code !== -32001) fail(`expected code -32001, got ${e.code} (${e.message})`);
      if (e.message !== 'Exception raised') fail(`expected message "Exception raised", got ${describe(e.message)}`);
      const exception = e.data && e.data.exception;
      if (typeof exception !== 'string' || !exception.includes('boom-42')) fail(`data.exception ${short(describe(exception))} does not contain boom-42`);
    },
  ],
  [
    'error.unknown-method',
    async (ctx) => {
      const c = await ctx.connect();
      const e = await expectError(c.call('conformance.nope'));
      if (e.code !== -32601) fail(`expected code -32601, got ${errorText(e)}`);
    },
  ],
  [
    'publish.order',
    async (ctx) => {
      const COUNT = 20;
      const SIZE = 1024;
      const TOPIC = 'conformance.topic';
      // Connection 1: the modern API, its declarations counted on the wire.
      const sent = { declarations: 0 };
      const a = await ctx.connect({ WebSocket: declarationCounter(sent) });
      const gotA = collector(COUNT);
      ctx.closers.push(a.subscribe(TOPIC, (m) => gotA.push(m)));
      // Connection 2: the npm-compatible API (callback receives [result]).
      const session = await compatConnection(ctx);
      const gotB = collector(COUNT);
      const badShape = [];
      const sub = session.subscribe(TOPIC, (args) => {
        if (!Array.isArray(args) || args.length !== 1) badShape.push(args);
        gotB.push(Array.isArray(args) ? args[0] : args);
      });
      await sub.promise.catch((e) => fail(`compat subscribe failed: ${errorText(e)}`));
      const count = await ctx.call(a, 'conformance.publish', [TOPIC, COUNT, SIZE]);
      assertSame(COUNT, count);
      await Promise.all([gotA.complete, gotB.complete]);
      // Leave time for extra (wrong) messages.
      await new Promise((res) => setTimeout(res, 100));
      if (badShape.length) fail(`compat subscriber got ${short(describe(badShape[0]))} instead of [result]`);
      checkPublished('connection 1', gotA.messages, COUNT, SIZE);
      checkPublished('connection 2 (compat API)', gotB.messages, COUNT, SIZE);
      await sub.unsubscribe();
      checkDeclared(a, sent.declarations);
    },
  ],
  [
    'sleep.concurrent',
    async (ctx) => {
      const c = await ctx.connect();
      const start = performance.now();
      const results = await Promise.all([400, 400, 400, 400].map((ms) => ctx.call(c, 'conformance.sleep', [ms])));
      const elapsed = performance.now() - start;
      assertSame([400, 400, 400, 400], results);
      if (elapsed >= 1200) fail(`four sleep(400) took ${Math.round(elapsed)} ms (>= 1200 ms: not concurrent)`);
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
  const pkg = JSON.parse(fs.readFileSync(path.resolve(here, '../../js-client/package.json'), 'utf8'));
  process.stderr.write(`ts-client: ${pkg.name} ${pkg.version} (generation ${GEN}) -> ${opts.url}\n`);
  const selected = opts.cases ? CASES.filter(([id]) => opts.cases.includes(id)) : CASES;
  if (opts.cases) {
    for (const id of opts.cases) {
      if (!CASES.some(([known]) => known === id)) process.stderr.write(`ts-client: unknown case ${id}\n`);
    }
  }
  const counts = { ok: 0, fail: 0, skip: 0 };
  for (const [id, fn] of selected) {
    const [status, reason] = await runCase(id, fn);
    counts[status] += 1;
    line(reason === null ? `${status} ${id}` : `${status} ${id}: ${short(reason, 400)}`);
  }
  line(`${counts.ok} passed, ${counts.fail} failed, ${counts.skip} skipped`);
  // Connections of timed-out cases may keep the event loop alive.
  process.exit(counts.fail === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`ts-client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
