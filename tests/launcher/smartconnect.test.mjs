// npm wslink's SmartConnect (2.5.0 and 1.12.4, their unmodified browser
// bundles) in headless chromium, getting sessions from a launcher that
// starts `wslink serve --conformance` per session:
//
//   - the reference pair: the same scenario against `wslink launch` and
//     against Kitware's `python -m wslink.launcher` (PyPI wslink 2.6.0),
//     with the same configuration file;
//   - a session through `wslink launch`'s built-in WebSocket proxy.
//
//   bash tests/launcher/run.sh     (builds and installs what this needs)
//
// Needs target/debug/wslink (WSLINK_BIN), target/peers/py2 (WSLINK_PY2,
// from tests/peers/install.sh), tests/peers/node_modules (npm wslink),
// playwright-core in tests/browser/node_modules and Debian's chromium
// (CHROMIUM, default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { chromium } = createRequire(path.join(root, 'tests/browser/package.json'))('playwright-core');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const wslinkBin = process.env.WSLINK_BIN ?? path.join(target, 'debug', 'wslink');
const python = process.env.WSLINK_PY2 ?? path.join(root, 'target/peers/py2/bin/python');
const npmWslink = (major) => path.join(root, `tests/peers/node_modules/wslink-${major}/dist/wslink.js`);

// How long a session's `wslink serve` lives without a client: the
// "process exits" case waits for it.
const IDLE_EXIT = 3;
const TIMEOUT = 3;

// The page: both npm bundles side by side, and helpers the test drives.
const PAGE = `<!doctype html><meta charset="utf-8"><base href="/"><title>launcher test</title>
<script src="wslink2.js"></script><script>window.wslink2 = window.wslink;</script>
<script src="wslink1.js"></script><script>window.wslink1 = window.wslink;</script>
<script>
window.sessions = {};
// SmartConnect with only an application (and maybe a sessionManagerURL):
// it asks the launcher for a session, then connects to its sessionURL.
window.connect = (name, lib, config) => new Promise((resolve) => {
  const sc = window[lib].SmartConnect.newInstance({ config });
  let done = false;
  const finish = (v) => { if (!done) { done = true; resolve(v); } };
  sc.onConnectionReady((connection) => {
    window.sessions[name] = { sc, session: connection.getSession() };
    const c = sc.getConfig();
    finish({ ok: true, id: c.id, port: c.port, sessionURL: c.sessionURL, secret: c.secret });
  });
  sc.onConnectionError((data, err) => finish({ ok: false, status: data && data.status, error: String(err) }));
  sc.onConnectionClose(() => finish({ ok: false, error: 'closed' }));
  sc.connect();
});
window.call = async (name, method, args) => {
  const r = await window.sessions[name].session.call(method, args);
  if (r && r.blob) return { size: r.size, bytes: r.blob.byteLength ?? r.blob.size };
  return r;
};
window.disconnect = (name) => { window.sessions[name].sc.destroy(); delete window.sessions[name]; };
</script>`;

let browser;
let www;
const marker = `launcher-test-${randomUUID()}`;
const summary = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** The configuration file both launchers read (comments included, as Kitware's samples have them). */
function writeConfig(dir, { port, ports, proxy }) {
  const sessionURL = proxy ? 'ws://USE_HOST/proxy?sessionId=${id}' : 'ws://${host}:${port}/ws';
  const text = `// A launcher configuration in Kitware's format, read by both launchers.
{
  "configuration": {
    "host": "127.0.0.1",
    "port": ${port},
    "endpoint": "paraview",                 // SmartConnect's default
    "content": ${JSON.stringify(www)},
    "proxy_file": ${JSON.stringify(path.join(dir, 'proxy-mapping.txt'))},
    "sessionURL": ${JSON.stringify(sessionURL)},
    "timeout": ${TIMEOUT},                  /* seconds to print the ready line */
    "log_dir": ${JSON.stringify(path.join(dir, 'logs'))},
    "fields": ["port"]${proxy ? ',\n    "proxy": { "path": "/proxy" }           // wslink launch only' : ''}
  },
  "resources": [ { "host": "127.0.0.1", "port_range": [${ports[0]}, ${ports[0]}] },
                 { "host": "127.0.0.1", "port_range": [${ports[1]}, ${ports[1]}] } ],
  "properties": { "wslink": ${JSON.stringify(wslinkBin)} },
  "apps": {
    "conf": {
      "cmd": ["\${wslink}", "serve", "--conformance", "--host", "\${host}", "--port", "\${port}",
              "--authKey", "\${secret}", "--timeout", "${IDLE_EXIT}"],
      "ready_line": "wslink server on"
    },
    "mute": { "cmd": ["sh", "-c", "echo starting; exec sleep 60"], "ready_line": "wslink server on" }
  }
}
`;
  const file = path.join(dir, 'launcher.json');
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** Processes (not zombies) carrying this run's marker in their environment. */
function markedProcesses() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${name}/environ`, 'latin1');
      if (!env.includes(`WSLINK_LAUNCHER_TEST_MARKER=${marker}`)) continue;
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
      if (/\) [ZX] /.test(stat)) continue;
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').join(' ').trim();
      out.push({ pid: Number(name), cmd });
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

async function startLauncher(kind, config, port) {
  const [cmd, args] = kind === 'ours'
    ? [wslinkBin, ['launch', config]]
    : [python, ['-m', 'wslink.launcher', config]];
  const child = spawn(cmd, args, {
    env: { ...process.env, WSLINK_LAUNCHER_GET: '1', WSLINK_LAUNCHER_DELETE: '1', WSLINK_LAUNCHER_TEST_MARKER: marker },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/index.html`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${kind} launcher did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      const how = await exited;
      clearTimeout(timer);
      return how;
    },
  };
}

