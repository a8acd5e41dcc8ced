// wss:// and https:// against `wslink serve --ssl adhoc`, from the clients
// people use: npm wslink 2.5.0 and 1.12.4 (their unmodified browser
// bundles) in Debian's headless chromium, on a page the server itself
// serves over https; and our TypeScript client (js-client) in Node, trusting
// the server's certificate through NODE_EXTRA_CA_CERTS.
//
// Chromium trusts the ad-hoc certificate by its public key only
// (--ignore-certificate-errors-spki-list with the hash the server prints),
// not by ignoring certificate errors: a browser without that flag is shown
// to refuse the same page.
//
//   bash tests/tls/run.sh      (builds and installs what this needs)
//
// Needs the `wslink` binary (WSLINK_BIN, else target/debug/wslink), Debian's
// chromium (CHROMIUM, default /usr/bin/chromium), playwright-core from
// tests/browser, npm wslink in tests/peers and js-client/dist.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { chromium } = createRequire(path.join(root, 'tests/browser/package.json'))('playwright-core');
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const wslinkBin = process.env.WSLINK_BIN ?? path.join(target, 'debug', 'wslink');
const npmWslink = (major) => path.join(root, `tests/peers/node_modules/wslink-${major}/dist/wslink.js`);
const SECRET = 'tls-test-secret';

// Both npm bundles side by side; connect() goes through SmartConnect, as
// ParaView Web and trame pages do.
const PAGE = `<!doctype html><meta charset="utf-8"><title>wss test</title>
<script src="wslink2.js"></script><script>window.wslink2 = window.wslink;</script>
<script src="wslink1.js"></script><script>window.wslink1 = window.wslink;</script>
<script>
window.sessions = {};
window.connect = (lib, config) => new Promise((resolve) => {
  const sc = window[lib].SmartConnect.newInstance({ config });
  sc.onConnectionReady((connection) => { window.sessions[lib] = { sc, session: connection.getSession() }; resolve({ ok: true }); });
  sc.onConnectionError((_data, err) => resolve({ ok: false, error: String(err) }));
  sc.onConnectionClose(() => resolve({ ok: false, error: 'closed' }));
  sc.connect();
});
window.call = (lib, method, args) => window.sessions[lib].session.call(method, args);
window.disconnect = (lib) => { window.sessions[lib].sc.destroy(); delete window.sessions[lib]; };
</script>`;

let dir;
let server;
const browsers = [];

/** `wslink serve --ssl adhoc` serving `www`; resolves with its port, the
 * saved certificate file and the SPKI hash it printed. */
function serveAdhoc(www, certFile) {
  return new Promise((resolve, reject) => {
    const child = spawn(wslinkBin, ['serve', '--host', '127.0.0.1', '--port', '0', '--timeout', '0', '--conformance',
      '--authKey', SECRET, '--content', www, '--ssl', 'adhoc', '--ssl-adhoc-cert', certFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let log = '';
    let port;
    let spki;
    const ready = () => { if (port && spki) resolve({ child, port, spki, log: () => log }); };
    child.stderr.on('data', (d) => {
      log += d;
      const m = /SPKI SHA-256 \(base64[^)]*\): (\S+)/.exec(log);
      if (m) { spki = m[1]; ready(); }
    });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /wss:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) { port = Number(m[1]); ready(); }
    });
    child.on('exit', (code) => reject(new Error(`wslink serve exited with ${code}: ${log}`)));
  });
}

function launch(args = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  }).then((b) => { browsers.push(b); return b; });
}

before(async () => {
  assert.ok(fs.existsSync(wslinkBin), `no wslink binary at ${wslinkBin} (cargo build -p wslink-cli)`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wslink-tls-'));
  const www = path.join(dir, 'www');
  fs.mkdirSync(www);
  fs.writeFileSync(path.join(www, 'index.html'), PAGE);
  fs.copyFileSync(npmWslink(2), path.join(www, 'wslink2.js'));
  fs.copyFileSync(npmWslink(1), path.join(www, 'wslink1.js'));
  server = await serveAdhoc(www, path.join(dir, 'adhoc-cert.pem'));
});

after(async () => {
  for (const b of browsers) await b.close();
  server?.child.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('npm wslink 2.5.0 and 1.12.4 in chromium call our server over wss, from a page it served over https', async () => {
  const browser = await launch([`--ignore-certificate-errors-spki-list=${server.spki}`]);
  const page = await browser.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const origin = `https://localhost:${server.port}`;
  const response = await page.goto(`${origin}/`);
  assert.equal(response.status(), 200);
  assert.equal(await page.evaluate(() => location.protocol), 'https:');
  // Not an error page: the certificate was accepted for this key.
  assert.equal(await page.evaluate(() => typeof window.wslink2.SmartConnect), 'object');

  for (const lib of ['wslink2', 'wslink1']) {
    const sessionURL = `wss://localhost:${server.port}/ws`;
    const connected = await page.evaluate(([l, c]) => window.connect(l, c), [lib, { sessionURL, secret: SECRET }]);
    assert.deepEqual(connected, { ok: true }, `${lib}: ${JSON.stringify(connected)}\n${server.log()}`);
    assert.equal(await page.evaluate(([l]) => window.call(l, 'conformance.add', [20, 22]), [lib]), 42);
    const text = `über TLS ${lib} ✓`;
    assert.equal(await page.evaluate(([l, t]) => window.call(l, 'conformance.echo', [t]), [lib, text]), text);
    await page.evaluate(([l]) => window.disconnect(l), [lib]);
  }
  // Both sessions went over TLS sockets, none over ws://.
  assert.equal(sockets.length, 2, JSON.stringify(sockets));
  for (const url of sockets) assert.match(url, /^wss:\/\/localhost:\d+\/ws$/);
});

test('a chromium that was not told about the certificate refuses the page', async () => {
  const browser = await launch();
  const page = await browser.newPage();
  await assert.rejects(page.goto(`https://localhost:${server.port}/`), /ERR_CERT_AUTHORITY_INVALID|ERR_CERT/);
});

/** Runs the js-client in a child Node process; resolves with its output. */
function nodeClient(env) {
  const script = `
    import { connect } from ${JSON.stringify(path.join(root, 'js-client/dist/src/index.js'))};
    try {
      const client = await connect({ url: process.env.URL, secret: ${JSON.stringify(SECRET)}, connectTimeout: 10000 });
      const sum = await client.call('conformance.add', [20, 22]);
      console.log('result', JSON.stringify(sum));
      client.close();
    } catch (e) {
      console.log('failed', e && e.message, e && e.cause && e.cause.message);
    }
    process.exit(0);`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--experimental-websocket', '--no-warnings', '--input-type=module', '-e', script], {
      env: { ...process.env, URL: `wss://localhost:${server.port}/ws`, ...env },
      timeout: 30000,
    }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim())));
  });
}

test('the TypeScript client in Node connects over wss trusting the certificate via NODE_EXTRA_CA_CERTS', async () => {
  const cert = path.join(dir, 'adhoc-cert.pem');
  assert.ok(fs.readFileSync(cert, 'utf8').startsWith('-----BEGIN CERTIFICATE-----'));
  assert.equal(await nodeClient({ NODE_EXTRA_CA_CERTS: cert }), 'result 42');
  // Without it, Node's default roots do not know the certificate.
  const refused = await nodeClient({ NODE_EXTRA_CA_CERTS: '' });
  assert.match(refused, /^failed/);
});
