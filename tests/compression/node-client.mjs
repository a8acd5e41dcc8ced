#!/usr/bin/env node
// permessage-deflate with a real client that offers it: Kitware's npm wslink
// (2.5.0 and 1.12.4) on Node's WebSocket, against our conformance server,
// through a proxy in this process that reads every frame the server sends.
//
//   node tests/compression/node-client.mjs --server target/debug/conformance-server
//
// Checks, for each generation: the 101 response accepts permessage-deflate;
// a ~1 MB state echoed back arrives compressed (RSV1 set, far fewer bytes)
// and intact; a 1 MiB JPEG-like binary comes back with RSV1 clear and
// intact. Then, with --no-ws-compress, no extension is answered and no frame
// has RSV1. Last line: `N passed, M failed`; exit 1 if any failed.

import { createRequire } from 'node:module';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawnSync(
    process.execPath,
    ['--experimental-websocket', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(child.status ?? 1);
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const page = new URL('http://127.0.0.1/index.html');
globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= page;
globalThis.document ??= { baseURI: page.href };
const log = console.log;
console.log = (...a) => console.error(...a); // the npm client's own chatter
const require = createRequire(import.meta.url);
const clients = {
  2: require(path.join(root, 'tests/peers/node_modules/wslink-2/dist/wslink.js')),
  1: require(path.join(root, 'tests/peers/node_modules/wslink-1/dist/wslink.js')),
};

const argv = process.argv.slice(2);
const serverBin = path.resolve(root, argv[argv.indexOf('--server') + 1] || 'target/debug/conformance-server');
const SECRET = 'compression-test-secret';

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    log(`ok   ${name}`);
  } else {
    failed += 1;
    log(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
}

/** Starts the server on a free port; resolves { port, stop }. */
function startServer(extra) {
  return new Promise((resolve, reject) => {
    const child = spawn(serverBin, ['--host', '127.0.0.1', '--port', '0', '--authKey', SECRET, ...extra], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /:(\d+)/.exec(out.split('\n')[0] || '');
      if (out.includes('\n') && m) {
        resolve({
          port: Number(m[1]),
          stop: () =>
            new Promise((r) => {
              child.once('exit', r);
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

/** A proxy that parses the server's frames: { head, frames: [{ rsv1, opcode, len }] }. */
function frameTap(target) {
  const seen = { head: '', frames: [] };
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let inHead = true;
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      client.write(d);
      buf = Buffer.concat([buf, d]);
      if (inHead) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        seen.head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        inHead = false;
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let at = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          at = 10;
        }
        if (buf.length < at + len) return;
        seen.frames.push({ rsv1: (buf[0] & 0x40) !== 0, opcode: buf[0] & 0x0f, len });
        buf = buf.subarray(at + len);
      }
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, seen, port: server.address().port })));
}

function connect(generation, url) {
  return new Promise((resolve, reject) => {
    const connection = clients[generation].WebsocketConnection.newInstance({ urls: url, secret: SECRET });
    connection.onConnectionReady(() => resolve(connection));
    connection.onConnectionError(() => reject(new Error('connection error')));
    connection.onConnectionClose((_, e) => reject(new Error(`closed ${e && e.code}`)));
    connection.connect();
  });
}

function state() {
  const actors = [];
  for (let i = 0; i < 6000; i += 1) {
    actors.push({ id: `actor-${i}`, name: `Slice ${i % 97} of dataset ${i % 13}`, visible: i % 3 !== 0, bounds: [i * 0.5, i + 10.25, -i, i, 0, 1.5] });
  }
  return { revision: 7, actors };
}

function jpeg() {
  const b = new Uint8Array(1 << 20);
  let x = 0x2545f491;
  for (let i = 0; i < b.length; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  b.set([0xff, 0xd8, 0xff, 0xe0]);
  return b;
}

const bytesOf = (v) => new Uint8Array(v instanceof ArrayBuffer ? v : v.buffer ? v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) : v);
const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function run(generation, compression) {
  const label = `${generation}.x, compression ${compression ? 'on' : 'off'}`;
  const server = await startServer(compression ? [] : ['--no-ws-compress']);
  const tap = await frameTap(server.port);
  try {
    const connection = await connect(generation, `ws://127.0.0.1:${tap.port}/ws`);
    const session = connection.getSession();
    const ext = /sec-websocket-extensions:([^\r\n]*)/i.exec(tap.seen.head);
    if (compression) {
      check(`${label}: the upgrade accepts permessage-deflate`, ext && /^\s*permessage-deflate;/.test(ext[1]), tap.seen.head);
    } else {
      check(`${label}: no extension answered`, !ext, ext && ext[1]);
    }

    const sent = state();
    let mark = tap.seen.frames.length;
    const got = await session.call('conformance.echo', [sent]);
    await new Promise((r) => setTimeout(r, 50));
    const frames = tap.seen.frames.slice(mark).filter((f) => f.opcode === 1 || f.opcode === 2);
    const wire = frames.reduce((n, f) => n + f.len, 0);
    const plain = JSON.stringify(sent).length;
    check(`${label}: the state comes back intact`, JSON.stringify(got) === JSON.stringify(sent));
    if (compression) {
      check(`${label}: the state reply is compressed (RSV1, ${wire} bytes for ${plain} of JSON)`, frames.length > 0 && frames.every((f) => f.rsv1) && wire * 3 < plain);
    } else {
      check(`${label}: the state reply has RSV1 clear`, frames.length > 0 && frames.every((f) => !f.rsv1));
    }

    // (2.x: npm 1.12.4 sends binary as attachments the server echoes the
    // same way, covered by the Rust test; one generation suffices here.)
    if (generation === 2) {
      const image = jpeg();
      mark = tap.seen.frames.length;
      const back = await session.call('conformance.echo', [image]);
      await new Promise((r) => setTimeout(r, 50));
      const big = tap.seen.frames.slice(mark).filter((f) => f.len > 500_000);
      check(`${label}: a 1 MiB JPEG comes back with RSV1 clear`, big.length === 1 && !big[0].rsv1, JSON.stringify(tap.seen.frames.slice(mark)));
      check(`${label}: the JPEG comes back intact`, sameBytes(bytesOf(back), image));
    }
    connection.destroy(0);
  } catch (e) {
    check(`${label}: ran`, false, String(e && e.stack ? e.stack : e));
  } finally {
    tap.server.close();
    await server.stop();
  }
}

for (const generation of [2, 1]) {
  for (const compression of [true, false]) {
    await run(generation, compression);
  }
}
log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
