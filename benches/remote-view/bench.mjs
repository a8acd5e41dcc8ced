#!/usr/bin/env node
// Remote-rendering benchmark: the remote-view page (Kitware's vtk.js
// RemoteView over npm wslink 2.5.0 SmartConnect, examples/remote-view/web/dist)
// in Debian's headless chromium, driven by playwright-core, against
//
//   ours    target/release/remote-view (examples/remote-view)
//   python  tests/peers/python/remote_view_server.py on Kitware's Python
//           wslink 2.6.0 (target/peers/py2), same protocol, same scene
//           (numpy + Pillow), serving the same page with --content
//
//   node bench.mjs [--servers ours,python] [--sizes 640x360,1280x720]
//                  [--throttles 33,16] [--drag-ms 5000] [--quick]
//                  [--client wslink2] [--out FILE.md]
//
// For each server and size: a fresh server process and a fresh browser
// whose viewport (so the view) has that size; the page is opened with
// ?client=wslink2, the first frame at the full size is awaited, a short
// warm-up drag is done, then for each throttle (vtk.js's default 33 ms and
// 16 ms, set with remoteView.setThrottle) one continuous left-button drag in
// a circle (page.mouse.move every 8 ms) for --drag-ms (1 s with --quick).
//
// Measured from the page's hooks (window.remoteView):
//   events/s   viewport.mouse.interaction calls per second during the drag
//              (vtk.js's throttle and chromium's input rate decide it; no
//              server can send more frames than this during a drag)
//   fps        decoded frames per second during the drag: the median over its
//              whole seconds (the overall rate when the drag is shorter)
//   latency    for each viewport.mouse.interaction call of the drag (time
//              t_k, k-th mouse/wheel event of the view, counted from the page
//              start), the first decoded frame whose eventCount >= k; the
//              latency is t_decoded - t_k. Decoded frames (vtk.js image-ready
//              events) are matched to published frames (remoteView.frames,
//              which carry eventCount) by view id and JPEG size.
//   frames     frames decoded during the drag; quality: the `quality` of the
//              frames published during the drag; KiB: their mean JPEG size;
//              render ms: the median of their workTime (server render+encode)
//   server CPU (utime + stime) / drag time, from /proc/<pid>/stat; browser
//              CPU the same for chromium's processes (100 % = one core)
//   RSS        VmRSS and VmHWM from /proc/<pid>/status after the runs
//
// Environment: REMOTE_VIEW_BIN (default target/release/remote-view),
// WSLINK_PY2 (default target/peers/py2/bin/python), CHROMIUM (default
// /usr/bin/chromium), REMOTE_VIEW_DIST (default examples/remote-view/web/dist).

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const dist = path.resolve(process.env.REMOTE_VIEW_DIST ?? path.join(root, 'examples/remote-view/web/dist'));
const oursBin = path.resolve(process.env.REMOTE_VIEW_BIN ?? path.join(targetDir, 'release/remote-view'));
const python = path.resolve(process.env.WSLINK_PY2 ?? path.join(root, 'target/peers/py2/bin/python'));
const pythonScript = path.join(root, 'tests/peers/python/remote_view_server.py');

const MOVE_EVERY_MS = 8; // pointer moves: ~120 Hz, above both throttles
const TURN_MS = 2000; // one circle every 2 s
const EVENT_RPCS = new Set(['viewport.mouse.interaction', 'viewport.mouse.zoom.wheel']);
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

