#!/usr/bin/env node
// Decode vector files with Kitware's OFFICIAL npm wslink client and compare.
//
//   node check_npm.mjs PATH...        (files or directories of vectors)
//
// For each server-to-client file (client-to-server files are skipped: the
// npm package is a client and never decodes requests), a session of the
// official bundle (wslink-2 for generation 2, wslink-1 for 1; see
// lib/npm-env.mjs) is opened on a fake WebSocket, and the frames are handed
// to session.onmessage() as a browser with binaryType "blob" would: binary
// frames as Blob, text frames as strings. What the client makes of each
// message is observed through its public API:
//   result for system:c0:0   the promise of onconnect() resolves with clientID
//                            (2.x: maxMsgSize is then probed: a call made
//                            afterwards must be chunked to at most that size)
//   error for system:c0:0    the promise of onconnect() rejects with it
//   result/error for rpc:C:N call() is made until the call with id
//                            rpc:C:N exists; its promise settles with it
//   result for publish:T:N   subscribe(T) gets [result]
//   any other error          the client logs console.error('Server error:', e)
// When the file has no hello reply first, the checker hands the session one
// itself (clientID taken from the first rpc id of the file).
// Anything else the client logs (malformed message, missing attachment
// header, dropped message) is a failure.
//
// Values are compared as JavaScript holds them: {"$int"} must equal the
// nearest double (npm's decoders give a lossy number), {"$float"} and plain
// numbers must be the same double, {"$bin"} a Uint8Array (2.x) or a Blob
// (1.x attachment) with those bytes; map key order is not compared.
//
// Prints `ok <file>`, `fail <file>: <reason>` or `skip <file>: <reason>`,
// then `N passed, M failed, K skipped`; exits 1 if any failed.

import fs from 'node:fs';
import path from 'node:path';
import { openConnection, loadMsgpack, unhex, frame2 } from '../lib/npm-env.mjs';

const out = (line) => process.stdout.write(`${line}\n`);

// --------------------------------------------------------------------------
// console capture: the client reports some outcomes only by logging

const logs = [];
const original = { error: console.error, log: console.log, warn: console.warn, assert: console.assert };
console.error = (...args) => logs.push(['error', args]);
console.log = (...args) => logs.push(['log', args]);
console.warn = (...args) => logs.push(['warn', args]);
console.assert = (cond, ...args) => {
  if (!cond) logs.push(['assert', args]);
};

const describeLog = ([kind, args]) =>
  `${kind}: ${args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ')}`.slice(0, 300);

function safeJson(v) {
  try {
    return JSON.stringify(v, (k, x) => (x instanceof Uint8Array ? `<${x.byteLength} bytes>` : x));
  } catch {
    return String(v);
  }
}

class Fail extends Error {}

// --------------------------------------------------------------------------
// comparison

async function resolveBlobs(v) {
  if (v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (Array.isArray(v)) return Promise.all(v.map(resolveBlobs));
  if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = await resolveBlobs(x);
    return o;
  }
  return v;
}

function kind(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (v instanceof Uint8Array) return 'bin';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function tagOf(w) {
  if (w && typeof w === 'object' && !Array.isArray(w)) {
    const keys = Object.keys(w);
    if (keys.length === 1 && ['$bin', '$int', '$float'].includes(keys[0])) return keys[0];
  }
  return null;
}

const show = (v) => {
  const s = safeJson(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** Returns null when `got` (a JS value) matches the tagged JSON `want`. */
function compare(got, want, where = '$') {
  const tag = tagOf(want);
  if (tag === '$bin') {
    if (!(got instanceof Uint8Array)) return `${where}: got ${kind(got)} ${show(got)}, expected binary`;
    const w = Buffer.from(want.$bin, 'hex');
    if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(w)) {
      return `${where}: got ${got.byteLength} bytes ${Buffer.from(got).toString('hex').slice(0, 40)}, expected ${w.length} bytes ${w.toString('hex').slice(0, 40)}`;
    }
    return null;
  }
  if (tag === '$int' || tag === '$float' || typeof want === 'number') {
    const w = tag === '$int' ? Number(BigInt(want.$int)) : tag === '$float' ? want.$float : want;
    if (typeof got !== 'number') return `${where}: got ${kind(got)} ${show(got)}, expected number ${w}`;
    if (!Object.is(got, w)) return `${where}: got ${got}, expected ${w}`;
    return null;
  }
  if (want === null || typeof want !== 'object') {
    if (got !== want) return `${where}: got ${kind(got)} ${show(got)}, expected ${show(want)}`;
    return null;
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got)) return `${where}: got ${kind(got)} ${show(got)}, expected array`;
    if (got.length !== want.length) return `${where}: got array of ${got.length}, expected ${want.length}`;
    for (let i = 0; i < want.length; i += 1) {
      const r = compare(got[i], want[i], `${where}[${i}]`);
      if (r) return r;
    }
    return null;
  }
  if (kind(got) !== 'object') return `${where}: got ${kind(got)} ${show(got)}, expected map`;
  const gk = Object.keys(got).sort();
  const wk = Object.keys(want).sort();
  if (gk.join('\u0000') !== wk.join('\u0000')) {
    return `${where}: map keys differ: got [${gk}], expected [${wk}]`;
  }
  for (const k of wk) {
    const r = compare(got[k], want[k], `${where}[${JSON.stringify(k)}]`);
    if (r) return r;
  }
  return null;
}

