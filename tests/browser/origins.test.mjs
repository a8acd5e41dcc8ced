// Origin checks in a real browser: `wslink serve --allowed-origins
// same-origin` takes the WebSocket of a page it served itself and refuses
// (HTTP 403, logged) the same page served from another origin, while a
// client that is not a browser (no Origin header) still connects.
//
//   node --test origins.test.mjs        (tests/browser/run.sh does the setup)
//
// Needs the `wslink` binary (WSLINK_BIN, else target/debug/wslink) and
// Debian's chromium (CHROMIUM, default /usr/bin/chromium).

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

// The page opens a WebSocket to the URL in its query and reports how it went.
const PAGE = `<!doctype html><meta charset="utf-8"><title>origin probe</title>
<script>
window.outcome = new Promise((resolve) => {
  const ws = new WebSocket(new URLSearchParams(location.search).get('ws'));
  ws.onopen = () => { resolve('open'); ws.close(); };
  ws.onerror = () => resolve('error');
});
</script>`;

const children = [];
let dir;
let browser;

/** Starts `wslink serve` with `args`; resolves with its port and a log getter. */
function serve(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(wslinkBin, ['serve', '--host', '127.0.0.1', '--port', '0', '--timeout', '0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let log = '';
    child.stderr.on('data', (d) => { log += d; });
    child.stdout.on('data', (d) => {
      const m = /wslink server on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(String(d));
      if (m) resolve({ port: Number(m[1]), log: () => log });
    });
    child.on('exit', (code) => reject(new Error(`wslink serve exited with ${code}: ${log}`)));
  });
}

before(async () => {
  assert.ok(fs.existsSync(wslinkBin), `no wslink binary at ${wslinkBin} (cargo build -p wslink-cli)`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'origins-'));
  fs.writeFileSync(path.join(dir, 'index.html'), PAGE);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  for (const c of children) c.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The status line of an upgrade request sent by hand with `extra` headers. */
function rawUpgrade(port, extra) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`
        + `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`);
    });
    sock.once('data', (d) => { resolve(String(d).split('\r\n')[0]); sock.destroy(); });
    sock.on('error', reject);
  });
}

async function outcome(pageUrl) {
  const page = await browser.newPage();
  try {
    await page.goto(pageUrl);
    return await page.evaluate(() => window.outcome);
  } finally {
    await page.close();
  }
}

test('same-origin: the server\'s own page connects, another origin\'s is refused with a log line', async () => {
  const app = await serve(['--content', dir, '--allowed-origins', 'same-origin']);
  // The same files from a second server: another port is another origin.
  const other = await serve(['--content', dir]);
  const ws = `ws://127.0.0.1:${app.port}/ws`;

  assert.equal(await outcome(`http://127.0.0.1:${app.port}/?ws=${ws}`), 'open');
  assert.equal(await outcome(`http://127.0.0.1:${other.port}/?ws=${ws}`), 'error');
  // localhost and 127.0.0.1 are different origins for the browser too.
  assert.equal(await outcome(`http://localhost:${other.port}/?ws=${ws}`), 'error');
  // Through its own name, the app's page is still its own origin.
  assert.equal(await outcome(`http://localhost:${app.port}/?ws=ws://localhost:${app.port}/ws`), 'open');

  const refusals = app.log().split('\n').filter((l) => l.includes('origin not allowed'));
  assert.equal(refusals.length, 2, app.log());
  assert.match(refusals[0], new RegExp(`http://127\\.0\\.0\\.1:${other.port}`));

  // Not a browser: no Origin header, let in (the secret still applies).
  assert.match(await rawUpgrade(app.port, ''), /^HTTP\/1\.1 101/);
  assert.match(await rawUpgrade(app.port, 'Origin: https://evil.example\r\n'), /^HTTP\/1\.1 403/);
});

test('an explicit list lets a second origin in', async () => {
  const other = await serve(['--content', dir]);
  const app = await serve(['--allowed-origins', `same-origin,http://127.0.0.1:${other.port}`]);
  const ws = `ws://127.0.0.1:${app.port}/ws`;
  assert.equal(await outcome(`http://127.0.0.1:${other.port}/?ws=${ws}`), 'open');
  assert.equal(await outcome(`http://localhost:${other.port}/?ws=${ws}`), 'error');
});

test('the default, as Python\'s server, lets every origin in', async () => {
  const other = await serve(['--content', dir]);
  const app = await serve([]);
  assert.equal(await outcome(`http://127.0.0.1:${other.port}/?ws=ws://127.0.0.1:${app.port}/ws`), 'open');
});
