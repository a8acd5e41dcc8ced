#!/usr/bin/env node
// Declared subscriptions on the wire (PROTOCOL.md §8), with our server and
// four clients side by side: two of this project's TypeScript clients (2.x
// and 1.x) subscribed to different topics, and Kitware's unmodified npm
// wslink 2.5.0 and 1.12.4 clients. Every received WebSocket frame is
// counted per connection. Ours must receive only their own topic; npm's,
// which never declare, must still receive every topic, unchanged.
//
//   node --experimental-websocket tests/conformance/subscriptions.mjs
//
// Needs tests/peers/node_modules (tests/peers/install.sh), js-client/dist
// (npm run build) and the wslink binary (WSLINK_BIN, else target/debug/wslink).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawnSync(process.execPath, ['--experimental-websocket', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const wslinkBin = process.env.WSLINK_BIN ?? path.join(target, 'debug', 'wslink');
const SECRET = 'wslink-secret';
const COUNT = 20;
const SIZE = 10_000;

// Every socket counts the publish ids it receives, per topic.
const sockets = [];
const reading = []; // Blob frames being read (npm's 2.x client takes Blobs)
const NativeWebSocket = globalThis.WebSocket;
class CountingWebSocket extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    const counts = { 'conformance.a': 0, 'conformance.b': 0, bytes: 0 };
    this.counts = counts;
    sockets.push(this);
    const decoder = new TextDecoder('latin1');
    const count = (text) => {
      counts.bytes += text.length;
      for (const topic of ['conformance.a', 'conformance.b']) {
        counts[topic] += text.split(`publish:${topic}:`).length - 1;
      }
    };
    this.addEventListener('message', (event) => {
      const { data } = event;
      if (typeof data === 'string') count(data);
      else if (data instanceof Blob) reading.push(data.arrayBuffer().then((b) => count(decoder.decode(new Uint8Array(b)))));
      else count(decoder.decode(new Uint8Array(data)));
    });
  }
}
globalThis.WebSocket = CountingWebSocket;

// The npm bundles are built for browsers: give them the globals they read.
const fakeLocation = { href: 'http://127.0.0.1/', origin: 'http://127.0.0.1', protocol: 'http:', host: '127.0.0.1', hostname: '127.0.0.1', port: '', pathname: '/', search: '', hash: '' };
globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= fakeLocation;
globalThis.document ??= { baseURI: fakeLocation.href };
console.log = (...args) => console.error(...args);
const require = createRequire(import.meta.url);
const npm = {
  2: require(path.join(root, 'tests/peers/node_modules/wslink-2/dist/wslink.js')),
  1: require(path.join(root, 'tests/peers/node_modules/wslink-1/dist/wslink.js')),
};
const ours = await import(pathToFileURL(path.join(root, 'js-client/dist/src/index.js')).href);

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(wslinkBin, ['serve', '--host', '127.0.0.1', '--port', '0', '--conformance', '--timeout', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (d) => {
      const m = /wslink server on (ws:\/\/\S+)/.exec(String(d));
      if (m) resolve({ url: m[1], child });
    });
    child.on('exit', (code) => reject(new Error(`wslink serve exited with ${code}`)));
  });
}

function npmClient(generation, url) {
  return new Promise((resolve, reject) => {
    const connection = npm[generation].WebsocketConnection.newInstance({ urls: url, secret: SECRET });
    connection.onConnectionReady(() => resolve(connection.getSession()));
    connection.onConnectionError((_, e) => reject(e));
    connection.connect();
  });
}

async function until(what, cond, ms = 10_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const { url, child } = await startServer();
let failed = false;
try {
  const got = { a2: 0, b1: 0, npm2: 0, npm1: 0 };
  const a2 = await ours.connect({ url, secret: SECRET, protocol: 2 });
  const b1 = await ours.connect({ url, secret: SECRET, protocol: 1 });
  a2.subscribe('conformance.a', () => { got.a2 += 1; });
  b1.subscribe('conformance.b', () => { got.b1 += 1; });
  assert.ok(a2.declaresSubscriptions && b1.declaresSubscriptions, 'our server offers declarations and our clients take them');
  const n2 = await npmClient(2, url);
  const n1 = await npmClient(1, url);
  // npm's clients subscribe to one topic only; they still receive both.
  await n2.subscribe('conformance.a', () => { got.npm2 += 1; }).promise;
  await n1.subscribe('conformance.a', () => { got.npm1 += 1; }).promise;
  const [sa2, sb1, sn2, sn1] = sockets;

  // A round trip per client of ours: its declaration has been read.
  await a2.call('conformance.add', [1, 1]);
  await b1.call('conformance.add', [1, 1]);
  assert.equal(await a2.call('conformance.publish', ['conformance.a', COUNT, SIZE]), COUNT);
  assert.equal(await a2.call('conformance.publish', ['conformance.b', COUNT, SIZE]), COUNT);
  await until('every subscriber served', () => got.a2 === COUNT && got.b1 === COUNT && got.npm2 === COUNT && got.npm1 === COUNT);
  // One more round trip each: nothing published earlier is still in flight.
  await Promise.all([a2.call('conformance.add', [1, 1]), b1.call('conformance.add', [1, 1]), n2.call('conformance.add', [1, 1]), n1.call('conformance.add', [1, 1])]);

  await Promise.all(reading);
  const rows = [
    ['ours 2.x, subscribed to a', sa2, COUNT, 0],
    ['ours 1.x, subscribed to b', sb1, 0, COUNT],
    ['npm 2.5.0, subscribed to a', sn2, COUNT, COUNT],
    ['npm 1.12.4, subscribed to a', sn1, COUNT, COUNT],
  ];
  for (const [name, socket, a, b] of rows) {
    const c = socket.counts;
    console.error(`${name}: ${c['conformance.a']} on a, ${c['conformance.b']} on b, ${c.bytes} bytes received`);
    assert.equal(c['conformance.a'], a, `${name}: messages on conformance.a`);
    assert.equal(c['conformance.b'], b, `${name}: messages on conformance.b`);
  }
  // The bytes say the same: each of ours got about half of what npm's got.
  assert.ok(sa2.counts.bytes * 10 < sn2.counts.bytes * 6, `ours 2.x ${sa2.counts.bytes} bytes vs npm 2.x ${sn2.counts.bytes}`);
  assert.ok(sb1.counts.bytes * 10 < sn1.counts.bytes * 6, `ours 1.x ${sb1.counts.bytes} bytes vs npm 1.x ${sn1.counts.bytes}`);
  process.stdout.write('subscriptions: 4 clients, ours received only their topic, npm 2.5.0 and 1.12.4 received everything\n');
  await Promise.all([a2.close(), b1.close()]);
  n2.close();
  n1.close();
} catch (e) {
  failed = true;
  process.stdout.write(`FAIL subscriptions: ${e.stack ?? e}\n`);
} finally {
  child.kill('SIGTERM');
}
process.exit(failed ? 1 : 0);