// --------------------------------------------------------------------------
// grouping frames into messages (only to know when to look; the official
// client does the decoding)

function groupFrames(generation, frames) {
  const groups = [];
  let current = [];
  if (generation === 2) {
    const pending = new Map();
    for (const f of frames) {
      current.push(f);
      if (typeof f === 'string' || f.byteLength < 12) {
        groups.push(current);
        current = [];
        continue;
      }
      const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
      const id = v.getUint32(0, true);
      const total = v.getUint32(8, true);
      const got = (pending.get(id) ?? 0) + f.byteLength - 12;
      if (got >= total) {
        pending.delete(id);
        groups.push(current);
        current = [];
      } else {
        pending.set(id, got);
      }
    }
  } else {
    for (const f of frames) {
      current.push(f);
      if (typeof f !== 'string') continue;
      let parsed = null;
      try {
        parsed = JSON.parse(f);
      } catch {
        // unparsable: let the client have it as a message of its own
      }
      if (!parsed || parsed.id) {
        groups.push(current);
        current = [];
      }
    }
  }
  if (current.length) groups.push(current);
  return groups;
}

// --------------------------------------------------------------------------

function settleWithin(promise, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ state: 'pending' }), ms);
    promise.then(
      (value) => {
        clearTimeout(t);
        resolve({ state: 'resolved', value });
      },
      (value) => {
        clearTimeout(t);
        resolve({ state: 'rejected', value });
      },
    );
  });
}

const RPC_ID = /^rpc:(\w+(?:\.\w+)*):(\d+)$/;
const PUBLISH_ID = /^publish:(\w+(?:\.\w+)*):\d+$/;

