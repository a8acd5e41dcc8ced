// permessage-deflate with the browser people use: npm wslink 2.5.0 (its
// unmodified bundle) in Debian's headless chromium, against `wslink serve`
// with compression on (the default) and off (`--no-ws-compress`).
//
// Checked on the wire, not from the page: every byte between chromium and
// the server goes through a counting TCP proxy, and the handshake's
// response headers are read through the DevTools protocol. With compression
// on, a JSON-heavy reply costs a fraction of its size in bytes received,
// while an image-like (incompressible) blob costs its full size (the server
// sends it with RSV1 clear rather than spend CPU on it); with it off, both
// cost their full size and no extension is negotiated.
//
//   node --test compression.test.mjs        (tests/browser/run.sh does the setup)
//
// Needs the `wslink` binary (WSLINK_BIN, else target/debug/wslink), Debian's
// chromium (CHROMIUM, default /usr/bin/chromium) and npm wslink in tests/peers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const wslinkBin = process.env.WSLINK_BIN ?? path.join(target, 'debug', 'wslink');
const npmWslink = path.join(root, 'tests/peers/node_modules/wslink-2/dist/wslink.js');
const SECRET = 'compression-test-secret';

const PAGE = `<!doctype html><meta charset="utf-8"><title>compression probe</title>
<script src="wslink.js"></script>
<script>
window.connect = (config) => new Promise((resolve) => {
  const sc = window.wslink.SmartConnect.newInstance({ config });
  sc.onConnectionReady((connection) => { window.session = connection.getSession(); resolve('ready'); });
  sc.onConnectionError((_d, err) => resolve('error: ' + String(err)));
  sc.connect();
});
window.call = (method, args) => window.session.call(method, args).then(
  (r) => (r instanceof Uint8Array || r instanceof ArrayBuffer || ArrayBuffer.isView(r) ? { bytes: r.byteLength } : r),
);
</script>`;

const children = [];
const proxies = [];
let dir;
let browser;

function serve(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(wslinkBin, ['serve', '--host', '127.0.0.1', '--port', '0', '--timeout', '0', '--conformance',
      '--authKey', SECRET, '--content', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let log = '';
    child.stderr.on('data', (d) => { log += d; });
    child.stdout.on('data', (d) => {
      const m = /wslink server on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`wslink serve exited with ${code}: ${log}`)));
  });
}

/** A TCP proxy in front of `port` counting the bytes the server sends. */
function countingProxy(port) {
  const counter = { fromServer: 0 };
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    upstream.on('data', (d) => { counter.fromServer += d.length; });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  proxies.push(proxy);
  return new Promise((resolve) => proxy.listen(0, '127.0.0.1', () => resolve({ port: proxy.address().port, counter })));
}

before(async () => {
  assert.ok(fs.existsSync(wslinkBin), `no wslink binary at ${wslinkBin} (cargo build -p wslink-cli)`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wslink-deflate-'));
  fs.writeFileSync(path.join(dir, 'index.html'), PAGE);
  fs.copyFileSync(npmWslink, path.join(dir, 'wslink.js'));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  for (const p of proxies) p.close();
  for (const c of children) c.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Opens the page through a counting proxy, connects npm wslink and returns
 * the negotiated extensions plus the bytes received for a JSON-heavy echo
 * and for an incompressible blob.
 */
async function probe(serverArgs) {
  const port = await serve(serverArgs);
  const { port: proxyPort, counter } = await countingProxy(port);
  const page = await browser.newPage();
  try {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    const handshake = new Promise((resolve) => {
      cdp.on('Network.webSocketHandshakeResponseReceived', (e) => resolve(e.response));
    });
    await page.goto(`http://127.0.0.1:${proxyPort}/`);
    const ready = await page.evaluate((config) => window.connect(config), {
      application: 'compression', sessionURL: `ws://127.0.0.1:${proxyPort}/ws`, secret: SECRET,
    });
    assert.equal(ready, 'ready');
    const response = await handshake;
    const extensions = Object.entries(response.headers)
      .filter(([k]) => k.toLowerCase() === 'sec-websocket-extensions')
      .map(([, v]) => v)
      .join(', ');

    // State as a visualization app sends it: numbers and repeated keys.
    const state = Array.from({ length: 4000 }, (_, i) => ({ id: i, name: `actor-${i % 50}`, visible: i % 3 === 0, color: [0.1, 0.5, 1] }));
    const json = JSON.stringify(state);
    let before = counter.fromServer;
    const echoed = await page.evaluate((s) => window.call('conformance.echo', [s]), state);
    assert.deepEqual(echoed, state);
    const jsonBytes = counter.fromServer - before;

    // Random bytes, echoed: they compress no better than a JPEG does.
    const blobSize = 512 * 1024;
    before = counter.fromServer;
    const blob = await page.evaluate((n) => {
      const bytes = new Uint8Array(n);
      for (let at = 0; at < n; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
      return window.call('conformance.echo', [bytes]);
    }, blobSize);
    assert.equal(blob.bytes, blobSize);
    const blobBytes = counter.fromServer - before;
    return { extensions, json: json.length, jsonBytes, blobSize, blobBytes };
  } finally {
    await page.close();
  }
}

test('compression on by default: negotiated with chromium, JSON-heavy replies shrink, incompressible blobs go as they are', async () => {
  const r = await probe([]);
  console.log(`default: extensions "${r.extensions}"; ${r.json} B of JSON state arrived in ${r.jsonBytes} B; ${r.blobSize} B blob in ${r.blobBytes} B`);
  assert.match(r.extensions, /permessage-deflate/);
  assert.ok(r.jsonBytes < r.json / 4, `JSON state not compressed on the wire: ${r.jsonBytes} B for ${r.json} B`);
  assert.ok(r.blobBytes >= r.blobSize, `the blob arrived in fewer bytes than it has: ${r.blobBytes} < ${r.blobSize}`);
  assert.ok(r.blobBytes < r.blobSize * 1.01, `the blob grew on the wire: ${r.blobBytes} B`);
});

test('--no-ws-compress: no extension, every byte on the wire', async () => {
  const r = await probe(['--no-ws-compress']);
  console.log(`--no-ws-compress: extensions "${r.extensions}"; ${r.json} B of JSON state arrived in ${r.jsonBytes} B`);
  assert.equal(r.extensions, '');
  assert.ok(r.jsonBytes >= r.json * 0.5, `the reply is smaller than its msgpack could be: ${r.jsonBytes} B`);
});