// --------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const o = {
    servers: ['ours', 'python'],
    sizes: [[640, 360], [1280, 720]],
    throttles: [33, 16],
    dragMs: null,
    quick: false,
    client: 'wslink2',
    out: path.join(targetDir, 'bench/remote-view.md'),
  };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      i += 1;
      return argv[i];
    };
    if (a === '--servers') o.servers = value().split(',').filter(Boolean);
    else if (a === '--sizes') {
      o.sizes = value()
        .split(',')
        .filter(Boolean)
        .map((s) => {
          const m = s.match(/^(\d+)x(\d+)$/);
          if (!m) usage(`bad size ${s} (want WxH)`);
          return [Number(m[1]), Number(m[2])];
        });
    } else if (a === '--throttles') o.throttles = value().split(',').filter(Boolean).map(Number);
    else if (a === '--drag-ms') o.dragMs = Number(value());
    else if (a === '--quick') o.quick = true;
    else if (a === '--client') o.client = value();
    else if (a === '--out') o.out = path.resolve(value());
    else if (a === '-h' || a === '--help') usage(null);
    else usage(`unknown argument ${a}`);
  }
  for (const s of o.servers) if (s !== 'ours' && s !== 'python') usage(`unknown server ${s} (ours, python)`);
  if (o.dragMs === null) o.dragMs = o.quick ? 1000 : 5000;
  return o;
}

function usage(problem) {
  if (problem) process.stderr.write(`bench: ${problem}\n`);
  process.stderr.write(
    'usage: node bench.mjs [--servers ours,python] [--sizes 640x360,1280x720] [--throttles 33,16]\n' +
      '                      [--drag-ms MS] [--quick] [--client wslink2|wslink1|rs] [--out FILE.md]\n',
  );
  process.exit(problem ? 2 : 0);
}

const opts = parseArgs(process.argv.slice(2));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// --------------------------------------------------------------------------
// Servers

const running = new Set();
process.once('exit', () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

/** Starts a server on a free port; resolves { child, url, log() } once it printed its URL. */
async function startServer(kind, secret) {
  let cmd;
  let args;
  if (kind === 'ours') {
    if (!fs.existsSync(oursBin)) throw new Error(`no ${oursBin}: build it with  cargo build --release -p remote-view`);
    cmd = oursBin;
    args = ['--host', '127.0.0.1', '--port', '0', '--secret', secret];
  } else {
    if (!fs.existsSync(python)) throw new Error(`no ${python}: run  bash tests/peers/install.sh`);
    cmd = python;
    args = [pythonScript, '--host', '127.0.0.1', '--port', '0', '--timeout', '0', '--authKey', secret, '--content', dist];
  }
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let text = '';
  const log = () => text;
  const exited = new Promise((_, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`${kind} server exited (code ${code}, signal ${signal}):\n${text}`)));
    child.once('error', reject);
  });
  exited.catch(() => {});
  const announced = new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      text += d;
      const m = text.match(/https?:\/\/[^\s)'",]+/);
      if (m) resolve(m[0]);
    });
  });
  child.stderr.on('data', (d) => {
    text += d;
    if (text.length > 200_000) text = text.slice(-100_000);
  });
  const url = await withTimeout(Promise.race([announced, exited]), 30_000, `the ${kind} server printing its URL`);
  return { child, url, log, cmdline: [cmd, ...args].join(' ') };
}

async function stopServer(server) {
  const { child } = server;
  running.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  try {
    await withTimeout(gone, 8000, 'server stop');
  } catch {
    child.kill('SIGKILL');
    await gone;
  }
}

function procMem(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => {
    const m = status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  };
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** CPU seconds (user + system) the process used so far. */
function procCpu(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

/** CPU seconds used so far by this process's descendants other than `exclude` (the browser). */
function browserCpu(exclude) {
  const parent = new Map();
  const cpu = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(name), Number(f[1]));
      cpu.set(Number(name), (Number(f[11]) + Number(f[12])) / CLK_TCK);
    } catch {
      /* gone */
    }
  }
  let total = 0;
  for (const [pid, seconds] of cpu) {
    let p = pid;
    while (p > 1 && p !== process.pid && p !== exclude) p = parent.get(p) ?? 0;
    if (p === process.pid && pid !== process.pid) total += seconds;
  }
  return total;
}

// --------------------------------------------------------------------------
// Measurement

