#!/usr/bin/env node
// Kitware's npm wslink 2.5.0 client (dist/wslink.js, unmodified) through a
// relay: what tests/conformance/npm-client.mjs cannot do there, since a
// relayed server takes one browser at a time.
//
//   node relay-client.mjs publish URL [N]  a call, 1 MiB of binary there and
//                                          back, an N-byte binary result (6 MiB,
//                                          chunked, by default), 20 publishes of
//                                          1 KiB: all arrive, in order, intact
//   node relay-client.mjs busy URL         a second client while one is
//                                          connected gets close code 4409
//   node relay-client.mjs refused URL CODE the relay closes the connection
//                                          with CODE before the hello completes
//
// Prints `ok ...` lines; exits 1 with `fail: ...` on the first problem.

import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawnSync(process.execPath, ['--experimental-websocket', fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(child.status ?? 1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
// The bundle is built for browsers: it looks for self, window and location.
const loc = { href: 'http://127.0.0.1/', origin: 'http://127.0.0.1', protocol: 'http:', host: '127.0.0.1', hostname: '127.0.0.1', port: '', pathname: '/', search: '', hash: '' };
globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= loc;
globalThis.document ??= { baseURI: loc.href };
console.log = (...args) => console.error(...args);
const require = createRequire(import.meta.url);
const wslink = require(path.join(here, '../peers/node_modules/wslink-2/dist/wslink.js'));

const [mode, url, arg] = process.argv.slice(2);
const TOPIC = 'conformance.topic';

function fail(why) {
  process.stdout.write(`fail: ${why}\n`);
  process.exit(1);
}

function pattern(size, seed = 0) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 1) out[i] = (i * 31 + seed) % 251;
  return out;
}

async function bytesOf(v) {
  if (v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

function sameBytes(a, b) {
  return a && b && a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

/** Resolves { session, closed } once the hello is accepted; rejects with the close event. */
function connect() {
  return new Promise((resolve, reject) => {
    const connection = wslink.WebsocketConnection.newInstance({ urls: url, secret: 'wslink-secret' });
    let ready = false;
    let onClosed;
    const closed = new Promise((res) => {
      onClosed = res;
    });
    connection.onConnectionReady(() => {
      ready = true;
      resolve({ session: connection.getSession(), closed });
    });
    connection.onConnectionError((_, err) => {
      if (!ready) reject({ error: err });
    });
    connection.onConnectionClose((_, event) => {
      const info = { code: event && event.code, reason: event && event.reason };
      onClosed(info);
      if (!ready) reject(info);
    });
    connection.connect();
  });
}

const timer = setTimeout(() => fail('timed out after 60 s'), 60000);

if (mode === 'publish') {
  const { session, closed } = await connect().catch((e) => fail(`connect: ${JSON.stringify(e)}`));
  closed.then((info) => fail(`connection closed early: ${JSON.stringify(info)}`));
  const sum = await session.call('conformance.add', [2, 3]);
  if (sum !== 5) fail(`add(2, 3) = ${sum}`);
  process.stdout.write('ok call through the relay\n');
  const sent = pattern(1024 * 1024, 5);
  const echoed = await bytesOf(await session.call('conformance.echo', [sent]));
  if (!sameBytes(sent, echoed)) fail('1 MiB binary echo differs');
  process.stdout.write('ok 1 MiB binary there and back\n');
  const size = Number(arg || 6 * 1024 * 1024);
  const blob = await session.call('conformance.blob', [size, 3]);
  if (!sameBytes(pattern(size, 3), await bytesOf(blob.blob))) fail(`${size}-byte blob differs`);
  process.stdout.write(`ok ${size}-byte binary result intact\n`);
  const got = [];
  let done;
  const all = new Promise((res) => {
    done = res;
  });
  await session.subscribe(TOPIC, ([msg]) => {
    got.push(msg);
    if (got.length === 20) done();
  }).promise;
  const count = await session.call('conformance.publish', [TOPIC, 20, 1024]);
  if (count !== 20) fail(`publish returned ${count}`);
  await all;
  for (let i = 0; i < 20; i += 1) {
    if (got[i].seq !== i) fail(`publish ${i} has seq ${got[i].seq}`);
    if (!sameBytes(pattern(1024, i), await bytesOf(got[i].blob))) fail(`publish ${i}: blob differs`);
  }
  process.stdout.write('ok 20 publishes in order, blobs intact\n');
  clearTimeout(timer);
  process.exit(0);
} else if (mode === 'refused') {
  const outcome = await connect().then(
    () => null,
    (e) => e,
  );
  if (outcome === null) fail('the hello succeeded');
  if (String(outcome.code) !== arg) fail(`expected close code ${arg}, got ${JSON.stringify(outcome)}`);
  process.stdout.write(`ok refused with ${outcome.code}: ${outcome.reason}\n`);
  clearTimeout(timer);
  process.exit(0);
} else if (mode === 'busy') {
  const first = await connect().catch((e) => fail(`first client: ${JSON.stringify(e)}`));
  const outcome = await connect().then(
    () => null,
    (e) => e,
  );
  if (outcome === null) fail('a second client got through');
  if (outcome.code !== 4409) fail(`expected close code 4409, got ${JSON.stringify(outcome)}`);
  if ((await first.session.call('conformance.add', [1, 2])) !== 3) fail('the first client no longer works');
  process.stdout.write(`ok second client refused with ${outcome.code}: ${outcome.reason}; the first still works\n`);
  clearTimeout(timer);
  process.exit(0);
} else {
  fail(`unknown mode ${mode}`);
}
