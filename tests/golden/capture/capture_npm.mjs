#!/usr/bin/env node
// Capture client-to-server wire messages produced by Kitware's OFFICIAL npm
// wslink client (dist/wslink.js of wslink 2.5.0 and 1.12.4, unmodified).
//
//   node capture_npm.mjs RECORDS.json
//
// No network: the connection is made the way an application makes it
// (WebsocketConnection.newInstance({urls, secret}).connect()), with a fake
// global WebSocket that records every send(). We fire its onopen (the client
// then sends wslink.hello), hand the session a hello reply through
// session.onmessage (which sets the client id and, in 2.x, maxMsgSize), and
// then make calls. What send() got is the official client's bytes.
//
// This script writes "records" (frames, plus the values we passed to the
// client, in a JSON form); finalize_npm.py decodes the frames and writes the
// vectors, checking the decoded messages against those values.

import fs from 'node:fs';
import { openConnection, loadMsgpack, toBytesAsync, hex, frame2, producerOf } from '../lib/npm-env.mjs';

const CLIENT = 'c5e3d2c1b0a99887766554433221100ff';

// --------------------------------------------------------------------------
// the values we pass, and their JSON form for the cross-check

function str(n) {
  let s = '';
  for (let i = 0; i < n; i += 1) s += String.fromCharCode(97 + (i % 26));
  return s;
}

// JSON form of a JS value as the wire should carry it. Numbers stay numbers
// (the cross-check compares them as doubles: JS has no int/float split).
// `undefined`: msgpack (2.x) sends nil, in arrays and as map values;
// JSON.stringify (1.x) sends null in arrays and drops the key in objects.
function intended(v, generation) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`no JSON form for ${v}`);
    return { $number: v };
  }
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const b = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return { $bin: hex(b) };
  }
  if (v instanceof Blob) throw new Error('resolve Blobs first');
  if (Array.isArray(v)) return v.map((x) => intended(x, generation));
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined && generation === 1) continue;
    out[k] = intended(x, generation);
  }
  return out;
}

const MIXED = {
  nested: { a: [1, [2, [3, { deep: true }]]], empty_map: {}, empty_list: [], list_of_maps: [{ x: 1 }, { y: [null] }] },
  unicode: {
    nul: 'a\u0000b',
    emoji: '\u{1F600} \u{1F1EB}\u{1F1F7}',
    accents: '\u00e9t\u00e9',
    cjk: '\u6f22\u5b57',
    escapes: 'quote" backslash\\ newline\n tab\t bell\u0007',
    empty: '',
    '\u00fcml\u00e4ut key': 'value',
  },
  bool: [true, false],
  nil: null,
};

const SAFE_INTS = [
  0, 1, -1, 127, 128, -32, -33, -128, -129, 255, 256, -32768, -32769, 65535, 65536,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32,
  Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER,
];
// Integral but not safe integers: @msgpack/msgpack sends these as float64;
// -0 is a safe integer to it, so it goes out as the integer 0.
const OTHER_NUMBERS = [2 ** 53, -(2 ** 53), 2 ** 64, 1e21, -0, 0.5, -1.5, 0.1, 1e300, 5e-324, 1.7976931348623157e308, 123456789.125];

const SIZE_EDGES = {
  fixstr_31: str(31),
  str8_32: str(32),
  str8_255: str(255),
  str16_256: str(256),
  fixarray_15: [...Array(15).keys()],
  array16_16: [...Array(16).keys()],
  fixmap_15: Object.fromEntries([...Array(15).keys()].map((i) => [`k${String(i).padStart(2, '0')}`, i])),
  map16_16: Object.fromEntries([...Array(16).keys()].map((i) => [`k${String(i).padStart(2, '0')}`, i])),
};

// --------------------------------------------------------------------------

const records = [];

async function framesOf(sent) {
  const frames = [];
  for (const [data] of sent) {
    if (typeof data === 'string') frames.push({ text: data });
    else frames.push({ binary: hex(await toBytesAsync(data)) });
  }
  return frames;
}

async function record(generation, name, description, sent, expected, extra = {}) {
  if (!sent.length) throw new Error(`${name}: nothing was sent`);
  records.push({
    name,
    producer: producerOf(generation),
    generation,
    direction: 'client-to-server',
    description,
    frames: await framesOf(sent),
    intended: expected.map((m) => intended(m, generation)),
    ...extra,
  });
}

function request(id, method, args, kwargs) {
  return { wslink: '1.0', id, method, args, kwargs };
}

/** Hand the session the server's hello reply; resolves once the client has
 *  its id (the promise of onconnect). */