const hooks = (page) =>
  page.evaluate(() => {
    const rv = window.remoteView;
    return {
      now: performance.now(),
      connected: rv.connected,
      errors: rv.errors.slice(),
      pageErrors: rv.pageErrors ? rv.pageErrors.slice() : [],
      calls: rv.calls.map(({ t, method, args }) => ({ t, method, action: args && args[0] && args[0].action })),
      frames: rv.frames.map(({ t, id, size, quality, memsize, mtime, workTime, eventCount }) => ({ t, id, size, quality, memsize, mtime, workTime, eventCount })),
      decoded: rv.decoded.map(({ t, width, height, metadata }) => ({ t, width, height, metadata })),
    };
  });

/** Each decoded frame with the eventCount of the published frame it came from. */
function decodedWithEvents(h) {
  const out = [];
  let fi = 0;
  const candidates = [];
  for (const d of h.decoded) {
    while (fi < h.frames.length && h.frames[fi].t <= d.t) candidates.push(h.frames[fi++]);
    const md = d.metadata || {};
    let match = null;
    for (let i = candidates.length - 1; i >= 0 && i >= candidates.length - 64; i -= 1) {
      const f = candidates[i];
      if (String(f.id) === String(md.id) && f.memsize === md.memory) {
        match = f;
        break;
      }
    }
    out.push({ ...d, eventCount: match ? match.eventCount : null, quality: match ? match.quality : null });
  }
  return out;
}

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function drag(page, width, height, ms) {
  const cx = width / 2;
  const cy = height / 2;
  const r = Math.min(width, height) * 0.25;
  await page.mouse.move(cx + r, cy);
  await page.mouse.down({ button: 'left' });
  const t0 = Date.now();
  let moves = 0;
  for (;;) {
    const elapsed = Date.now() - t0;
    if (elapsed >= ms) break;
    const a = (2 * Math.PI * elapsed) / TURN_MS;
    await page.mouse.move(cx + r * Math.cos(a), cy + r * Math.sin(a));
    moves += 1;
    const next = t0 + moves * MOVE_EVERY_MS;
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
  }
  await page.mouse.up({ button: 'left' });
  return moves;
}

/** Waits until a decoded frame covers all `total` events (or 5 s). */
async function settle(page, total) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const h = await hooks(page);
    const dec = decodedWithEvents(h);
    const last = dec[dec.length - 1];
    if (last && last.eventCount !== null && last.eventCount >= total) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