before(async () => {
  for (const [what, file] of [['wslink binary', wslinkBin], ['Python wslink 2.6.0', python], ['npm wslink 2.5.0', npmWslink(2)], ['npm wslink 1.12.4', npmWslink(1)]]) {
    assert.ok(fs.existsSync(file), `${what} missing at ${file}: run bash tests/launcher/run.sh`);
  }
  www = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-www-'));
  fs.writeFileSync(path.join(www, 'index.html'), PAGE);
  fs.copyFileSync(npmWslink(2), path.join(www, 'wslink2.js'));
  fs.copyFileSync(npmWslink(1), path.join(www, 'wslink1.js'));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (www) fs.rmSync(www, { recursive: true, force: true });
  // Whatever a launcher left running (Kitware's may), this run started it.
  for (const { pid } of markedProcesses()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  if (summary.length) console.log(`\nreference pair, side by side:\n${summary.join('\n')}`);
});

/** The scenario both launchers must pass; returns what differed, for the summary. */
async function scenario(kind) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `launcher-${kind}-`));
  const port = await freePort();
  const ports = [await freePort(), await freePort()];
  const config = writeConfig(dir, { port, ports, proxy: false });
  const launcher = await startLauncher(kind, config, port);
  const page = await browser.newPage();
  const origin = `http://127.0.0.1:${port}`;
  const manager = `${origin}/paraview/`;
  const notes = [];
  try {
    await page.goto(`${origin}/`);
    assert.equal(page.url(), `${origin}/index.html`, 'GET / redirects to index.html');
    const connect = (name, lib, config) => page.evaluate(([n, l, c]) => window.connect(n, l, c), [name, lib, config]);
    const call = (name, method, args) => page.evaluate(([n, m, a]) => window.call(n, m, a), [name, method, args]);
    const http = (method, p) => page.evaluate(async ([m, u]) => {
      const r = await fetch(u, { method: m });
      return { status: r.status, text: await r.text() };
    }, [method, p]);

    // Two sessions, one per npm generation, on the two ports of the pool.
    const a = await connect('A', 'wslink2', { application: 'conf', sessionManagerURL: manager });
    assert.ok(a.ok, `A: ${JSON.stringify(a)}`);
    assert.equal(a.sessionURL, `ws://127.0.0.1:${a.port}/ws`);
    assert.equal(typeof a.secret, 'string', 'the secret comes from the launcher (it is on the command line)');
    assert.equal(await call('A', 'conformance.add', [2, 3]), 5);
    const b = await connect('B', 'wslink1', { application: 'conf' }); // the default sessionManagerURL
    assert.ok(b.ok, `B: ${JSON.stringify(b)}`);
    assert.equal(await call('B', 'conformance.add', [40, 2]), 42);
    assert.deepEqual(new Set([a.port, b.port]), new Set(ports), 'two sessions, two ports');
    const blob = await call('A', 'conformance.blob', [100000, 1]);
    assert.equal(blob.bytes, 100000);

    const mapping = fs.readFileSync(path.join(dir, 'proxy-mapping.txt'), 'utf8');
    assert.equal(mapping, [a, b].map((s) => `${s.id} 127.0.0.1:${s.port}\n`).join(''), 'the proxy-mapping file');
    const got = await http('GET', `/paraview/${a.id}`);
    assert.equal(got.status, 200);
    assert.equal(JSON.parse(got.text).id, a.id);
    assert.equal((await http('GET', '/paraview/no-such-id')).status, 400);
    assert.equal((await http('DELETE', '/paraview/no-such-id')).status, 404);

    // A third: no port left.
    const c = await connect('C', 'wslink2', { application: 'conf', sessionManagerURL: manager });
    assert.deepEqual(c, { ok: false, status: 503, error: 'All the resources are currently taken' });

    // A port freed by DELETE is reused.
    await page.evaluate(() => window.disconnect('A'));
    assert.equal((await http('DELETE', `/paraview/${a.id}`)).status, 200);
    const d = await connect('D', 'wslink2', { application: 'conf', sessionManagerURL: manager });
    assert.ok(d.ok, `D: ${JSON.stringify(d)}`);
    assert.equal(d.port, a.port, 'the deleted session\'s port');
    assert.equal(await call('D', 'conformance.add', [1, 1]), 2);

    // A port freed by its process exiting is reused: B's server stops
    // IDLE_EXIT seconds after its client leaves; SmartConnect retries on 503.
    await page.evaluate(() => window.disconnect('B'));
    const e = await connect('E', 'wslink2', {
      application: 'conf', sessionManagerURL: manager, launcherRetry: Array(30).fill(500),
    });
    assert.ok(e.ok, `E: ${JSON.stringify(e)}`);
    assert.equal(e.port, b.port, 'the exited session\'s port');
    assert.equal(await call('E', 'conformance.add', [2, 2]), 4);

    // A session that never prints its ready line: refused at the timeout,
    // its process stopped and its port freed.
    await page.evaluate(() => window.disconnect('D'));
    assert.equal((await http('DELETE', `/paraview/${d.id}`)).status, 200);
    const started = Date.now();
    const m = await connect('M', 'wslink2', { application: 'mute', sessionManagerURL: manager });
    const waited = (Date.now() - started) / 1000;
    assert.deepEqual(m, { ok: false, status: 503, error: 'Session did not start before timeout expired. Check session logs.' });
    assert.ok(waited >= TIMEOUT - 0.5 && waited < TIMEOUT + 3, `answered after ${waited} s`);
    // Ours answers once the process is gone; give Kitware's half a second.
    if (kind !== 'ours') await new Promise((r) => setTimeout(r, 500));
    const sleeping = markedProcesses().filter((p) => p.cmd.startsWith('sleep'));
    if (kind === 'ours') assert.deepEqual(sleeping, [], 'the mute process is gone');
    else if (sleeping.length) notes.push(`timeout leaves ${sleeping.length} process(es)`);
    const f = await connect('F', 'wslink2', { application: 'conf', sessionManagerURL: manager });
    assert.ok(f.ok, `F: ${JSON.stringify(f)}`);
    assert.equal(f.port, d.port, 'the timed-out session\'s port');

    // Where the two differ by design (not asserted for Kitware's): with a
    // port free, a malformed request and an unknown application.
    await page.evaluate(() => window.disconnect('F'));
    assert.equal((await http('DELETE', `/paraview/${f.id}`)).status, 200);
    const odd = await page.evaluate(async (u) => {
      const post = async (body) => (await fetch(u, { method: 'POST', body })).status;
      return { malformed: await post('{'), unknownApp: await post('{"application": "nope"}') };
    }, manager);
    const g = await connect('G', 'wslink2', { application: 'conf', sessionManagerURL: manager });
    if (kind === 'ours') {
      assert.deepEqual(odd, { malformed: 400, unknownApp: 400 });
      assert.ok(g.ok, 'the free port is still free');
    }
    notes.push(`malformed JSON -> ${odd.malformed}, unknown application -> ${odd.unknownApp}, `
      + `then the free port ${g.ok ? 'is still free' : `is gone (next launch: ${g.status} ${g.error})`}`);
  } finally {
    await page.close();
  }

  // Stopping the launcher: ours stops every session it started.
  const running = markedProcesses().filter((p) => p.pid !== launcher.child.pid);
  const how = await launcher.stop();
  await new Promise((r) => setTimeout(r, 300));
  const left = markedProcesses();
  if (kind === 'ours') {
    assert.equal(how.code, 0, `exit ${JSON.stringify(how)}\n${launcher.log()}`);
    assert.ok(running.length >= 2, `sessions were running: ${JSON.stringify(running)}`);
    assert.deepEqual(left, [], 'no process left after SIGTERM');
    assert.match(launcher.log(), /exit code|killed by signal/);
  }
  notes.push(`SIGTERM with ${running.length} session(s) running leaves ${left.length} process(es)`);
  summary.push(`  ${kind === 'ours' ? 'wslink launch  ' : 'wslink.launcher'}: ${notes.join('; ')}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

test('SmartConnect gets sessions from `wslink launch`', async () => {
  await scenario('ours');
});

test('the reference pair: the same scenario against Kitware\'s Python launcher', async () => {
  await scenario('kitware');
});

test('SmartConnect through the built-in proxy: one public port', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-proxy-'));
  const port = await freePort();
  const ports = [await freePort(), await freePort()];
  const config = writeConfig(dir, { port, ports, proxy: true });
  const launcher = await startLauncher('ours', config, port);
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${port}/`);
    for (const [name, lib] of [['P2', 'wslink2'], ['P1', 'wslink1']]) {
      const s = await page.evaluate(([n, l]) => window.connect(n, l, { application: 'conf' }), [name, lib]);
      assert.ok(s.ok, `${lib}: ${JSON.stringify(s)}`);
      assert.equal(s.sessionURL, `ws://127.0.0.1:${port}/proxy?sessionId=${s.id}`, 'USE_HOST: the launcher\'s own port');
      assert.equal(await page.evaluate(([n]) => window.call(n, 'conformance.add', [20, 22]), [name]), 42);
      const text = 'x'.repeat(200000);
      assert.equal(await page.evaluate(([n, t]) => window.call(n, 'conformance.echo', [t]), [name, text]), text);
    }
    const blob = await page.evaluate(() => window.call('P2', 'conformance.blob', [2000000, 3]));
    assert.equal(blob.bytes, 2000000);
    // A page cannot reach a session that does not exist.
    const refused = await page.evaluate((u) => new Promise((resolve) => {
      const ws = new WebSocket(u);
      ws.onopen = () => resolve('open');
      ws.onerror = () => resolve('refused');
    }), `ws://127.0.0.1:${port}/proxy?sessionId=no-such-session`);
    assert.equal(refused, 'refused');
    assert.match(launcher.log(), /proxy: 127\.0\.0\.1:\d+ connected to session/);
    assert.match(launcher.log(), /proxy: refused .*no-such-session/);
  } finally {
    await page.close();
    const how = await launcher.stop();
    assert.equal(how.code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(markedProcesses(), []);
});