async function helloReply(generation, session, result, connected) {
  const reply = { wslink: '1.0', id: 'system:c0:0', result };
  if (generation === 2) {
    const { encode } = loadMsgpack();
    const body = encode(reply);
    await session.onmessage({ data: new Blob([frame2(0x600d, 0, body.byteLength, body)]) });
  } else {
    await session.onmessage({ data: JSON.stringify(reply) });
  }
  const clientID = await connected;
  if (clientID !== result.clientID) throw new Error(`client id ${clientID}`);
}

function connect(generation, maxMsgSize) {
  const { session, ws } = openConnection(generation, 'golden-secret');
  const connected = session.onconnect({});
  const hello = ws.take();
  const result = { clientID: CLIENT };
  if (maxMsgSize !== undefined) result.maxMsgSize = maxMsgSize;
  const ready = helloReply(generation, session, result, connected);
  return { session, ws, hello, ready };
}

function ignore(promise) {
  // calls never get a reply here
  promise.catch(() => {});
}

async function captureGeneration(generation) {
  const g = generation;
  const rpc = (n) => `rpc:${CLIENT}:${n}`;
  const helloMsg = request('system:c0:0', 'wslink.hello', [{ secret: 'golden-secret' }], {});

  // ---- hello and plain calls on one connection
  const c = connect(g, g === 2 ? 4194304 : undefined);
  await record(g, 'hello', 'wslink.hello as sent when the socket opens (secret "golden-secret")', c.hello, [helloMsg]);
  await c.ready;
  let n = 0;

  ignore(c.session.call('golden.none'));
  await record(g, 'call-no-args', 'call(method) with the default args [] and kwargs {}', c.ws.take(), [
    request(rpc(n++), 'golden.none', [], {}),
  ]);

  const echoArgs = [1, 'two', [3.5, null], { four: 4 }];
  const echoKwargs = { flag: true, name: '\u00e9' };
  ignore(c.session.call('golden.echo', echoArgs, echoKwargs));
  await record(g, 'call-echo', 'call with args and kwargs', c.ws.take(), [
    request(rpc(n++), 'golden.echo', echoArgs, echoKwargs),
  ]);

  ignore(c.session.call('golden.mixed', [MIXED]));
  await record(g, 'call-mixed', 'call with nested maps/arrays, unicode (NUL, emoji, escapes), bools, null', c.ws.take(), [
    request(rpc(n++), 'golden.mixed', [MIXED], {}),
  ]);

  // In 1.x, JSON.stringify writes integral doubles below 1e21 as integer
  // literals, so 2^64 becomes 18446744073709552000: an integer beyond u64.
  // Those get a vector of their own (call-numbers-beyond-u64).
  const others = g === 2 ? OTHER_NUMBERS : OTHER_NUMBERS.filter((x) => Math.abs(x) < 2 ** 64 || x >= 1e21);
  ignore(c.session.call('golden.numbers', [SAFE_INTS, others]));
  await record(
    g,
    'call-numbers',
    g === 2
      ? 'Safe integers at every width boundary (sent as msgpack ints), then integral unsafe numbers (2^53, 2^64, 1e21: float64), -0 (int 0) and floats'
      : 'Safe integers at every width boundary, then 2^53, 1e21, -0, floats, as JSON.stringify writes them',
    c.ws.take(),
    [request(rpc(n++), 'golden.numbers', [SAFE_INTS, others], {})],
  );

  if (g === 1) {
    const beyond = [2 ** 64, -(2 ** 64), 1e20];
    ignore(c.session.call('golden.numbers', [beyond]));
    await record(
      g,
      'call-numbers-beyond-u64',
      'Doubles 2^64, -2^64 and 1e20: JSON.stringify writes them as integer literals outside the 64-bit range (18446744073709552000 ...)',
      c.ws.take(),
      [request(rpc(n++), 'golden.numbers', [beyond], {})],
    );
  }

  ignore(c.session.call('golden.sizes', [SIZE_EDGES]));
  await record(g, 'call-size-edges', 'Strings, arrays and maps at the fix/8/16 length boundaries', c.ws.take(), [
    request(rpc(n++), 'golden.sizes', [SIZE_EDGES], {}),
  ]);

  const withUndefined = [undefined, { u: undefined, x: 1 }];
  ignore(c.session.call('golden.undefined', withUndefined));
  await record(
    g,
    'call-undefined',
    g === 2
      ? 'undefined in an array and as a map value: both sent as nil (the key is kept)'
      : 'undefined in an array (null) and as a map value (the key is dropped by JSON.stringify)',
    c.ws.take(),
    [request(rpc(n++), 'golden.undefined', withUndefined, {})],
  );

  if (g === 2) {
    const all = new Uint8Array(256).map((_, i) => i);
    const big = new Uint8Array(64).map((_, i) => 0xa0 + (i % 16));
    const buffer = new Uint8Array([9, 8, 7, 6]).buffer;
    const args = [
      all, // Uint8Array
      buffer, // a bare ArrayBuffer (the session's encoder wraps it in a DataView)
      new DataView(new Uint8Array([1, 2, 3]).buffer),
      new Float32Array([1.5, -2]), // any typed array: its raw bytes
      big.subarray(10, 14), // a view: only its own 4 bytes
      c.session.addAttachment(new Uint8Array([0xde, 0xad]).buffer), // 2.x addAttachment: DataView
      new Uint8Array(0),
    ];
    const kwargs = { i16: new Int16Array([-2, 1]) };
    ignore(c.session.call('golden.binary', args, kwargs));
    await record(
      g,
      'call-binary',
      'Inline binary: Uint8Array (all 256 values), ArrayBuffer, DataView, Float32Array, a subarray view, addAttachment(ArrayBuffer), empty; Int16Array in kwargs',
      c.ws.take(),
      [request(rpc(n++), 'golden.binary', args, kwargs)],
    );

    // ---- chunking: a hello reply with a small maxMsgSize
    for (const [max, name, what] of [
      [64, 'call-chunked', 'maxMsgSize=64 from the hello reply: a 300-character call split into frames of at most 64 bytes'],
      [1, 'call-chunked-1-byte', 'maxMsgSize=1 from the hello reply: max(1-12, 1) = 1 content byte per frame'],
    ]) {
      const k = connect(2, max);
      await k.ready;
      const text = max === 1 ? 'abc' : str(300);
      ignore(k.session.call('golden.text', [text]));
      const sent = k.ws.take();
      if (sent.length < 2 || sent.some(([d]) => d.byteLength > Math.max(max, 13))) throw new Error(`${name}: not chunked`);
      await record(g, name, what, sent, [request(rpc(0), 'golden.text', [text], {})]);
    }

    // ---- a whole connection in one file
    const s = connect(2, 4194304);
    const sent = s.hello;
    await s.ready;
    ignore(s.session.call('golden.echo', [[1, 2, 3]]));
    ignore(s.session.call('golden.none'));
    sent.push(...s.ws.take());
    await record(g, 'session', 'hello, then two calls, on one connection', sent, [
      helloMsg,
      request(rpc(0), 'golden.echo', [[1, 2, 3]], {}),
      request(rpc(1), 'golden.none', [], {}),
    ]);
  } else {
    // ---- 1.x attachments: addAttachment() returns "wslink_binN" (N from 1);
    // call() sends, for each key it finds in args then kwargs (depth first),
    // a header text frame and the binary frame, then the JSON.
    const all = new Uint8Array(256).map((_, i) => i);
    const k1 = c.session.addAttachment(all);
    const k2 = c.session.addAttachment(new Uint8Array([9, 8, 7]).buffer);
    const blob = new Blob([new Uint8Array([0xb1, 0x0b])]);
    const k3 = c.session.addAttachment(blob);
    if (k1 !== 'wslink_bin1' || k2 !== 'wslink_bin2' || k3 !== 'wslink_bin3') throw new Error(`keys ${k1} ${k2} ${k3}`);
    const args = [k1, { nested: [k2] }];
    const kwargs = { kw: k3 };
    ignore(c.session.call('golden.attachments', args, kwargs));
    const id = rpc(n++);
    await record(
      g,
      'call-attachments',
      'Three attachments (Uint8Array, ArrayBuffer, Blob) named in args and kwargs: header, binary, header, binary, header, binary, then the call',
      c.ws.take(),
      [request(id, 'golden.attachments', [all, { nested: [new Uint8Array([9, 8, 7])] }], { kw: new Uint8Array([0xb1, 0x0b]) })],
      { intended_raw: [intended(request(id, 'golden.attachments', args, kwargs), 1)] },
    );

    const k4 = c.session.addAttachment(new Uint8Array([0x42]));
    ignore(c.session.call('golden.bare', [k4]));
    const id2 = rpc(n++);
    await record(g, 'call-attachment-single', `One attachment (${k4}) as the only argument`, c.ws.take(), [
      request(id2, 'golden.bare', [new Uint8Array([0x42])], {}),
    ], { intended_raw: [intended(request(id2, 'golden.bare', [k4], {}), 1)] });

    const s = connect(1);
    const sent = s.hello;
    await s.ready;
    ignore(s.session.call('golden.echo', [[1, 2, 3]]));
    ignore(s.session.call('golden.none'));
    sent.push(...s.ws.take());
    await record(g, 'session', 'hello, then two calls, on one connection', sent, [
      helloMsg,
      request(rpc(0), 'golden.echo', [[1, 2, 3]], {}),
      request(rpc(1), 'golden.none', [], {}),
    ]);
  }
}

const out = process.argv[2];
if (!out) {
  console.error('usage: capture_npm.mjs RECORDS.json');
  process.exit(2);
}
await captureGeneration(2);
await captureGeneration(1);
fs.writeFileSync(out, JSON.stringify(records, null, 1));
console.log(`npm: captured ${records.length} records`);
