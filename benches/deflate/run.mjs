#!/usr/bin/env node
// permessage-deflate on the wire: bytes and time for a JSON-heavy workload
// and for a JPEG stream, our server beside Kitware's Python wslink 2.6.0
// (aiohttp, compression on by default), both driven by Kitware's npm wslink
// 2.5.0 client in Node (whose WebSocket offers permessage-deflate).
//
//   node benches/deflate/run.mjs [--rounds N] [--servers ours,ours-off,python]
//
// Each server runs in its own process on loopback; the client reaches it
// through a TCP proxy in this process that counts the bytes each way and
// keeps the upgrade response. Workloads (each a `conformance.echo` round
// trip, so both servers run the same code path):
//   state: a ~1 MB state update (records of numbers and strings), msgpack;
//   jpeg:  a 1 MiB JPEG-like binary (JPEG signature, then noise).
// Prints one markdown table: bytes the server sent per round trip, and the
// median time per round trip.

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
// The npm bundle is built for browsers: the globals it reads at load time.
const page = new URL('http://127.0.0.1/index.html');
globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= page;
globalThis.document ??= { baseURI: page.href };
const log = console.log;
console.log = (...a) => console.error(...a); // the client's own chatter

const require = createRequire(import.meta.url);
const wslink = require(path.join(root, 'tests/peers/node_modules/wslink-2/dist/wslink.js'));

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const rounds = Number(arg('--rounds', '10'));
const wanted = arg('--servers', 'ours,ours-off,python').split(',');
const SECRET = 'bench-deflate-secret';

function ourBinary() {
  for (const profile of ['release', 'debug']) {
    const p = path.join(root, 'target', profile, 'conformance-server');
    try {
      require('node:fs').accessSync(p);
      return p;
    } catch (_) {
      /* next */
    }
  }
  throw new Error('no conformance-server: cargo build --release -p conformance-server');
}

const SERVERS = {
  ours: (port) => [ourBinary(), ['--host', '127.0.0.1', '--port', String(port), '--authKey', SECRET]],
  'ours-off': (port) => [
    ourBinary(),
    ['--host', '127.0.0.1', '--port', String(port), '--authKey', SECRET, '--no-ws-compress'],
  ],
  python: (port) => [
    path.join(root, 'target/peers/py2/bin/python'),
    ['tests/peers/python/conformance_server.py', '--host', '127.0.0.1', '--port', String(port), '--authKey', SECRET, '--timeout', '0'],
  ],
};

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child) {
  for (let i = 0; i < 200; i += 1) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never opened`);
}

/** A proxy that counts bytes each way and keeps the upgrade response head. */
function countingProxy(target) {
  const counts = { up: 0, down: 0, head: '' };
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    client.on('data', (d) => {
      counts.up += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!counts.head.includes('\r\n\r\n')) counts.head += d.toString('latin1').slice(0, 2000);
      counts.down += d.length;
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, counts, port: server.address().port }));
  });
}

function connect(url) {
  return new Promise((resolve, reject) => {
    const connection = wslink.WebsocketConnection.newInstance({ urls: url, secret: SECRET });
    connection.onConnectionReady(() => resolve(connection));
    connection.onConnectionError((_, e) => reject(new Error(`connection error ${e && e.type}`)));
    connection.onConnectionClose((_, e) => reject(new Error(`closed ${e && e.code}`)));
    connection.connect();
  });
}

/** ~1 MB of msgpack: the kind of state a viewer pushes after a change. */
function state() {
  const actors = [];
  for (let i = 0; i < 9000; i += 1) {
    actors.push({
      id: `actor-${i}`,
      name: `Slice ${i % 97} of dataset ${i % 13}`,
      visible: i % 3 !== 0,
      opacity: (i % 100) / 100,
      color: [(i * 37) % 256 / 255, (i * 11) % 256 / 255, (i * 5) % 256 / 255],
      bounds: [i * 0.5, i * 0.5 + 10.25, -i, i, 0, 1.5],
      representation: ['Surface', 'Wireframe', 'Points'][i % 3],
    });
  }
  return { revision: 42, actors };
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

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function measure(name) {
  const port = await freePort();
  const [cmd, argv] = SERVERS[name](port);
  const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await waitForPort(port, child);
    const proxy = await countingProxy(port);
    const connection = await connect(`ws://127.0.0.1:${proxy.port}/ws`);
    const session = connection.getSession();
    const ext = /sec-websocket-extensions:([^\r\n]*)/i.exec(proxy.counts.head);
    const out = { name, extension: ext ? ext[1].trim() : '(none)' };
    for (const [workload, value] of [['state', state()], ['jpeg', jpeg()]]) {
      await session.call('conformance.echo', [value]); // warm-up
      const times = [];
      const down0 = proxy.counts.down;
      const up0 = proxy.counts.up;
      for (let i = 0; i < rounds; i += 1) {
        const t0 = performance.now();
        const got = await session.call('conformance.echo', [value]);
        times.push(performance.now() - t0);
        if (workload === 'jpeg' && (got.length ?? got.byteLength) !== value.length) throw new Error('echo mismatch');
        if (workload === 'state' && got.actors.length !== value.actors.length) throw new Error('echo mismatch');
      }
      out[workload] = {
        down: (proxy.counts.down - down0) / rounds,
        up: (proxy.counts.up - up0) / rounds,
        ms: median(times),
      };
    }
    connection.destroy();
    proxy.server.close();
    return out;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
  }
}

const results = [];
for (const name of wanted) {
  if (!SERVERS[name]) throw new Error(`unknown server ${name}`);
  results.push(await measure(name));
}
const kb = (n) => (n / 1000).toFixed(1);
log(`rounds: ${rounds}; bytes are per round trip (server to client, client to server), KB = 1000 bytes`);
log('| server | extension answered | state ~1 MB: KB down | KB up | ms | JPEG 1 MiB: KB down | KB up | ms |');
log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  log(
    `| ${r.name} | \`${r.extension}\` | ${kb(r.state.down)} | ${kb(r.state.up)} | ${r.state.ms.toFixed(1)} | ${kb(r.jpeg.down)} | ${kb(r.jpeg.up)} | ${r.jpeg.ms.toFixed(1)} |`,
  );
}