test('the README\'s launcher config: vtk.js RemoteView of the remote-view demo through the proxy', async (t) => {
  const remoteView = process.env.REMOTE_VIEW_BIN ?? path.join(target, 'release', 'remote-view');
  const page = path.join(root, 'examples/remote-view/web/dist/index.html');
  if (!fs.existsSync(remoteView) || !fs.existsSync(page)) {
    const why = `needs ${remoteView} and ${page} (bash examples/remote-view/run.sh builds both; so does tests/browser/run.sh)`;
    if (process.env.WSLINK_REQUIRE_ALL === '1') assert.fail(why);
    t.skip(why);
    return;
  }
  // The block as the README shows it, on free ports instead of 9000-9010.
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = readme.split('\n## Launcher\n')[1].split('```jsonc\n')[1].split('\n```')[0];
  const port = await freePort();
  const session = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-readme-'));
  const text = block
    .replaceAll('127.0.0.1:9000', `127.0.0.1:${port}`)
    .replace('"port": 9000', `"port": ${port}`)
    .replace('[9001, 9010]', `[${session}, ${session}]`)
    .replace('"target/release"', JSON.stringify(path.dirname(remoteView)))
    .replace('"target/launcher/proxy-mapping.txt"', JSON.stringify(path.join(dir, 'proxy-mapping.txt')))
    .replace('"target/launcher/logs"', JSON.stringify(path.join(dir, 'logs')));
  const config = path.join(dir, 'launcher.json');
  fs.writeFileSync(config, text);
  // Relative paths in the file are from the repository root, as the README runs it.
  const cwd = process.cwd();
  process.chdir(root);
  let launcher;
  try {
    launcher = await startLauncher('ours', config, port);
  } finally {
    process.chdir(cwd);
  }
  const tab = await browser.newPage();
  try {
    const answer = await (await fetch(`http://127.0.0.1:${port}/paraview/`, {
      method: 'POST', body: JSON.stringify({ application: 'remote-view' }),
    })).json();
    assert.equal(answer.sessionURL, `ws://127.0.0.1:${port}/proxy?sessionId=${answer.id}`);
    await tab.goto(`http://127.0.0.1:${port}/?ws=${answer.sessionURL}&secret=${answer.secret}`);
    await tab.waitForFunction(() => window.remoteView && window.remoteView.frames.length > 0, null, { timeout: 30000 });
    assert.match(launcher.log(), /proxy: 127\.0\.0\.1:\d+ connected to session/);
    // The session got its secret through ${secretFile}: no command line shows it.
    const sessions = markedProcesses().filter((p) => p.cmd.includes('remote-view') && p.cmd.includes('--authKey-file'));
    assert.equal(sessions.length, 1, JSON.stringify(markedProcesses()));
    assert.ok(!markedProcesses().some((p) => p.cmd.includes(answer.secret)), 'the secret is on a command line');
  } finally {
    await tab.close();
    const how = await launcher.stop();
    assert.equal(how.code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(markedProcesses(), []);
});