async function measureRun(page, width, height, throttle, dragMs, serverPid) {
  await page.evaluate((ms) => window.remoteView.setThrottle(ms), throttle);
  const before = await hooks(page);
  const base = before.calls.filter((c) => EVENT_RPCS.has(c.method)).length;
  const tStart = before.now;
  const cpu0 = procCpu(serverPid);
  const bcpu0 = browserCpu(serverPid);
  const wall0 = Date.now();
  const moves = await drag(page, width, height, dragMs);
  const cpu1 = procCpu(serverPid);
  const bcpu1 = browserCpu(serverPid);
  const wall1 = Date.now();
  const afterDrag = await hooks(page);
  const total = afterDrag.calls.filter((c) => EVENT_RPCS.has(c.method)).length;
  const settled = await settle(page, total);
  await sleep(300);
  const h = await hooks(page);
  if (h.calls.length >= 5000) console.error('# warning: remoteView.calls hit its bound; event indices may be off');

  const events = [];
  let idx = 0;
  for (const c of h.calls) {
    if (!EVENT_RPCS.has(c.method)) continue;
    idx += 1;
    if (c.t >= tStart) events.push({ t: c.t, idx, action: c.action });
  }
  const dec = decodedWithEvents(h);
  const latencies = [];
  let unmatched = 0;
  let j = 0;
  for (const e of events) {
    // decoded frames are in time order and their eventCount never decreases
    while (j < dec.length && (dec[j].eventCount === null || dec[j].eventCount < e.idx)) j += 1;
    if (j < dec.length) latencies.push(dec[j].t - e.t);
    else unmatched += 1;
  }
  latencies.sort((a, b) => a - b);

  const tFirst = events.length ? events[0].t : tStart;
  const tLast = events.length ? events[events.length - 1].t : h.now;
  const inDrag = (t) => t >= tFirst && t <= tLast;
  const decodedDrag = dec.filter((d) => inDrag(d.t));
  const framesDrag = h.frames.filter((f) => inDrag(f.t));
  const seconds = Math.floor((tLast - tFirst) / 1000);
  let fps;
  if (seconds >= 2) {
    const per = Array.from({ length: seconds }, (_, s) =>
      decodedDrag.filter((d) => d.t >= tFirst + s * 1000 && d.t < tFirst + (s + 1) * 1000).length,
    ).sort((a, b) => a - b);
    fps = quantile(per, 0.5);
  } else {
    fps = (decodedDrag.length * 1000) / Math.max(1, tLast - tFirst);
  }
  const qualities = [...new Set(framesDrag.map((f) => f.quality))].sort((a, b) => a - b);
  const sizes = [...new Set(framesDrag.map((f) => (Array.isArray(f.size) ? f.size.join('x') : String(f.size))))];
  const work = framesDrag.map((f) => Number(f.workTime)).filter(Number.isFinite).sort((a, b) => a - b);
  const kib = framesDrag.length ? framesDrag.reduce((s, f) => s + (f.memsize || 0), 0) / framesDrag.length / 1024 : NaN;
  const lastFrame = h.frames[h.frames.length - 1];
  return {
    throttle,
    dragMs,
    moves,
    events: events.length,
    eventRate: (events.length * 1000) / Math.max(1, tLast - tFirst),
    eventsTotal: idx,
    serverEventCount: lastFrame ? lastFrame.eventCount : null,
    settled,
    fps,
    latencyMedian: quantile(latencies, 0.5),
    latencyP95: quantile(latencies, 0.95),
    latencyCount: latencies.length,
    unmatched,
    decoded: decodedDrag.length,
    published: framesDrag.length,
    qualities,
    sizes,
    kib,
    workMedian: quantile(work, 0.5),
    cpu: (cpu1 - cpu0) / ((wall1 - wall0) / 1000),
    browserCpu: (bcpu1 - bcpu0) / ((wall1 - wall0) / 1000),
    errors: h.errors.concat(h.pageErrors),
  };
}

async function runOne(kind, width, height) {
  const secret = crypto.randomBytes(9).toString('base64url');
  const server = await startServer(kind, secret);
  const pid = server.child.pid;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-view-bench-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      timeout: 30_000,
      viewport: { width, height },
      deviceScaleFactor: 1,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    context.setDefaultTimeout(20_000);
    const page = context.pages()[0] ?? (await context.newPage());
    const base = server.url.replace(/\/?$/, '/');
    const pageUrl = `${base}index.html?client=${encodeURIComponent(opts.client)}&view=-1&secret=${encodeURIComponent(secret)}`;
    await page.goto(pageUrl);
    await page
      .waitForFunction(
        ([w, h]) => window.remoteView && window.remoteView.decoded.some((d) => d.width === w && d.height === h),
        [width, height],
        { timeout: 30_000, polling: 50 },
      )
      .catch(async (e) => {
        const h = await hooks(page).catch(() => null);
        throw new Error(
          `no ${width}x${height} frame decoded: ${e.message}\n` +
            `page: ${h ? JSON.stringify({ connected: h.connected, errors: h.errors, pageErrors: h.pageErrors, frames: h.frames.length, decoded: h.decoded.slice(-3) }) : '?'}\n` +
            `server log:\n${server.log().slice(-3000)}`,
        );
      });
    await sleep(300);
    // warm-up: browser and server on the code paths the drags use
    await measureRun(page, width, height, opts.throttles[0], opts.quick ? 300 : 1000, pid);
    await sleep(300);
    const runs = [];
    for (const throttle of opts.throttles) {
      runs.push(await measureRun(page, width, height, throttle, opts.dragMs, pid));
      await sleep(300);
    }
    const mem = procMem(pid);
    return { kind, width, height, runs, mem, cmdline: server.cmdline };
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
    await stopServer(server);
  }
}

