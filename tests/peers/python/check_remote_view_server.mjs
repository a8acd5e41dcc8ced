#!/usr/bin/env node
// Quick check of a VTK Web image-delivery server (what vtk.js RemoteView
// speaks) with Kitware's npm wslink 2.5.0 client (tests/peers/node_modules):
//
//   node tests/peers/python/check_remote_view_server.mjs            # starts the Python peer
//   node tests/peers/python/check_remote_view_server.mjs --url ws://127.0.0.1:PORT/ws [--secret S]
//
// Without --url it starts tests/peers/python/remote_view_server.py with
// target/peers/py2 (run tests/peers/install.sh first) on a free port.
// Checks observer.add/remove, sizes, quality and ratio, mouse and wheel
// events (eventCount), unknown view ids, and that the JPEG frames decode
// with Pillow to the announced size. Prints one line per check; exit code 0
// iff all passed.

import { createRequire } from 'node:module';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawnSync(process.execPath, ['--experimental-websocket', fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(child.status ?? 1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const py = process.env.WSLINK_PY2 || path.join(root, 'target/peers/py2/bin/python');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
let url = opt('--url', null);
const secret = opt('--secret', 'wslink-secret');

globalThis.self ??= globalThis;
globalThis.window ??= globalThis;
globalThis.location ??= { href: 'http://127.0.0.1/', origin: 'http://127.0.0.1', protocol: 'http:', host: '127.0.0.1', hostname: '127.0.0.1', port: '', pathname: '/', search: '', hash: '' };
globalThis.document ??= { baseURI: 'http://127.0.0.1/' };
console.log = (...a) => console.error(...a); // the client's own logging
const out = (line) => process.stdout.write(`${line}\n`);

const require = createRequire(import.meta.url);
const wslink = require(path.join(root, 'tests/peers/node_modules/wslink-2/dist/wslink.js'));

let server = null;
let serverErr = '';
if (!url) {
  server = spawn(py, [path.join(here, 'remote_view_server.py'), '--host', '127.0.0.1', '--port', '0', '--timeout', '0', '--authKey', secret], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr.on('data', (d) => {
    serverErr += d;
  });
  url = await new Promise((resolve, reject) => {
    let text = '';
    server.stdout.on('data', (d) => {
      text += d;
      const m = text.match(/\((ws:\/\/[^,\s]+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`server exited (${code}): ${text}`)));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failed = 0;
let passed = 0;
function check(ok, what) {
  if (ok) passed += 1;
  else failed += 1;
  out(`${ok ? 'ok' : 'FAIL'} ${what}`);
}

const session = await new Promise((resolve, reject) => {
  const connection = wslink.WebsocketConnection.newInstance({ urls: url, secret });
  connection.onConnectionReady(() => resolve(connection.getSession()));
  connection.onConnectionError((_, e) => reject(e));
  connection.connect();
});

const frames = [];
let waiters = [];
session.subscribe('viewport.image.push.subscription', ([frame]) => {
  frames.push(frame);
  waiters = waiters.filter((w) => !w(frame));
});
/** The first frame (from now on) that satisfies pred, or null after ms. */
function nextFrame(pred, ms = 5000) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), ms);
    waiters.push((f) => (pred(f) ? (clearTimeout(t), resolve(f), true) : false));
  });
}
const sizeIs = (f, w, h) => f && f.size[0] === w && f.size[1] === h;

try {
  let next = nextFrame((f) => f.id === '1');
  const added = await session.call('viewport.image.push.observer.add', [-1]);
  check(added && added.success === true && added.viewId === '1', `observer.add(-1) -> ${JSON.stringify(added)}`);
  let f = await next;
  check(f && f.format === 'jpeg' && f.image instanceof Uint8Array && f.memsize === f.image.length, 'a jpeg frame for view "1"');

  next = nextFrame((fr) => sizeIs(fr, 320, 200));
  await session.call('viewport.image.push.original.size', ['-1', 320, 200]);
  check(await next, 'original.size 320x200 renders a 320x200 frame');

  await session.call('viewport.image.push.quality', ['-1', 50, 0.5]);
  next = nextFrame((fr) => sizeIs(fr, 160, 100) && fr.quality === 50);
  await session.call('viewport.image.push', [{ view: -1, size: [320, 200] }]);
  check(await next, 'quality 50, ratio 0.5 -> 160x100 frame at quality 50');
  await session.call('viewport.image.push.quality', ['-1', 80, 1]);

  const base = frames.at(-1).eventCount;
  const start = frames.length;
  const ev = (action, x, y, extra = {}) => ({
    action, x, y, buttonLeft: action === 'up' ? 0 : 1, buttonMiddle: 0, buttonRight: 0,
    shiftKey: 0, altKey: 0, ctrlKey: 0, metaKey: 0, view: -1, ...extra,
  });
  const calls = [ev('down', 0.5, 0.5)];
  for (let i = 1; i <= 5; i += 1) calls.push(ev('down', 0.5 + i * 0.02, 0.5 + i * 0.01));
  calls.push(ev('up', 0.6, 0.55));
  for (const e of calls) await session.call('viewport.mouse.interaction', [e]);
  for (const type of ['StartMouseWheel', 'MouseWheel', 'EndMouseWheel']) {
    await session.call('viewport.mouse.zoom.wheel', [{ type, spinY: 1, x: 0.5, y: 0.5, view: -1 }]);
  }
  const want = base + calls.length + 3;
  // An "up" or an EndMouseWheel changes nothing on screen, so (like vtk.js
  // at the end of an interaction) ask for a frame.
  const last = nextFrame((fr) => fr.eventCount >= want);
  await session.call('viewport.image.push', [{ view: -1 }]);
  f = await last;
  const counts = frames.slice(start).map((fr) => fr.eventCount);
  check(f && f.eventCount === want && counts.every((c, i) => i === 0 || c >= counts[i - 1]),
    `10 events -> eventCount reaches ${want}, never decreasing (${counts.join(',')})`);

  next = nextFrame((fr) => fr.id === '2');
  const added2 = await session.call('viewport.image.push.observer.add', ['2']);
  check(added2.viewId === '2' && (await next), 'observer.add("2") -> frames for view "2"');

  let err = null;
  await session.call('viewport.image.push.observer.add', ['7']).catch((e) => { err = e; });
  const why = err && err.data && err.data.exception ? err.data.exception : JSON.stringify(err);
  check(err, `unknown view "7" -> error (${why})`);

  const removed = await session.call('viewport.image.push.observer.remove', [-1]);
  check(removed && removed.result === 'success', 'observer.remove(-1)');
  next = nextFrame((fr) => fr.id === '1', 700);
  await session.call('viewport.image.push', [{ view: -1 }]);
  check((await next) === null, 'no observer -> no frame');

  // Every frame decodes with Pillow to its announced size.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rv-check-'));
  frames.forEach((fr, i) => fs.writeFileSync(path.join(dir, `${i}_${fr.size[0]}x${fr.size[1]}.jpg`), fr.image));
  const decode = spawnSync(py, ['-c', `
import os, sys
from PIL import Image
bad = []
for name in sorted(os.listdir(sys.argv[1])):
    want = tuple(int(v) for v in name[:-4].split("_")[1].split("x"))
    with Image.open(os.path.join(sys.argv[1], name)) as im:
        im.load()
        if im.format != "JPEG" or im.size != want:
            bad.append(f"{name}: {im.format} {im.size}")
print(len(os.listdir(sys.argv[1])), "; ".join(bad))
`, dir], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  const [n, bad] = decode.stdout.trim().split(' ', 2);
  check(decode.status === 0 && !bad, `${n} frames decode with Pillow to their size${bad ? `: ${bad}` : ''}${decode.stderr || ''}`);
} catch (e) {
  check(false, `unexpected: ${e && (e.stack || JSON.stringify(e))}`);
}

if (failed && serverErr) process.stderr.write(`server stderr:\n${serverErr}\n`);
out(`${passed} passed, ${failed} failed`);
session.close();
if (server) server.kill();
await sleep(50);
process.exit(failed ? 1 : 0);