async function checkFile(file) {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Fail(`unreadable vector: ${e.message}`);
  }
  if (doc.direction === 'client-to-server') {
    return 'skip: client-to-server (the npm package is a client and never decodes requests)';
  }
  const generation = doc.generation;
  if (generation !== 1 && generation !== 2) throw new Fail(`bad generation ${generation}`);
  const frames = doc.frames.map((f) => ('binary' in f ? unhex(f.binary) : f.text));
  const expected = doc.messages;
  const groups = groupFrames(generation, frames);
  if (groups.length !== expected.length) {
    throw new Fail(`frames carry ${groups.length} message(s), expected ${expected.length}`);
  }

  logs.length = 0;
  const { session, ws } = openConnection(generation, 'golden-secret');
  const connected = session.onconnect({});
  connected.catch(() => {});
  ws.take();
  let clientID = null;
  let helloAnswered = false;
  let callCount = 0;
  const calls = new Map(); // id -> promise
  const subscriptions = new Map(); // topic -> array of received values
  let probeSize = null;

  const feed = async (frame) => {
    const data = typeof frame === 'string' ? frame : new Blob([frame]);
    try {
      await session.onmessage({ data });
    } catch (e) {
      throw new Fail(`client threw on a frame: ${e && e.message ? e.message : e}`);
    }
  };

  async function ensureHello(wantClient) {
    if (helloAnswered) return;
    const client = wantClient ?? 'cgolden';
    const reply = { wslink: '1.0', id: 'system:c0:0', result: { clientID: client } };
    if (generation === 2) {
      const body = loadMsgpack().encode(reply);
      await feed(frame2(0x600d, 0, body.byteLength, body));
    } else {
      await feed(JSON.stringify(reply));
    }
    const r = await settleWithin(connected, 1000);
    if (r.state !== 'resolved') throw new Fail('checker could not complete its own hello');
    clientID = r.value;
    helloAnswered = true;
  }

  const firstRpcClient = expected
    .map((m) => RPC_ID.exec(String(m.id ?? '')))
    .find(Boolean)?.[1];

  for (let i = 0; i < groups.length; i += 1) {
    const want = expected[i];
    const id = String(want.id ?? '');
    const isError = Object.prototype.hasOwnProperty.call(want, 'error');
    let observe; // async () => {state, value}
    let wantValue = isError ? want.error : want.result;

    if (id === 'system:c0:0' && !helloAnswered) {
      observe = async () => {
        const r = await settleWithin(connected, 1000);
        if (r.state === 'resolved') {
          clientID = r.value;
          helloAnswered = true;
        }
        return r;
      };
      if (!isError) {
        wantValue = want.result && want.result.clientID;
        if (generation === 2 && typeof want.result?.maxMsgSize === 'number') probeSize = want.result.maxMsgSize;
      }
    } else if (RPC_ID.test(id)) {
      const [, client, nText] = RPC_ID.exec(id);
      await ensureHello(firstRpcClient);
      if (client !== clientID) throw new Fail(`cannot observe ${id}: the session's client id is ${clientID}`);
      const n = Number(nText);
      if (n > 100000) throw new Fail(`cannot observe ${id}: call number too large`);
      if (n < callCount && !calls.has(id)) throw new Fail(`cannot observe ${id}: that call was already answered`);
      while (callCount <= n) {
        const p = session.call('golden.observe', []);
        p.catch(() => {});
        calls.set(`rpc:${clientID}:${callCount}`, p);
        callCount += 1;
      }
      ws.take();
      const p = calls.get(id);
      calls.delete(id);
      observe = () => settleWithin(p, 1000);
    } else if (PUBLISH_ID.test(id) && !isError) {
      await ensureHello(firstRpcClient);
      const topic = PUBLISH_ID.exec(id)[1];
      if (!subscriptions.has(topic)) {
        const seen = [];
        subscriptions.set(topic, seen);
        session.subscribe(topic, (args) => seen.push(args));
      }
      const seen = subscriptions.get(topic);
      const before = seen.length;
      observe = async () => {
        await new Promise((r) => setTimeout(r, 0));
        if (seen.length === before) return { state: 'pending' };
        const args = seen.splice(before, 1)[0];
        if (!Array.isArray(args) || args.length !== 1) return { state: 'resolved', value: { 'not [result]': args } };
        return { state: 'resolved', value: args[0] };
      };
    } else if (isError) {
      // an error the client has no pending promise for: it logs it
      observe = async () => {
        await new Promise((r) => setTimeout(r, 0));
        const at = logs.findIndex(([k, a]) => k === 'error' && a[0] === 'Server error:');
        if (at < 0) return { state: 'pending' };
        const [, args] = logs.splice(at, 1)[0];
        return { state: 'rejected', value: args[1] };
      };
    } else {
      throw new Fail(`cannot observe message ${i} with id ${JSON.stringify(want.id)}`);
    }

    for (const f of groups[i]) await feed(f);
    const r = await observe();
    const label = `message ${i} (${id})`;
    if (logs.length) throw new Fail(`${label}: client logged ${describeLog(logs[0])}`);
    if (r.state === 'pending') throw new Fail(`${label}: the client produced nothing observable`);
    if (isError && r.state !== 'rejected') throw new Fail(`${label}: expected an error, the client resolved with ${show(r.value)}`);
    if (!isError && r.state !== 'resolved') throw new Fail(`${label}: expected a result, the client rejected with ${show(r.value)}`);
    const reason = compare(await resolveBlobs(r.value), wantValue, isError ? 'error' : 'result');
    if (reason) throw new Fail(`${label}: ${reason}`);
  }

  if (probeSize !== null && probeSize <= 64 * 1024 * 1024) {
    // The hello reply's maxMsgSize is only observable in what the client
    // sends next: a call of about twice that size must come out chunked.
    ws.take();
    const p = session.call('golden.probe', [new Uint8Array(Math.max(probeSize, 64))]);
    p.catch(() => {});
    const sent = ws.take();
    const limit = Math.max(probeSize, 13);
    if (sent.length < 2 || sent.some(([d]) => d.byteLength > limit)) {
      throw new Fail(`maxMsgSize ${probeSize} not applied: the next call went out as ${sent.length} frame(s) of ${sent.map(([d]) => d.byteLength)} bytes`);
    }
  }
  if (logs.length) throw new Fail(`client logged ${describeLog(logs[0])}`);
  return 'ok';
}

// --------------------------------------------------------------------------

function listVectors(paths) {
  const files = [];
  const walk = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    } else if (p.endsWith('.json')) {
      files.push(p);
    }
  };
  for (const p of paths) walk(p);
  return files.sort();
}

const paths = process.argv.slice(2);
if (!paths.length) {
  original.error('usage: check_npm.mjs PATH...');
  process.exit(2);
}
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of listVectors(paths)) {
  try {
    const r = await checkFile(file);
    if (r === 'ok') {
      out(`ok ${file}`);
      passed += 1;
    } else {
      out(`skip ${file}: ${r.replace(/^skip: /, '')}`);
      skipped += 1;
    }
  } catch (e) {
    if (e instanceof Fail) out(`fail ${file}: ${e.message}`);
    else out(`fail ${file}: checker error: ${e && e.stack ? e.stack.split('\n').slice(0, 2).join(' ') : e}`);
    failed += 1;
  }
}
out(`npm-wslink: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