// --------------------------------------------------------------------------
// Report

const LABEL = { ours: 'ours (remote-view)', python: 'python wslink 2.6.0' };
const ms = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : '–');
const mib = (kib) => `${(kib / 1024).toFixed(1)}`;

function table(results) {
  const lines = [
    '| server | size | throttle | events/s | fps drag (median) | latency median | latency p95 | frames | quality | frame KiB | render ms | server CPU | browser CPU | server RSS (VmRSS / VmHWM) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    for (const run of r.runs) {
      lines.push(
        `| ${LABEL[r.kind]} | ${r.width}x${r.height} | ${run.throttle} ms | ${run.eventRate.toFixed(1)} | ${run.fps.toFixed(1)} | ${ms(run.latencyMedian)} | ${ms(run.latencyP95)} | ` +
          `${run.decoded} | ${run.qualities.join('/') || '–'} | ${Number.isFinite(run.kib) ? run.kib.toFixed(1) : '–'} | ${Number.isFinite(run.workMedian) ? run.workMedian.toFixed(1) : '–'} | ` +
          `${(run.cpu * 100).toFixed(0)} % | ${(run.browserCpu * 100).toFixed(0)} % | ${mib(r.mem.rssKiB)} / ${mib(r.mem.hwmKiB)} MiB |`,
      );
    }
  }
  return lines.join('\n');
}

async function main() {
  if (!fs.existsSync(chromiumPath)) throw new Error(`no browser at ${chromiumPath}`);
  if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`no page at ${dist} (build examples/remote-view/web)`);
  const results = [];
  for (const kind of opts.servers) {
    for (const [w, h] of opts.sizes) {
      process.stderr.write(`# ${kind} ${w}x${h}: ${opts.throttles.length} drag(s) of ${opts.dragMs} ms\n`);
      const r = await runOne(kind, w, h);
      for (const run of r.runs) {
        const notes = [];
        if (!run.settled) notes.push('did not settle');
        if (run.serverEventCount !== run.eventsTotal) notes.push(`server eventCount ${run.serverEventCount} != ${run.eventsTotal} events sent`);
        if (run.unmatched) notes.push(`${run.unmatched} events without a frame`);
        if (run.errors.length) notes.push(`page errors: ${run.errors.slice(0, 3).join(' | ')}`);
        process.stderr.write(
          `#   throttle ${run.throttle} ms: ${run.moves} moves -> ${run.events} events, ${run.published} frames published, ` +
            `${run.decoded} decoded, fps ${run.fps.toFixed(1)}, latency ${ms(run.latencyMedian)} / p95 ${ms(run.latencyP95)} ` +
            `(${run.latencyCount} events), sizes ${run.sizes.join(',')}, cpu ${(run.cpu * 100).toFixed(0)} % (browser ${(run.browserCpu * 100).toFixed(0)} %)` +
            `${notes.length ? ` [${notes.join('; ')}]` : ''}\n`,
        );
      }
      results.push(r);
    }
  }
  const header =
    `remote-view benchmark: ${opts.client} client in headless chromium, ${opts.dragMs} ms left-drag per row, ` +
    `pointer move every ${MOVE_EVERY_MS} ms, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'})`;
  const text = `${header}\n\n${table(results)}\n`;
  process.stdout.write(`\n${text}`);
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, text);
  fs.writeFileSync(opts.out.replace(/\.md$/, '') + '.json', JSON.stringify({ opts, results }, null, 2));
  process.stderr.write(`# written: ${opts.out}\n`);
}

main().catch((e) => {
  console.error(`bench: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
